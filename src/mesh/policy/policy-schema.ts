import { isCount } from '../../core/assert.js';
import { type AccountId, isValidId, isValidName, parseAccountId, parseRegionId, parseTenantId, type RegionId, type TenantId } from '../../core/ids.js';
import {
  accountDedicatedTenantsMax,
  apiKeyNameLengthMax,
  circuitFailuresMax,
  circuitOpenMsBase,
  circuitOpenMsMax,
  idLengthMax,
  limitsPerSubjectMax,
  meshMembersMax,
  overloadBackoffMsBase,
  overloadBackoffMsMax,
  rateLimitCooldownMsDefault,
  rateLimitCooldownMsMax,
  tenantKeyRecordsMax,
  tenantKeysMax,
  throttleShortMsMax,
  tierQueueDepthMax,
  tierQueueWaitMsMax,
  upstreamRetryAfterMsMax,
  windowExpiryHorizonMs,
} from '../../core/limits.js';
import { ok, type Result } from '../../core/result.js';
import { invalid, isFields, isOneOf, type PolicyError, unsignedZero, validateIntegerIn } from './field-checks.js';
import {
  type DegradeSettingsPatch,
  degradeSettingKey,
  degradeWrite,
  type ScheduleSettingsPatch,
  scheduleSettingKey,
  scheduleWrite,
  validateSettingsObjectPatch,
} from './schedule-schema.js';
import { windowLengthMs, windowUnits, type WindowUnit } from '../../crdt/window.js';
import { type BaseStrategyName, baseStrategyNames } from '../../pool/strategies.js';

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
export const limitWindowUnits: readonly LimitWindowUnit[] = windowUnits.filter((unit): unit is LimitWindowUnit => unit !== 'sec10');

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
  /**
   * How the pool picks an account for this tenant's requests, over the region's and the mesh's
   * default (`settings.pool`, see `strategyFor`); absent: the default applies.
   */
  readonly poolStrategy?: BaseStrategyName;
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
export const tenantWritableFields = [
  'tier',
  'requireSignature',
  'concurrencyMax',
  'weights',
  'limits',
  'userLimits',
  'userConcurrencyMax',
  'onClientCancel',
  'idempotency',
  'poolStrategy',
] as const;

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

export type { PolicyError } from './field-checks.js';

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
  const poolStrategy = value.poolStrategy;
  if (poolStrategy !== undefined && !isOneOf(baseStrategyNames, poolStrategy))
    return invalid(`${path}.poolStrategy`, `must be one of ${baseStrategyNames.join(', ')}`);
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
    ...(poolStrategy === undefined ? {} : { poolStrategy }),
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

// ---- Pool and shedding settings ----

/*
 * Besides the mesh timings above, the settings hold how the pool picks and rests accounts and
 * when the gateway sheds load, so an operator tunes them mesh-wide without a restart:
 *
 *   "settings": {
 *     "pool": {
 *       "strategy": "round-robin",            the mesh's default (src/pool/strategies.ts)
 *       "sticky": true,                        session keys pin a request to an account
 *       "regionStrategy": { "eu-west": "least-loaded" },   a region's own default
 *       "health": { "rateLimitCooldownMs": 10000, ... }   see HealthTimings
 *     },
 *     "shed": { "vip": { "depthMax": 3072, "waitMsMax": 30000 }, "paid": {...}, "free": {...} }
 *   }
 *
 * and a tenant may name its own `poolStrategy`. Every field is optional: what is not set reads
 * as its default, which is what the code did before the setting existed (the constants of
 * src/core/limits.ts; `shed` absent means each node's own thresholds, see `ShedSettings`).
 *
 * Storage. The document's `settings` map holds one entry per independent part: `pool.strategy`,
 * `pool.sticky`, `pool.regionStrategy`, `pool.health` and `shed`, so two operators changing
 * different parts at once both keep their change. Numbers that must agree with each other (a
 * cooldown and its cap, a tier's thresholds and the next tier's) live in one entry, so a
 * concurrent merge cannot pair values that were never validated together. Peers of a version
 * before these settings ignore the entries and keep their constants.
 */

/**
 * How long an account rests after the upstream pushed back (read by src/pool/account-health.ts,
 * whose own `HealthTimings` has the same fields, so these pass to the pool as they are). Each
 * defaults to the constant of the same name in src/core/limits.ts (`rateLimitCooldownMs`: to
 * `rateLimitCooldownMsDefault`).
 */
export interface HealthTimings {
  /** A 429 whose wait is at most this is a short throttle, paused for exactly that wait. */
  readonly throttleShortMsMax: number;
  /** The pause after a 429 whose headers say nothing about when to come back. */
  readonly rateLimitCooldownMs: number;
  /** The longest pause a 429 can cause, whatever its headers say. */
  readonly rateLimitCooldownMsMax: number;
  /** The first backoff after a 529; it doubles with each 529 in a row. */
  readonly overloadBackoffMsBase: number;
  /** The longest backoff after 529s in a row. */
  readonly overloadBackoffMsMax: number;
  /** Server errors or network failures in a row that open an account's circuit. */
  readonly circuitFailuresMax: number;
  /** How long an opened circuit stays open before one probe; doubles per failed probe. */
  readonly circuitOpenMsBase: number;
  /** The longest an opened circuit stays open before the next probe. */
  readonly circuitOpenMsMax: number;
}

export const defaultHealthTimings: HealthTimings = Object.freeze({
  throttleShortMsMax,
  rateLimitCooldownMs: rateLimitCooldownMsDefault,
  rateLimitCooldownMsMax,
  overloadBackoffMsBase,
  overloadBackoffMsMax,
  circuitFailuresMax,
  circuitOpenMsBase,
  circuitOpenMsMax,
});

/**
 * Allowed range of every health timing, inclusive. A cooldown may reach a week, the longest
 * `retry-after` the upstream client passes on (a subscription's weekly window); backoffs and
 * circuits stay within an hour, past which an account is better disabled by an operator.
 */
export const healthTimingsBounds: Readonly<Record<keyof HealthTimings, { readonly min: number; readonly max: number }>> = {
  throttleShortMsMax: { min: 0, max: 60_000 },
  rateLimitCooldownMs: { min: 1_000, max: upstreamRetryAfterMsMax },
  rateLimitCooldownMsMax: { min: 1_000, max: upstreamRetryAfterMsMax },
  overloadBackoffMsBase: { min: 1, max: 3_600_000 },
  overloadBackoffMsMax: { min: 1, max: 3_600_000 },
  circuitFailuresMax: { min: 1, max: 100 },
  circuitOpenMsBase: { min: 1, max: 3_600_000 },
  circuitOpenMsMax: { min: 1, max: 3_600_000 },
};

export const healthTimingNames = Object.keys(healthTimingsBounds) as readonly (keyof HealthTimings)[];

export interface PoolSettings {
  /** The mesh's default strategy; `round-robin`, as nodes used before it was a setting. */
  readonly strategy: BaseStrategyName;
  /** Whether a request's session key pins it to an account (src/pool/rendezvous.ts). */
  readonly sticky: boolean;
  /**
   * A region's own default strategy, by region id, over `strategy`; empty when no region has one.
   * Read it through `strategyFor`: a plain index would also find `Object.prototype`'s members.
   */
  readonly regionStrategy: Readonly<Record<string, BaseStrategyName>>;
  readonly health: HealthTimings;
}

export const defaultPoolSettings: PoolSettings = Object.freeze({
  strategy: 'round-robin',
  sticky: true,
  regionStrategy: Object.freeze({}),
  health: defaultHealthTimings,
});

/**
 * The strategy for a request of `tenant` at a node of `region`: the tenant's own, else the
 * region's, else the mesh's.
 */
export function strategyFor(settings: PoolSettings, region: string, tenant?: Pick<Tenant, 'poolStrategy'>): BaseStrategyName {
  if (tenant?.poolStrategy !== undefined) return tenant.poolStrategy;
  return Object.hasOwn(settings.regionStrategy, region) ? (settings.regionStrategy[region] as BaseStrategyName) : settings.strategy;
}

export interface ShedTierSettings {
  /** Shed once this many requests are queued at this tier and above (at least 1). */
  readonly depthMax: number;
  /** Shed once the oldest of those has waited longer than this. */
  readonly waitMsMax: number;
}

/**
 * Load-shedding thresholds per tier (src/admission/shedder.ts, which documents their meaning).
 * When the policy sets them, every gateway of the mesh uses them; when it does not, each node
 * uses its own (src/node/gateway/gateway-settings.ts `defaultShedThresholds` unless a test or a
 * launcher set others). They are set whole, all three tiers, so a tier's thresholds are never
 * checked against another tier's that were set elsewhere.
 */
export type ShedSettings = Readonly<Record<Tier, ShedTierSettings>>;

/** The document's `settings` entries of the pool and shedding settings (see Storage above). */
export const poolSettingKeys = Object.freeze({
  strategy: 'pool.strategy',
  sticky: 'pool.sticky',
  regionStrategy: 'pool.regionStrategy',
  health: 'pool.health',
} as const);
export const shedSettingKey = 'shed';

/**
 * A settings update as an operator sends it (PATCH /policy/settings). Given fields are set,
 * others kept. `null` returns a pool field to its default: `pool.strategy`, `pool.sticky`, one
 * region of `pool.regionStrategy` or all of it, one timing of `pool.health` or all of them; and
 * `shed: null` returns each node to its own thresholds. `shed` fields merge over the policy's
 * current thresholds; the first `shed` update names all three tiers.
 */
export interface SettingsPatch extends Partial<MeshSettings> {
  readonly pool?: PoolSettingsPatch;
  readonly shed?: ShedSettingsPatch | null;
  /** How the admission queue orders requests (src/mesh/policy/schedule-schema.ts). */
  readonly schedule?: ScheduleSettingsPatch | null;
  /** When lower tiers are served degraded (src/mesh/policy/schedule-schema.ts). */
  readonly degrade?: DegradeSettingsPatch | null;
}

export interface PoolSettingsPatch {
  readonly strategy?: BaseStrategyName | null;
  readonly sticky?: boolean | null;
  readonly regionStrategy?: Readonly<Record<string, BaseStrategyName | null>> | null;
  readonly health?: Readonly<Partial<Record<keyof HealthTimings, number | null>>> | null;
}

export type ShedSettingsPatch = Readonly<Partial<Record<Tier, Readonly<Partial<ShedTierSettings>>>>>;

/**
 * A partial settings update: every given field must be a known setting within its bounds.
 * Unknown names are refused rather than ignored, so a typo in an admin call is not lost silently.
 * Checks that depend on what is stored (a cooldown against its cap) are `settingsWrites`'.
 */
export function validateSettingsPatch(value: unknown): Result<SettingsPatch, PolicyError> {
  if (!isFields(value)) return invalid('settings', 'must be an object');
  const patch: { -readonly [K in keyof SettingsPatch]: SettingsPatch[K] } = {};
  for (const [name, given] of Object.entries(value)) {
    if (given === undefined) continue;
    if (name === 'pool') {
      const pool = validatePoolPatch(given, 'settings.pool');
      if (!pool.ok) return pool;
      patch.pool = pool.value;
    } else if (name === 'shed') {
      const shed = given === null ? ok(null) : validateShedPatch(given, 'settings.shed');
      if (!shed.ok) return shed;
      patch.shed = shed.value;
    } else if (name === 'schedule' || name === 'degrade') {
      const checked = validateSettingsObjectPatch(given, `settings.${name}`);
      if (!checked.ok) return checked;
      patch[name] = checked.value;
    } else {
      if (!isOneOf(meshSettingNames, name)) return invalid(`settings.${name}`, 'unknown setting');
      const checked = validateMeshSetting(name, given);
      if (!checked.ok) return checked;
      patch[name] = checked.value;
    }
  }
  return ok(Object.freeze(patch));
}

function validatePoolPatch(value: unknown, field: string): Result<PoolSettingsPatch, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const patch: { -readonly [K in keyof PoolSettingsPatch]: PoolSettingsPatch[K] } = {};
  for (const [name, given] of Object.entries(value)) {
    if (given === undefined) continue;
    const path = `${field}.${name}`;
    if (name === 'strategy') {
      if (given !== null && !isOneOf(baseStrategyNames, given)) return invalid(path, `must be one of ${baseStrategyNames.join(', ')}`);
      patch.strategy = given;
    } else if (name === 'sticky') {
      if (given !== null && typeof given !== 'boolean') return invalid(path, 'must be a boolean');
      patch.sticky = given;
    } else if (name === 'regionStrategy') {
      const regions = given === null ? ok(null) : validateRegionStrategies(given, path, true);
      if (!regions.ok) return regions;
      patch.regionStrategy = regions.value;
    } else if (name === 'health') {
      const health = given === null ? ok(null) : validateHealthTimings(given, path, true);
      if (!health.ok) return health;
      patch.health = health.value;
    } else {
      return invalid(path, 'unknown setting');
    }
  }
  return ok(Object.freeze(patch));
}

/** Region id → strategy; in a patch (`nulls`) a region may map to null, to drop its override. */
function validateRegionStrategies(value: unknown, field: string, nulls: true): Result<Readonly<Record<string, BaseStrategyName | null>>, PolicyError>;
function validateRegionStrategies(value: unknown, field: string, nulls: false): Result<Readonly<Record<string, BaseStrategyName>>, PolicyError>;
function validateRegionStrategies(value: unknown, field: string, nulls: boolean): Result<Readonly<Record<string, BaseStrategyName | null>>, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object of region id to strategy');
  const entries = Object.entries(value);
  // Regions are at most the mesh's members, so more entries than that name regions that cannot exist.
  if (entries.length > meshMembersMax) return invalid(field, `at most ${meshMembersMax} regions`);
  const checked: [string, BaseStrategyName | null][] = [];
  for (const [region, strategy] of entries) {
    if (!parseRegionId(region).ok) return invalid(`${field}[${JSON.stringify(region.slice(0, idLengthMax))}]`, 'must be a region id');
    if (strategy === null && nulls) checked.push([region, null]);
    else if (isOneOf(baseStrategyNames, strategy)) checked.push([region, strategy]);
    else return invalid(`${field}.${region}`, `must be one of ${baseStrategyNames.join(', ')}${nulls ? ', or null' : ''}`);
  }
  // fromEntries defines own properties, so a region named `__proto__` stays a region.
  return ok(Object.freeze(Object.fromEntries(checked)));
}

/**
 * Health timings, each optional; in a patch (`nulls`) a timing may be null, back to its default.
 * Whether they agree with each other is `checkHealthTimings`', once merged with what is stored.
 */
function validateHealthTimings(
  value: unknown,
  field: string,
  nulls: boolean,
): Result<Readonly<Partial<Record<keyof HealthTimings, number | null>>>, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const timings: Partial<Record<keyof HealthTimings, number | null>> = {};
  for (const [name, given] of Object.entries(value)) {
    if (given === undefined) continue;
    if (!isOneOf(healthTimingNames, name)) return invalid(`${field}.${name}`, 'unknown setting');
    if (given === null && nulls) {
      timings[name] = null;
      continue;
    }
    const { min, max } = healthTimingsBounds[name];
    const checked = validateIntegerIn(given, `${field}.${name}`, min, max);
    if (!checked.ok) return checked;
    timings[name] = checked.value;
  }
  return ok(Object.freeze(timings));
}

/**
 * The relations the pool relies on, as src/core/limits.ts asserts them of the defaults. A broken
 * relation names the field of the pair that `given` names (the one the operator just changed),
 * or the first of the pair when both or neither were given.
 */
export function checkHealthTimings(timings: HealthTimings, field: string, given: ReadonlySet<string> = new Set()): Result<HealthTimings, PolicyError> {
  const pairs: readonly [keyof HealthTimings, keyof HealthTimings, boolean, string][] = [
    [
      'throttleShortMsMax',
      'rateLimitCooldownMsMax',
      timings.throttleShortMsMax < timings.rateLimitCooldownMsMax,
      'a short throttle must be shorter than the longest cooldown',
    ],
    [
      'rateLimitCooldownMs',
      'rateLimitCooldownMsMax',
      timings.rateLimitCooldownMs <= timings.rateLimitCooldownMsMax,
      'the default cooldown must not exceed the longest',
    ],
    [
      'overloadBackoffMsBase',
      'overloadBackoffMsMax',
      timings.overloadBackoffMsBase <= timings.overloadBackoffMsMax,
      'the first overload backoff must not exceed the longest',
    ],
    ['circuitOpenMsBase', 'circuitOpenMsMax', timings.circuitOpenMsBase <= timings.circuitOpenMsMax, 'the first circuit opening must not exceed the longest'],
  ];
  for (const [first, second, holds, reason] of pairs) {
    if (holds) continue;
    const named = given.has(second) && !given.has(first) ? second : first;
    return invalid(`${field}.${named}`, reason);
  }
  return ok(timings);
}

function validateShedPatch(value: unknown, field: string): Result<ShedSettingsPatch, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object of tier to thresholds');
  const patch: Partial<Record<Tier, Partial<ShedTierSettings>>> = {};
  for (const [tier, given] of Object.entries(value)) {
    if (given === undefined) continue;
    if (!isOneOf(tiers, tier)) return invalid(`${field}.${tier}`, `unknown tier; tiers are ${tiers.join(', ')}`);
    if (!isFields(given)) return invalid(`${field}.${tier}`, 'must be an object');
    const thresholds: Partial<Record<keyof ShedTierSettings, number>> = {};
    for (const [name, number] of Object.entries(given)) {
      if (number === undefined) continue;
      if (name !== 'depthMax' && name !== 'waitMsMax') return invalid(`${field}.${tier}.${name}`, 'unknown setting');
      const checked =
        name === 'depthMax'
          ? validateIntegerIn(number, `${field}.${tier}.depthMax`, 1, tierQueueDepthMax)
          : validateIntegerIn(number, `${field}.${tier}.waitMsMax`, 0, tierQueueWaitMsMax);
      if (!checked.ok) return checked;
      thresholds[name] = checked.value;
    }
    patch[tier] = Object.freeze(thresholds);
  }
  return ok(Object.freeze(patch));
}

/**
 * Whole shedding thresholds: every tier with both numbers within bounds (a depth of at least one:
 * zero would shed a tier entirely, which is a policy decision and not a load threshold; at most a
 * tier queue's depth and wait, past which the queue refuses first), and no tier above the tier
 * before it in `tiers` order, so that shedding a tier sheds every lower one. `field` prefixes the
 * paths: `settings.shed` for the policy, `shed` for a node's own thresholds.
 */
export function validateShedSettings(value: unknown, field: string): Result<ShedSettings, PolicyError> {
  const patch = validateShedPatch(value, field);
  if (!patch.ok) return patch;
  const thresholds: Partial<Record<Tier, ShedTierSettings>> = {};
  let above: Tier | undefined;
  for (const tier of tiers) {
    const given = patch.value[tier];
    if (given?.depthMax === undefined) return invalid(`${field}.${tier}.depthMax`, 'is required');
    if (given.waitMsMax === undefined) return invalid(`${field}.${tier}.waitMsMax`, 'is required');
    const aboveThresholds = above === undefined ? undefined : thresholds[above];
    if (aboveThresholds !== undefined && given.depthMax > aboveThresholds.depthMax) return invalid(`${field}.${tier}.depthMax`, `must not exceed ${above}'s`);
    if (aboveThresholds !== undefined && given.waitMsMax > aboveThresholds.waitMsMax)
      return invalid(`${field}.${tier}.waitMsMax`, `must not exceed ${above}'s`);
    thresholds[tier] = Object.freeze({ depthMax: given.depthMax, waitMsMax: given.waitMsMax });
    above = tier;
  }
  return ok(Object.freeze(thresholds as Record<Tier, ShedTierSettings>));
}

/** A settings entry of the document, by its key; undefined when absent. */
export type StoredSetting = (key: string) => unknown;

export interface SettingsRead<T> {
  readonly settings: T;
  /** Stored entries that failed validation and read as their defaults. */
  readonly errors: readonly PolicyError[];
}

/**
 * The pool settings from the document's entries, defaults filled. A stored entry that does not
 * validate (a newer peer's, or a bug's) reads as its default and is reported, as a bad mesh
 * setting is; so are timings that do not agree with each other, which read as the defaults whole.
 */
export function readPoolSettings(stored: StoredSetting): SettingsRead<PoolSettings> {
  const errors: PolicyError[] = [];
  const keep = <T>(result: Result<T, PolicyError>, fallback: T): T => {
    if (result.ok) return result.value;
    errors.push(result.error);
    return fallback;
  };
  const strategyEntry = stored(poolSettingKeys.strategy);
  const strategy =
    strategyEntry === undefined
      ? defaultPoolSettings.strategy
      : keep(
          isOneOf(baseStrategyNames, strategyEntry) ? ok(strategyEntry) : invalid('settings.pool.strategy', `must be one of ${baseStrategyNames.join(', ')}`),
          defaultPoolSettings.strategy,
        );
  const stickyEntry = stored(poolSettingKeys.sticky);
  const sticky =
    stickyEntry === undefined
      ? defaultPoolSettings.sticky
      : keep(typeof stickyEntry === 'boolean' ? ok(stickyEntry) : invalid('settings.pool.sticky', 'must be a boolean'), defaultPoolSettings.sticky);
  const regionsEntry = stored(poolSettingKeys.regionStrategy);
  const regionStrategy =
    regionsEntry === undefined
      ? defaultPoolSettings.regionStrategy
      : keep(validateRegionStrategies(regionsEntry, 'settings.pool.regionStrategy', false), defaultPoolSettings.regionStrategy);
  const healthEntry = stored(poolSettingKeys.health);
  let health = defaultHealthTimings;
  if (healthEntry !== undefined) {
    const given = keep(validateHealthTimings(healthEntry, 'settings.pool.health', false), {});
    health = keep(checkHealthTimings({ ...defaultHealthTimings, ...(given as Partial<HealthTimings>) }, 'settings.pool.health'), defaultHealthTimings);
  }
  const settings: PoolSettings = { strategy, sticky, regionStrategy, health: Object.freeze({ ...health }) };
  return { settings: Object.freeze(settings), errors };
}

/** The policy's shedding thresholds, or undefined when it sets none (or stores invalid ones, reported). */
export function readShedSettings(stored: StoredSetting): SettingsRead<ShedSettings | undefined> {
  const entry = stored(shedSettingKey);
  if (entry === undefined) return { settings: undefined, errors: [] };
  const checked = validateShedSettings(entry, 'settings.shed');
  return checked.ok ? { settings: checked.value, errors: [] } : { settings: undefined, errors: [checked.error] };
}

/** A settings entry to write; `undefined` removes it (the setting reads as its default again). */
export type SettingWrite = readonly [key: string, value: StoredValue | undefined];
type StoredValue = string | number | boolean | { readonly [name: string]: StoredValue };

/**
 * The entries a (validated) patch writes, merged over what is stored, or the first field that
 * makes the merged settings invalid. All or nothing: the caller writes every entry or none.
 */
export function settingsWrites(stored: StoredSetting, patch: SettingsPatch): Result<readonly SettingWrite[], PolicyError> {
  const writes: SettingWrite[] = [];
  for (const name of meshSettingNames) {
    const value = patch[name];
    if (value !== undefined) writes.push([name, value]);
  }
  const pool = patch.pool;
  if (pool?.strategy !== undefined) writes.push([poolSettingKeys.strategy, pool.strategy ?? undefined]);
  if (pool?.sticky !== undefined) writes.push([poolSettingKeys.sticky, pool.sticky ?? undefined]);
  if (pool?.regionStrategy !== undefined) {
    const current = readPoolSettings(stored).settings.regionStrategy;
    const merged = pool.regionStrategy === null ? [] : Object.entries({ ...current, ...pool.regionStrategy }).filter(([, strategy]) => strategy !== null);
    if (merged.length > meshMembersMax) return invalid('settings.pool.regionStrategy', `at most ${meshMembersMax} regions`);
    writes.push([poolSettingKeys.regionStrategy, merged.length === 0 ? undefined : (Object.fromEntries(merged) as Record<string, string>)]);
  }
  if (pool?.health !== undefined) {
    const health = healthWrite(stored, pool.health);
    if (!health.ok) return health;
    writes.push([poolSettingKeys.health, health.value]);
  }
  if (patch.shed !== undefined) {
    const shed = shedWrite(stored, patch.shed);
    if (!shed.ok) return shed;
    writes.push([shedSettingKey, shed.value]);
  }
  if (patch.schedule !== undefined) {
    const schedule = scheduleWrite(stored, patch.schedule);
    if (!schedule.ok) return schedule;
    writes.push([scheduleSettingKey, schedule.value as StoredValue | undefined]);
  }
  if (patch.degrade !== undefined) {
    const degrade = degradeWrite(stored, patch.degrade);
    if (!degrade.ok) return degrade;
    writes.push([degradeSettingKey, degrade.value as StoredValue | undefined]);
  }
  return ok(writes);
}

/** The stored timings (only those set, so later defaults still apply to the rest) after `patch`. */
function healthWrite(stored: StoredSetting, patch: NonNullable<PoolSettingsPatch['health']> | null): Result<Record<string, number> | undefined, PolicyError> {
  if (patch === null) return ok(undefined);
  const entry = stored(poolSettingKeys.health);
  const current = entry === undefined ? undefined : validateHealthTimings(entry, 'settings.pool.health', false);
  // Stored timings that no longer validate are dropped by the write rather than kept.
  const merged: Record<string, number | null> = { ...(current?.ok === true ? current.value : {}), ...patch };
  const set = Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, number] => entry[1] !== null));
  const checked = checkHealthTimings({ ...defaultHealthTimings, ...set }, 'settings.pool.health', new Set(Object.keys(patch)));
  if (!checked.ok) return checked;
  return ok(Object.keys(set).length === 0 ? undefined : set);
}

/** The policy's whole thresholds after `patch`: merged over the stored ones, complete, ordered. */
function shedWrite(
  stored: StoredSetting,
  patch: ShedSettingsPatch | null,
): Result<Record<string, { depthMax: number; waitMsMax: number }> | undefined, PolicyError> {
  if (patch === null) return ok(undefined);
  const current = readShedSettings(stored).settings;
  const merged: Record<string, Partial<ShedTierSettings>> = {};
  for (const tier of tiers) merged[tier] = { ...current?.[tier], ...patch[tier] };
  const checked = validateShedSettings(merged, 'settings.shed');
  if (!checked.ok) return checked;
  return ok(Object.fromEntries(tiers.map((tier) => [tier, { ...checked.value[tier] }])));
}
