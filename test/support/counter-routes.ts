// Test-only routes that write a node's counters directly and drive its quota gate: what the admin
// endpoint's `POST /counters` and `POST /admission/admit|settle` used to do in production. They
// live here so that integration tests and the mesh benchmark can still put load on real node
// processes, while no production node serves a route that writes counters (issue 13). Served by
// test/support/test-node.ts on loopback only.
//
//   POST /counters            {"updates":[{scope,subject,metric,unit,index,amount,refund?}]}
//   POST /admission/admit     {tenant, user?, requestId, amounts: {metric: n}, leaseMs?}: 200, or
//                             the rejection with 429/503 and Retry-After
//   POST /admission/settle    {requestId, used: {metric: n}}
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rejectionStatus, retryHeaders } from '../../src/admission/outcome.js';
import { isValidId, type RequestId, type TenantId } from '../../src/core/ids.js';
import { reservationLeaseMsMax } from '../../src/core/limits.js';
import { counterKey, type CounterKey, isValidKeyParts } from '../../src/crdt/counter-key.js';
import { windowAt, windowUnits, type WindowUnit } from '../../src/crdt/window.js';
import type { MeshRuntime } from '../../src/node/mesh-runtime.js';

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string | undefined>;
}

/** Updates one POST /counters may carry. */
const updatesMax = 100_000;
const bodyBytesMax = 64 * 1024 * 1024;

const badRequest = (error: string, field?: string): Reply => ({ status: 400, body: field === undefined ? { error } : { error, field } });

export interface CounterRoutesServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the routes on 127.0.0.1, refusing any peer that is not loopback. */
export async function startCounterRoutes(runtime: MeshRuntime, port: number): Promise<CounterRoutesServer> {
  const server: Server = createServer((req, res) => {
    void serve(runtime, req, res).catch((error: unknown) => send(res, { status: 500, body: { error: String(error) } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
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

async function serve(runtime: MeshRuntime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const peer = req.socket.remoteAddress ?? '';
  if (peer !== '127.0.0.1' && peer !== '::1' && peer !== '::ffff:127.0.0.1') return send(res, { status: 403, body: { error: 'loopback only' } });
  if (req.method !== 'POST') return send(res, { status: 405, body: { error: 'POST only' } });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > bodyBytesMax) return send(res, { status: 413, body: { error: 'too large' } });
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return send(res, badRequest('the body is not JSON'));
  }
  const path = new URL(req.url ?? '/', 'http://test.invalid').pathname;
  if (path === '/counters') return send(res, writeCounters(runtime, body));
  if (path === '/admission/admit') return send(res, await admit(runtime, body));
  if (path === '/admission/settle') return send(res, settle(runtime, body));
  return send(res, { status: 404, body: { error: 'no such route' } });
}

function writeCounters(runtime: MeshRuntime, body: unknown): Reply {
  const updates = (body as { updates?: unknown } | undefined)?.updates;
  if (!Array.isArray(updates) || updates.length > updatesMax) return badRequest(`updates must be an array of at most ${updatesMax}`, 'updates');
  // Validate everything first: a request is applied whole or not at all.
  const parsed: { key: CounterKey; amount: number; refund: number }[] = [];
  for (const [i, update] of (updates as unknown[]).entries()) {
    if (typeof update !== 'object' || update === null) return badRequest('each update is an object', `updates[${i}]`);
    const fields = update as Record<string, unknown>;
    const key = parseKey(fields, `updates[${i}]`);
    if (typeof key === 'string') return badRequest(key, `updates[${i}]`);
    const amount = fields.amount;
    const refund = fields.refund ?? 0;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0)
      return badRequest('amount must be a non-negative integer', `updates[${i}].amount`);
    if (typeof refund !== 'number' || !Number.isSafeInteger(refund) || refund < 0)
      return badRequest('refund must be a non-negative integer', `updates[${i}].refund`);
    parsed.push({ key, amount, refund });
  }
  let applied = 0;
  for (const { key, amount, refund } of parsed) {
    const up = runtime.counter.increment(key, amount);
    if (!up.ok) return { status: 409, body: { error: up.error.kind, applied } };
    if (refund > 0) runtime.counter.decrement(key, refund);
    applied++;
  }
  return { status: 200, body: { applied } };
}

async function admit(runtime: MeshRuntime, body: unknown): Promise<Reply> {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { tenant: tenantId, user, requestId, amounts, leaseMs = 60_000 } = fields;
  if (typeof tenantId !== 'string' || !isValidId(tenantId)) return badRequest('tenant must be an id', 'tenant');
  if (typeof requestId !== 'string' || !isValidId(requestId)) return badRequest('requestId must be an id', 'requestId');
  if (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs < 1 || leaseMs > reservationLeaseMsMax)
    return badRequest(`leaseMs must be 1 to ${reservationLeaseMsMax}`, 'leaseMs');
  const parsed = parseAmounts(amounts);
  if (typeof parsed === 'string') return badRequest(parsed, 'amounts');
  if (user !== undefined && typeof user !== 'string') return badRequest('user must be a string', 'user');
  // A user's own limits count under `<tenant>:<user>`, as the gateway counts them.
  const userSubject = user === undefined ? undefined : `${tenantId}:${user}`;
  const tenant = runtime.policy.tenant(tenantId as TenantId);
  if (tenant === undefined) return { status: 404, body: { error: `no tenant ${tenantId}`, field: 'tenant' } };
  const decision = await runtime.admit({
    requestId: requestId as RequestId,
    tenant: tenant.id,
    subjects: [
      { scope: 'tenant', subject: tenant.id, rules: tenant.limits },
      ...(userSubject === undefined ? [] : [{ scope: 'user' as const, subject: userSubject, rules: tenant.userLimits }]),
    ],
    amounts: parsed,
    leaseMs,
  });
  if (decision.ok) return { status: 200, body: { admitted: true } };
  return {
    status: rejectionStatus[decision.error.kind].http,
    headers: { ...retryHeaders(decision.error) },
    body: { admitted: false, rejection: decision.error },
  };
}

function settle(runtime: MeshRuntime, body: unknown): Reply {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { requestId, used } = fields;
  if (typeof requestId !== 'string' || !isValidId(requestId)) return badRequest('requestId must be an id', 'requestId');
  const parsed = parseAmounts(used);
  if (typeof parsed === 'string') return badRequest(parsed, 'used');
  const settlements = runtime.settle(requestId as RequestId, parsed);
  return settlements.length === 0 ? { status: 404, body: { error: `no open reservation ${requestId}` } } : { status: 200, body: { settlements } };
}

function parseAmounts(value: unknown): Map<string, number> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object of metric to count';
  const amounts = new Map<string, number>();
  for (const [metric, count] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(metric)) return `${metric} is not a metric name`;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) return `${metric} must be a non-negative integer`;
    amounts.set(metric, count);
  }
  return amounts;
}

function parseKey(fields: Record<string, unknown>, where: string): CounterKey | string {
  const { scope, subject, metric, unit } = fields;
  if (typeof scope !== 'string' || typeof subject !== 'string' || typeof metric !== 'string') return `${where}: scope, subject and metric are required`;
  if (typeof unit !== 'string' || !(windowUnits as readonly string[]).includes(unit)) return `${where}: unit must be one of ${windowUnits.join(', ')}`;
  const index = fields.index === undefined ? windowAt(unit as WindowUnit, Date.now()).index : Number(fields.index);
  const window = { unit: unit as WindowUnit, index };
  if (!isValidKeyParts(scope, subject, metric, window)) return `${where}: scope and metric are lowercase names, subject an id, index a non-negative integer`;
  return counterKey(scope, subject, metric, window);
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent) return;
  const text = JSON.stringify(reply.body);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.headers ?? {})) if (value !== undefined) headers[name] = value;
  res.writeHead(reply.status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
