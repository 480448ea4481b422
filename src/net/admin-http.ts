import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small JSON-over-HTTP endpoint for operators and tests: status, counter reads and writes,
 * policy edits, and the Prometheus metrics of one node. It is an adapter: routes call an `AdminHandler` and map its answers
 * to statuses; nothing here knows the mesh. Bind it to loopback or a private interface only: it
 * has no authentication of its own (the public API is the gRPC endpoint of a later issue).
 *
 *   GET    /status                          node, peers, mesh and transport counters; with a gRPC
 *                                           endpoint also `gateway`: {requests, completed,
 *                                           inFlight, queueDepth}
 *   GET    /metrics                         the Prometheus exposition of the node's one registry
 *                                           (text/plain; version=0.0.4); 404 when the node
 *                                           keeps no metrics
 *   GET    /counters?scope=&subject=&metric=&unit=&index=[&atLeast=N&waitMs=M]
 *                                           value and per-replica contributions; with atLeast,
 *                                           waits up to waitMs for the value to reach N
 *   POST   /counters                        {"updates":[{scope,subject,metric,unit,index,amount,refund?}]}
 *   GET    /policy                          tenants, accounts, settings, invalid entries
 *   PUT    /policy/tenants/{id}             a tenant (see src/mesh/policy/policy-schema.ts)
 *   DELETE /policy/tenants/{id}
 *   PUT    /policy/accounts/{id}            an account
 *   DELETE /policy/accounts/{id}
 *   PATCH  /policy/settings                 {"gossipIntervalMs": 50, ...}
 *   POST   /admission/admit                 {tenant, user?, requestId, amounts: {metric: n}, leaseMs?}:
 *                                           200, or the rejection with 429/503 and Retry-After
 *   POST   /admission/settle                {requestId, used: {metric: n}}
 *   GET    /pool                            this node's view of the accounts: health state,
 *                                           permits in flight and queued, when each is back
 *   POST   /pool/accounts/{id}/enable       re-enable an account a 401/402/403 disabled (on
 *                                           this node: health is tracked per node)
 *
 * Replies are JSON except where a route says otherwise (GET /metrics). Errors are
 * `{"error": "...", "field": "..."}` with 400 (bad input), 404, 405 or 413.
 */
export interface AdminReply {
  readonly status: number;
  /** Sent as JSON, unless `text` is set. */
  readonly body: unknown;
  /** A reply that is not JSON: sent as it is, with `contentType`, and `body` is ignored. */
  readonly text?: string;
  /** The content type of `text`; `text/plain; charset=utf-8` by default. */
  readonly contentType?: string;
  /** Extra response headers, such as `retry-after` on a rejection. */
  readonly headers?: { readonly [name: string]: string | undefined };
}

export interface AdminHandler {
  handle(method: string, path: readonly string[], query: URLSearchParams, body: unknown): AdminReply | Promise<AdminReply>;
}

/** Largest request body accepted. */
export const adminBodyBytesMax = 1024 * 1024;

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminHttp(host: string, port: number, handler: AdminHandler): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    serve(req, res, handler).catch((error: unknown) => reply(res, { status: 500, body: { error: String(error) } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, handler: AdminHandler): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin.invalid');
  const path = url.pathname.split('/').filter((part) => part.length > 0).map(decodeURIComponent);
  const method = req.method ?? 'GET';
  let body: unknown;
  if (method !== 'GET' && method !== 'DELETE') {
    const read = await readBody(req);
    if (read.kind === 'too-large') return reply(res, { status: 413, body: { error: `request body over ${adminBodyBytesMax} bytes` } });
    if (read.kind === 'bad-json') return reply(res, { status: 400, body: { error: `request body is not JSON: ${read.detail}` } });
    body = read.value;
  }
  reply(res, await handler.handle(method, path, url.searchParams, body));
}

type BodyRead = { kind: 'ok'; value: unknown } | { kind: 'too-large' } | { kind: 'bad-json'; detail: string };

function readBody(req: IncomingMessage): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > adminBodyBytesMax) {
        done = true;
        resolve({ kind: 'too-large' });
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.length === 0) return resolve({ kind: 'ok', value: undefined });
      try {
        resolve({ kind: 'ok', value: JSON.parse(text) as unknown });
      } catch (error) {
        resolve({ kind: 'bad-json', detail: error instanceof Error ? error.message : String(error) });
      }
    });
    req.on('error', () => {
      if (!done) resolve({ kind: 'bad-json', detail: 'request aborted' });
      done = true;
    });
  });
}

function reply(res: ServerResponse, answer: AdminReply): void {
  if (res.headersSent) return;
  const isText = answer.text !== undefined;
  const text = answer.text ?? JSON.stringify(answer.body);
  const contentType = isText ? (answer.contentType ?? 'text/plain; charset=utf-8') : 'application/json';
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers ?? {})) if (value !== undefined) headers[name] = value;
  res.writeHead(answer.status, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
