import { assert } from '../core/assert.js';
import { type AccountId, isValidId, type NodeId, type RegionId, type TenantId } from '../core/ids.js';
import { emulatorAccountsMax, policyTenantsMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { type LimitRule, type Tier, tiers, type TokenWeights, validateLimitRules, validateTokenWeights } from '../mesh/policy/policy-schema.js';

/**
 * The one configuration file of a local mesh (`carpool local --config FILE`, `npm start`), and
 * its parser. Pure: it takes the parsed JSON and returns the typed configuration or the first bad
 * field, so the launcher can refuse a bad file before it starts anything. Without a file the
 * launcher uses `defaultLocalConfigJson` below; deploy/local/carpool.local.json is the same
 * configuration written out, with comments.
 *
 * ```json
 * {
 *   "host": "127.0.0.1",            // optional: every endpoint binds here (keep it loopback:
 *                                   // the admin endpoints have no authentication)
 *   "stateDir": ".carpool/local",   // optional: node configs, logs, secrets, state.json (with
 *                                   // the API keys, reused by the next start unless --fresh);
 *                                   // relative to the current directory (npm runs scripts in
 *                                   // the repo root)
 *   "secret": "…",                  // optional, 16+ chars: the mesh secret; else generated at
 *                                   // the first start and kept in stateDir
 *   "adminToken": "…",              // optional, 16+ chars: the Admin service token; likewise
 *   "regions": [                    // 1 to 16 regions, one node process each
 *     { "name": "us-east",          // region id
 *       "node": "us-east-1",        // optional: node id, default "<name>-1"
 *       "basePort": 17410 },        // mesh = basePort, admin = basePort+1, grpc = basePort+2,
 *                                   // http = basePort+3 (the Anthropic API: ANTHROPIC_BASE_URL)
 *     { "name": "eu-west",          // or the four ports explicitly (each overrides basePort's)
 *       "meshPort": 17420, "adminPort": 17421, "grpcPort": 17422, "httpPort": 17423 }
 *   ],
 *   "emulator": {                   // the Anthropic API emulator the accounts live in
 *     "port": 17400,
 *     "seed": 1,                    // optional: its answers and keys are a function of the seed
 *     "ttftMs": 250,                // optional: time to first token (0: at once)
 *     "tokensPerSecond": 80,        // optional: output pace (0: as fast as possible)
 *     "accounts": [                 // one emulator key each, in this order
 *       { "id": "acct-1", "homeRegion": "us-east",   // only that region's node holds its key
 *         "weight": 1, "concurrencyMax": 8,           // optional (defaults 1 and 8)
 *         "limits": [ { "metric": "requests", "window": "minute", "limit": 120, "mode": "eventual" } ] }
 *     ]
 *   },
 *   "tenants": [
 *     { "id": "demo", "tier": "paid",                 // tier: vip, paid or free
 *       "concurrencyMax": 16,                         // optional (default 16)
 *       "weights": { "input": 1000, "output": 5000 }, // optional, per-mille (policy defaults)
 *       "limits": [ { "metric": "weighted_tokens", "window": "day", "limit": 5000000, "mode": "eventual" } ] }
 *   ]
 * }
 * ```
 *
 * A limit is `{metric, window, limit, mode, sliding?}` as in src/mesh/policy/policy-schema.ts:
 * metric one of `gatewayMetrics`, window one of minute, hour, hour5, day, week, day30, mode one
 * of eventual, strict, escrow, sliding false unless given. Every object may carry a `"$comment"`
 * string, which is ignored; any other unknown field is an error, so a misspelt field is not lost.
 * Every port must be 1-65535 (the members must know each other's addresses before they start,
 * so port 0 cannot be used) and distinct. Errors name the field: `regions[1].grpcPort`.
 */
export interface LocalConfig {
  readonly host: string;
  readonly stateDir: string;
  readonly secret: string | undefined;
  readonly adminToken: string | undefined;
  readonly regions: readonly LocalRegion[];
  readonly emulator: LocalEmulator;
  readonly tenants: readonly LocalTenant[];
}

export interface LocalRegion {
  readonly name: RegionId;
  readonly node: NodeId;
  readonly meshPort: number;
  readonly adminPort: number;
  readonly grpcPort: number;
  /** The HTTP front door (the Anthropic Messages API). */
  readonly httpPort: number;
}

export interface LocalEmulator {
  readonly port: number;
  readonly seed: number;
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
  readonly accounts: readonly LocalAccount[];
}

export interface LocalAccount {
  readonly id: AccountId;
  readonly homeRegion: RegionId;
  readonly weight: number;
  readonly concurrencyMax: number;
  readonly limits: readonly LimitRule[];
}

export interface LocalTenant {
  readonly id: TenantId;
  readonly tier: Tier;
  readonly concurrencyMax: number;
  readonly weights: TokenWeights;
  readonly limits: readonly LimitRule[];
}

export interface LocalConfigError {
  readonly kind: 'bad-local-config';
  /** Path of the bad field, such as `regions[1].grpcPort`; `(root)` for the whole file. */
  readonly field: string;
  readonly reason: string;
}

/** More regions than this is no longer a mesh one machine should run as processes. */
export const localRegionsMax = 16;
/** Tenants one file may declare (each gets a minted key at start). */
export const localTenantsMax = 64;
/** Node ids leave room for the incarnation suffix of replica ids, as in src/node/node-config.ts. */
export const localNodeIdLengthMax = 48;
/** Shortest mesh secret and admin token accepted, as the node config has it. */
export const localSecretLengthMin = 16;
export const localConcurrencyMax = 10_000;
export const localTtftMsMax = 60_000;
export const localTokensPerSecondMax = 1_000_000;
/** Defaults of the optional fields. */
export const defaultLocalHost = '127.0.0.1';
export const defaultStateDir = '.carpool/local';
export const defaultTenantConcurrency = 16;
export const defaultAccountConcurrency = 8;

/** The metrics the gateway charges (src/admission/request-amounts.ts); a limit on any other would never fill. */
export const gatewayMetrics = ['requests', 'input_tokens', 'output_tokens', 'weighted_tokens'] as const;

/** A region's ports, in the order `basePort` numbers them. */
const regionPortFields = ['meshPort', 'adminPort', 'grpcPort', 'httpPort'] as const;

const regionNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

const bad = (field: string, reason: string): Result<never, LocalConfigError> => err({ kind: 'bad-local-config', field, reason });

/** `carpool.local.json: field regions[1].grpcPort: must be a port number 1-65535`. */
export function formatLocalConfigError(source: string, error: LocalConfigError): string {
  return `${source}: field ${error.field}: ${error.reason}`;
}

/** Parses the text of a config file; `source` names it in errors. */
export function parseLocalConfigText(text: string, source: string): Result<LocalConfig, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return err(`${source}: not valid JSON: ${(error as Error).message}`);
  }
  const parsed = parseLocalConfig(raw);
  return parsed.ok ? parsed : err(formatLocalConfigError(source, parsed.error));
}

export function parseLocalConfig(raw: unknown): Result<LocalConfig, LocalConfigError> {
  if (!isRecord(raw)) return bad('(root)', 'the configuration must be a JSON object');
  const known = checkFields(raw, '', ['host', 'stateDir', 'secret', 'adminToken', 'regions', 'emulator', 'tenants']);
  if (!known.ok) return known;
  const host = raw.host ?? defaultLocalHost;
  if (typeof host !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(host)) {
    return bad('host', 'must be a host name or IPv4 address (keep it loopback: the admin endpoints have no authentication)');
  }
  const stateDir = raw.stateDir ?? defaultStateDir;
  if (typeof stateDir !== 'string' || stateDir.length === 0 || stateDir.includes('\0')) return bad('stateDir', 'must be a directory path');
  const secret = optionalSecret(raw.secret, 'secret');
  if (!secret.ok) return secret;
  const adminToken = optionalSecret(raw.adminToken, 'adminToken');
  if (!adminToken.ok) return adminToken;
  const regions = parseRegions(raw.regions);
  if (!regions.ok) return regions;
  const emulator = parseEmulator(raw.emulator, regions.value);
  if (!emulator.ok) return emulator;
  const ports = checkDistinctPorts(regions.value, emulator.value);
  if (!ports.ok) return ports;
  const tenants = parseTenants(raw.tenants);
  if (!tenants.ok) return tenants;
  return ok({
    host,
    stateDir,
    secret: secret.value,
    adminToken: adminToken.value,
    regions: regions.value,
    emulator: emulator.value,
    tenants: tenants.value,
  });
}

function parseRegions(raw: unknown): Result<LocalRegion[], LocalConfigError> {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > localRegionsMax) return bad('regions', `must be an array of 1 to ${localRegionsMax} regions`);
  const regions: LocalRegion[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    const field = `regions[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with name and ports');
    const known = checkFields(entry, field, ['name', 'node', 'basePort', 'meshPort', 'adminPort', 'grpcPort', 'httpPort']);
    if (!known.ok) return known;
    // Narrower than a region id: the name also names the node's config and log files.
    if (typeof entry.name !== 'string' || !regionNamePattern.test(entry.name))
      return bad(`${field}.name`, 'must be 1 to 32 letters, digits, ".", "_" or "-", starting with a letter or digit');
    const first = regions.findIndex((r) => r.name === entry.name);
    if (first >= 0) return bad(`${field}.name`, `"${entry.name}" is also regions[${first}].name`);
    const node = entry.node ?? `${entry.name}-1`;
    if (typeof node !== 'string' || !isValidId(node) || node.length > localNodeIdLengthMax) {
      return bad(`${field}.node`, `must be a node id of 1 to ${localNodeIdLengthMax} printable ASCII characters`);
    }
    const sameNode = regions.findIndex((r) => r.node === node);
    if (sameNode >= 0) return bad(`${field}.node`, `"${node}" is also the node of regions[${sameNode}]`);
    let base: number | undefined;
    if (entry.basePort !== undefined) {
      if (!isPort(entry.basePort) || entry.basePort > 65_532) return bad(`${field}.basePort`, 'must be a port number 1-65532 (it and the next three are used)');
      base = entry.basePort;
    }
    const ports: Record<(typeof regionPortFields)[number], number> = { meshPort: 0, adminPort: 0, grpcPort: 0, httpPort: 0 };
    for (const [offset, name] of regionPortFields.entries()) {
      const given = entry[name];
      if (given === undefined) {
        if (base === undefined) return bad(`${field}.${name}`, 'is required unless basePort is given');
        ports[name] = base + offset;
      } else {
        if (!isPort(given)) return bad(`${field}.${name}`, 'must be a port number 1-65535');
        ports[name] = given;
      }
    }
    regions.push({ name: entry.name as RegionId, node: node as NodeId, ...ports });
  }
  return ok(regions);
}

function parseEmulator(raw: unknown, regions: readonly LocalRegion[]): Result<LocalEmulator, LocalConfigError> {
  if (!isRecord(raw)) return bad('emulator', 'must be an object with port and accounts');
  const known = checkFields(raw, 'emulator', ['port', 'seed', 'ttftMs', 'tokensPerSecond', 'accounts']);
  if (!known.ok) return known;
  if (!isPort(raw.port)) return bad('emulator.port', 'must be a port number 1-65535');
  const seed = integerIn(raw.seed, 'emulator.seed', 1, 0, Number.MAX_SAFE_INTEGER);
  if (!seed.ok) return seed;
  const ttftMs = integerIn(raw.ttftMs, 'emulator.ttftMs', 0, 0, localTtftMsMax);
  if (!ttftMs.ok) return ttftMs;
  const tokensPerSecond = integerIn(raw.tokensPerSecond, 'emulator.tokensPerSecond', 0, 0, localTokensPerSecondMax);
  if (!tokensPerSecond.ok) return tokensPerSecond;
  if (!Array.isArray(raw.accounts) || raw.accounts.length === 0 || raw.accounts.length > emulatorAccountsMax) {
    return bad('emulator.accounts', `must be an array of 1 to ${emulatorAccountsMax} accounts`);
  }
  const names = regions.map((r) => r.name);
  const accounts: LocalAccount[] = [];
  for (const [i, entry] of (raw.accounts as unknown[]).entries()) {
    const field = `emulator.accounts[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with id and homeRegion');
    const fields = checkFields(entry, field, ['id', 'homeRegion', 'weight', 'concurrencyMax', 'limits']);
    if (!fields.ok) return fields;
    if (typeof entry.id !== 'string' || !isValidId(entry.id)) return bad(`${field}.id`, 'must be an account id (printable ASCII without spaces)');
    const first = accounts.findIndex((a) => a.id === entry.id);
    if (first >= 0) return bad(`${field}.id`, `"${entry.id}" is also emulator.accounts[${first}].id`);
    if (typeof entry.homeRegion !== 'string' || !names.includes(entry.homeRegion as RegionId)) {
      return bad(`${field}.homeRegion`, `must name one of the regions: ${names.join(', ')}`);
    }
    const weight = integerIn(entry.weight, `${field}.weight`, 1, 1, 1000);
    if (!weight.ok) return weight;
    const concurrencyMax = integerIn(entry.concurrencyMax, `${field}.concurrencyMax`, defaultAccountConcurrency, 1, localConcurrencyMax);
    if (!concurrencyMax.ok) return concurrencyMax;
    const limits = parseLimits(entry.limits, `${field}.limits`);
    if (!limits.ok) return limits;
    accounts.push({
      id: entry.id as AccountId,
      homeRegion: entry.homeRegion as RegionId,
      weight: weight.value,
      concurrencyMax: concurrencyMax.value,
      limits: limits.value,
    });
  }
  return ok({ port: raw.port, seed: seed.value, ttftMs: ttftMs.value, tokensPerSecond: tokensPerSecond.value, accounts });
}

function parseTenants(raw: unknown): Result<LocalTenant[], LocalConfigError> {
  const most = Math.min(localTenantsMax, policyTenantsMax);
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > most) return bad('tenants', `must be an array of 1 to ${most} tenants`);
  const tenants: LocalTenant[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    const field = `tenants[${i}]`;
    if (!isRecord(entry)) return bad(field, 'must be an object with id, tier and limits');
    const known = checkFields(entry, field, ['id', 'tier', 'concurrencyMax', 'weights', 'limits']);
    if (!known.ok) return known;
    if (typeof entry.id !== 'string' || !isValidId(entry.id)) return bad(`${field}.id`, 'must be a tenant id (printable ASCII without spaces)');
    const first = tenants.findIndex((t) => t.id === entry.id);
    if (first >= 0) return bad(`${field}.id`, `"${entry.id}" is also tenants[${first}].id`);
    if (typeof entry.tier !== 'string' || !(tiers as readonly string[]).includes(entry.tier)) return bad(`${field}.tier`, `must be one of ${tiers.join(', ')}`);
    const concurrencyMax = integerIn(entry.concurrencyMax, `${field}.concurrencyMax`, defaultTenantConcurrency, 1, localConcurrencyMax);
    if (!concurrencyMax.ok) return concurrencyMax;
    if (isRecord(entry.weights)) {
      const weightFields = checkFields(entry.weights, `${field}.weights`, ['input', 'output', 'cacheWrite', 'cacheRead']);
      if (!weightFields.ok) return weightFields;
    }
    const weights = validateTokenWeights(entry.weights, `${field}.weights`);
    if (!weights.ok) return bad(weights.error.field, weights.error.reason);
    const limits = parseLimits(entry.limits, `${field}.limits`);
    if (!limits.ok) return limits;
    tenants.push({ id: entry.id as TenantId, tier: entry.tier as Tier, concurrencyMax: concurrencyMax.value, weights: weights.value, limits: limits.value });
  }
  return ok(tenants);
}

/**
 * Limits as the policy schema has them, with `sliding` optional (false) and the metric one the
 * gateway charges. The schema's own validator names the field under the path given here.
 */
function parseLimits(raw: unknown, field: string): Result<readonly LimitRule[], LocalConfigError> {
  if (raw === undefined) return ok([]);
  if (!Array.isArray(raw)) return bad(field, 'must be an array of limits');
  const filled: unknown[] = [];
  for (const [i, entry] of (raw as unknown[]).entries()) {
    if (!isRecord(entry)) return bad(`${field}[${i}]`, 'must be an object with metric, window, limit and mode');
    const known = checkFields(entry, `${field}[${i}]`, ['metric', 'window', 'sliding', 'limit', 'mode']);
    if (!known.ok) return known;
    if (!(gatewayMetrics as readonly unknown[]).includes(entry.metric)) return bad(`${field}[${i}].metric`, `must be one of ${gatewayMetrics.join(', ')}`);
    filled.push({ ...entry, sliding: entry.sliding ?? false });
  }
  const rules = validateLimitRules(filled, field);
  return rules.ok ? rules : bad(rules.error.field, rules.error.reason);
}

/** Two endpoints on one port would fail at bind time, after other processes started. */
function checkDistinctPorts(regions: readonly LocalRegion[], emulator: LocalEmulator): Result<undefined, LocalConfigError> {
  const seen = new Map<number, string>([[emulator.port, 'emulator.port']]);
  for (const [i, region] of regions.entries()) {
    for (const name of regionPortFields) {
      const field = `regions[${i}].${name}`;
      const other = seen.get(region[name]);
      if (other !== undefined) return bad(field, `port ${region[name]} is also ${other}`);
      seen.set(region[name], field);
    }
  }
  return ok(undefined);
}

function checkFields(raw: Record<string, unknown>, field: string, names: readonly string[]): Result<undefined, LocalConfigError> {
  for (const [name, value] of Object.entries(raw)) {
    if (name === '$comment') {
      if (typeof value !== 'string' && !(Array.isArray(value) && value.every((line) => typeof line === 'string'))) {
        return bad(field === '' ? name : `${field}.${name}`, 'must be a string or an array of strings');
      }
      continue;
    }
    if (!names.includes(name)) return bad(field === '' ? name : `${field}.${name}`, `unknown field (known: ${names.join(', ')})`);
  }
  return ok(undefined);
}

function optionalSecret(raw: unknown, field: string): Result<string | undefined, LocalConfigError> {
  if (raw === undefined) return ok(undefined);
  if (typeof raw !== 'string' || raw.length < localSecretLengthMin || !/^[\x21-\x7e]+$/.test(raw)) {
    return bad(
      field,
      `must be at least ${localSecretLengthMin} printable ASCII characters without spaces, or left out to generate one (kept in the state directory)`,
    );
  }
  return ok(raw);
}

function integerIn(raw: unknown, field: string, fallback: number, min: number, max: number): Result<number, LocalConfigError> {
  if (raw === undefined) return ok(fallback);
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < min || raw > max) return bad(field, `must be an integer from ${min} to ${max}`);
  return ok(raw);
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65_535;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The embedded default, used when no file is given: three regions, six accounts homed two per
 * region (interleaved, so each region's pair is not adjacent), a paid tenant with daily limits in
 * eventual mode and a free one with a strict hourly request limit. The ports sit below the Linux
 * ephemeral range (32768+), so outgoing connections never take them, and away from the 7400/8400
 * examples of README.md. deploy/local/carpool.local.json is this, commented; a test keeps them equal.
 */
export const defaultLocalConfigJson = {
  host: defaultLocalHost,
  stateDir: defaultStateDir,
  regions: [
    { name: 'us-east', node: 'us-east-1', basePort: 17410 },
    { name: 'eu-west', node: 'eu-west-1', basePort: 17420 },
    { name: 'ap-south', node: 'ap-south-1', basePort: 17430 },
  ],
  emulator: {
    port: 17400,
    seed: 1,
    ttftMs: 250,
    tokensPerSecond: 80,
    accounts: [
      { id: 'acct-1', homeRegion: 'us-east', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
      { id: 'acct-2', homeRegion: 'eu-west', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
      { id: 'acct-3', homeRegion: 'ap-south', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
      { id: 'acct-4', homeRegion: 'us-east', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
      { id: 'acct-5', homeRegion: 'eu-west', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
      { id: 'acct-6', homeRegion: 'ap-south', weight: 1, concurrencyMax: 8, limits: [{ metric: 'requests', window: 'minute', limit: 120, mode: 'eventual' }] },
    ],
  },
  tenants: [
    {
      id: 'demo',
      tier: 'paid',
      concurrencyMax: 16,
      limits: [
        { metric: 'weighted_tokens', window: 'day', limit: 5_000_000, mode: 'eventual' },
        { metric: 'requests', window: 'day', limit: 10_000, mode: 'eventual' },
      ],
    },
    {
      id: 'trial',
      tier: 'free',
      concurrencyMax: 4,
      limits: [
        { metric: 'requests', window: 'hour', limit: 100, mode: 'strict' },
        { metric: 'weighted_tokens', window: 'day', limit: 200_000, mode: 'eventual' },
      ],
    },
  ],
} as const;

/** The embedded default, parsed; it is valid by construction (a test checks it). */
export function defaultLocalConfig(): LocalConfig {
  const parsed = parseLocalConfig(defaultLocalConfigJson);
  assert(parsed.ok, 'the embedded default configuration is valid');
  return parsed.value;
}
