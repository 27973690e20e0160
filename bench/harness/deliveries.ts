import { spread } from './stats.ts';

/** Delivery latencies of one phase, sender to each receiver. */
export interface Deliveries {
  latenciesMs: Float64Array;
  /** Receptions that should have happened (every recording client of the document but the sender, per send). */
  expected: number;
}

/**
 * Matches what arrived with what was sent. A send is identified by its
 * sender's clientID and the clock of what it made (a Yjs item, an awareness
 * state); a reception covers a range of one sender's clocks, since Hocuspocus
 * merges the updates that arrive in one event-loop turn into one broadcast,
 * and collapses awareness states to the latest.
 *
 * `sent`: [client, clock, at] records; `received`: [client, clock, length, at];
 * `receiversOf(client)`: how many recording clients should receive what
 * `client` sends.
 */
export function matchDeliveries(sent: Float64Array[], received: Float64Array[], receiversOf: (client: number) => number): Deliveries {
  const bySender = new Map<number, { clocks: number[]; times: number[] }>();
  let expected = 0;
  for (const records of sent) {
    for (let i = 0; i < records.length; i += 3) {
      const client = records[i]!;
      let sender = bySender.get(client);
      if (!sender) bySender.set(client, (sender = { clocks: [], times: [] }));
      sender.clocks.push(records[i + 1]!);
      sender.times.push(records[i + 2]!);
      expected += receiversOf(client);
    }
  }
  for (const sender of bySender.values()) sortTogether(sender.clocks, sender.times);

  const latencies: number[] = [];
  for (const records of received) {
    for (let i = 0; i < records.length; i += 4) {
      const sender = bySender.get(records[i]!);
      if (!sender) continue;
      const clock = records[i + 1]!;
      const end = clock + records[i + 2]!;
      const at = records[i + 3]!;
      for (let k = lowerBound(sender.clocks, clock); k < sender.clocks.length && sender.clocks[k]! < end; k++) latencies.push(at - sender.times[k]!);
    }
  }
  return { latenciesMs: Float64Array.from(latencies), expected };
}

/** p50, p95, p99 and max of a phase's deliveries, and the share of the expected ones that arrived. */
export function summarize(deliveries: Deliveries): ReturnType<typeof spread> & { deliveredShare: number } {
  const figures = spread(deliveries.latenciesMs);
  return { ...figures, deliveredShare: deliveries.expected ? figures.count / deliveries.expected : NaN };
}

function sortTogether(keys: number[], values: number[]): void {
  if (keys.every((key, i) => i === 0 || keys[i - 1]! <= key)) return;
  const order = keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
  const [k, v] = [order.map((i) => keys[i]!), order.map((i) => values[i]!)];
  k.forEach((key, i) => ((keys[i] = key), (values[i] = v[i]!)));
}

function lowerBound(sorted: number[], value: number): number {
  let [low, high] = [0, sorted.length];
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
