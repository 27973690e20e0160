/**
 * Fixed-width numeric records in one growable Float64Array: hundreds of
 * thousands of receptions cost little to keep and travel between processes
 * as one typed array (IPC with `serialization: 'advanced'`).
 */
export class Records {
  readonly width: number;
  private data: Float64Array;
  private used = 0;

  constructor(width: number, capacity = 1024) {
    this.width = width;
    this.data = new Float64Array(width * capacity);
  }

  get length(): number {
    return this.used / this.width;
  }

  push(...values: number[]): void {
    if (this.used + this.width > this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    for (const value of values) this.data[this.used++] = value;
  }

  /** The records so far, and an empty store for the next ones. */
  take(): Float64Array {
    const taken = this.data.slice(0, this.used);
    this.used = 0;
    return taken;
  }
}
