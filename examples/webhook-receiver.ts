/**
 * A webhook receiver: registers itself with Concord (or takes a secret it was
 * given), verifies every request's signature with the Standard Webhooks
 * library, drops deliveries and events it already has, and prints the events.
 *
 *   WEBHOOK_ALLOW_PRIVATE=true npm start       # in one terminal: this receiver listens on 127.0.0.1
 *   ADMIN=$(npm run -s token -- --tenant acme --user ada --role admin)
 *   npm run example:webhooks -- "$ADMIN"        # registers http://127.0.0.1:8792/, removes it on Ctrl-C
 *   npm run example -- "$(npm run -s token -- --tenant acme --user alice --role editor)"   # then edit: events print here
 *
 * With `--secret whsec_...` instead of a token it only listens (for an endpoint registered elsewhere).
 */
import { createServer } from 'node:http';
import { Command, InvalidArgumentError } from 'commander';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { ChangeEvent } from '../src/events/event.ts';

const program = new Command('npm run example:webhooks --')
  .description('Receives Concord\'s webhooks on 127.0.0.1, verifies their signatures and prints the events (the server: CONCORD_HTTP_URL, default http://127.0.0.1:8787).')
  .argument('[admin-token]', 'registers this receiver with an admin\'s token, and removes it on Ctrl-C')
  .option('--secret <whsec>', 'only listen, for an endpoint registered elsewhere with this secret')
  .option('--port <port>', 'where to listen', (value) => {
    const port = Number(value);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new InvalidArgumentError('a port number');
    return port;
  }, 8792)
  .parse();
const [adminToken] = program.processedArgs as [string | undefined];
const options = program.opts<{ secret?: string; port: number }>();
const port = options.port;
const concord = process.env.CONCORD_HTTP_URL ?? 'http://127.0.0.1:8787';
if (!adminToken && !options.secret) program.error('give an admin token, or --secret whsec_... for an endpoint registered elsewhere');

async function concordApi(method: string, path: string, body?: unknown) {
  const response = await fetch(concord + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

// Register first when given a token: the answer is the only place the secret is shown.
const endpoint = adminToken ? ((await concordApi('POST', '/api/webhooks', { url: `http://127.0.0.1:${port}/` })) as { id: string; secret: string }) : null;
const webhook = new Webhook(endpoint?.secret ?? options.secret!);
// Delivery is at least once: a delivery (webhook-id) or an event (id) may come again after a crash or a replay.
const seenDeliveries = new Set<string>();
const seenEvents = new Set<string>();

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    let payload: { events: ChangeEvent[] };
    try {
      // Checks the signature over webhook-id, webhook-timestamp and the raw body, and that the timestamp is recent.
      payload = webhook.verify(body, request.headers as Record<string, string>) as { events: ChangeEvent[] };
    } catch (error) {
      console.error(`refused a request: ${error instanceof WebhookVerificationError ? error.message : String(error)}`);
      // A 4xx other than 408/429 is not retried: Concord dead-letters the delivery.
      return response.writeHead(401).end();
    }
    const deliveryId = request.headers['webhook-id'] as string;
    if (!seenDeliveries.has(deliveryId)) {
      seenDeliveries.add(deliveryId);
      for (const event of payload.events.filter((event) => !seenEvents.has(event.id))) {
        seenEvents.add(event.id);
        console.log(`${event.occurredAt} #${event.position} ${event.type} ${event.document.name} seq ${event.seq.join('-')} by ${event.actor} ${JSON.stringify(event.data)}`);
      }
    }
    // Answer quickly with a 2xx; slow work belongs after the answer (Concord times out and retries).
    response.writeHead(204).end();
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${port}/${endpoint ? `, registered as webhook ${endpoint.id}` : ''}; Ctrl-C stops`);
});

process.once('SIGINT', async () => {
  if (endpoint) await concordApi('DELETE', `/api/webhooks/${endpoint.id}`).catch((error) => console.error(String(error)));
  server.close();
  process.exit(0);
});
