// The floor under the HTTP benchmark (`npm run bench -- http`): a bare passthrough proxy, a
// `node:http` server that forwards every request to the emulator through an undici keep-alive
// pool and streams the answer back, with no checks at all (no auth, no quota, no pool, no
// accounting). Whatever a carpool node costs beyond this is the price of its features. Options
// come as one JSON argument `{"upstream": URL, "key": KEY}`; the process prints `{"port": N}` on
// one line once it listens and closes on SIGTERM.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const options = JSON.parse(process.argv[2] ?? '{}') as { upstream: string; key: string };
const pool = new Pool(options.upstream, { connections: 256, keepAliveTimeout: 10_000 });

/** Headers the proxy passes on: what the Messages API reads, nothing hop-by-hop. */
const passed = ['content-type', 'anthropic-version', 'anthropic-beta'];

async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const headers: Record<string, string> = { 'x-api-key': options.key };
  for (const name of passed) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const upstream = await pool.request({ method: 'POST', path: req.url ?? '/v1/messages', headers, body: Buffer.concat(chunks) });
  const contentType = upstream.headers['content-type'];
  res.writeHead(upstream.statusCode, typeof contentType === 'string' ? { 'content-type': contentType } : {});
  // Backpressure as a real proxy has it: stop reading the upstream while the client is slow.
  for await (const chunk of upstream.body) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
  }
  res.end();
}

const server = createServer((req, res) => {
  forward(req, res).catch((error: unknown) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(String(error));
  });
});
server.keepAliveTimeout = 10_000;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })));
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => void pool.close().then(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
