import { formatKeyId, keyIdHashHexLength } from '../../admission/api-key.js';
import type { TenantId } from '../../core/ids.js';
import { apiKeyLifetimeMsMax, apiKeyRotationGraceMsMax, tenantKeyRecordsMax, tenantKeysMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { type ApiKeyRecord, apiKeyAuthenticates, apiKeyState, type ApiKeyState, type Tenant } from '../../mesh/policy/policy-schema.js';

/**
 * The life of a tenant's API keys as pure functions over its key records: make one, revoke one
 * (at once, or at the end of a rotation's grace), and what operators may see of them. The admin
 * service (./admin-service.ts) mints the secret and writes the result to the policy document,
 * whose sync carries it to every node within a gossip interval.
 *
 * Bounds: at most `tenantKeysMax` keys that may authenticate, and `tenantKeyRecordsMax` records
 * in all; revoked and expired records stay listed until a new key needs their room, when the
 * oldest of them (by the time it stopped working) goes first.
 */

/** What an operator sees of a key: never the key, never its whole digest. */
export interface KeyView {
  /** `<tenant>:<first 8 hex digits of the digest>`. */
  readonly keyId: string;
  readonly name: string;
  readonly createdAtMs: number;
  readonly expiresAtMs?: number;
  readonly revokedAtMs?: number;
  readonly state: ApiKeyState;
}

export interface KeyProblem {
  readonly field: string;
  readonly reason: string;
}

export function keyView(tenant: TenantId, record: ApiKeyRecord, nowMs: number): KeyView {
  return {
    keyId: formatKeyId(tenant, record.hash),
    name: record.name,
    createdAtMs: record.createdAtMs,
    ...(record.expiresAtMs === undefined ? {} : { expiresAtMs: record.expiresAtMs }),
    ...(record.revokedAtMs === undefined ? {} : { revokedAtMs: record.revokedAtMs }),
    state: apiKeyState(record, nowMs),
  };
}

/**
 * The record a key id names: `<tenant>:<8 hex>` of this tenant, or the 8 hex digits alone. Keys
 * made here have distinct prefixes; two imported digests sharing one are refused as ambiguous.
 */
export function findKey(tenant: Tenant, keyId: string): Result<ApiKeyRecord, KeyProblem> {
  const tenantPrefix = `${tenant.id}:`;
  const prefix = keyId.startsWith(tenantPrefix) ? keyId.slice(tenantPrefix.length) : keyId;
  if (!new RegExp(`^[0-9a-f]{${keyIdHashHexLength}}$`).test(prefix)) {
    return err({ field: 'keyId', reason: `must be ${tenant.id}:<${keyIdHashHexLength} hex digits> or the digits alone` });
  }
  const named = tenant.apiKeys.filter((record) => record.hash.startsWith(prefix));
  if (named.length === 0) return err({ field: 'keyId', reason: `names no key of tenant ${tenant.id}` });
  if (named.length > 1)
    return err({ field: 'keyId', reason: `names ${named.length} imported keys of tenant ${tenant.id}; revoke them by rotating the others first` });
  return ok(named[0] as ApiKeyRecord);
}

/** Whether a freshly minted digest's key id would name an existing record too. */
export function keyIdTaken(tenant: Tenant, hash: string): boolean {
  const prefix = hash.slice(0, keyIdHashHexLength);
  return tenant.apiKeys.some((record) => record.hash.startsWith(prefix));
}

/** An expiry given by an operator: after now, and within `apiKeyLifetimeMsMax` of it. */
export function checkExpiry(expiresAtMs: number | undefined, nowMs: number): Result<number | undefined, KeyProblem> {
  if (expiresAtMs === undefined) return ok(undefined);
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs)
    return err({ field: 'expiresAtMs', reason: 'must be a time in the future (ms since the epoch)' });
  if (expiresAtMs - nowMs > apiKeyLifetimeMsMax)
    return err({ field: 'expiresAtMs', reason: `must be at most ${apiKeyLifetimeMsMax} ms (about five years) from now` });
  return ok(expiresAtMs);
}

export function checkGrace(graceMs: number | undefined): Result<number, KeyProblem> {
  if (graceMs === undefined) return ok(0);
  if (!Number.isSafeInteger(graceMs) || graceMs < 0 || graceMs > apiKeyRotationGraceMsMax) {
    return err({ field: 'graceMs', reason: `must be an integer from 0 to ${apiKeyRotationGraceMsMax} (30 days)` });
  }
  return ok(graceMs);
}

/**
 * The tenant with `record` added. Refused when the tenant already has `tenantKeysMax` keys that
 * authenticate; when the records are full, the oldest inactive one makes room.
 */
export function withKey(tenant: Tenant, record: ApiKeyRecord, nowMs: number): Result<Tenant, KeyProblem> {
  const working = tenant.apiKeys.filter((key) => apiKeyAuthenticates(key, nowMs)).length;
  if (working >= tenantKeysMax) return err({ field: 'tenant', reason: `has ${tenantKeysMax} working API keys already; revoke one first` });
  let records = [...tenant.apiKeys];
  while (records.length >= tenantKeyRecordsMax) {
    const inactive = records.filter((key) => !apiKeyAuthenticates(key, nowMs));
    // At most tenantKeysMax work and tenantKeysMax < tenantKeyRecordsMax, so one is inactive.
    const oldest = inactive.reduce((a, b) => (stoppedAtMs(a) <= stoppedAtMs(b) ? a : b));
    records = records.filter((key) => key !== oldest);
  }
  return ok({ ...tenant, apiKeys: [...records, record] });
}

/** The tenant with the key of digest `hash` revoked at `atMs` (now, or the end of a grace). */
export function withRevoked(tenant: Tenant, hash: string, atMs: number): Tenant {
  return { ...tenant, apiKeys: tenant.apiKeys.map((record) => (record.hash === hash ? { ...record, revokedAtMs: atMs } : record)) };
}

/** When an inactive key stopped working: its revocation or expiry, whichever came first. */
function stoppedAtMs(record: ApiKeyRecord): number {
  return Math.min(record.revokedAtMs ?? Number.MAX_SAFE_INTEGER, record.expiresAtMs ?? Number.MAX_SAFE_INTEGER);
}
