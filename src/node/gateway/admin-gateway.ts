import { type AdminAccess, type AdminPrincipal, type AdminTokens, roleAllows } from '../../admission/admin-access.js';
import { gatewayRequestJsonBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type {
  AdjustUsageRequest,
  AdjustUsageResponse,
  AdminCall,
  AdminError,
  AdminServiceHandler,
  ApiKeyInfo,
  CreateApiKeyRequest,
  CreateApiKeyResponse,
  EnableAccountRequest,
  EnableAccountResponse,
  GetAuditRequest,
  GetAuditResponse,
  GetPolicyRequest,
  ListApiKeysRequest,
  ListApiKeysResponse,
  PolicyJson,
  PutSubjectRequest,
  QueryUsageRequest,
  QueryUsageResponse,
  RemoveSubjectRequest,
  RemoveSubjectResponse,
  RevokeApiKeyRequest,
  RotateApiKeyRequest,
  RotateApiKeyResponse,
} from '../../net/grpc/carpool-handler.js';
import type { AdminFailure, AdminService } from '../admin/admin-service.js';
import type { KeyView } from '../admin/key-lifecycle.js';
import type { UsageParamNames } from '../admin/usage-query-params.js';

/**
 * carpool.v1.Admin over the node's admin service (src/node/admin/admin-service.ts), which the
 * admin HTTP endpoint shares: the same operations, validation, audit and roles. Every call first
 * proves a configured admin token (`authorization: Bearer <token>`, compared in constant time by
 * src/admission/admin-access.ts); a missing or unknown token is refused like a tenant's bad key,
 * UNAUTHENTICATED without saying why. A known token without the role the method needs (the table
 * `adminMethodAccess`) gets PERMISSION_DENIED.
 *
 * Conveniences of the contract: an `id` inside PutTenant's or PutAccount's JSON must equal the
 * request's `id`; CreateApiKey with an empty name names the key `unnamed`, for callers of the
 * contract before key names; 0 means "none" for times and "now" for an adjustment's index.
 */
export const adminMethodAccess: { readonly [K in keyof AdminServiceHandler]: AdminAccess } = Object.freeze({
  getPolicy: 'read',
  getPool: 'read',
  putTenant: 'write',
  removeTenant: 'write',
  putAccount: 'write',
  removeAccount: 'write',
  createApiKey: 'write',
  listApiKeys: 'read',
  revokeApiKey: 'write',
  rotateApiKey: 'write',
  enableAccount: 'write',
  adjustUsage: 'write',
  getAudit: 'read',
  queryUsage: 'read',
});

export interface AdminGatewayOptions {
  readonly service: AdminService;
  /** The configured admin tokens; the service is not served without one. */
  readonly tokens: Pick<AdminTokens, 'authenticate'>;
}

/** Plain counters for the metrics binding. */
export class AdminStats {
  calls = 0;
  unauthenticated = 0;
  forbidden = 0;
  invalid = 0;
  keysCreated = 0;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export class AdminGateway implements AdminServiceHandler {
  readonly stats = new AdminStats();
  private readonly service: AdminService;
  private readonly tokens: Pick<AdminTokens, 'authenticate'>;

  constructor(options: AdminGatewayOptions) {
    this.service = options.service;
    this.tokens = options.tokens;
  }

  getPolicy(call: AdminCall<GetPolicyRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, 'getPolicy', () => ok(jsonOf(this.service.policy())));
  }

  getPool(call: AdminCall<GetPolicyRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, 'getPool', () => ok(jsonOf(this.service.pool())));
  }

  putTenant(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, 'putTenant', (caller, { id, json, reason }) => {
      const fields = this.jsonFields(json);
      if (!fields.ok) return fields;
      return this.mapped(this.service.putTenant(caller, id, fields.value, reason), jsonOf);
    });
  }

  removeTenant(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>> {
    return this.admin(call, 'removeTenant', (caller, { id, reason }) => this.mapped(this.service.removeTenant(caller, id, reason), (value) => value));
  }

  putAccount(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, 'putAccount', (caller, { id, json, reason }) => {
      const fields = this.jsonFields(json);
      if (!fields.ok) return fields;
      return this.mapped(this.service.putAccount(caller, id, fields.value, reason), jsonOf);
    });
  }

  removeAccount(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>> {
    return this.admin(call, 'removeAccount', (caller, { id, reason }) => this.mapped(this.service.removeAccount(caller, id, reason), (value) => value));
  }

  createApiKey(call: AdminCall<CreateApiKeyRequest>): Promise<Result<CreateApiKeyResponse, AdminError>> {
    return this.admin(call, 'createApiKey', (caller, { tenant, name, expiresAtMs, reason }) => {
      const options = { name: name === '' ? 'unnamed' : name, ...(expiresAtMs === 0 ? {} : { expiresAtMs }) };
      const created = this.mapped(this.service.createKey(caller, tenant, options, reason), (made) => ({
        apiKey: made.apiKey,
        keyId: made.key.keyId,
        key: infoOf(made.key),
      }));
      if (created.ok) this.stats.keysCreated++;
      return created;
    });
  }

  listApiKeys(call: AdminCall<ListApiKeysRequest>): Promise<Result<ListApiKeysResponse, AdminError>> {
    return this.admin(call, 'listApiKeys', (_caller, { tenant }) => this.mapped(this.service.keys(tenant), (keys) => ({ keys: keys.map(infoOf) })));
  }

  revokeApiKey(call: AdminCall<RevokeApiKeyRequest>): Promise<Result<ApiKeyInfo, AdminError>> {
    return this.admin(call, 'revokeApiKey', (caller, { keyId, reason }) => this.mapped(this.service.revokeKey(caller, keyId, reason), infoOf));
  }

  rotateApiKey(call: AdminCall<RotateApiKeyRequest>): Promise<Result<RotateApiKeyResponse, AdminError>> {
    return this.admin(call, 'rotateApiKey', (caller, { keyId, graceMs, name, expiresAtMs, reason }) => {
      const options = { graceMs, ...(name === '' ? {} : { name }), ...(expiresAtMs === 0 ? {} : { expiresAtMs }) };
      const rotated = this.mapped(this.service.rotateKey(caller, keyId, options, reason), (made) => ({
        apiKey: made.apiKey,
        key: infoOf(made.key),
        previous: infoOf(made.previous),
      }));
      if (rotated.ok) this.stats.keysCreated++;
      return rotated;
    });
  }

  enableAccount(call: AdminCall<EnableAccountRequest>): Promise<Result<EnableAccountResponse, AdminError>> {
    return this.admin(call, 'enableAccount', (caller, { account, reason }) =>
      this.mapped(this.service.enableAccount(caller, account, reason), (value) => value),
    );
  }

  adjustUsage(call: AdminCall<AdjustUsageRequest>): Promise<Result<AdjustUsageResponse, AdminError>> {
    return this.admin(call, 'adjustUsage', async (caller, { index, ...request }) => {
      // The contract's 0 is "the window containing now"; the service leaves `index` out for it.
      const body = { ...request, ...(index === 0 ? {} : { index }) };
      return this.mapped(await this.service.adjustUsage(caller, body), (view) => view);
    });
  }

  getAudit(call: AdminCall<GetAuditRequest>): Promise<Result<GetAuditResponse, AdminError>> {
    return this.admin(call, 'getAudit', (_caller, { limit }) =>
      this.mapped(this.service.audit(limit === 0 ? undefined : limit), ({ entries, invalid }) => ({
        entries: entries.map((entry) => ({
          atMs: entry.atMs,
          node: entry.node,
          actor: entry.actor,
          action: entry.action,
          target: entry.target,
          reason: entry.reason ?? '',
          detailJson: utf8.encode(JSON.stringify(entry.detail ?? {})),
        })),
        invalidEntries: invalid.length,
      })),
    );
  }

  queryUsage(call: AdminCall<QueryUsageRequest>): Promise<Result<QueryUsageResponse, AdminError>> {
    return this.admin(call, 'queryUsage', (_caller, request) => {
      // The repeated field joins into the query's list; an element that is empty or holds the
      // separator would split differently, so it is refused here by its own name.
      if (request.groupBy.some((field) => field.length === 0 || field.includes(',')))
        return this.invalid('group_by', 'each field is one name, such as tenant or window:day');
      const params = {
        side: request.side,
        tenant: request.tenant,
        user: request.user,
        apiKey: request.apiKeyId,
        model: request.model,
        account: request.account,
        since: request.sinceMs === 0 ? undefined : request.sinceMs,
        until: request.untilMs === 0 ? undefined : request.untilMs,
        groupBy: request.groupBy.join(','),
        rows: request.rows,
      };
      return this.mapped(this.service.queryUsage(params, queryUsageFieldNames), (view) => ({
        node: view.node,
        side: view.side,
        totals: view.totals,
        groups: view.groups,
        groupsTruncated: view.groupsTruncated,
        rows: view.rows,
        fromAggregates: view.fromAggregates,
      }));
    });
  }

  // ---- Internals ----

  /** Authenticates the caller and checks the method's role, then answers. */
  private async admin<Request, Reply>(
    call: AdminCall<Request>,
    method: keyof AdminServiceHandler,
    answer: (caller: AdminPrincipal, request: Request) => Result<Reply, AdminError> | Promise<Result<Reply, AdminError>>,
  ): Promise<Result<Reply, AdminError>> {
    this.stats.calls++;
    const caller = this.tokens.authenticate(call.adminToken);
    if (caller === undefined) {
      this.stats.unauthenticated++;
      const reason = call.adminToken === undefined ? 'missing-credentials' : 'unknown-admin-token';
      return err({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason, credential: 'admin-token' } });
    }
    const access = adminMethodAccess[method];
    if (!roleAllows(caller.role, access)) {
      this.stats.forbidden++;
      return err({ kind: 'forbidden', reason: `the token ${caller.name} has the role ${caller.role}; this method needs admin` });
    }
    return answer(caller, call.request);
  }

  private mapped<T, Reply>(result: Result<T, AdminFailure>, to: (value: T) => Reply): Result<Reply, AdminError> {
    if (result.ok) return ok(to(result.value));
    const failure = result.error;
    if (failure.kind === 'invalid') this.stats.invalid++;
    if (failure.kind === 'no-quorum')
      return err({ kind: 'rejected', rejection: { kind: 'no-quorum', operation: failure.operation, retryAfterMs: failure.retryAfterMs } });
    return err(failure);
  }

  /** The JSON object of a subject, or the field at fault. */
  private jsonFields(json: Uint8Array): Result<unknown, AdminError> {
    if (json.length > gatewayRequestJsonBytesMax) return this.invalid('json', `must be at most ${gatewayRequestJsonBytesMax} bytes`);
    try {
      return ok(JSON.parse(strictUtf8.decode(json)) as unknown);
    } catch {
      return this.invalid('json', 'is not UTF-8 JSON');
    }
  }

  private invalid(field: string, reason: string): Result<never, AdminError> {
    this.stats.invalid++;
    return err({ kind: 'invalid', field, reason });
  }
}

/** QueryUsage's fields by their proto names, for the messages of refused parameters. */
const queryUsageFieldNames: UsageParamNames = Object.freeze({
  side: 'side',
  tenant: 'tenant',
  user: 'user',
  apiKey: 'api_key_id',
  model: 'model',
  account: 'account',
  since: 'since_ms',
  until: 'until_ms',
  groupBy: 'group_by',
  rows: 'rows',
  format: 'format',
});

function jsonOf(value: unknown): PolicyJson {
  return { json: utf8.encode(JSON.stringify(value)) };
}

function infoOf(view: KeyView): ApiKeyInfo {
  return {
    keyId: view.keyId,
    name: view.name,
    createdAtMs: view.createdAtMs,
    expiresAtMs: view.expiresAtMs ?? 0,
    revokedAtMs: view.revokedAtMs ?? 0,
    state: view.state,
  };
}
