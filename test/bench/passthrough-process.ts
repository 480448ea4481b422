// The floors under the gateway and HTTP benchmarks: a bare passthrough proxy that forwards every
// request to the emulator through an undici keep-alive pool and sends the answer back, with no
// checks at all (no auth, no quota, no pool, no accounting). Whatever a carpool node costs beyond
// it is the price of its features. Two front ends, one per node endpoint:
//   http  a `node:http` server streaming the upstream's answer back (the HTTP front door's floor);
//   grpc  a grpc-js server with the node's own contract and server options, whose Complete posts
//         `request_json` upstream and answers the body as `message_json` (the gRPC endpoint's
//         floor: what grpc-js and HTTP/2 cost on this machine before any feature).
// Options come as one JSON argument `{"upstream": URL, "key": KEY, "front": "http" | "grpc"}`;
// the process prints `{"port": N}` on one line once it listens and closes on SIGTERM, or when
// its standard input ends (the harness holds it open: a killed harness leaves no proxy behind).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { Pool } from 'undici';
import { loadCarpoolProto } from '../../src/net/grpc/carpool-proto.js';
import type { WireCompleteRequest, WireCompleteResponse } from '../../src/net/grpc/carpool-wire.js';
import { grpcServerOptions } from '../../src/net/grpc/grpc-server.js';

const options = JSON.parse(process.argv[2] ?? '{}') as { upstream: string; key: string; front?: 'http' | 'grpc' };
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

function startHttp(): Promise<number> {
  const server = createServer((req, res) => {
    forward(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  server.keepAliveTimeout = 10_000;
  stoppers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** The upstream's answer to one Complete, as a bare proxy would relay it: the body, nothing parsed. */
async function complete(wire: WireCompleteRequest): Promise<WireCompleteResponse> {
  const headers: Record<string, string> = {
    'x-api-key': options.key,
    'content-type': 'application/json',
    'anthropic-version': wire.anthropic_version || '2023-06-01',
  };
  if (wire.anthropic_beta !== '') headers['anthropic-beta'] = wire.anthropic_beta;
  const upstream = await pool.request({ method: 'POST', path: '/v1/messages', headers, body: wire.request_json });
  const body = Buffer.from(await upstream.body.arrayBuffer());
  if (upstream.statusCode !== 200) throw new Error(`upstream answered ${upstream.statusCode}: ${body.toString('utf8').slice(0, 200)}`);
  return { request_id: wire.request_id, message_json: body, usage: null, served_region: '' };
}

async function startGrpc(): Promise<number> {
  const proto = loadCarpoolProto();
  const server = new Server(grpcServerOptions());
  server.addService(proto.carpool, {
    Complete: (call: ServerUnaryCall<WireCompleteRequest, WireCompleteResponse>, callback: sendUnaryData<WireCompleteResponse>) => {
      complete(call.request).then(
        (reply) => callback(null, reply),
        (error: unknown) => callback({ code: status.UNAVAILABLE, details: String(error) }),
      );
    },
  });
  stoppers.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))),
  );
}

const stoppers: Array<() => Promise<void>> = [];
const port = await (options.front === 'grpc' ? startGrpc() : startHttp());
console.log(JSON.stringify({ port }));
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  void Promise.all(stoppers.map((stopper) => stopper()))
    .then(() => pool.close())
    .then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.once('end', stop).resume();
