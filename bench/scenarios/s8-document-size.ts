import * as Y from 'yjs';
import { kindOf } from '../../src/documents/kinds.ts';
import { DocumentTracker } from '../../src/projection/tracker.ts';
import { QuoteEditor } from '../harness/quote-editor.ts';
import { acknowledgedRate, ackLatencies, loadNote, runPhase, type Scenario } from '../harness/scenario.ts';
import { fixed, mean, percentile, spread } from '../harness/stats.ts';
import { editors } from './clients.ts';
import { verifyStored } from './stored.ts';

const SIZES = { small: 10, large: 2_000 } as const;
// Notes of a few paragraphs, and of a long-edited quote (typed by the bench editor, so in words between other edits).
const NOTES = { short: 1_000, long: 25_000 } as const;
const PACED_RATE = 200;
const WINDOW = 100;

/** Does what every update carries (audit rows, table rows) stay flat as a quote grows? */
export const documentSize: Scenario = {
  id: 'S8',
  title: 'document size',
  description:
    `The cost of what each update carries besides its log row — its field_changes rows and its quotes/quote_lines rows, written in the same transaction — in a quote of ${SIZES.small} lines and one of ${SIZES.large.toLocaleString('en')}: ` +
    `in process, the tracker reading one transaction (line edits, median of 3 rounds of 20,000; keystrokes into notes of ${NOTES.short.toLocaleString('en')} and ${NOTES.long.toLocaleString('en')} characters); end to end, one writer per quote paced at ${PACED_RATE} updates/s (ack p50) and at full speed (${WINDOW} in flight). ` +
    'The figures at both sizes should be alike; afterwards the tables must show every edit.',
  rows: [
    { key: 'trackerSmall', label: `tracker per line edit, ${SIZES.small} lines`, unit: 'µs', digits: 1, bareless: 'no audit or tables' },
    { key: 'trackerLarge', label: `tracker per line edit, ${SIZES.large.toLocaleString('en')} lines`, unit: 'µs', digits: 1, bareless: 'no audit or tables' },
    { key: 'keystrokeShort', label: `tracker per keystroke, notes of ${NOTES.short.toLocaleString('en')} characters`, unit: 'µs', digits: 1, bareless: 'no audit or tables' },
    { key: 'keystrokeLong', label: `tracker per keystroke, notes of ${NOTES.long.toLocaleString('en')} characters`, unit: 'µs', digits: 1, bareless: 'no audit or tables' },
    { key: 'ackSmall', label: `ack p50 at ${PACED_RATE}/s, ${SIZES.small} lines`, unit: 'ms', digits: 2 },
    { key: 'ackLarge', label: `ack p50 at ${PACED_RATE}/s, ${SIZES.large.toLocaleString('en')} lines`, unit: 'ms', digits: 2 },
    { key: 'rateSmall', label: `full speed, ${SIZES.small} lines`, unit: 'updates/s', digits: 0 },
    { key: 'rateLarge', label: `full speed, ${SIZES.large.toLocaleString('en')} lines`, unit: 'updates/s', digits: 0 },
  ],
  async measure(run) {
    const [seconds, trackerEdits, rounds] = run.smoke ? [1, 1_000, 1] : [5, 20_000, 3];
    const figures: Record<string, number | null> = { trackerSmall: null, trackerLarge: null, keystrokeShort: null, keystrokeLong: null };
    if (run.kind === 'concord') {
      // Whichever size ran first would also pay for JIT compilation: one unmeasured run first, then the sizes take turns.
      trackerCost(SIZES.small, trackerEdits);
      const costs = Array.from({ length: rounds }, () => [trackerCost(SIZES.small, trackerEdits), trackerCost(SIZES.large, trackerEdits)]);
      figures.trackerSmall = percentile(costs.map(([small]) => small!.mean).sort((a, b) => a - b), 0.5);
      figures.trackerLarge = percentile(costs.map(([, large]) => large!.mean).sort((a, b) => a - b), 0.5);
      run.note(`tracker p99 per line edit: ${costs.map(([small, large]) => `${fixed(small!.p99, 0)} / ${fixed(large!.p99, 0)}`).join(', ')} µs (${SIZES.small} / ${SIZES.large} lines, per round)`);
      figures.keystrokeShort = keystrokeCost(NOTES.short, trackerEdits / 10);
      figures.keystrokeLong = keystrokeCost(run.smoke ? NOTES.short * 2 : NOTES.long, trackerEdits / 10);
    }

    const deployment = await run.deploy();
    const pool = run.load(1);
    await pool.open(Object.entries(SIZES).flatMap(([size, lines]) => editors(deployment, `s8-${size}`, 1, { prefix: size, group: size, lines, record: false })));
    let edits = 0;
    for (const [size, lines] of Object.entries(SIZES)) {
      const suffix = size === 'small' ? 'Small' : 'Large';
      const paced = { [size]: { editsPerSecond: PACED_RATE, timeAcks: true } };
      const warmUp = await runPhase(deployment, pool, paced, seconds / 2);
      const pacedOutcome = await runPhase(deployment, pool, paced, seconds);
      const fullOutcome = await runPhase(deployment, pool, { [size]: { window: WINDOW } }, seconds);
      edits += [warmUp, pacedOutcome, fullOutcome].reduce((sum, outcome) => sum + outcome.reports[0]!.edits, 0);
      figures[`ack${suffix}`] = spread(ackLatencies(pacedOutcome.reports)).p50;
      figures[`rate${suffix}`] = acknowledgedRate(fullOutcome);
      run.note(loadNote(`${lines} lines, full speed`, fullOutcome));
    }
    if (run.kind === 'concord') run.note(await verifyStored(deployment, Object.keys(SIZES).map((size) => `s8-${size}`), edits + 2));
    return figures;
  },
};

/** In process: DocumentTracker.observe per transaction, editing line fields of a quote of `lineCount` lines, µs. */
function trackerCost(lineCount: number, edits: number): { mean: number; p99: number } {
  const doc = new Y.Doc();
  const tracker = new DocumentTracker(kindOf('quote'), doc, 'bench');
  let observed: number[] = [];
  // As the server's persistence extension does: read each transaction before its deleted content is collected.
  doc.on('afterTransaction', (transaction: Y.Transaction) => {
    const startedAt = performance.now();
    tracker.observe(transaction);
    observed.push((performance.now() - startedAt) * 1000);
  });
  const editor = new QuoteEditor(doc, 'bench');
  editor.addLines(lineCount);
  const lines = doc.getArray<Y.Map<unknown>>('lines').toArray();
  const edit = (i: number) => lines[(i * 7919) % lines.length]!.set('quantity', i);
  for (let i = 0; i < 1_000; i++) edit(i);
  observed = [];
  for (let i = 0; i < edits; i++) edit(1_000 + i);
  return { mean: mean(observed), p99: spread(observed).p99 };
}

/** In process: DocumentTracker.observe per keystroke into notes of `characters` characters that the bench editor typed, µs (mean). */
function keystrokeCost(characters: number, keystrokes: number): number {
  const doc = new Y.Doc();
  const editor = new QuoteEditor(doc, 'bench');
  editor.addLines(1);
  const notes = doc.getText('notes');
  while (notes.length < characters) editor.next();
  const tracker = new DocumentTracker(kindOf('quote'), doc, 'bench');
  const observed: number[] = [];
  doc.on('afterTransaction', (transaction: Y.Transaction) => {
    const startedAt = performance.now();
    tracker.observe(transaction);
    if (transaction.changed.has(notes as Y.AbstractType<any>)) observed.push((performance.now() - startedAt) * 1000);
  });
  while (observed.length < keystrokes) editor.next();
  return mean(observed);
}
