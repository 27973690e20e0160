/**
 * Connects with a token, edits a quote and prints what the server acknowledged.
 *
 *   npm start                       # in one terminal
 *   TOKEN=$(npm run -s token -- --tenant acme --user alice --role editor --name Alice)
 *   node examples/edit-quote.ts "$TOKEN" acme/quote/q-1001
 */
import { HocuspocusProvider } from '@hocuspocus/provider';
import { Command } from 'commander';
import * as Y from 'yjs';

const program = new Command('npm run example --')
  .description('Connects with a token, edits a quote and prints what the server acknowledged (the server: CONCORD_URL, default ws://127.0.0.1:8787).')
  .argument('<token>', 'an editor\'s token: npm run -s token -- --tenant acme --user alice --role editor')
  .argument('[document]', '<tenant>/quote/<id>', 'acme/quote/q-1001')
  .parse();
const [token, name] = program.processedArgs as [string, string];
const url = process.env.CONCORD_URL ?? 'ws://127.0.0.1:8787';

const document = new Y.Doc();
const provider = new HocuspocusProvider({
  url,
  name,
  token,
  document,
  onAuthenticationFailed: ({ reason }) => {
    console.error(`refused: ${reason}`);
    process.exit(1);
  },
  onClose: ({ event }) => console.error(`closed: ${event.reason}`),
});

await new Promise<void>((resolve) => provider.on('synced', () => resolve()));
console.log(`synced ${name}; the server holds ${document.getArray('lines').length} line(s)`);

document.transact(() => {
  const quote = document.getMap('quote');
  quote.set('title', 'Office chairs');
  quote.set('status', 'draft');
  quote.set('currency', 'EUR');
  const line = new Y.Map<unknown>();
  line.set('id', `line-${Date.now().toString(36)}`);
  line.set('sku', 'CHAIR-01');
  line.set('description', 'Ergonomic chair');
  line.set('quantity', 4);
  line.set('unitPrice', 249.5);
  line.set('discountPct', 0);
  document.getArray<Y.Map<unknown>>('lines').push([line]);
});
const sentAt = performance.now();
console.log(`edited; unsynced changes: ${provider.unsyncedChanges}`);

// unsyncedChanges returns to 0 only after the server has committed the edit to Postgres.
await new Promise<void>((resolve) => {
  const check = () => provider.unsyncedChanges === 0 && (provider.off('unsyncedChanges', check), resolve());
  provider.on('unsyncedChanges', check);
  check();
});
console.log(`acknowledged (durable in Postgres) after ${(performance.now() - sentAt).toFixed(1)} ms`);
console.log(JSON.stringify({ quote: document.getMap('quote').toJSON(), lines: document.getArray('lines').toJSON() }, null, 2));
provider.destroy();
