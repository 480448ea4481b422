import { isCount } from '../../core/assert.js';
import {
  type AccountId,
  isValidId,
  isValidName,
  parseAccountId,
  parseRegionId,
  parseTenantId,
  type RegionId,
  type TenantId,
} from '../../core/ids.js';
import {
  accountDedicatedTenantsMax,
  apiKeyNameLengthMax,
  idLengthMax,
  limitsPerSubjectMax,
  tenantKeyRecordsMax,
  tenantKeysMax,
  windowExpiryHorizonMs,
} from '../../core/limits.js';
import { err, ok, type Err, type Result } from '../../core/result.js';
import { windowLengthMs, windowUnits, type WindowUnit } from '../../crdt/window.js';

/**
 * The typed model of the policy document and its validation.
 *
 * Every value that enters the model goes through a `validate*` function, whether it comes from an
 * admin call or from the replicated document: a peer may run another schema version, and the
 * document itself cannot enforce anything. The validators take `unknown`, return fresh frozen
 * objects (so a cached policy cannot be changed behind the document's back) and name the first
 * bad field by its path, such as `tenants.acme.limits[2].window`.
 */

export const tiers = ['vip', 'paid', 'free'] as const;
export type Tier = (typeof tiers)[number];

export const consistencyModes = ['eventual', 'strict', 'escrow'] as const;
export type ConsistencyMode = (typeof consistencyModes)[number];

/**
 * What a tenant's client going away does to its call once the call was dispatched to an upstream
 * (before that, a request is simply withdrawn and charged nothing):
 *
 *   drain   the call runs to its result (bounded by the client's deadline plus a grace): the
 *           tenant and the account are charged exactly what the upstream reported, and the answer
 *           is kept for a retry of the same request id. The default.
 *   abort   a streamed call is cancelled at once, also at an account's home region across a
 *           forward, and charged the input the upstream reported plus the output tokens relayed
 *           to the client so far, counted from the relayed text (src/upstream/relayed-usage.ts):
 *           the one charge that is an estimate. A non-streamed call drains even so, because its
 *           answer is relayed whole or not at all, so nothing would be left to count.
 */
export const clientCancelModes = ['drain', 'abort'] as const;
export type ClientCancelMode = (typeof clientCancelModes)[number];

/**
 * How far a tenant's request ids are kept from running twice (src/admission/request-claims.ts):
 *   - `mesh` (the default): a client-chosen id is claimed by a quorum round before it may reach
 *           an upstream, so it runs at most once in the whole mesh (within the claims' horizon,
 *           at least an hour). The price: a round trip to a majority per request, and a region
 *           cut off from the majority refuses such requests (UNAVAILABLE, with a retry hint).
 *   - `region`: only the node's own answer store guards the id, so a retry at another region may
 *           run it again; no round trip, and a region keeps serving while cut off.
 */
export const idempotencyScopes = ['mesh', 'region'] as const;
export type IdempotencyScope = (typeof idempotencyScopes)[number];

export const accountKinds = ['api-key', 'oauth'] as const;
export type AccountKind = (typeof accountKinds)[number];

/**
 * Limits count in whole windows; `sec10` exists only as the sub-bucket of sliding limits, so a
 * limit never names it.
 */
export type LimitWindowUnit = Exclude<WindowUnit, 'sec10'>;
export const limitWindowUnits: readonly LimitWindowUnit[] = windowUnits.filter(
  (unit): unit is LimitWindowUnit => unit !== 'sec10',
);

export interface LimitRule {
  /** A counter metric name such as `requests`, `weighted_tokens` or `cost`. */
  readonly metric: string;
  readonly window: LimitWindowUnit;
  /** Sliding limits sum `sec10` sub-buckets over the last window length instead of the fixed window. */
  readonly sliding: boolean;
  readonly limit: number;
  readonly mode: ConsistencyMode;
}

/** Token weights in per-mille: 1000 means a token counts once. */
export interface TokenWeights {
  readonly input: number;
  readonly output: number;
  readonly cacheWrite: number;
  readonly cacheRead: number;
}

/**
 * One API key of a tenant. The key itself is never stored: `hash` is its SHA-256 in lowercase hex
 * (src/admission/api-key.ts), and its key id is `<tenant>:<first 8 hex digits>`.
 *
 * A key authenticates from its creation until it expires or is revoked, whichever comes first.
 * `revokedAtMs` in the future is a rotation's grace period: the key still works until then.
 *
 * Documents written before key records existed hold only `apiKeyHashes` (digests); each digest
 * there that no record names reads as a record with an empty name, created at 0, without expiry.
 */
export interface ApiKeyRecord {
  readonly hash: string;
  /** The operator's label, up to `apiKeyNameLengthMax` printable ASCII characters; empty for an imported digest. */
  readonly name: string;
  /** When the key was made (ms since the epoch); 0 when unknown (an imported digest). */
  readonly createdAtMs: number;
  /** When the key stops authenticating; absent: never. */
  readonly expiresAtMs?: number;
  /** When the key was (or, in a rotation's grace, will be) revoked; absent: not revoked. */
  readonly revokedAtMs?: number;
}

export type ApiKeyState = 'active' | 'revoking' | 'expired' | 'revoked';

/** Whether a key authenticates at `nowMs`: only `active` and `revoking` keys do. */
export function apiKeyState(record: ApiKeyRecord, nowMs: number): ApiKeyState {
  if (record.revokedAtMs !== undefined && nowMs >= record.revokedAtMs) return 'revoked';
  if (record.expiresAtMs !== undefined && nowMs >= record.expiresAtMs) return 'expired';
  return record.revokedAtMs === undefined ? 'active' : 'revoking';
}

export function apiKeyAuthenticates(record: ApiKeyRecord, nowMs: number): boolean {
  const state = apiKeyState(record, nowMs);
  return state === 'active' || state === 'revoking';
}

/**
 * The digests a peer of the schema before key records reads (`apiKeyHashes`): every key not
 * revoked. Such a peer honours a key's creation and revocation, but not its expiry or a
 * rotation's grace (it refuses a rotated-out key at once).
 */
export function legacyKeyHashes(records: readonly ApiKeyRecord[]): string[] {
  return records.filter((record) => record.revokedAtMs === undefined).map((record) => record.hash);
}

export interface Tenant {
  readonly id: TenantId;
  readonly tier: Tier;
  /** The tenant's API keys, revoked and expired ones included; see `ApiKeyRecord`. */
  readonly apiKeys: readonly ApiKeyRecord[];
  readonly requireSignature: boolean;
  readonly concurrencyMax: number;
  readonly weights: TokenWeights;
  readonly limits: readonly LimitRule[];
  /**
   * Limits each user of the tenant gets on its own, counted under scope `user` and subject
   * `<tenant>:<user>` (a user id comes with the request); empty when users are not limited apart.
   */
  readonly userLimits: readonly LimitRule[];
  /** Requests one user may have in flight at a node, within the tenant's `concurrencyMax`. */
  readonly userConcurrencyMax: number;
  /**
   * See `ClientCancelMode`. Absent means `drain`, which is how documents written before the field
   * existed read; a given `drain` is stored as absent, so the default has one representation.
   */
  readonly onClientCancel?: ClientCancelMode;
  /** See `IdempotencyScope`. Absent means `mesh`, stored as absent like `onClientCancel`'s default. */
  readonly idempotency?: IdempotencyScope;
}

/** The tenant's `idempotency`, with the default filled in. */
export function idempotencyOf(tenant: Tenant): IdempotencyScope {
  return tenant.idempotency ?? 'mesh';
}

/** The tenant's `onClientCancel`, with the default filled in. */
export function clientCancelModeOf(tenant: Tenant): ClientCancelMode {
  return tenant.onClientCancel ?? 'drain';
}

/**
 * The fields of a tenant that an operator writes (PUT /policy/tenants/{id}, PutTenant); its keys
 * have operations of their own. A field this list does not name is refused in an admin write, so
 * a misspelt optional field is an error instead of a silently ignored one.
 */
export const tenantWritableFields = ['tier', 'requireSignature', 'concurrencyMax', 'weights', 'limits', 'userLimits', 'userConcurrencyMax', 'onClientCancel', 'idempotency'] as const;

/** The fields of an account that an operator writes (PUT /policy/accounts/{id}, PutAccount). */
export const accountWritableFields = ['kind', 'homeRegion', 'weight', 'concurrencyMax', 'limits', 'dedicatedTenants'] as const;

export interface Account {
  readonly id: AccountId;
  readonly kind: AccountKind;
  /** The region whose nodes make this account's upstream calls. */
  readonly homeRegion: RegionId;
  /** Share of traffic in weighted selection, 1 to `accountWeightMax`. */
  readonly weight: number;
  readonly concurrencyMax: number;
  readonly limits: readonly LimitRule[];
  /**
   * VIP isolation: when present, the account serves only these tenants (1 to
   * `accountDedicatedTenantsMax` of them); absent, it is shared by every tenant. An empty list
   * is read as absent, so "shared" has one representation. The ids need not name existing
   * tenants: a dedication may be written before its tenant, and a removed tenant leaves an
   * account that serves nobody else rather than one that suddenly serves everybody.
   */
  readonly dedicatedTenants?: readonly TenantId[];
}

export interface MeshSettings {
  readonly gossipIntervalMs: number;
  readonly digestIntervalMs: number;
  readonly heartbeatIntervalMs: number;
}

export interface PolicyError {
  readonly kind: 'invalid-policy';
  /** Path of the bad field, e.g. `tenants.acme.limits[2].window`. */
  readonly field: string;
  readonly reason: string;
}

/** Defaults mirror price ratios: output costs five times input, cache reads a tenth, cache writes 1.25. */
export const defaultTokenWeights: TokenWeights = Object.freeze({
  input: 1000,
  output: 5000,
  cacheWrite: 1250,
  cacheRead: 100,
});

/**
 * Largest token weight (per-mille, so 1000× a plain token). Weighted amounts are tokens × weight /
 * 1000; with a few million tokens per request the product stays far below 2^53, so counters never
 * lose integer precision. (A policy bound; it belongs beside the others in src/core/limits.ts.)
 */
export const tokenWeightPerMilleMax = 1_000_000;

export const accountWeightMin = 1;
export const accountWeightMax = 1000;

/** Allowed range of every mesh setting, inclusive. */
export const meshSettingsBounds: Readonly<Record<keyof MeshSettings, { readonly min: number; readonly max: number }>> = {
  gossipIntervalMs: { min: 10, max: 10_000 },
  digestIntervalMs: { min: 100, max: 600_000 },
  heartbeatIntervalMs: { min: 10, max: 60_000 },
};

export const defaultMeshSettings: MeshSettings = Object.freeze({
  gossipIntervalMs: 50,
  digestIntervalMs: 1000,
  heartbeatIntervalMs: 250,
});

export const meshSettingNames = Object.keys(meshSettingsBounds) as readonly (keyof MeshSettings)[];

const sha256HexPattern = /^[0-9a-f]{64}$/;

function invalid(field: string, reason: string): Err<PolicyError> {
  return err({ kind: 'invalid-policy', field, reason });
}

type Fields = Readonly<Record<string, unknown>>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isOneOf<T extends string>(options: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (options as readonly string[]).includes(value);
}

/** Doubles carry a sign on zero; a stored `-0` would compare unequal to `0` in some places. */
const unsignedZero = (value: number): number => (value === 0 ? 0 : value);

/**
 * The path of a subject (tenant or account). Ids may hold any printable ASCII, so an id that is
 * itself invalid is quoted and cut to a bounded length: paths end up in logs and error replies.
 */
export function subjectPath(root: 'tenants' | 'accounts', id: unknown): string {
  if (typeof id !== 'string') return `${root}[?]`;
  if (isValidId(id)) return `${root}.${id}`;
  const cut = id.length > idLengthMax ? `${id.slice(0, idLengthMax)}…` : id;
  return `${root}[${JSON.stringify(cut)}]`;
}

function validateCount(value: unknown, field: string): Result<number, PolicyError> {
  if (typeof value !== 'number' || !isCount(value)) return invalid(field, 'must be a non-negative safe integer');
  return ok(unsignedZero(value));
}

function validateIntegerIn(value: unknown, field: string, min: number, max: number): Result<number, PolicyError> {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    return invalid(field, `must be an integer from ${min} to ${max}`);
  }
  return ok(unsignedZero(value));
}

export function validateLimitRule(value: unknown, field: string): Result<LimitRule, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const { metric, window, sliding, limit, mode } = value;
  if (typeof metric !== 'string' || !isValidName(metric)) {
    return invalid(`${field}.metric`, 'must be a lowercase name [a-z][a-z0-9_]* of at most 32 characters');
  }
  if (window === 'sec10') return invalid(`${field}.window`, 'sec10 is the sub-bucket of sliding limits, not a limit window');
  if (!isOneOf(limitWindowUnits, window)) return invalid(`${field}.window`, `must be one of ${limitWindowUnits.join(', ')}`);
  if (typeof sliding !== 'boolean') return invalid(`${field}.sliding`, 'must be a boolean');
  // A sliding sum reads the sub-buckets of the whole span; counters expire sub-buckets that ended
  // more than the horizon ago, so a longer span would silently undercount.
  if (sliding && windowLengthMs[window] > windowExpiryHorizonMs) {
    return invalid(`${field}.sliding`, `a sliding ${window} limit spans more than the counter expiry horizon`);
  }
  const count = validateCount(limit, `${field}.limit`);
  if (!count.ok) return count;
  if (!isOneOf(consistencyModes, mode)) return invalid(`${field}.mode`, `must be one of ${consistencyModes.join(', ')}`);
  // Escrow rights are split per fixed window; a sliding sum spans several windows at once.
  if (mode === 'escrow' && sliding) return invalid(`${field}.mode`, 'escrow limits hold rights per fixed window; a sliding limit cannot be escrowed');
  return ok(Object.freeze({ metric, window, sliding, limit: count.value, mode }));
}

/**
 * A subject's limits. Two rules on the same metric, window and slidingness would count into the
 * same counter key, possibly under different consistency modes, so they are refused.
 */
export function validateLimitRules(value: unknown, field: string): Result<readonly LimitRule[], PolicyError> {
  if (!Array.isArray(value)) return invalid(field, 'must be an array');
  if (value.length > limitsPerSubjectMax) return invalid(field, `at most ${limitsPerSubjectMax} limits`);
  const rules: LimitRule[] = [];
  const seen = new Map<string, number>();
  for (let i = 0; i < value.length; i++) {
    const rule = validateLimitRule(value[i], `${field}[${i}]`);
    if (!rule.ok) return rule;
    const key = `${rule.value.metric}/${rule.value.window}/${rule.value.sliding}`;
    const first = seen.get(key);
    if (first !== undefined) return invalid(`${field}[${i}]`, `same metric, window and sliding as ${field}[${first}]`);
    seen.set(key, i);
    rules.push(rule.value);
  }
  return ok(Object.freeze(rules));
}

/** Missing weights (and missing single weights) take the defaults. */
export function validateTokenWeights(value: unknown, field: string): Result<TokenWeights, PolicyError> {
  if (value === undefined) return ok(defaultTokenWeights);
  if (!isFields(value)) return invalid(field, 'must be an object');
  const weights: Record<keyof TokenWeights, number> = { ...defaultTokenWeights };
  for (const name of Object.keys(defaultTokenWeights) as (keyof TokenWeights)[]) {
    const given = value[name];
    if (given === undefined) continue;
    const checked = validateIntegerIn(given, `${field}.${name}`, 0, tokenWeightPerMilleMax);
    if (!checked.ok) return checked;
    weights[name] = checked.value;
  }
  return ok(Object.freeze(weights));
}

function validateKeyHashes(value: unknown, field: string): Result<readonly string[], PolicyError> {
  if (!Array.isArray(value)) return invalid(field, 'must be an array');
  if (value.length > tenantKeysMax) return invalid(field, `at most ${tenantKeysMax} API keys`);
  const hashes: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const hash: unknown = value[i];
    if (typeof hash !== 'string' || !sha256HexPattern.test(hash)) {
      return invalid(`${field}[${i}]`, 'must be a SHA-256 digest in 64 lowercase hex digits');
    }
    const first = hashes.indexOf(hash);
    if (first >= 0) return invalid(`${field}[${i}]`, `same key as ${field}[${first}]`);
    hashes.push(hash);
  }
  return ok(Object.freeze(hashes));
}

const keyNamePattern = /^[\x20-\x7e]*$/;

/** A key's name: printable ASCII, spaces allowed but not at either end; empty only for imported digests. */
export function isValidKeyName(name: string): boolean {
  return name.length <= apiKeyNameLengthMax && keyNamePattern.test(name) && name.trim() === name;
}

function validateOptionalTime(value: unknown, field: string): Result<number | undefined, PolicyError> {
  if (value === undefined) return ok(undefined);
  return validateCount(value, field);
}

export function validateApiKeyRecord(value: unknown, field: string): Result<ApiKeyRecord, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const { hash, name } = value;
  if (typeof hash !== 'string' || !sha256HexPattern.test(hash)) return invalid(`${field}.hash`, 'must be a SHA-256 digest in 64 lowercase hex digits');
  if (typeof name !== 'string' || !isValidKeyName(name)) {
    return invalid(`${field}.name`, `must be at most ${apiKeyNameLengthMax} printable ASCII characters, without spaces at either end`);
  }
  const createdAtMs = validateCount(value.createdAtMs, `${field}.createdAtMs`);
  if (!createdAtMs.ok) return createdAtMs;
  const expiresAtMs = validateOptionalTime(value.expiresAtMs, `${field}.expiresAtMs`);
  if (!expiresAtMs.ok) return expiresAtMs;
  const revokedAtMs = validateOptionalTime(value.revokedAtMs, `${field}.revokedAtMs`);
  if (!revokedAtMs.ok) return revokedAtMs;
  const record: ApiKeyRecord = {
    hash,
    name,
    createdAtMs: createdAtMs.value,
    ...(expiresAtMs.value === undefined ? {} : { expiresAtMs: expiresAtMs.value }),
    ...(revokedAtMs.value === undefined ? {} : { revokedAtMs: revokedAtMs.value }),
  };
  return ok(Object.freeze(record));
}

/**
 * A tenant's keys from its two fields: `apiKeys` (records) and `apiKeyHashes` (the digests of the
 * schema before records, which peers of that version still read and write). Both are optional.
 * A digest that no record names is a key such a peer made: it reads as an imported record. A
 * record wins over a digest, so a key revoked here stays refused even if an older peer, writing
 * from a stale view, lists its digest again.
 */
export function validateApiKeys(records: unknown, legacyHashes: unknown, path: string): Result<readonly ApiKeyRecord[], PolicyError> {
  const keys: ApiKeyRecord[] = [];
  if (records !== undefined) {
    if (!Array.isArray(records)) return invalid(`${path}.apiKeys`, 'must be an array');
    if (records.length > tenantKeyRecordsMax) return invalid(`${path}.apiKeys`, `at most ${tenantKeyRecordsMax} key records`);
    for (let i = 0; i < records.length; i++) {
      const record = validateApiKeyRecord(records[i], `${path}.apiKeys[${i}]`);
      if (!record.ok) return record;
      const first = keys.findIndex((key) => key.hash === record.value.hash);
      if (first >= 0) return invalid(`${path}.apiKeys[${i}]`, `same key as ${path}.apiKeys[${first}]`);
      keys.push(record.value);
    }
  }
  if (legacyHashes !== undefined) {
    const hashes = validateKeyHashes(legacyHashes, `${path}.apiKeyHashes`);
    if (!hashes.ok) return hashes;
    for (const hash of hashes.value) {
      if (keys.some((key) => key.hash === hash)) continue;
      if (keys.length >= tenantKeyRecordsMax) return invalid(`${path}.apiKeyHashes`, `with apiKeys, more than ${tenantKeyRecordsMax} keys`);
      keys.push(Object.freeze({ hash, name: '', createdAtMs: 0 }));
    }
  }
  return ok(Object.freeze(keys));
}

export function validateTenant(value: unknown): Result<Tenant, PolicyError> {
  if (!isFields(value)) return invalid('tenants', 'a tenant must be an object');
  const path = subjectPath('tenants', value.id);
  const id = typeof value.id === 'string' ? parseTenantId(value.id) : undefined;
  if (id === undefined || !id.ok) return invalid(`${path}.id`, `must be 1 to ${idLengthMax} printable ASCII characters without spaces`);
  if (!isOneOf(tiers, value.tier)) return invalid(`${path}.tier`, `must be one of ${tiers.join(', ')}`);
  const apiKeys = validateApiKeys(value.apiKeys, value.apiKeyHashes, path);
  if (!apiKeys.ok) return apiKeys;
  if (typeof value.requireSignature !== 'boolean') return invalid(`${path}.requireSignature`, 'must be a boolean');
  const concurrencyMax = validateCount(value.concurrencyMax, `${path}.concurrencyMax`);
  if (!concurrencyMax.ok) return concurrencyMax;
  const weights = validateTokenWeights(value.weights, `${path}.weights`);
  if (!weights.ok) return weights;
  const limits = validateLimitRules(value.limits, `${path}.limits`);
  if (!limits.ok) return limits;
  // Both user fields are optional, so documents written before they existed stay valid.
  const userLimits = value.userLimits === undefined ? ok([]) : validateLimitRules(value.userLimits, `${path}.userLimits`);
  if (!userLimits.ok) return userLimits;
  const userConcurrencyMax = value.userConcurrencyMax === undefined ? concurrencyMax : validateCount(value.userConcurrencyMax, `${path}.userConcurrencyMax`);
  if (!userConcurrencyMax.ok) return userConcurrencyMax;
  // Optional, so documents written before it existed read as `drain`.
  const onClientCancel = value.onClientCancel ?? 'drain';
  if (!isOneOf(clientCancelModes, onClientCancel)) return invalid(`${path}.onClientCancel`, `must be one of ${clientCancelModes.join(', ')}`);
  const idempotency = value.idempotency ?? 'mesh';
  if (!isOneOf(idempotencyScopes, idempotency)) return invalid(`${path}.idempotency`, `must be one of ${idempotencyScopes.join(', ')}`);
  const tenant: Tenant = {
    id: id.value,
    tier: value.tier,
    apiKeys: apiKeys.value,
    requireSignature: value.requireSignature,
    concurrencyMax: concurrencyMax.value,
    weights: weights.value,
    limits: limits.value,
    userLimits: userLimits.value,
    userConcurrencyMax: userConcurrencyMax.value,
    ...(onClientCancel === 'drain' ? {} : { onClientCancel }),
    ...(idempotency === 'mesh' ? {} : { idempotency }),
  };
  return ok(Object.freeze(tenant));
}

export function validateAccount(value: unknown): Result<Account, PolicyError> {
  if (!isFields(value)) return invalid('accounts', 'an account must be an object');
  const path = subjectPath('accounts', value.id);
  const id = typeof value.id === 'string' ? parseAccountId(value.id) : undefined;
  if (id === undefined || !id.ok) return invalid(`${path}.id`, `must be 1 to ${idLengthMax} printable ASCII characters without spaces`);
  if (!isOneOf(accountKinds, value.kind)) return invalid(`${path}.kind`, `must be one of ${accountKinds.join(', ')}`);
  const homeRegion = typeof value.homeRegion === 'string' ? parseRegionId(value.homeRegion) : undefined;
  if (homeRegion === undefined || !homeRegion.ok) return invalid(`${path}.homeRegion`, 'must be a region id');
  const weight = validateIntegerIn(value.weight, `${path}.weight`, accountWeightMin, accountWeightMax);
  if (!weight.ok) return weight;
  const concurrencyMax = validateCount(value.concurrencyMax, `${path}.concurrencyMax`);
  if (!concurrencyMax.ok) return concurrencyMax;
  const limits = validateLimitRules(value.limits, `${path}.limits`);
  if (!limits.ok) return limits;
  // Optional, so documents written before VIP isolation existed stay valid (and shared).
  const dedicatedTenants = value.dedicatedTenants === undefined ? ok([]) : validateDedicatedTenants(value.dedicatedTenants, `${path}.dedicatedTenants`);
  if (!dedicatedTenants.ok) return dedicatedTenants;
  const account: Account = {
    id: id.value,
    kind: value.kind,
    homeRegion: homeRegion.value,
    weight: weight.value,
    concurrencyMax: concurrencyMax.value,
    limits: limits.value,
    ...(dedicatedTenants.value.length === 0 ? {} : { dedicatedTenants: dedicatedTenants.value }),
  };
  return ok(Object.freeze(account));
}

function validateDedicatedTenants(value: unknown, field: string): Result<readonly TenantId[], PolicyError> {
  if (!Array.isArray(value)) return invalid(field, 'must be an array of tenant ids');
  if (value.length > accountDedicatedTenantsMax) return invalid(field, `at most ${accountDedicatedTenantsMax} tenants`);
  const tenants: TenantId[] = [];
  for (let i = 0; i < value.length; i++) {
    const given: unknown = value[i];
    const tenant = typeof given === 'string' ? parseTenantId(given) : undefined;
    if (tenant === undefined || !tenant.ok) return invalid(`${field}[${i}]`, `must be 1 to ${idLengthMax} printable ASCII characters without spaces`);
    const first = tenants.indexOf(tenant.value);
    if (first >= 0) return invalid(`${field}[${i}]`, `same tenant as ${field}[${first}]`);
    tenants.push(tenant.value);
  }
  return ok(Object.freeze(tenants));
}

export function validateMeshSetting(name: keyof MeshSettings, value: unknown): Result<number, PolicyError> {
  const { min, max } = meshSettingsBounds[name];
  return validateIntegerIn(value, `settings.${name}`, min, max);
}

/**
 * A partial settings update: every given field must be a known setting within its bounds.
 * Unknown names are refused rather than ignored, so a typo in an admin call is not lost silently.
 */
export function validateSettingsPatch(value: unknown): Result<Partial<MeshSettings>, PolicyError> {
  if (!isFields(value)) return invalid('settings', 'must be an object');
  const patch: Partial<Record<keyof MeshSettings, number>> = {};
  for (const [name, given] of Object.entries(value)) {
    if (given === undefined) continue;
    if (!isOneOf(meshSettingNames, name)) return invalid(`settings.${name}`, 'unknown setting');
    const checked = validateMeshSetting(name, given);
    if (!checked.ok) return checked;
    patch[name] = checked.value;
  }
  return ok(Object.freeze(patch));
}
