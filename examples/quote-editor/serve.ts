/**
 * Serves the quote editor example (see examples/shared/serve-page.ts).
 *
 *   npm start                                   # Concord, in one terminal
 *   npm run example:quote                       # this, in another (-- --port, --host)
 *   npm run -s token -- --tenant acme --user alice --role editor --name Alice
 *
 * Open the printed URL, paste the token and connect; open it again in a second
 * window with another user's token to edit the same quote together.
 */
import { fileURLToPath } from 'node:url';
import { servePage } from '../shared/serve-page.ts';

await servePage({ title: 'Quote editor example', directory: fileURLToPath(new URL('.', import.meta.url)), defaultPort: 8791 });
