import { rejectionStatus, retryHeaders } from '../admission/outcome.js';
import { type AccountId, isValidId, type RequestId, type TenantId } from '../core/ids.js';
import { reservationLeaseMsMax } from '../core/limits.js';
import { counterKey, type CounterKey, isValidKeyParts } from '../crdt/counter-key.js';
import { windowAt, windowUnits, type WindowUnit } from '../crdt/window.js';
import { validateAccount, validateSettingsPatch, validateTenant } from '../mesh/policy/policy-schema.js';
import type { AdminHandler, AdminReply } from '../net/admin-http.js';
import { policyView, redactTenant } from './gateway/policy-view.js';
import type { MeshRuntime } from './mesh-runtime.js';

/** Updates one POST /counters may carry. */
export const adminUpdatesMax = 100_000;
/** Longest a GET /counters may wait for a value. */
export const adminWaitMsMax = 60_000;

const badRequest = (error: string, field?: string): AdminReply => ({ status: 400, body: field === undefined ? { error } : { error, field } });
const notFound: AdminReply = { status: 404, body: { error: 'no such route' } };
const notAllowed: AdminReply = { status: 405, body: { error: 'method not allowed on this route' } };

/** What GET /metrics serves: the node's Prometheus registry (src/observe/prometheus-node-metrics.ts). */
export interface MetricsRenderer {
  render(): Promise<{ readonly contentType: string; readonly text: string }>;
}

/**
 * The `gateway` section of GET /status. The local-mesh launcher reads `requests` (cumulative,
 * for a rate) and `queueDepth` from it, with `peers`: keep these names.
 */
export interface GatewayStatus {
  /** Carpool service calls received since the start. */
  readonly requests: number;
  readonly completed: number;
  /** Carpool service calls running now. */
  readonly inFlight: number;
  /** Requests waiting in the admission queue, all tiers. */
  readonly queueDepth: number;
}

/** The gateway's figures for GET /status; `CarpoolGateway` has all of them. */
export function gatewayStatusOf(carpool: {
  readonly stats: { readonly requests: number; readonly completed: number };
  readonly inFlight: number;
  readonly scheduler: { readonly queue: { readonly depth: number } };
}): GatewayStatus {
  return { requests: carpool.stats.requests, completed: carpool.stats.completed, inFlight: carpool.inFlight, queueDepth: carpool.scheduler.queue.depth };
}

export interface AdminRoutesOptions {
  /** Serves GET /metrics; without it the route answers 404. */
  readonly metrics?: MetricsRenderer;
  /** The gateway's figures for GET /status; undefined (or answering undefined) while the node runs no gateway. */
  readonly gatewayStatus?: () => GatewayStatus | undefined;
  /** When the node started, for `uptimeMs`; now by default. */
  readonly startedMs?: number;
}

/** The routes of `src/net/admin-http.ts`, answered from one node's mesh runtime. */
export class AdminRoutes implements AdminHandler {
  private readonly started: number;
  private readonly metrics: MetricsRenderer | undefined;
  private readonly gatewayStatus: (() => GatewayStatus | undefined) | undefined;

  constructor(
    private readonly runtime: MeshRuntime,
    options: AdminRoutesOptions = {},
  ) {
    this.started = options.startedMs ?? Date.now();
    this.metrics = options.metrics;
    this.gatewayStatus = options.gatewayStatus;
  }

  async handle(method: string, path: readonly string[], query: URLSearchParams, body: unknown): Promise<AdminReply> {
    const [first, second, third] = path;
    if (first === 'status' && path.length === 1) return method === 'GET' ? { status: 200, body: this.status() } : notAllowed;
    if (first === 'metrics' && path.length === 1) {
      if (this.metrics === undefined) return { status: 404, body: { error: 'this node keeps no metrics' } };
      if (method !== 'GET') return notAllowed;
      const rendered = await this.metrics.render();
      return { status: 200, body: null, text: rendered.text, contentType: rendered.contentType };
    }
    if (first === 'counters' && path.length === 1) {
      if (method === 'GET') return this.readCounter(query);
      if (method === 'POST') return this.writeCounters(body);
      return notAllowed;
    }
    if (first === 'admission' && path.length === 2 && (second === 'admit' || second === 'settle')) {
      if (method !== 'POST') return notAllowed;
      return second === 'admit' ? this.admit(body) : this.settle(body);
    }
    if (first === 'pool') {
      if (path.length === 1) return method === 'GET' ? { status: 200, body: this.poolView() } : notAllowed;
      if (second === 'accounts' && third !== undefined && path[3] === 'enable' && path.length === 4) {
        if (method !== 'POST') return notAllowed;
        return this.enableAccount(third as AccountId);
      }
      return notFound;
    }
    if (first === 'policy') {
      const policy = this.runtime.policy;
      if (path.length === 1) return method === 'GET' ? { status: 200, body: this.policyView() } : notAllowed;
      if (second === 'settings' && path.length === 2) {
        if (method !== 'PATCH') return notAllowed;
        const patch = validateSettingsPatch(body);
        if (!patch.ok) return badRequest(patch.error.reason, patch.error.field);
        const updated = policy.updateSettings(patch.value);
        return updated.ok ? { status: 200, body: policy.settings() } : badRequest(updated.error.reason, updated.error.field);
      }
      if ((second === 'tenants' || second === 'accounts') && third !== undefined && path.length === 3) {
        if (method === 'DELETE') {
          const removed = second === 'tenants' ? policy.removeTenant(third as TenantId) : policy.removeAccount(third as AccountId);
          return removed ? { status: 200, body: { removed: third } } : notFound;
        }
        if (method !== 'PUT') return notAllowed;
        if (typeof body !== 'object' || body === null) return badRequest('the body must be a JSON object');
        const withId = { ...(body as Record<string, unknown>), id: third };
        if (second === 'tenants') {
          const tenant = validateTenant(withId);
          if (!tenant.ok) return badRequest(tenant.error.reason, tenant.error.field);
          const saved = policy.upsertTenant(tenant.value);
          return saved.ok ? { status: 200, body: redactTenant(tenant.value) } : badRequest(saved.error.reason, saved.error.field);
        }
        const account = validateAccount(withId);
        if (!account.ok) return badRequest(account.error.reason, account.error.field);
        const saved = policy.upsertAccount(account.value);
        return saved.ok ? { status: 200, body: account.value } : badRequest(saved.error.reason, saved.error.field);
      }
    }
    return notFound;
  }

  private status(): unknown {
    const now = Date.now();
    const node = this.runtime.node;
    const stats = node.stats;
    const gateway = this.gatewayStatus?.();
    return {
      node: this.runtime.config.node,
      region: this.runtime.config.region,
      replica: this.runtime.replica,
      uptimeMs: now - this.started,
      peers: node.peerViews(now),
      quorum: node.membership.quorum(),
      counter: { keys: this.runtime.counter.size, replicas: this.runtime.counter.replicaCount, version: this.runtime.counter.version },
      mesh: {
        ...Object.fromEntries(Object.entries(stats).filter(([, value]) => typeof value === 'number')),
        badFrames: Object.fromEntries(stats.badFrames),
        authFailures: Object.fromEntries(stats.authFailures),
        lagBuckets: stats.lagBuckets,
      },
      transport: this.runtime.transportStats(),
      cpuMicros: process.cpuUsage(),
      heapBytes: process.memoryUsage().heapUsed,
      ...(gateway === undefined ? {} : { gateway }),
    };
  }

  private async readCounter(query: URLSearchParams): Promise<AdminReply> {
    const key = parseKey(Object.fromEntries(query), 'query');
    if (typeof key === 'string') return badRequest(key);
    const atLeastText = query.get('atLeast');
    let value = this.runtime.counter.value(key);
    if (atLeastText !== null) {
      const atLeast = Number(atLeastText);
      const waitMs = Number(query.get('waitMs') ?? '0');
      if (!Number.isSafeInteger(atLeast)) return badRequest('atLeast must be an integer', 'atLeast');
      if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > adminWaitMsMax) return badRequest(`waitMs must be 0 to ${adminWaitMsMax}`, 'waitMs');
      const reached = await this.runtime.waitFor(key, atLeast, waitMs);
      value = reached ?? this.runtime.counter.value(key);
    }
    const contributions = [...this.runtime.counter.contributions(key)].map(([replica, { p, n }]) => ({ replica, p, n }));
    return { status: 200, body: { key: key.id.split('\u001f').join('/'), value, contributions } };
  }

  private writeCounters(body: unknown): AdminReply {
    const updates = (body as { updates?: unknown } | undefined)?.updates;
    if (!Array.isArray(updates) || updates.length > adminUpdatesMax) return badRequest(`updates must be an array of at most ${adminUpdatesMax}`, 'updates');
    // Validate everything first: a request is applied whole or not at all.
    const parsed: { key: CounterKey; amount: number; refund: number }[] = [];
    for (const [i, update] of (updates as unknown[]).entries()) {
      if (typeof update !== 'object' || update === null) return badRequest('each update is an object', `updates[${i}]`);
      const fields = update as Record<string, unknown>;
      const key = parseKey(fields, `updates[${i}]`);
      if (typeof key === 'string') return badRequest(key, `updates[${i}]`);
      const amount = fields.amount;
      const refund = fields.refund ?? 0;
      if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) return badRequest('amount must be a non-negative integer', `updates[${i}].amount`);
      if (typeof refund !== 'number' || !Number.isSafeInteger(refund) || refund < 0) return badRequest('refund must be a non-negative integer', `updates[${i}].refund`);
      parsed.push({ key, amount, refund });
    }
    let applied = 0;
    for (const { key, amount, refund } of parsed) {
      const up = this.runtime.counter.increment(key, amount);
      if (!up.ok) return { status: 409, body: { error: up.error.kind, applied } };
      if (refund > 0) this.runtime.counter.decrement(key, refund);
      applied++;
    }
    return { status: 200, body: { applied } };
  }

  /**
   * POST /admission/admit {tenant, user?, requestId, amounts: {metric: n}, leaseMs?}: the quota
   * decision for one request under the tenant's limits (and the user's), in their modes. 200 with `admitted: true`, or the
   * rejection with the status of the one mapping table (429, 503) and its retry headers. For
   * operators and tests; clients go through the gRPC endpoint.
   */
  private async admit(body: unknown): Promise<AdminReply> {
    const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const { tenant: tenantId, user, requestId, amounts, leaseMs = 60_000 } = fields;
    if (typeof tenantId !== 'string' || !isValidId(tenantId)) return badRequest('tenant must be an id', 'tenant');
    if (typeof requestId !== 'string' || !isValidId(requestId)) return badRequest('requestId must be an id', 'requestId');
    if (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs < 1 || leaseMs > reservationLeaseMsMax) {
      return badRequest(`leaseMs must be 1 to ${reservationLeaseMsMax}`, 'leaseMs');
    }
    const parsed = parseAmounts(amounts);
    if (typeof parsed === 'string') return badRequest(parsed, 'amounts');
    // A user's own limits count under `<tenant>:<user>`, so equal user ids of two tenants differ.
    if (user !== undefined && typeof user !== 'string') return badRequest('user must be a string', 'user');
    const userSubject = user === undefined ? undefined : `${tenantId}:${user}`;
    if (userSubject !== undefined && !isValidId(userSubject)) return badRequest('user must be an id that, joined to the tenant id, stays an id', 'user');
    const tenant = this.runtime.policy.tenant(tenantId as TenantId);
    if (tenant === undefined) return { status: 404, body: { error: `no tenant ${tenantId}`, field: 'tenant' } };
    const decision = await this.runtime.admit({
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
    return { status: rejectionStatus[decision.error.kind].http, headers: { ...retryHeaders(decision.error) }, body: { admitted: false, rejection: decision.error } };
  }

  /** POST /admission/settle {requestId, used: {metric: n}}: settles an admitted request. */
  private settle(body: unknown): AdminReply {
    const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const { requestId, used } = fields;
    if (typeof requestId !== 'string' || !isValidId(requestId)) return badRequest('requestId must be an id', 'requestId');
    const parsed = parseAmounts(used);
    if (typeof parsed === 'string') return badRequest(parsed, 'used');
    const settlements = this.runtime.settle(requestId as RequestId, parsed);
    return settlements.length === 0 ? { status: 404, body: { error: `no open reservation ${requestId}` } } : { status: 200, body: { settlements } };
  }

  /**
   * GET /pool: every account's health, permits and queue as this node's pool sees them, the
   * accounts per health state, and the pool's counters. Health is per node: each node learns it
   * from its own calls.
   */
  private poolView(): unknown {
    const now = Date.now();
    const pool = this.runtime.pool;
    return { accounts: pool.status(now), states: pool.stateCounts(now), totals: pool.totals(), stats: { ...pool.stats } };
  }

  /**
   * POST /pool/accounts/<id>/enable: the operator's answer to an auth-failed alert, once the
   * credential is fixed. Enables on this node only; 404 for an account not in the pool.
   */
  private enableAccount(id: AccountId): AdminReply {
    const pool = this.runtime.pool;
    if (!pool.enable(id)) return { status: 404, body: { error: `no account ${id} in the pool`, field: 'id' } };
    const now = Date.now();
    return { status: 200, body: { enabled: id, status: pool.status(now).find((status) => status.id === id) } };
  }

  private policyView(): unknown {
    return policyView(this.runtime.policy);
  }
}

/** `{metric: count}` with metric names and non-negative integer counts, or what is wrong. */
function parseAmounts(value: unknown): Map<string, number> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object of metric to count';
  const amounts = new Map<string, number>();
  for (const [metric, count] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(metric)) return `${metric} is not a metric name`;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) return `${metric} must be a non-negative integer`;
    amounts.set(metric, count);
  }
  if (amounts.size > 32) return 'at most 32 metrics';
  return amounts;
}

/** A key from string or number fields; `index` defaults to the window containing `at` (ms) or now. */
function parseKey(fields: Record<string, unknown>, where: string): CounterKey | string {
  const { scope, subject, metric, unit } = fields;
  if (typeof scope !== 'string' || typeof subject !== 'string' || typeof metric !== 'string') return `${where}: scope, subject and metric are required`;
  if (typeof unit !== 'string' || !(windowUnits as readonly string[]).includes(unit)) return `${where}: unit must be one of ${windowUnits.join(', ')}`;
  const indexField = fields.index;
  const atField = fields.at;
  let index: number;
  if (indexField !== undefined) index = Number(indexField);
  else index = windowAt(unit as WindowUnit, atField === undefined ? Date.now() : Number(atField)).index;
  const window = { unit: unit as WindowUnit, index };
  if (!isValidKeyParts(scope, subject, metric, window)) return `${where}: scope and metric are lowercase names, subject an id, index a non-negative integer`;
  return counterKey(scope, subject, metric, window);
}
