import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AdminPrincipal, roleAllows } from '../admission/admin-access.js';
import { drainOrEnd } from './drain-or-end.js';
import { CallEndedError } from './grpc/carpool-handler.js';

/**
 * The admin endpoint of a node: JSON over HTTP for operators, `carpool admin` and tests. It is an
 * adapter: it guards every request, then routes call an `AdminHandler` (src/node/admin-routes.ts)
 * and their answers are mapped to statuses; nothing here knows the mesh.
 *
 * Every request passes these checks, in order, before any handler runs:
 *   1. `Host` must name this endpoint: its bind address and port, `localhost:<port>`,
 *      `127.0.0.1:<port>`, `[::1]:<port>`, or one of the configured `admin.allowedHosts`;
 *      anything else is 421 (a DNS-rebinding page reaches the socket under a foreign name);
 *   2. a request with an `Origin` not among the configured `admin.allowedOrigins` (none by
 *      default) is 403. No CORS header is ever sent, so a browser page of another origin cannot
 *      read an answer either;
 *   3. `Authorization: Bearer <token>` must carry a configured admin token (compared in constant
 *      time, src/admission/admin-access.ts); otherwise 401 with `www-authenticate: Bearer` and
 *      one message whatever failed;
 *   4. reads (GET) need the `viewer` role or more; every other method is a write and needs
 *      `admin`: 403 otherwise;
 *   5. a write must say `content-type: application/json` (415 otherwise; a cross-origin form or
 *      `text/plain` POST never reaches a handler), and its body, if any, must be JSON of at most
 *      `adminBodyBytesMax` bytes (400, 413).
 *
 * Routes (role: v = viewer, a = admin). Every write's JSON body may carry `"reason"`, which the
 * audit log keeps; it is required for usage adjustments.
 *
 *   v GET    /status                         node, peers, mesh and transport counters; with a gRPC
 *                                            endpoint also `gateway`: {requests, completed,
 *                                            inFlight, queueDepth}
 *   v GET    /metrics                        the Prometheus exposition (text/plain; version=0.0.4);
 *                                            404 when the node keeps no metrics
 *   v GET    /counters?scope=&subject=&metric=&unit=&index=[&atLeast=N&waitMs=M]
 *                                            a counter's value and per-replica contributions; with
 *                                            atLeast, waits up to waitMs for the value to reach N
 *   v GET    /counters/read?key=K[&key=K...][&consistency=local|quorum]
 *                                            the values of up to 100 counter keys, each
 *                                            `<scope>/<subject>/<metric>/<unit>:<index>`; at
 *                                            quorum after a read round (what `carpool audit` reads)
 *   v GET    /policy                         tenants (keys as metadata), accounts, settings,
 *                                            invalid entries
 *   v GET    /policy/tenants/{id}            one tenant
 *   a PUT    /policy/tenants/{id}            a tenant's fields (src/mesh/policy/policy-schema.ts,
 *                                            `tenantWritableFields`); its keys are kept
 *   a DELETE /policy/tenants/{id}
 *   v GET    /policy/tenants/{id}/keys       the tenant's keys: key id, name, times, state
 *   a POST   /policy/tenants/{id}/keys       {name, expiresAtMs?}: a new key, shown in this answer
 *                                            only; with {apiKey}, that existing key registered
 *   a POST   /policy/tenants/{id}/keys/{keyId}/revoke
 *   a POST   /policy/tenants/{id}/keys/{keyId}/rotate   {graceMs?, name?, expiresAtMs?}
 *   v GET    /policy/accounts/{id}
 *   a PUT    /policy/accounts/{id}           an account
 *   a DELETE /policy/accounts/{id}
 *   a PATCH  /policy/settings                {"gossipIntervalMs": 50, "pool": {...}, "shed": {...}}; merged
 *                                            over what is set (policy-schema.ts SettingsPatch)
 *   v GET    /pool                           this node's view of the accounts: health state,
 *                                            permits in flight and queued, when each is back
 *   a POST   /pool/accounts/{id}/enable      re-enable an account a 401/402/403 disabled (on this
 *                                            node: health is tracked per node)
 *   a PUT    /pool/accounts/{id}/credential  {kind: "oauth", accessToken, refreshToken, expiresAt}
 *                                            or {kind: "api-key", key}: the account's new upstream
 *                                            credential on its home node, kept in the store or its
 *                                            file (src/node/credentials/); re-enables an account
 *                                            disabled for its credential. Never echoed or logged
 *   v GET    /usage/tenants/{id}[?user=U][&consistency=local|quorum]
 *                                            the tenant's limits, used and remaining
 *   a POST   /usage/adjustments              {scope, subject, metric, window, index?, kind:
 *                                            charge|credit, amount, reason}: see
 *                                            src/node/admin/usage-adjustment.ts
 *   v GET    /usage/ledger[?side=tenant|account&tenant=&user=&apiKey=&model=&account=
 *                   &since=&until=&groupBy=a,b&rows=N]
 *                                            this node's usage ledger: totals, groups, the newest
 *                                            rows, and which node answered (each node keeps the
 *                                            rows of the requests it settled); parameters in
 *                                            src/node/admin/usage-query-params.ts; 404 on a node
 *                                            without a ledger (no dataDir)
 *   v GET    /usage/export?since=&format=csv|jsonl[&until=&side=&tenant=...]
 *                                            this node's ledger rows, oldest first, streamed
 *                                            (src/node/admin/ledger-export.ts); the answering node
 *                                            in the `carpool-node` header
 *   v GET    /audit[?limit=N]                the audit log, newest first
 *
 * No route writes counters directly. Replies are JSON except where a route says otherwise (GET
 * /metrics, GET /usage/export). Errors are `{"error": "...", "field": "..."}` with 400 (bad input), 401, 403, 404,
 * 405, 413, 415, 421 or 503.
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
  /** A reply written as it is produced (an export): sent chunked, and `body` and `text` are ignored. */
  readonly stream?: AdminStream;
}

/**
 * A body too large to hold: `produce` writes it chunk by chunk. `write` resolves once the chunk is
 * handed to the socket and its buffer has room again (the backpressure that keeps a slow client
 * from filling memory), and rejects once the client has gone. Should `produce` fail halfway, the
 * connection is cut before the end of the chunked body, so the client sees a broken answer
 * instead of a short one that looks whole.
 */
export interface AdminStream {
  readonly contentType: string;
  produce(write: (chunk: string) => Promise<void>): Promise<void>;
}

export interface AdminRequest {
  readonly method: string;
  readonly path: readonly string[];
  readonly query: URLSearchParams;
  /** The parsed JSON body of a write; undefined for reads and for an empty body. */
  readonly body: unknown;
  /** Who is calling, already authenticated and allowed this request's method. */
  readonly caller: AdminPrincipal;
}

export interface AdminHandler {
  handle(request: AdminRequest): AdminReply | Promise<AdminReply>;
}

/** What the endpoint needs of the configured tokens (src/admission/admin-access.ts `AdminTokens`). */
export interface AdminAuthenticator {
  authenticate(token: string | undefined): AdminPrincipal | undefined;
}

export interface AdminHttpOptions {
  readonly host: string;
  /** 0 picks a free port; the server's `port` is the one bound. */
  readonly port: number;
  readonly handler: AdminHandler;
  readonly tokens: AdminAuthenticator;
  /** More `Host` values to answer for (`name:port`, compared without case), such as a DNS name behind a proxy. */
  readonly allowedHosts?: readonly string[];
  /** Origins (`https://ops.example`) whose requests are served; none by default. */
  readonly allowedOrigins?: readonly string[];
}

/** Largest request body accepted. */
export const adminBodyBytesMax = 1024 * 1024;

/** The one reply to a missing or unknown token: it does not say which. */
export const adminUnauthenticatedMessage = 'missing or unknown admin token';

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAdminHttp(options: AdminHttpOptions): Promise<AdminServer> {
  let hosts: ReadonlySet<string> = new Set();
  const origins = new Set(options.allowedOrigins ?? []);
  const server: Server = createServer((req, res) => {
    serve(req, res, options, hosts, origins).catch((error: unknown) => reply(res, { status: 500, body: { error: String(error) } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  hosts = allowedHostsOf(options.host, port, options.allowedHosts ?? []);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The `Host` values this endpoint answers for, lowercased. */
export function allowedHostsOf(bindHost: string, port: number, extra: readonly string[]): ReadonlySet<string> {
  const bound = bindHost.includes(':') ? `[${bindHost}]` : bindHost;
  const names = [bound, 'localhost', '127.0.0.1', '[::1]'].map((name) => `${name.toLowerCase()}:${port}`);
  // A client leaves the default port out of `Host`.
  if (port === 80) names.push(bound.toLowerCase(), 'localhost', '127.0.0.1', '[::1]');
  return new Set([...names, ...extra.map((host) => host.toLowerCase())]);
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  options: AdminHttpOptions,
  hosts: ReadonlySet<string>,
  origins: ReadonlySet<string>,
): Promise<void> {
  // A refused request's body is read (up to the bound) and dropped before the answer, so a client
  // that keeps its connection alive finds it in a clean state for its next request.
  const refuse = async (answer: AdminReply): Promise<void> => {
    await readBody(req);
    reply(res, answer);
  };
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !hosts.has(host))
    return refuse({ status: 421, body: { error: 'this endpoint does not answer for that Host; add it to admin.allowedHosts' } });
  const origin = req.headers.origin;
  if (origin !== undefined && !origins.has(origin))
    return refuse({ status: 403, body: { error: 'requests from another origin are refused; add it to admin.allowedOrigins' } });
  const caller = options.tokens.authenticate(bearerOf(req.headers.authorization));
  if (caller === undefined)
    return refuse({ status: 401, headers: { 'www-authenticate': 'Bearer realm="carpool-admin"' }, body: { error: adminUnauthenticatedMessage } });
  const method = req.method ?? 'GET';
  const access = method === 'GET' ? 'read' : 'write';
  if (!roleAllows(caller.role, access))
    return refuse({ status: 403, body: { error: `the token ${caller.name} has the role ${caller.role}; ${method} needs admin` } });
  const url = new URL(req.url ?? '/', 'http://admin.invalid');
  let path: string[];
  try {
    path = url.pathname
      .split('/')
      .filter((part) => part.length > 0)
      .map(decodeURIComponent);
  } catch {
    return refuse({ status: 400, body: { error: 'the path is not valid percent-encoding' } });
  }
  let body: unknown;
  if (access === 'write') {
    if (!isJson(req.headers['content-type'])) return refuse({ status: 415, body: { error: 'a write takes content-type: application/json' } });
    const read = await readBody(req);
    if (read.kind === 'too-large') return reply(res, { status: 413, body: { error: `request body over ${adminBodyBytesMax} bytes` } });
    if (read.kind === 'bad-json') return reply(res, { status: 400, body: { error: `request body is not JSON: ${read.detail}` } });
    body = read.value;
  } else {
    await readBody(req);
  }
  const answer = await options.handler.handle({ method, path, query: url.searchParams, body, caller });
  if (answer.stream === undefined) reply(res, answer);
  else await streamReply(res, answer, answer.stream);
}

async function streamReply(res: ServerResponse, answer: AdminReply, stream: AdminStream): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers ?? {})) if (value !== undefined) headers[name] = value;
  res.writeHead(answer.status, { ...headers, 'content-type': stream.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort(new CallEndedError('cancelled'));
  };
  res.once('close', onClose);
  const write = async (chunk: string): Promise<void> => {
    if (gone.signal.aborted) throw gone.signal.reason;
    if (!res.write(chunk)) await drainOrEnd(res, gone.signal);
  };
  try {
    await stream.produce(write);
    res.end();
  } catch {
    // Headers are out: the one way left to say "this is not the whole answer" is to cut it.
    res.destroy();
  } finally {
    res.off('close', onClose);
  }
}

// RFC 6750 §2.1: the scheme is case-insensitive, then one or more spaces, then the token.
const bearerPattern = /^bearer +(\S+) *$/i;

function bearerOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  return bearerPattern.exec(authorization)?.[1];
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return contentType.split(';')[0]?.trim().toLowerCase() === 'application/json';
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
  res.writeHead(answer.status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    // Answers hold policy and tokens' names: no cache keeps them, no browser sniffs them.
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}
