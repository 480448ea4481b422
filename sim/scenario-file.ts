import { readFile, readdir } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from '../src/core/result.js';
import { tierQueueQuantumTokens } from '../src/core/limits.js';
import { defaultScheduleSettings, validateScheduleSettings } from '../src/mesh/policy/schedule-schema.js';
import { baseStrategyNames, type BaseStrategyName } from '../src/pool/strategies.js';
import type { DiskProfile, Fault, NetworkProfile, PartitionKind, RequestPathWorkload, Scenario, ScheduleWorkload, TenantMix, Workload } from './scenario.js';

/**
 * Reading and validating scenario files (sim/scenarios/*.json). A scenario file is the JSON form
 * of `Scenario` (sim/scenario.ts), for example:
 *
 * ```json
 * {
 *   "name": "isolate",
 *   "description": "One region is cut off from all others ...",
 *   "regions": 5, "durationMs": 60000, "convergenceBudgetMs": 10000, "gossipIntervalMs": 50,
 *   "workload": { "tenants": 20, "requestsPerSecond": 200, "arrivals": "poisson", "burstSize": 1, "maxTokens": 4096 },
 *   "network": { "jitterMs": 5, "loss": 0.01, "duplicate": 0.005, "bytesPerMs": 12500 },
 *   "faults": [ { "kind": "partition", "atMs": 15000, "durationMs": 30000, "partition": "isolate", "node": 0 } ]
 * }
 * ```
 *
 * The workload may add `"quota": {"mode", "tokensPerDay"}` (admission under a daily limit),
 * `"claims": {"retryShare", "dispatchShare"}` (client-chosen request ids claimed mesh-wide) or
 * `"requestPath": {"accountsPerRegion", "concurrencyMax", "inputTokensMax", "accountWaitMs"}`, with
 * optional `"slotsPerRegion"`, `"strategy"` (the pools' account strategy), `"accountsTotal"` (only
 * the first N accounts), `"schedule": {"mode", "levels", "escapeEvery", "escapeAfterMs",
 * "agingMs", "levelTokensPerMinute", "quantumTokens", "countersBy"}` (the tier queue's settings, each optional,
 * checked by the policy's own validation) and `"tenantMix": {"vip", "paid", "free",
 * "heavyPerTier", "heavyFactor"}` (tiers and heavy tenants)
 * (the whole request path over simulated upstream accounts; no crash faults, no claims). A
 * scenario meant as a swarm's base may name the fault kinds its swarm draws from in
 * `"swarmFaults": ["crash", "pause"]` (all kinds when left out), and any scenario may give its
 * nodes slower disks with `"disk": {"commitMsMin", "commitMsMax"}` (1 to 2 ms when left out).
 * Every field is required except a partition's `node`, unknown fields are refused at every level,
 * and every error names the field it is about (`faults[2].node`), so a typo in a hand-written file
 * fails loudly instead of silently running a different scenario. The bounds below keep one run
 * within what a laptop simulates in minutes and reject values that are surely mistakes.
 */

export interface ScenarioError {
  readonly kind: 'bad-scenario';
  /** The offending field as a path: `workload.requestsPerSecond`, `faults[2].node`, `(root)`. */
  readonly field: string;
  readonly reason: string;
}

/** A scenario file that could not be read at all (missing, unreadable, or not JSON). */
export interface ScenarioFileError {
  readonly kind: 'unreadable-scenario';
  readonly path: string;
  readonly reason: string;
}

export const regionsMin = 2;
/** One node per entry of `regionNames` (sim/scenario.ts) and one row of the RTT matrix. */
export const regionsMax = 5;
export const durationMsMin = 1_000;
/** One simulated day: long enough for day windows to roll over once. */
export const durationMsMax = 86_400_000;
export const convergenceBudgetMsMin = 1_000;
export const convergenceBudgetMsMax = 600_000;
export const gossipIntervalMsMin = 10;
export const gossipIntervalMsMax = 10_000;
export const tenantsMax = 100_000;
/** A request path's accounts per region (the books sum at most 256 accounts) and permits per account. */
export const requestPathAccountsPerRegionMax = 50;
export const requestPathConcurrencyMax = 1_000;
/** Calls a region's tier queue runs at once under simulation (`requestPath.slotsPerRegion`): the queue's own bound. */
export const requestPathSlotsPerRegionMax = 8_192;
/** How many times as many requests a heavy tenant sends as a light one (`requestPath.tenantMix.heavyFactor`). */
export const heavyFactorMax = 1_000;
/** Largest simulated daily quota per tenant, in weighted tokens. */
export const quotaTokensPerDayMax = 1_000_000_000_000;
/** Per region: at the maximum duration this is already 8.6 billion simulated requests. */
export const requestsPerSecondMax = 100_000;
export const burstSizeMax = 10_000;
export const maxTokensMax = 1_000_000;
export const jitterMsMax = 10_000;
/** Loss or duplication above this leaves too few frames for a run to say anything about repair. */
export const frameProbabilityMax = 0.9;
export const faultsMax = 1_000;
/** An hour of skew: far past the window expiry horizon, so the checkers see what breaks there. */
export const skewMsMax = 3_600_000;
/** A strobing clock flips at most every 10 ms, the finest gossip interval. */
export const strobePeriodMsMin = 10;
export const strobePeriodMsMax = durationMsMax;
export const scenarioNameLengthMax = 64;
/** A commit slower than a second is a failing disk, not a slow one. */
export const commitMsMax = 1_000;
export const scenarioDescriptionLengthMax = 1_000;

export const partitionKinds: readonly PartitionKind[] = ['isolate', 'majority', 'ring', 'bridge', 'one-way'];
export const faultKinds: readonly Fault['kind'][] = ['partition', 'crash', 'pause', 'skew', 'strobe'];

/**
 * The fewest regions in which a partition kind cuts anything (see `partitionPairs` in
 * sim/network.ts): a bridge needs a node on each side of the bridge node, and in a ring of three
 * or fewer every node's two neighbours are all the others.
 */
export function partitionRegionsMin(kind: PartitionKind): number {
  switch (kind) {
    case 'isolate':
    case 'one-way':
    case 'majority':
      return 2;
    case 'bridge':
      return 3;
    case 'ring':
      return 4;
  }
}

/** Partition kinds that are meaningless without a `node`: the one that is cut off. */
const partitionNeedsNode: ReadonlySet<PartitionKind> = new Set(['isolate', 'one-way']);

/** Names are file names and appear in replay commands, so they stay shell- and path-safe. */
const namePattern = /^[a-z0-9][a-z0-9-]*$/;

type Fields = Record<string, unknown>;

const bad = (field: string, reason: string): Result<never, ScenarioError> => err({ kind: 'bad-scenario', field, reason });

export function parseScenario(raw: unknown): Result<Scenario, ScenarioError> {
  const root = record(raw, '(root)', [
    'name',
    'description',
    'regions',
    'durationMs',
    'convergenceBudgetMs',
    'gossipIntervalMs',
    'workload',
    'network',
    'disk',
    'faults',
    'swarmFaults',
    'buggify',
  ]);
  if (!root.ok) return root;
  const r = root.value;
  const { name, description } = r;
  if (typeof name !== 'string' || name.length > scenarioNameLengthMax || !namePattern.test(name)) {
    return bad('name', `must be 1 to ${scenarioNameLengthMax} lowercase letters, digits and dashes, starting with a letter or digit`);
  }
  if (typeof description !== 'string' || description.length === 0 || description.length > scenarioDescriptionLengthMax) {
    return bad('description', `must be a sentence of 1 to ${scenarioDescriptionLengthMax} characters`);
  }
  const regions = integer(r.regions, 'regions', regionsMin, regionsMax);
  if (!regions.ok) return regions;
  const durationMs = integer(r.durationMs, 'durationMs', durationMsMin, durationMsMax);
  if (!durationMs.ok) return durationMs;
  const convergenceBudgetMs = integer(r.convergenceBudgetMs, 'convergenceBudgetMs', convergenceBudgetMsMin, convergenceBudgetMsMax);
  if (!convergenceBudgetMs.ok) return convergenceBudgetMs;
  const gossipIntervalMs = integer(r.gossipIntervalMs, 'gossipIntervalMs', gossipIntervalMsMin, gossipIntervalMsMax);
  if (!gossipIntervalMs.ok) return gossipIntervalMs;
  const workload = parseWorkload(r.workload);
  if (!workload.ok) return workload;
  const network = parseNetwork(r.network);
  if (!network.ok) return network;
  const disk = parseDisk(r.disk);
  if (!disk.ok) return disk;
  if (!Array.isArray(r.faults)) return bad('faults', 'must be an array (empty for a run without faults)');
  const rawFaults = r.faults as unknown[];
  if (rawFaults.length > faultsMax) return bad('faults', `must list at most ${faultsMax} faults, not ${rawFaults.length}`);
  const faults: Fault[] = [];
  for (const [i, entry] of rawFaults.entries()) {
    const fault = parseFault(entry, `faults[${i}]`, regions.value, durationMs.value);
    if (!fault.ok) return fault;
    faults.push(fault.value);
  }
  const swarmFaults = parseSwarmFaults(r.swarmFaults);
  if (!swarmFaults.ok) return swarmFaults;
  const accountsTotal = workload.value.requestPath?.accountsTotal;
  const accountsMade = regions.value * (workload.value.requestPath?.accountsPerRegion ?? 0);
  const mix = workload.value.requestPath?.tenantMix;
  if (mix?.homed === true && workload.value.tenants < regions.value)
    return bad(
      'workload.requestPath.tenantMix.homed',
      `needs a tenant homed in each of the ${regions.value} regions; the workload has ${workload.value.tenants}`,
    );
  if (accountsTotal !== undefined && accountsTotal > accountsMade)
    return bad(
      'workload.requestPath.accountsTotal',
      `must be at most the ${accountsMade} accounts the regions have (regions × accountsPerRegion), not ${accountsTotal}`,
    );
  if (workload.value.requestPath !== undefined) {
    // A crashed node's open requests would end by lease or a successor's release, which the
    // request books do not model yet (sim/sim-requests.ts).
    const crash = faults.findIndex((fault) => fault.kind === 'crash');
    if (crash >= 0) return bad(`faults[${crash}]`, 'a workload with a requestPath runs without crash faults for now');
    if ((swarmFaults.value ?? faultKinds).includes('crash'))
      return bad('swarmFaults', 'a workload with a requestPath must name its swarm faults, without "crash"');
  }
  if (r.buggify !== undefined && typeof r.buggify !== 'boolean') return bad('buggify', 'must be true or false');
  return ok({
    name,
    description,
    regions: regions.value,
    durationMs: durationMs.value,
    convergenceBudgetMs: convergenceBudgetMs.value,
    gossipIntervalMs: gossipIntervalMs.value,
    workload: workload.value,
    network: network.value,
    ...(disk.value === undefined ? {} : { disk: disk.value }),
    faults,
    ...(swarmFaults.value === undefined ? {} : { swarmFaults: swarmFaults.value }),
    ...(r.buggify === true ? { buggify: true } : {}),
  });
}

function parseDisk(raw: unknown): Result<DiskProfile | undefined, ScenarioError> {
  if (raw === undefined) return ok(undefined);
  const fields = record(raw, 'disk', ['commitMsMin', 'commitMsMax']);
  if (!fields.ok) return fields;
  const min = integer(fields.value.commitMsMin, 'disk.commitMsMin', 1, commitMsMax);
  if (!min.ok) return min;
  const max = integer(fields.value.commitMsMax, 'disk.commitMsMax', min.value, commitMsMax);
  if (!max.ok) return max;
  return ok({ commitMsMin: min.value, commitMsMax: max.value });
}

function parseSwarmFaults(raw: unknown): Result<Fault['kind'][] | undefined, ScenarioError> {
  if (raw === undefined) return ok(undefined);
  const kinds = faultKinds.map((k) => `"${k}"`).join(', ');
  if (!Array.isArray(raw) || raw.length === 0) return bad('swarmFaults', `must be a non-empty array of fault kinds (${kinds})`);
  const chosen: Fault['kind'][] = [];
  for (const [i, kind] of (raw as unknown[]).entries()) {
    if (typeof kind !== 'string' || !(faultKinds as readonly string[]).includes(kind)) return bad(`swarmFaults[${i}]`, `must be one of ${kinds}`);
    if (chosen.includes(kind as Fault['kind'])) return bad(`swarmFaults[${i}]`, `names "${kind}" twice`);
    chosen.push(kind as Fault['kind']);
  }
  return ok(chosen);
}

function parseWorkload(raw: unknown): Result<Workload, ScenarioError> {
  const fields = record(raw, 'workload', ['tenants', 'requestsPerSecond', 'arrivals', 'burstSize', 'maxTokens', 'refunds', 'quota', 'claims', 'requestPath']);
  if (!fields.ok) return fields;
  const w = fields.value;
  const tenants = integer(w.tenants, 'workload.tenants', 1, tenantsMax);
  if (!tenants.ok) return tenants;
  // A rate, not a count: 0.5 requests per second is a sensible trickle.
  const requestsPerSecond = real(w.requestsPerSecond, 'workload.requestsPerSecond', 0, requestsPerSecondMax);
  if (!requestsPerSecond.ok) return requestsPerSecond;
  const arrivals = w.arrivals;
  if (arrivals !== 'poisson' && arrivals !== 'bursty') return bad('workload.arrivals', 'must be "poisson" or "bursty"');
  const burstSize = integer(w.burstSize, 'workload.burstSize', 1, burstSizeMax);
  if (!burstSize.ok) return burstSize;
  const maxTokens = integer(w.maxTokens, 'workload.maxTokens', 1, maxTokensMax);
  if (!maxTokens.ok) return maxTokens;
  if (w.refunds !== undefined && typeof w.refunds !== 'boolean') return bad('workload.refunds', 'must be true or false');
  let base: Workload = {
    tenants: tenants.value,
    requestsPerSecond: requestsPerSecond.value,
    arrivals,
    burstSize: burstSize.value,
    maxTokens: maxTokens.value,
    ...(w.refunds === false ? { refunds: false } : {}),
  };
  if (w.claims !== undefined) {
    const claimFields = record(w.claims, 'workload.claims', ['retryShare', 'dispatchShare']);
    if (!claimFields.ok) return claimFields;
    const retryShare = real(claimFields.value.retryShare, 'workload.claims.retryShare', 0, 1);
    if (!retryShare.ok) return retryShare;
    const dispatchShare = real(claimFields.value.dispatchShare, 'workload.claims.dispatchShare', 0, 1);
    if (!dispatchShare.ok) return dispatchShare;
    base = { ...base, claims: { retryShare: retryShare.value, dispatchShare: dispatchShare.value } };
  }
  if (w.requestPath !== undefined) {
    const requestPath = parseRequestPath(w.requestPath);
    if (!requestPath.ok) return requestPath;
    if (w.claims !== undefined) return bad('workload.requestPath', 'runs without claims for now');
    const mix = requestPath.value.tenantMix;
    if (mix !== undefined && mix.vip + mix.paid + mix.free !== tenants.value)
      return bad('workload.requestPath.tenantMix', `vip + paid + free must equal workload.tenants (${tenants.value}), not ${mix.vip + mix.paid + mix.free}`);
    base = { ...base, requestPath: requestPath.value };
  }
  if (w.quota === undefined) return ok(base);
  const quotaFields = record(w.quota, 'workload.quota', ['mode', 'tokensPerDay']);
  if (!quotaFields.ok) return quotaFields;
  const mode = quotaFields.value.mode;
  if (mode !== 'eventual' && mode !== 'strict' && mode !== 'escrow') return bad('workload.quota.mode', 'must be "eventual", "strict" or "escrow"');
  const tokensPerDay = integer(quotaFields.value.tokensPerDay, 'workload.quota.tokensPerDay', 1, quotaTokensPerDayMax);
  if (!tokensPerDay.ok) return tokensPerDay;
  if (base.requestPath !== undefined && mode !== 'eventual') return bad('workload.quota.mode', 'must be "eventual" with a requestPath for now');
  return ok({ ...base, quota: { mode, tokensPerDay: tokensPerDay.value } });
}

function parseRequestPath(raw: unknown): Result<RequestPathWorkload, ScenarioError> {
  const fields = record(raw, 'workload.requestPath', [
    'accountsPerRegion',
    'concurrencyMax',
    'inputTokensMax',
    'accountWaitMs',
    'slotsPerRegion',
    'schedule',
    'tenantMix',
    'strategy',
    'accountsTotal',
  ]);
  if (!fields.ok) return fields;
  const p = fields.value;
  const accountsPerRegion = integer(p.accountsPerRegion, 'workload.requestPath.accountsPerRegion', 1, requestPathAccountsPerRegionMax);
  if (!accountsPerRegion.ok) return accountsPerRegion;
  const concurrencyMax = integer(p.concurrencyMax, 'workload.requestPath.concurrencyMax', 1, requestPathConcurrencyMax);
  if (!concurrencyMax.ok) return concurrencyMax;
  const inputTokensMax = integer(p.inputTokensMax, 'workload.requestPath.inputTokensMax', 1, maxTokensMax);
  if (!inputTokensMax.ok) return inputTokensMax;
  const accountWaitMs = integer(p.accountWaitMs, 'workload.requestPath.accountWaitMs', 0, convergenceBudgetMsMax);
  if (!accountWaitMs.ok) return accountWaitMs;
  const slots = p.slotsPerRegion === undefined ? undefined : integer(p.slotsPerRegion, 'workload.requestPath.slotsPerRegion', 1, requestPathSlotsPerRegionMax);
  if (slots !== undefined && !slots.ok) return slots;
  const schedule = p.schedule === undefined ? undefined : parseSchedule(p.schedule);
  if (schedule !== undefined && !schedule.ok) return schedule;
  const tenantMix = p.tenantMix === undefined ? undefined : parseTenantMix(p.tenantMix);
  if (tenantMix !== undefined && !tenantMix.ok) return tenantMix;
  if (p.strategy !== undefined && !(baseStrategyNames as readonly unknown[]).includes(p.strategy))
    return bad('workload.requestPath.strategy', `must be one of ${baseStrategyNames.map((name) => `"${name}"`).join(', ')}`);
  const accountsTotal =
    p.accountsTotal === undefined ? undefined : integer(p.accountsTotal, 'workload.requestPath.accountsTotal', 1, regionsMax * requestPathAccountsPerRegionMax);
  if (accountsTotal !== undefined && !accountsTotal.ok) return accountsTotal;
  return ok({
    accountsPerRegion: accountsPerRegion.value,
    concurrencyMax: concurrencyMax.value,
    inputTokensMax: inputTokensMax.value,
    accountWaitMs: accountWaitMs.value,
    ...(slots === undefined ? {} : { slotsPerRegion: slots.value }),
    ...(schedule === undefined ? {} : { schedule: schedule.value }),
    ...(tenantMix === undefined ? {} : { tenantMix: tenantMix.value }),
    ...(p.strategy === undefined ? {} : { strategy: p.strategy as BaseStrategyName }),
    ...(accountsTotal === undefined ? {} : { accountsTotal: accountsTotal.value }),
  });
}

/** The queue's knobs over the policy's defaults, checked by the policy's own validation so the bounds are the same. */
function parseSchedule(raw: unknown): Result<ScheduleWorkload, ScenarioError> {
  const field = 'workload.requestPath.schedule';
  const fields = record(raw, field, ['mode', 'levels', 'escapeEvery', 'escapeAfterMs', 'agingMs', 'levelTokensPerMinute', 'quantumTokens', 'countersBy']);
  if (!fields.ok) return fields;
  const { countersBy = 'used', quantumTokens: quantum = tierQueueQuantumTokens, ...knobs } = fields.value;
  if (countersBy !== 'used' && countersBy !== 'estimate') return bad(`${field}.countersBy`, 'must be "used" or "estimate"');
  const quantumTokens = integer(quantum, `${field}.quantumTokens`, 1, tierQueueQuantumTokens);
  if (!quantumTokens.ok) return quantumTokens;
  const settings = validateScheduleSettings({ ...defaultScheduleSettings, ...knobs }, field);
  if (!settings.ok) return bad(settings.error.field, settings.error.reason);
  const { mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute } = settings.value;
  return ok({ mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute, quantumTokens: quantumTokens.value, countersBy });
}

function parseTenantMix(raw: unknown): Result<TenantMix, ScenarioError> {
  const field = 'workload.requestPath.tenantMix';
  const fields = record(raw, field, ['vip', 'paid', 'free', 'heavyPerTier', 'heavyFactor', 'homed']);
  if (!fields.ok) return fields;
  const counts: number[] = [];
  for (const name of ['vip', 'paid', 'free', 'heavyPerTier']) {
    const count = integer(fields.value[name], `${field}.${name}`, 0, tenantsMax);
    if (!count.ok) return count;
    counts.push(count.value);
  }
  const heavyFactor = integer(fields.value.heavyFactor, `${field}.heavyFactor`, 1, heavyFactorMax);
  if (!heavyFactor.ok) return heavyFactor;
  const [vip, paid, free, heavyPerTier] = counts as [number, number, number, number];
  const homed = fields.value.homed;
  if (homed !== undefined && typeof homed !== 'boolean') return bad(`${field}.homed`, 'must be true (each tenant sends from one region) or false');
  return ok({ vip, paid, free, heavyPerTier, heavyFactor: heavyFactor.value, ...(homed === true ? { homed } : {}) });
}

function parseNetwork(raw: unknown): Result<NetworkProfile, ScenarioError> {
  const fields = record(raw, 'network', ['jitterMs', 'loss', 'duplicate', 'bytesPerMs']);
  if (!fields.ok) return fields;
  const n = fields.value;
  const jitterMs = integer(n.jitterMs, 'network.jitterMs', 0, jitterMsMax);
  if (!jitterMs.ok) return jitterMs;
  const loss = real(n.loss, 'network.loss', 0, frameProbabilityMax);
  if (!loss.ok) return loss;
  const duplicate = real(n.duplicate, 'network.duplicate', 0, frameProbabilityMax);
  if (!duplicate.ok) return duplicate;
  const bytesPerMs = real(n.bytesPerMs, 'network.bytesPerMs', 0, Number.MAX_SAFE_INTEGER);
  if (!bytesPerMs.ok) return bytesPerMs;
  return ok({ jitterMs: jitterMs.value, loss: loss.value, duplicate: duplicate.value, bytesPerMs: bytesPerMs.value });
}

const faultFields: Readonly<Record<Fault['kind'], readonly string[]>> = {
  partition: ['kind', 'atMs', 'durationMs', 'partition', 'node'],
  crash: ['kind', 'atMs', 'durationMs', 'node', 'durable'],
  pause: ['kind', 'atMs', 'durationMs', 'node'],
  skew: ['kind', 'atMs', 'durationMs', 'node', 'skewMs'],
  strobe: ['kind', 'atMs', 'durationMs', 'node', 'skewMs', 'periodMs'],
};

function parseFault(raw: unknown, field: string, regions: number, scenarioMs: number): Result<Fault, ScenarioError> {
  if (!isRecord(raw)) return bad(field, 'must be an object with kind, atMs and durationMs');
  const kind = raw.kind;
  if (typeof kind !== 'string' || !(faultKinds as readonly string[]).includes(kind)) {
    return bad(`${field}.kind`, `must be one of ${faultKinds.map((k) => `"${k}"`).join(', ')}`);
  }
  const fields = record(raw, field, faultFields[kind as Fault['kind']]);
  if (!fields.ok) return fields;
  const atMs = integer(raw.atMs, `${field}.atMs`, 0, scenarioMs - 1);
  if (!atMs.ok) return atMs;
  // A fault lasts at least a millisecond and heals by the end of the safety phase, so the
  // liveness phase always starts from a whole network.
  const durationMs = integer(raw.durationMs, `${field}.durationMs`, 1, scenarioMs - atMs.value);
  if (!durationMs.ok) return durationMs;
  const timing = { atMs: atMs.value, durationMs: durationMs.value };
  let node: number | undefined;
  if (raw.node !== undefined || kind !== 'partition') {
    const parsed = integer(raw.node, `${field}.node`, 0, regions - 1);
    if (!parsed.ok) return parsed;
    node = parsed.value;
  }
  switch (kind as Fault['kind']) {
    case 'partition': {
      const partition = raw.partition;
      if (typeof partition !== 'string' || !(partitionKinds as readonly string[]).includes(partition)) {
        return bad(`${field}.partition`, `must be one of ${partitionKinds.map((k) => `"${k}"`).join(', ')}`);
      }
      const partitionKind = partition as PartitionKind;
      if (regions < partitionRegionsMin(partitionKind)) {
        return bad(
          `${field}.partition`,
          `"${partitionKind}" needs at least ${partitionRegionsMin(partitionKind)} regions to cut anything, the scenario has ${regions}`,
        );
      }
      if (node === undefined && partitionNeedsNode.has(partitionKind)) return bad(`${field}.node`, `is required for a "${partitionKind}" partition`);
      return ok(
        node === undefined ? { kind: 'partition', ...timing, partition: partitionKind } : { kind: 'partition', ...timing, partition: partitionKind, node },
      );
    }
    case 'crash': {
      if (typeof raw.durable !== 'boolean') return bad(`${field}.durable`, 'must be true (the node restarts from its stored state) or false (from nothing)');
      return ok({ kind: 'crash', ...timing, node: node!, durable: raw.durable });
    }
    case 'pause':
      return ok({ kind: 'pause', ...timing, node: node! });
    case 'skew': {
      const skewMs = integer(raw.skewMs, `${field}.skewMs`, -skewMsMax, skewMsMax);
      if (!skewMs.ok) return skewMs;
      return ok({ kind: 'skew', ...timing, node: node!, skewMs: skewMs.value });
    }
    case 'strobe': {
      const skewMs = integer(raw.skewMs, `${field}.skewMs`, -skewMsMax, skewMsMax);
      if (!skewMs.ok) return skewMs;
      const periodMs = integer(raw.periodMs, `${field}.periodMs`, strobePeriodMsMin, strobePeriodMsMax);
      if (!periodMs.ok) return periodMs;
      return ok({ kind: 'strobe', ...timing, node: node!, skewMs: skewMs.value, periodMs: periodMs.value });
    }
  }
}

/**
 * The scenario with a different region count or safety-phase length, re-validated.
 *
 * Faults are fitted to the smaller scenario rather than refused, so that `--regions 3` works on
 * any shipped file:
 * - a fault on a node that no longer exists is dropped (moving it to another node would be a
 *   different scenario);
 * - a partition kind that needs more regions than remain (see `partitionRegionsMin`) is dropped;
 * - a fault that starts at or after the new end of the safety phase is dropped;
 * - a fault that starts before it but runs past it is clipped to end there.
 * A longer duration or more regions leave every fault as it was.
 */
export function withOverrides(scenario: Scenario, overrides: { readonly regions?: number; readonly durationMs?: number }): Result<Scenario, ScenarioError> {
  const regions = overrides.regions ?? scenario.regions;
  const durationMs = overrides.durationMs ?? scenario.durationMs;
  const faults: Fault[] = [];
  for (const fault of scenario.faults) {
    if (fault.node !== undefined && fault.node >= regions) continue;
    if (fault.kind === 'partition' && regions < partitionRegionsMin(fault.partition)) continue;
    if (fault.atMs >= durationMs) continue;
    faults.push(fault.atMs + fault.durationMs > durationMs ? { ...fault, durationMs: durationMs - fault.atMs } : fault);
  }
  return parseScenario({ ...scenario, regions, durationMs, faults });
}

/** The folder of the shipped scenario files, found from this module so any working directory works. */
export const scenariosDir = fileURLToPath(new URL('./scenarios/', import.meta.url));

/**
 * Loads a shipped scenario by name (`isolate` reads sim/scenarios/isolate.json) or any file by a
 * path ending in `.json` (relative to the working directory).
 */
export async function loadScenario(nameOrPath: string): Promise<Result<Scenario, ScenarioError | ScenarioFileError>> {
  let path: string;
  if (nameOrPath.endsWith('.json')) path = resolve(nameOrPath);
  else if (namePattern.test(nameOrPath)) path = resolve(scenariosDir, `${nameOrPath}.json`);
  // Refusing other names keeps `../secrets` from being read as a scenario name.
  else
    return err({
      kind: 'unreadable-scenario',
      path: nameOrPath,
      reason: 'is neither a scenario name (lowercase letters, digits, dashes) nor a path ending in .json',
    });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? (nameOrPath.endsWith('.json') ? 'no such file' : `no scenario named "${nameOrPath}"`) : String(error);
    return err({ kind: 'unreadable-scenario', path, reason });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return err({ kind: 'unreadable-scenario', path, reason: `not JSON: ${(error as Error).message}` });
  }
  return parseScenario(json);
}

/** Names of the shipped scenarios, sorted. */
export async function listScenarios(): Promise<string[]> {
  const files = await readdir(scenariosDir);
  return files
    .filter((file) => file.endsWith('.json'))
    .map((file) => basename(file, '.json'))
    .sort();
}

/** One line for an error from `parseScenario`, `withOverrides` or `loadScenario`. */
export function describeScenarioError(error: ScenarioError | ScenarioFileError): string {
  return error.kind === 'bad-scenario' ? `${error.field}: ${error.reason}` : `${error.path}: ${error.reason}`;
}

function record(raw: unknown, field: string, known: readonly string[]): Result<Fields, ScenarioError> {
  if (!isRecord(raw)) return bad(field, 'must be a JSON object');
  for (const key of Object.keys(raw)) {
    const path = field === '(root)' ? key : `${field}.${key}`;
    if (!known.includes(key)) return bad(path, `unknown field (expected ${known.join(', ')})`);
  }
  return ok(raw);
}

function integer(value: unknown, field: string, min: number, max: number): Result<number, ScenarioError> {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    return bad(field, `must be an integer from ${min} to ${max}${value === undefined ? ' (missing)' : `, not ${JSON.stringify(value)}`}`);
  }
  return ok(value);
}

function real(value: unknown, field: string, min: number, max: number): Result<number, ScenarioError> {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    return bad(field, `must be a number from ${min} to ${max}${value === undefined ? ' (missing)' : `, not ${JSON.stringify(value)}`}`);
  }
  return ok(value);
}

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
