/**
 * Serves the report editor example (see examples/shared/serve-page.ts).
 *
 *   npm start                                   # Concord, in one terminal
 *   node examples/report-editor/serve.ts        # this, in another (--port, --host)
 *   npm run -s token -- --tenant acme --user alice --role editor --name Alice
 *
 * Open the printed URL, paste the token and connect; open it again in a second
 * window with another user's token to see each other's carets.
 */
import { fileURLToPath } from 'node:url';
import { servePage } from '../shared/serve-page.ts';

await servePage({ title: 'Report editor example', directory: fileURLToPath(new URL('.', import.meta.url)), defaultPort: 8790 });
