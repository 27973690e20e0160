/**
 * The baseline every scenario also runs against: a bare Hocuspocus 4.7 server
 * (no authentication, no persistence), as its README starts one; with
 * REDIS_URL, its Redis extension and nothing else (the cross-instance baseline).
 *
 *   node bench/harness/bare-server.ts      # PORT (default: any free port), REDIS_URL (optional)
 */
import { Redis } from '@hocuspocus/extension-redis';
import { Server } from '@hocuspocus/server';

const redisUrl = process.env.REDIS_URL ? new URL(process.env.REDIS_URL) : undefined;
const server = new Server({
  port: Number(process.env.PORT ?? 0),
  address: '127.0.0.1',
  quiet: true,
  extensions: redisUrl ? [new Redis({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) })] : [],
});
await server.listen();
const { port } = server.address;
// The same "listening" line as Concord's log, which ServerProcess waits for.
console.log(JSON.stringify({ port, msg: `bare Hocuspocus listening on ws://127.0.0.1:${port}` }));
