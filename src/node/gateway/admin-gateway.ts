import { type AuthCrypto, constantTimeEqual } from '../../admission/auth-crypto.js';
import { type AccountId, isValidId, type TenantId } from '../../core/ids.js';
import { gatewayRequestJsonBytesMax, tenantKeysMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import { type PolicyError, validateAccount, validateTenant } from '../../mesh/policy/policy-schema.js';
import type {
  AdminCall,
  AdminError,
  AdminServiceHandler,
  CreateApiKeyRequest,
  CreateApiKeyResponse,
  EnableAccountRequest,
  EnableAccountResponse,
  GetPolicyRequest,
  PolicyJson,
  PutSubjectRequest,
  RemoveSubjectRequest,
  RemoveSubjectResponse,
} from '../../net/grpc/carpool-handler.js';
import type { AccountPool } from '../../pool/account-pool.js';
import { type MintedKey, mintApiKey } from './api-key-mint.js';
import { policyView, redactTenant } from './policy-view.js';

/**
 * carpool.v1.Admin over the node's policy document and account pool. Every call first proves the
 * node's admin token (`authorization: Bearer <token>`); a missing or wrong token is refused like a
 * tenant's bad key, UNAUTHENTICATED without saying why. The token is compared through SHA-256
 * digests with a constant-time comparison, so neither its length nor a matching prefix shows in
 * the timing.
 *
 * Edits go through the policy schema's validators (src/mesh/policy/policy-schema.ts), whose
 * errors name the field by its path, such as `tenants.acme.limits[2].window`; they reach every
 * region with the policy document's sync. Two conveniences, both documented in the contract's
 * spirit of "the JSON of Tenant without id":
 *   - PutTenant without `apiKeyHashes` keeps the tenant's current keys (none for a new tenant):
 *     GetPolicy shows digests only in part, so a client could not send them back whole;
 *   - an `id` inside the JSON must equal the request's `id`, or the call is refused.
 *
 * EnableAccount acts on this node's pool only: account health is learned per node.
 */
export interface AdminRuntime {
  readonly policy: Pick<PolicyDocument, 'tenants' | 'accounts' | 'settings' | 'invalidEntries' | 'tenant' | 'upsertTenant' | 'removeTenant' | 'upsertAccount' | 'removeAccount'>;
  readonly pool: Pick<AccountPool, 'enable'>;
}

export interface AdminGatewayOptions {
  readonly runtime: AdminRuntime;
  /** The node's admin token; at least 16 characters (the configuration checks it). */
  readonly adminToken: string;
  readonly crypto: AuthCrypto;
  /** Mints a key for a tenant; `mintApiKey` with the system's CSPRNG by default. */
  readonly mint?: (tenant: TenantId) => MintedKey;
}

/** Plain counters for the metrics binding. */
export class AdminStats {
  calls = 0;
  unauthenticated = 0;
  invalid = 0;
  keysCreated = 0;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export class AdminGateway implements AdminServiceHandler {
  readonly stats = new AdminStats();
  private readonly runtime: AdminRuntime;
  private readonly tokenDigest: Uint8Array;
  private readonly crypto: AuthCrypto;
  private readonly mint: (tenant: TenantId) => MintedKey;

  constructor(options: AdminGatewayOptions) {
    this.runtime = options.runtime;
    this.crypto = options.crypto;
    this.tokenDigest = options.crypto.sha256(utf8.encode(options.adminToken));
    this.mint = options.mint ?? ((tenant) => mintApiKey(options.crypto, tenant));
  }

  getPolicy(call: AdminCall<GetPolicyRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, () => ok(jsonOf(policyView(this.runtime.policy))));
  }

  putTenant(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, ({ id, json }) => {
      const fields = this.subjectFields(id, json);
      if (!fields.ok) return fields;
      const current = isValidId(id) ? this.runtime.policy.tenant(id as TenantId) : undefined;
      const withKeys = fields.value.apiKeyHashes === undefined ? { ...fields.value, apiKeyHashes: current?.apiKeyHashes ?? [] } : fields.value;
      const tenant = validateTenant(withKeys);
      if (!tenant.ok) return this.invalidPolicy(tenant.error);
      const saved = this.runtime.policy.upsertTenant(tenant.value);
      if (!saved.ok) return this.invalidPolicy(saved.error);
      return ok(jsonOf(redactTenant(tenant.value)));
    });
  }

  removeTenant(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>> {
    return this.admin(call, ({ id }) => {
      if (!isValidId(id)) return this.invalid('id', 'must be a tenant id');
      return ok({ removed: this.runtime.policy.removeTenant(id as TenantId) });
    });
  }

  putAccount(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>> {
    return this.admin(call, ({ id, json }) => {
      const fields = this.subjectFields(id, json);
      if (!fields.ok) return fields;
      const account = validateAccount(fields.value);
      if (!account.ok) return this.invalidPolicy(account.error);
      const saved = this.runtime.policy.upsertAccount(account.value);
      if (!saved.ok) return this.invalidPolicy(saved.error);
      return ok(jsonOf(account.value));
    });
  }

  removeAccount(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>> {
    return this.admin(call, ({ id }) => {
      if (!isValidId(id)) return this.invalid('id', 'must be an account id');
      return ok({ removed: this.runtime.policy.removeAccount(id as AccountId) });
    });
  }

  createApiKey(call: AdminCall<CreateApiKeyRequest>): Promise<Result<CreateApiKeyResponse, AdminError>> {
    return this.admin(call, ({ tenant: id }) => {
      const tenant = isValidId(id) ? this.runtime.policy.tenant(id as TenantId) : undefined;
      if (tenant === undefined) return this.invalid('tenant', 'names no tenant of the policy');
      if (tenant.apiKeyHashes.length >= tenantKeysMax) return this.invalid('tenant', `has ${tenantKeysMax} API keys already; remove one first`);
      const minted = this.mint(tenant.id);
      const saved = this.runtime.policy.upsertTenant({ ...tenant, apiKeyHashes: [...tenant.apiKeyHashes, minted.keyHashHex] });
      if (!saved.ok) return this.invalidPolicy(saved.error);
      this.stats.keysCreated++;
      return ok({ apiKey: minted.apiKey, keyId: minted.keyId });
    });
  }

  enableAccount(call: AdminCall<EnableAccountRequest>): Promise<Result<EnableAccountResponse, AdminError>> {
    return this.admin(call, ({ account }) => {
      if (!isValidId(account)) return this.invalid('account', 'must be an account id');
      return ok({ enabled: this.runtime.pool.enable(account as AccountId) });
    });
  }

  // ---- Internals ----

  /** Checks the admin token, then answers; the edits themselves are synchronous. */
  private admin<Request, Reply>(call: AdminCall<Request>, answer: (request: Request) => Result<Reply, AdminError>): Promise<Result<Reply, AdminError>> {
    this.stats.calls++;
    if (!this.tokenMatches(call.adminToken)) {
      this.stats.unauthenticated++;
      return Promise.resolve(err({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: call.adminToken === undefined ? 'missing-credentials' : 'wrong-admin-token' } }));
    }
    return Promise.resolve(answer(call.request));
  }

  private tokenMatches(token: string | undefined): boolean {
    if (token === undefined) return false;
    // Digests of equal length: the comparison's time tells nothing of the token's length.
    return constantTimeEqual(this.crypto.sha256(utf8.encode(token)), this.tokenDigest);
  }

  /** The JSON object of a subject with the request's id put in; an `id` inside must agree. */
  private subjectFields(id: string, json: Uint8Array): Result<Record<string, unknown>, AdminError> {
    if (json.length > gatewayRequestJsonBytesMax) return this.invalid('json', `must be at most ${gatewayRequestJsonBytesMax} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(strictUtf8.decode(json));
    } catch {
      return this.invalid('json', 'is not UTF-8 JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.invalid('json', 'must be a JSON object');
    const fields = value as Record<string, unknown>;
    if (fields.id !== undefined && fields.id !== id) return this.invalid('json.id', 'differs from the request id; leave it out');
    return ok({ ...fields, id });
  }

  private invalidPolicy(error: PolicyError): Result<never, AdminError> {
    return this.invalid(error.field, error.reason);
  }

  private invalid(field: string, reason: string): Result<never, AdminError> {
    this.stats.invalid++;
    return err({ kind: 'invalid', field, reason });
  }
}

function jsonOf(value: unknown): PolicyJson {
  return { json: utf8.encode(JSON.stringify(value)) };
}
