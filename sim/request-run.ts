import { EscrowBook } from '../src/admission/escrow.js';
import { QuotaGate, type QuotaSubject } from '../src/admission/quota-gate.js';
import { ReservationTable } from '../src/admission/reservations.js';
import { assert } from '../src/core/assert.js';
import { type AccountId, asNodeId, asRegionId, asReplicaId, asTenantId, type RegionId, type RequestId, type TenantId } from '../src/core/ids.js';
import { reservationLeaseMsMax } from '../src/core/limits.js';
import { SeededRandom } from '../src/core/random.js';
import { WindowedCounter } from '../src/crdt/windowed-counter.js';
import type { Account, LimitRule } from '../src/mesh/policy/policy-schema.js';
import { tiers } from '../src/mesh/policy/policy-schema.js';
import { AccountPool } from '../src/pool/account-pool.js';
import type { HealthRecord } from '../src/pool/health-register.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../src/mesh/policy/schedule-schema.js';
import { defaultTierQueueLimits, TierQueue, type TierQueueLimits } from '../src/schedule/tier-queue.js';
import { EventQueue } from './event-queue.js';
import { type GatePort, RequestBooks } from './request-books.js';
import { type PathEvent, type PathRequest, type PoolPort, type QueuePort, RequestPath } from './request-path.js';
import { ScheduleBooks } from './schedule-books.js';
import { SettledUsage } from './settled-usage.js';
import type { CheckFailure, RequestPathCounts } from './sim-result.js';
import { type SimAccountSpec, SimUpstream, type UpstreamStats } from './upstream-accounts.js';

/**
 * A standalone run of N regions' request paths (sim/request-path.ts) over one set of simulated
 * upstream accounts (sim/upstream-accounts.ts), checked by the request books
 * (sim/request-books.ts). Each region has its own quota gate (an eventual limit, or one that
 * never binds), its own account pool and its own tier queue; accounts are homed across the
 * regions, so a region calls some directly and forwards to the others' homes.
 *
 * Requests arrive as one Poisson stream at `requestsPerSecond`, each at a region, tenant and
 * size drawn from the seed, for `durationMs`; then arrivals stop and the run drains (every
 * request ends) within `drainBudgetMs`, and the books check what needs the run drained.
 *
 * A pure function of (config, seed): one `SeededRandom`, forked per component in a fixed order,
 * and one event queue ordered by (time, insertion). The trace hash folds in every event.
 *
 * The pools' health registers replicate as the mesh would carry them: what one region's register
 * changed reaches every other one network delay later (a pause decided at an account's home is
 * heard by the regions that forward to it).
 *
 * Each region's tier queue runs `schedule` and reads each tenant's usage from what the
 * settlements of every region charged, its own at once and the others' `replicationDelayMs`
 * later (sim/settled-usage.ts): the regions' gates have no replicated counter to read it from. The schedule books
 * (sim/schedule-books.ts) check every queue's starts.
 *
 * What it leaves out, for the NodeCore simulator to add: the mesh itself (each region's eventual
 * counter sees only its own admissions, and health records are never lost), strict and
 * escrow rounds, crashes and partitions, and the accounts' own limits in the mesh counters (the
 * pools run without `AccountRoom`, so the upstream's 429s alone teach them).
 */
export interface RequestRunConfig {
  /** 1 to 5 regions, named as the simulator names them. */
  readonly regions: number;
  readonly durationMs: number;
  /** Arrivals across all regions. */
  readonly requestsPerSecond: number;
  readonly tenants: number;
  readonly accounts: readonly SimAccountSpec[];
  /** An eventual limit on each tenant's weighted tokens per day; undefined: a limit that never binds. */
  readonly quota: { readonly tokensPerDay: number } | undefined;
  readonly inputTokensMax: number;
  readonly maxTokensMax: number;
  readonly networkDelayMsMin: number;
  readonly networkDelayMsMax: number;
  readonly accountWaitMs: number;
  readonly drainBudgetMs: number;
  readonly queue: TierQueueLimits;
  readonly schedule: ScheduleSettings;
  /** What a finished request tells its queue (see `RequestPathOptions.countersBy`). */
  readonly countersBy: 'used' | 'estimate';
  /** How late a settlement is seen by every region's queue: a gossip interval. */
  readonly replicationDelayMs: number;
}

/** Test-only substitutions: a broken gate or pool wrapped above the books' seam, to prove the checkers fail. */
export interface RequestRunHooks {
  readonly gate?: (gate: GatePort, region: RegionId) => GatePort;
  readonly pool?: (pool: PoolPort, region: RegionId) => PoolPort;
  /** The limits the simulated upstream enforces, in place of the accounts' own (which the books keep checking). */
  readonly upstreamSpecs?: (specs: readonly SimAccountSpec[]) => readonly SimAccountSpec[];
  /** Below the schedule books' seam: a broken queue in place of the region's. */
  readonly queue?: (queue: QueuePort, region: RegionId) => QueuePort;
}

export interface RequestRunFigures extends RequestPathCounts {
  readonly upstream: Readonly<UpstreamStats>;
  readonly producedTokens: { readonly input: number; readonly output: number };
  readonly events: number;
}

export interface RequestRunResult {
  readonly ok: boolean;
  readonly seed: number;
  readonly failures: readonly CheckFailure[];
  readonly figures: RequestRunFigures;
  readonly traceHash: string;
  readonly simulatedMs: number;
  readonly wallMs: number;
}

/** The run's regions, as the simulator names them. */
export const requestRegionNames = ['us-east', 'us-west', 'eu-west', 'ap-northeast', 'ap-southeast'] as const;
/** Simulated start, the simulator's: window indexes are the same in every run. */
export const requestEpochMs = Date.UTC(2026, 10, 26, 8, 0, 0);
/** How often each region's gate and pool are ticked (waiters' deadlines pass on a tick). */
const tickEveryMs = 10;
/** Events one run may process (sim only): a run past it has a bug that loops. */
export const requestRunEventsMax = 50_000_000;

type RunEvent =
  | { readonly kind: 'arrival' }
  | { readonly kind: 'tick' }
  | { readonly kind: 'path'; readonly region: number; readonly event: PathEvent }
  /** Account health records one region's register wrote or took, reaching another: the mesh's replication, played directly. */
  | { readonly kind: 'health'; readonly region: number; readonly records: readonly HealthRecord[] };

/** `count` accounts per region, homed there, alternating API keys and subscriptions. */
export function simAccounts(regions: number, perRegion: number, shape: Omit<SimAccountSpec, 'account'>, concurrencyMax: number): SimAccountSpec[] {
  const specs: SimAccountSpec[] = [];
  for (let r = 0; r < regions; r++) {
    for (let i = 0; i < perRegion; i++) {
      const oauth = i % 2 === 1;
      const account: Account = {
        id: `acct-${requestRegionNames[r] as string}-${i}` as AccountId,
        kind: oauth ? 'oauth' : 'api-key',
        homeRegion: asRegionId(requestRegionNames[r] as string),
        weight: 1,
        concurrencyMax,
        limits: [],
      };
      specs.push({ ...shape, account, windows: oauth ? shape.windows : undefined });
    }
  }
  return specs;
}

/** How the default accounts behave: every fault on, limits that bind within a run (also sim/sim-requests.ts's). */
export const defaultAccountShape: Omit<SimAccountSpec, 'account'> = {
  latencyMsMin: 50,
  latencyMsMax: 400,
  msPerOutputToken: 2,
  concurrencyMax: 12,
  requestsPerMinute: 1_200,
  tokensPerMinute: 1_500_000,
  windows: { fiveHourTokens: 2_000_000, sevenDayTokens: 20_000_000 },
  faults: { overloaded: 20, serverError: 10, rateLimited: 10, cutStream: 20 },
};

/** A small, busy default: every fault on, limits that bind within the run. */
export function defaultRequestRunConfig(overrides: Partial<RequestRunConfig> = {}): RequestRunConfig {
  const regions = overrides.regions ?? 3;
  const shape = defaultAccountShape;
  return {
    regions,
    durationMs: 20_000,
    requestsPerSecond: 100,
    tenants: 6,
    accounts: simAccounts(regions, 3, shape, 4),
    quota: undefined,
    inputTokensMax: 2_000,
    maxTokensMax: 500,
    networkDelayMsMin: 20,
    networkDelayMsMax: 120,
    accountWaitMs: 2_000,
    drainBudgetMs: 120_000,
    queue: { ...defaultTierQueueLimits, tierDepthMax: 200, totalDepthMax: 400, inFlightMax: 32 },
    schedule: defaultScheduleSettings,
    countersBy: 'used',
    replicationDelayMs: 50,
    ...overrides,
  };
}

interface Region {
  readonly id: RegionId;
  /** The gate as the books observe it: the runner ticks it, as a node core would. */
  readonly gate: GatePort;
  readonly pool: AccountPool;
  readonly queue: TierQueue;
  readonly path: RequestPath;
}

/** What every region shares: the books, the upstream, the event queue and the draws. */
interface Shared {
  readonly config: RequestRunConfig;
  readonly hooks: RequestRunHooks;
  readonly random: SeededRandom;
  readonly network: SeededRandom;
  readonly books: RequestBooks;
  readonly schedule: ScheduleBooks;
  readonly usage: SettledUsage;
  readonly upstream: SimUpstream;
  readonly queue: EventQueue<RunEvent>;
}

/** Each region's gate, pool, queue and path, in region order (their draws forked in that order). */
function buildRegions(shared: Shared): Region[] {
  const { config, hooks, random, network, books, schedule, usage, upstream, queue } = shared;
  const accounts = config.accounts.map((spec) => spec.account);
  const subjects = tenantSubjects(config);
  // Long enough that settlement, never lease expiry, ends every request of the run.
  const leaseMs = Math.min(reservationLeaseMsMax, config.durationMs + config.drainBudgetMs + 60_000);
  const regions: Region[] = [];
  const byName = new Map<RegionId, Region>();
  for (let r = 0; r < config.regions; r++) {
    const id = asRegionId(requestRegionNames[r] as string);
    const gate = books.observeGate(newGate(id, config.regions, random.fork()));
    const pool = new AccountPool({ random: random.fork(), shared: { node: asNodeId(id), region: id } });
    pool.update(accounts);
    const tierQueue = new TierQueue(config.queue, { settings: config.schedule, usage: usage.viewFor(id) });
    const path = new RequestPath({
      region: id,
      gate: hooks.gate?.(gate, id) ?? gate,
      pool: hooks.pool?.(pool, id) ?? pool,
      queue: schedule.observeQueue(hooks.queue?.(tierQueue, id) ?? tierQueue, id),
      countersBy: config.countersBy,
      capToPool: config.schedule.mode === 'dynamic',
      // As the gateway charges ScheduleUsage at each settlement.
      observer: { ended: (request, _outcome, _submittedAtMs, nowMs, used) => usage.charge(id, request.tenant, used, nowMs) },
      upstream,
      books,
      subjectsOf: (tenant) => subjects.get(tenant) ?? [],
      homeOf: (home) => byName.get(home),
      delayMs: () => config.networkDelayMsMin + network.int(config.networkDelayMsMax - config.networkDelayMsMin + 1),
      schedule: (atMs, event) => queue.push(atMs, { kind: 'path', region: r, event }),
      accountWaitMs: config.accountWaitMs,
      leaseMs,
    });
    const region = { id, gate, pool, queue: tierQueue, path };
    regions.push(region);
    byName.set(id, region);
  }
  return regions;
}

export function runRequestPaths(config: RequestRunConfig, seed: number, hooks: RequestRunHooks = {}): RequestRunResult {
  assert(config.regions >= 1 && config.regions <= requestRegionNames.length, 'one to five regions');
  assert(config.tenants >= 1 && config.requestsPerSecond > 0, 'a workload');
  assert(config.networkDelayMsMax >= config.networkDelayMsMin && config.networkDelayMsMin >= 0, 'a delay range');
  const wallStart = performance.now();
  const random = new SeededRandom(seed);
  const workload = random.fork();
  const network = random.fork();
  const books = new RequestBooks(config.accounts);
  const schedule = new ScheduleBooks({ settings: config.schedule, quantumTokens: config.queue.quantumTokens, countersBy: config.countersBy });
  const upstream = new SimUpstream(hooks.upstreamSpecs?.(config.accounts) ?? config.accounts, random.fork(), books);
  const queue = new EventQueue<RunEvent>();
  const regions = buildRegions({ config, hooks, random, network, books, schedule, usage: new SettledUsage(config.replicationDelayMs), upstream, queue });
  let nowMs = requestEpochMs;

  const endArrivalsMs = requestEpochMs + config.durationMs;
  const endMs = endArrivalsMs + config.drainBudgetMs;
  const meanGapMs = 1000 / config.requestsPerSecond;
  const nextGapMs = (): number => -Math.log(1 - workload.float()) * meanGapMs;
  queue.push(nowMs + nextGapMs(), { kind: 'arrival' });
  queue.push(nowMs + tickEveryMs, { kind: 'tick' });
  let hashA = 0x811c9dc5;
  let hashB = 0x01000193;
  let events = 0;
  let nextRequest = 0;
  const drained = (): boolean => regions.every((region) => region.path.flightsOpen === 0);
  while (queue.size > 0 && queue.peekTime() <= endMs) {
    const item = queue.pop() as NonNullable<ReturnType<typeof queue.pop>>;
    nowMs = item.atMs;
    events++;
    assert(events <= requestRunEventsMax, 'a run processes a bounded number of events');
    hashA = Math.imul(hashA ^ (Math.floor(item.atMs) | 0), 16777619);
    hashB = Math.imul(hashB ^ item.seq, 2246822519) ^ (hashA >>> 7);
    const { event } = item;
    if (event.kind === 'arrival') {
      const region = regions[workload.int(config.regions)] as Region;
      region.path.submit(newRequest(config, workload, nextRequest++), nowMs);
      const next = nowMs + nextGapMs();
      if (next < endArrivalsMs) queue.push(next, { kind: 'arrival' });
    } else if (event.kind === 'tick') {
      for (const region of regions) {
        region.gate.tick(nowMs);
        region.path.tick(nowMs);
      }
      replicateHealth(regions, () => nowMs + config.networkDelayMsMin + network.int(config.networkDelayMsMax - config.networkDelayMsMin + 1), queue);
      if (nowMs < endArrivalsMs || !drained()) queue.push(nowMs + tickEveryMs, { kind: 'tick' });
    } else if (event.kind === 'health') {
      const region = regions[event.region] as Region;
      region.pool.register?.join(event.records, nowMs);
      region.path.poolChanged(nowMs);
    } else (regions[event.region] as Region).path.handle(event.event, nowMs);
  }
  books.checkDrained(
    regions.map((region) => ({
      region: region.id,
      pool: region.pool.totals(),
      queue: { depth: region.queue.depth, inFlight: region.queue.inFlight },
      flightsOpen: region.path.flightsOpen,
    })),
  );
  const failures = [...books.failures, ...schedule.failures].map((failure) => ({ ...failure, atMs: failure.atMs - requestEpochMs }));
  return {
    ok: failures.length === 0,
    seed,
    failures,
    figures: figuresOf(regions, books, upstream, events),
    traceHash: (hashA >>> 0).toString(16).padStart(8, '0') + (hashB >>> 0).toString(16).padStart(8, '0'),
    simulatedMs: nowMs - requestEpochMs,
    wallMs: performance.now() - wallStart,
  };
}

/** Sends what each region's health register changed to every other region, one network delay later. */
function replicateHealth(regions: readonly Region[], arriveAtMs: () => number, queue: EventQueue<RunEvent>): void {
  regions.forEach((region, from) => {
    const records = region.pool.register?.takeChanged() ?? [];
    if (records.length === 0) return;
    regions.forEach((_, to) => {
      if (to !== from) queue.push(arriveAtMs(), { kind: 'health', region: to, records });
    });
  });
}

function figuresOf(regions: readonly Region[], books: RequestBooks, upstream: SimUpstream, events: number): RequestRunFigures {
  const sum = (pick: (region: Region) => number): number => regions.reduce((total, region) => total + pick(region), 0);
  return {
    submitted: sum((r) => r.path.stats.submitted),
    admitted: sum((r) => r.path.stats.admitted),
    refusedQuota: sum((r) => r.path.stats.refusedQuota),
    queueFull: sum((r) => r.path.stats.queueFull),
    closed: sum((r) => r.path.stats.closed),
    completed: sum((r) => r.path.stats.completed),
    failed: sum((r) => r.path.stats.failed),
    settled: books.settled,
    withdrawn: books.withdrawn,
    attempts: sum((r) => r.path.stats.attempts),
    retries: sum((r) => r.path.stats.retries),
    forwards: sum((r) => r.path.stats.forwards),
    forwardsRefused: sum((r) => r.path.stats.forwardsRefused),
    noAccount: sum((r) => r.path.stats.noAccount),
    permitExpired: sum((r) => r.path.stats.permitExpired),
    upstream: { ...upstream.stats },
    producedTokens: books.producedTotal(),
    events,
  };
}

/** One arrival: its tenant (and so its tier) and its size, drawn from the workload's stream. */
function newRequest(config: RequestRunConfig, workload: SeededRandom, index: number): PathRequest {
  const t = workload.int(config.tenants);
  return {
    requestId: `req-${index}` as RequestId,
    tenant: tenantName(t),
    tier: tiers[t % tiers.length] as (typeof tiers)[number],
    inputTokens: 1 + workload.int(config.inputTokensMax),
    maxTokens: 1 + workload.int(config.maxTokensMax),
  };
}

function tenantName(index: number): TenantId {
  return asTenantId(`tenant-${index}`);
}

/**
 * Each tenant's rules: its weighted tokens per day (the quota, or a limit that never binds), and
 * its input and output tokens per day under limits that never bind, so every settlement names
 * the token counts the charges checker compares with the upstream's.
 */
function tenantSubjects(config: RequestRunConfig): Map<TenantId, readonly QuotaSubject[]> {
  const rule = (metric: string, limit: number): LimitRule => ({ metric, window: 'day', sliding: false, limit, mode: 'eventual' });
  const rules = [
    rule('weighted_tokens', config.quota?.tokensPerDay ?? Number.MAX_SAFE_INTEGER),
    rule('input_tokens', Number.MAX_SAFE_INTEGER),
    rule('output_tokens', Number.MAX_SAFE_INTEGER),
  ];
  const subjects = new Map<TenantId, readonly QuotaSubject[]>();
  for (let t = 0; t < config.tenants; t++) subjects.set(tenantName(t), [{ scope: 'tenant', subject: tenantName(t), rules }]);
  return subjects;
}

/** A region's gate over its own counter; eventual rules only, so no round is ever started. */
function newGate(region: RegionId, members: number, random: SeededRandom): QuotaGate {
  const replica = asReplicaId(`${region}~0`);
  const counter = new WindowedCounter(replica);
  const rounds = {
    startRound: (): void => assert(false, 'eventual rules start no quorum round'),
  };
  return new QuotaGate(counter, new ReservationTable(counter), new EscrowBook(replica, counter), rounds, members, random);
}
