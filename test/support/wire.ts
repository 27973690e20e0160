/** JSON that keeps the values Postgres drivers return and take: bytes, times and big integers. */
export function toWire(value: unknown): string {
  return JSON.stringify(value, function (key, item) {
    const raw = (this as Record<string, unknown>)[key];
    if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString('base64') };
    if (raw instanceof Date) return { $date: raw.toISOString() };
    if (typeof raw === 'bigint') return { $bigint: raw.toString() };
    return item;
  });
}

export function fromWire(text: string): unknown {
  return JSON.parse(text, (_key, item) => {
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      if (typeof item.$bytes === 'string') return new Uint8Array(Buffer.from(item.$bytes, 'base64'));
      if (typeof item.$date === 'string') return new Date(item.$date);
      if (typeof item.$bigint === 'string') return BigInt(item.$bigint);
    }
    return item;
  });
}
