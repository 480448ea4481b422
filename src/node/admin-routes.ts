import { adminRefusalStatus, rejectionStatus, retryHintHeaders } from '../admission/outcome.js';
import { formatDurationMs } from '../core/duration-text.js';
import { counterKey, type CounterKey, isValidKeyParts } from '../crdt/counter-key.js';
import { windowAt, windowUnits, type WindowUnit } from '../crdt/window.js';
import type { AdminHandler, AdminReply, AdminRequest } from '../net/admin-http.js';
import type { AdminFailure, AdminService } from './admin/admin-service.js';
import { exportContentTypes, writeExport } from './admin/ledger-export.js';
import { usageParamsOf } from './admin/usage-query-params.js';
import type { MeshRuntime } from './mesh-runtime.js';

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

/**
 * The routes of `src/net/admin-http.ts` (listed there with their roles), answered from one node's
 * mesh runtime and its admin service. The adapter has authenticated the caller and checked its
 * role by the method before a request gets here; every admin operation goes through the service
 * (./admin/admin-service.ts), which validates it and records each write in the audit log.
 */
export class AdminRoutes implements AdminHandler {
  private readonly started: number;
  private readonly metrics: MetricsRenderer | undefined;
  private readonly gatewayStatus: (() => GatewayStatus | undefined) | undefined;

  constructor(
    private readonly runtime: MeshRuntime,
    private readonly service: AdminService,
    options: AdminRoutesOptions = {},
  ) {
    this.started = options.startedMs ?? Date.now();
    this.metrics = options.metrics;
    this.gatewayStatus = options.gatewayStatus;
  }

  async handle(request: AdminRequest): Promise<AdminReply> {
    const { method, path } = request;
    const [first] = path;
    if (first === 'status' && path.length === 1) return method === 'GET' ? { status: 200, body: this.status() } : notAllowed;
    if (first === 'metrics' && path.length === 1) return this.renderMetrics(method);
    if (first === 'counters' && path.length === 1) return method === 'GET' ? this.readCounter(request.query) : notAllowed;
    if (first === 'counters' && path.length === 2 && path[1] === 'read') return method === 'GET' ? this.readCounters(request.query) : notAllowed;
    if (first === 'audit' && path.length === 1) return method === 'GET' ? this.audit(request.query) : notAllowed;
    if (first === 'pool') return this.pool(request);
    if (first === 'policy') return this.policy(request);
    if (first === 'usage') return this.usage(request);
    return notFound;
  }

  private async renderMetrics(method: string): Promise<AdminReply> {
    if (this.metrics === undefined) return { status: 404, body: { error: 'this node keeps no metrics' } };
    if (method !== 'GET') return notAllowed;
    const rendered = await this.metrics.render();
    return { status: 200, body: null, text: rendered.text, contentType: rendered.contentType };
  }

  private async pool({ method, path, body, caller }: AdminRequest): Promise<AdminReply> {
    const [, second, third, fourth] = path;
    if (path.length === 1) return method === 'GET' ? { status: 200, body: this.service.pool() } : notAllowed;
    if (second === 'accounts' && third !== undefined && fourth === 'credential' && path.length === 4) {
      if (method !== 'PUT') return notAllowed;
      const fields = bodyFields(body, undefined);
      if (!fields.ok) return fields.reply;
      return answer(await this.service.replaceCredential(caller, third, fields.rest, fields.reason));
    }
    if (second === 'accounts' && third !== undefined && fourth === 'enable' && path.length === 4) {
      if (method !== 'POST') return notAllowed;
      const fields = bodyFields(body, []);
      if (!fields.ok) return fields.reply;
      const enabled = this.service.enableAccount(caller, third, fields.reason);
      if (!enabled.ok) return failure(enabled.error);
      if (!enabled.value.enabled) return { status: 404, body: { error: `no account ${third} in the pool`, field: 'id' } };
      const now = Date.now();
      return { status: 200, body: { enabled: third, status: this.runtime.pool.status(now).find((status) => status.id === third) } };
    }
    return notFound;
  }

  private policy(request: AdminRequest): AdminReply {
    const { method, path, body, caller } = request;
    const [, second, third, fourth] = path;
    if (path.length === 1) return method === 'GET' ? { status: 200, body: this.service.policy() } : notAllowed;
    if (second === 'settings' && path.length === 2) {
      if (method !== 'PATCH') return notAllowed;
      const fields = bodyFields(body, undefined);
      if (!fields.ok) return fields.reply;
      return answer(this.service.updateSettings(caller, fields.rest, fields.reason));
    }
    if (second === 'tenants' && third !== undefined && fourth === 'keys') return this.keys(request, third);
    if ((second !== 'tenants' && second !== 'accounts') || third === undefined || path.length !== 3) return notFound;
    const tenants = second === 'tenants';
    if (method === 'GET') return answer(tenants ? this.service.tenant(third) : this.service.account(third));
    if (method === 'DELETE') {
      const fields = bodyFields(body, []);
      if (!fields.ok) return fields.reply;
      const removed = tenants ? this.service.removeTenant(caller, third, fields.reason) : this.service.removeAccount(caller, third, fields.reason);
      if (!removed.ok) return failure(removed.error);
      return removed.value.removed
        ? { status: 200, body: { removed: third } }
        : { status: 404, body: { error: `no ${tenants ? 'tenant' : 'account'} ${third}`, field: 'id' } };
    }
    if (method !== 'PUT') return notAllowed;
    const fields = bodyFields(body, undefined);
    if (!fields.ok) return fields.reply;
    return answer(
      tenants ? this.service.putTenant(caller, third, fields.rest, fields.reason) : this.service.putAccount(caller, third, fields.rest, fields.reason),
    );
  }

  /** /policy/tenants/{tenant}/keys[/{keyId}/(revoke|rotate)] */
  private keys({ method, path, body, caller }: AdminRequest, tenant: string): AdminReply {
    const [, , , , keyId, action] = path;
    if (path.length === 4) {
      if (method === 'GET') return answer(this.service.keys(tenant));
      if (method !== 'POST') return notAllowed;
      const fields = bodyFields(body, ['name', 'expiresAtMs', 'apiKey']);
      if (!fields.ok) return fields.reply;
      const { name, expiresAtMs, apiKey } = fields.rest;
      return answer(this.service.createKey(caller, tenant, { name, expiresAtMs, apiKey }, fields.reason));
    }
    if (keyId === undefined || path.length !== 6 || (action !== 'revoke' && action !== 'rotate')) return notFound;
    if (method !== 'POST') return notAllowed;
    const fullId = keyId.includes(':') ? keyId : `${tenant}:${keyId}`;
    if (!fullId.startsWith(`${tenant}:`)) return badRequest(`names a key of another tenant than ${tenant}`, 'keyId');
    if (action === 'revoke') {
      const fields = bodyFields(body, []);
      if (!fields.ok) return fields.reply;
      return answer(this.service.revokeKey(caller, fullId, fields.reason));
    }
    const fields = bodyFields(body, ['graceMs', 'name', 'expiresAtMs']);
    if (!fields.ok) return fields.reply;
    return answer(this.service.rotateKey(caller, fullId, fields.rest, fields.reason));
  }

  private async usage({ method, path, query, body, caller }: AdminRequest): Promise<AdminReply> {
    const [, second, third] = path;
    if (second === 'adjustments' && path.length === 2) {
      if (method !== 'POST') return notAllowed;
      return answer(await this.service.adjustUsage(caller, body));
    }
    if ((second === 'ledger' || second === 'export') && path.length === 2) {
      if (method !== 'GET') return notAllowed;
      return second === 'ledger' ? this.usageLedger(query) : this.usageExport(query);
    }
    if (second !== 'tenants' || third === undefined || path.length !== 3) return notFound;
    if (method !== 'GET') return notAllowed;
    const consistency = query.get('consistency') ?? 'local';
    if (consistency !== 'local' && consistency !== 'quorum') return badRequest('must be local or quorum', 'consistency');
    return answer(await this.service.usage(third, query.get('user') ?? undefined, consistency));
  }

  /** GET /usage/ledger: totals, groups and rows of this node's ledger (./admin/usage-query-params.ts). */
  private usageLedger(query: URLSearchParams): AdminReply {
    const params = usageParamsOf(query, 'query');
    if (!params.ok) return badRequest(params.error.reason, params.error.field);
    return answer(this.service.queryUsage(params.value));
  }

  /** GET /usage/export: this node's ledger rows streamed as CSV or JSON lines (./admin/ledger-export.ts). */
  private usageExport(query: URLSearchParams): AdminReply {
    const params = usageParamsOf(query, 'export');
    if (!params.ok) return badRequest(params.error.reason, params.error.field);
    const checked = this.service.usageExport(params.value);
    if (!checked.ok) return failure(checked.error);
    const { request, reader, node } = checked.value;
    return {
      status: 200,
      body: null,
      // Which node's ledger this is: every node keeps only the rows of the requests it settled.
      headers: { 'carpool-node': node },
      stream: {
        contentType: exportContentTypes[request.format],
        produce: async (write) => {
          await writeExport(reader, request.filter, request.format, write);
        },
      },
    };
  }

  /** GET /counters/read?key=...&key=...[&consistency=quorum]: several counter values, at QUORUM for the audit. */
  private async readCounters(query: URLSearchParams): Promise<AdminReply> {
    const unknown = [...query.keys()].find((name) => name !== 'key' && name !== 'consistency');
    if (unknown !== undefined) return badRequest('unknown parameter; this route takes key (repeated) and consistency', unknown.slice(0, 64));
    const consistency = query.get('consistency') ?? 'local';
    if (consistency !== 'local' && consistency !== 'quorum') return badRequest('must be local or quorum', 'consistency');
    return answer(await this.service.readCounters(query.getAll('key'), consistency));
  }

  private audit(query: URLSearchParams): AdminReply {
    const limitText = query.get('limit');
    const limit = limitText === null ? undefined : Number(limitText);
    return answer(this.service.audit(limit));
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
}

type BodyFields =
  { readonly ok: true; readonly reason: string | undefined; readonly rest: Record<string, unknown> } | { readonly ok: false; readonly reply: AdminReply };

/**
 * A write's JSON body split into its `reason` and the rest. With `allowed`, any other field is
 * refused by name; without, the rest is the route's object (a tenant, an account, settings),
 * which the service checks field by field. An empty body reads as `{}`.
 */
function bodyFields(body: unknown, allowed: readonly string[] | undefined): BodyFields {
  const value = body ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reply: badRequest('the body must be a JSON object') };
  const { reason, ...rest } = value as Record<string, unknown>;
  if (reason !== undefined && typeof reason !== 'string') return { ok: false, reply: badRequest('must be text', 'reason') };
  if (allowed !== undefined) {
    const unknown = Object.keys(rest).find((name) => !allowed.includes(name));
    if (unknown !== undefined)
      return { ok: false, reply: badRequest(`unknown field; this route takes ${[...allowed, 'reason'].join(', ')}`, unknown.slice(0, 64)) };
  }
  return { ok: true, reason, rest };
}

function answer(result: { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: AdminFailure }): AdminReply {
  return result.ok ? { status: 200, body: result.value } : failure(result.error);
}

/** An admin failure's status, from the tables of src/admission/outcome.ts. */
function failure(error: AdminFailure): AdminReply {
  switch (error.kind) {
    case 'invalid':
      return { status: rejectionStatus.invalid.http, body: { error: error.reason, field: error.field } };
    case 'not-found':
      return { status: adminRefusalStatus['not-found'].http, body: { error: error.reason, field: error.field } };
    case 'no-quorum': {
      const what = error.operation === 'credit' ? 'the quorum round a credit needs' : 'the QUORUM read (a local read answers now)';
      return {
        status: rejectionStatus['no-quorum'].http,
        headers: { ...retryHintHeaders(error.retryAfterMs) },
        body: { error: `too few regions answered ${what}; retry in ${formatDurationMs(error.retryAfterMs)}` },
      };
    }
    case 'no-ledger':
      return { status: adminRefusalStatus['no-ledger'].http, body: { error: error.reason } };
  }
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
