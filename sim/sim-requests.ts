import type { QuotaSubject } from '../src/admission/quota-gate.js';
import { assert } from '../src/core/assert.js';
import { asTenantId, type RegionId, type RequestId, type TenantId } from '../src/core/ids.js';
import { reservationLeaseMsMax } from '../src/core/limits.js';
import type { SeededRandom } from '../src/core/random.js';
import type { NodeCore } from '../src/engine/node-core.js';
import type { PolicyDocument } from '../src/mesh/policy/policy-document.js';
import type { WindowedCounter } from '../src/crdt/windowed-counter.js';
import { type LimitRule, type Tier, tiers } from '../src/mesh/policy/policy-schema.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../src/mesh/policy/schedule-schema.js';
import { ScheduleUsage } from '../src/node/gateway/schedule-usage.js';
import type { TierQueueLimits, TierQueueOptions } from '../src/schedule/tier-queue.js';
import { tierQueueDepthMax, tierQueueTotalDepthMax } from '../src/core/limits.js';
import { type GatePort, RequestBooks } from './request-books.js';
import { type PathEvent, type PathRequest, type PoolPort, type QueuePort, RequestPath } from './request-path.js';
import { defaultAccountShape, defaultRequestRunConfig, simAccounts } from './request-run.js';
import { regionNames, type RequestPathWorkload, type Scenario, type ScheduleWorkload, type TenantMix } from './scenario.js';
import { ScheduleBooks } from './schedule-books.js';
import type { CheckFailure, RequestPathFigures } from './sim-result.js';
import { TierFigures } from './tier-figures.js';
import { type SimAccountSpec, SimUpstream } from './upstream-accounts.js';

/**
 * The whole request path inside the simulator (sim/simulator.ts), through each node's
 * `NodeCore`: a scenario whose workload has a `requestPath` sends every arrival through a
 * `RequestPath` (sim/request-path.ts) built on that node's `core.gate` (seen by the shared
 * `RequestBooks`), `core.pool` and `core.queue`, over one shared `SimUpstream`.
 *
 *  - Accounts reach the pools as in production: they are entries of the policy document every
 *    node starts with (`preparePolicy`), and the core's policy listener hands them to its pool.
 *  - Health records travel through the mesh: the core wires the pool's health register into its
 *    `MeshNode`, so a pause decided at an account's home reaches the others as frames, late or
 *    not at all under a partition. What joined is drained at the node's next tick (`tick`).
 *  - A forward reaches the home's pool only while the simulated network between the two regions
 *    is up and the home runs (neither crashed nor paused), one network delay after it left: a
 *    partition refuses it, and the origin reads the refusal as a 429. The answer of a call
 *    that started at the home comes back one delay later, whatever the network does meanwhile
 *    (a cut stream is the upstream's fault, drawn by `SimUpstream`).
 *  - Time: the path reads its node's own clock (skew included), as the core does; the events it
 *    schedules are mapped back onto the simulator's queue.
 *  - Crashes are refused with a request path for now (sim/scenario-file.ts): a crashed node's
 *    open requests would end by lease or a successor's release, which the books do not model.
 *
 *  - Scheduling: each node's tier queue runs the scenario's schedule settings
 *    (`requestPath.schedule`, the policy's defaults for what it leaves out) and reads each
 *    tenant's usage from the node's replicated counter through production's `ScheduleUsage`
 *    (src/node/gateway/schedule-usage.ts), which the path charges at every settlement as the
 *    gateway does; the mesh gossips those keys like any other, so a tenant served in one region
 *    is heavy in every region a gossip later. A request's end hands the queue the weighted
 *    tokens it used (`finish(ticket, used)`), unless the schedule says its counters keep
 *    estimates (`countersBy`).
 *
 * At the end the books' checkers (`settled-once`, `account-limits`, `charges`, see
 * sim/request-books.ts) and the schedule's (`tier-inversion`, `fairness`, see
 * sim/schedule-books.ts) run over every node and join the simulator's failures.
 */

/** Test-only substitutions above the books' seam, as in sim/request-run.ts: a mutant gate or pool. */
export interface SimRequestHooks {
  readonly gate?: (gate: GatePort, region: RegionId) => GatePort;
  readonly pool?: (pool: PoolPort, region: RegionId) => PoolPort;
  /** Below the schedule books' seam: a broken queue in place of the node's, for the books to catch. */
  readonly queue?: (queue: QueuePort, region: RegionId) => QueuePort;
}

/** What the simulator lends the request path. */
export interface RequestHost {
  /** The node's core if it runs now (up and not paused). */
  running(index: number): NodeCore | undefined;
  reachable(from: number, to: number): boolean;
  rttMs(from: number, to: number): number;
  jitterMs: number;
  /** Queues `event` for node `index`'s path at simulated time `atMs`. */
  schedule(index: number, atMs: number, event: PathEvent): void;
}

interface NodePath {
  readonly core: NodeCore;
  readonly path: RequestPath;
  /** The node's clock minus simulated time at the path's last entry: maps its times onto the queue. */
  offsetMs: number;
}

/** `slots` calls at once and places for 12.5 times as many waiting, half per tier, as the default 32 slots and 400 places: within the queue's bounds. */
export function slottedQueue(defaults: TierQueueLimits, slots: number): TierQueueLimits {
  const places = Math.min(tierQueueTotalDepthMax, Math.ceil(slots * 12.5));
  return { ...defaults, inFlightMax: slots, totalDepthMax: places, tierDepthMax: Math.min(tierQueueDepthMax, Math.ceil(places / 2)) };
}

/** The queue's settings a scenario's schedule knobs make: the policy's defaults for the rest. */
export function scheduleSettingsOf(schedule: ScheduleWorkload | undefined): ScheduleSettings {
  if (schedule === undefined) return defaultScheduleSettings;
  const { mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute } = schedule;
  return Object.freeze({ ...defaultScheduleSettings, mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute });
}

/** Each tenant of a request-path workload in order, with its tier and its share of the arrivals (relative). */
export function pathTenants(tenants: number, mix: TenantMix | undefined): { readonly tenant: TenantId; readonly tier: Tier; readonly weight: number }[] {
  if (mix === undefined) return Array.from({ length: tenants }, (_, t) => ({ tenant: tenantName(t), tier: tiers[t % tiers.length] as Tier, weight: 1 }));
  const list: { tenant: TenantId; tier: Tier; weight: number }[] = [];
  for (const tier of tiers)
    for (let i = 0; i < mix[tier]; i++) list.push({ tenant: tenantName(list.length), tier, weight: i < mix.heavyPerTier ? mix.heavyFactor : 1 });
  return list;
}

export class SimRequests {
  readonly books: RequestBooks;
  readonly scheduleBooks: ScheduleBooks;
  readonly tierFigures: TierFigures;
  readonly upstream: SimUpstream;
  readonly queueLimits: TierQueueLimits;
  readonly schedule: ScheduleSettings;
  private readonly specs: readonly SimAccountSpec[];
  private readonly tenants: ReturnType<typeof pathTenants>;
  /** Per region, the indexes of the tenants that arrive there and their cumulative weights, for a tenant mix; undefined: the default skew. */
  private readonly arriving: readonly { readonly indexes: readonly number[]; readonly cumulative: readonly number[] }[] | undefined;
  /** Each arrival's tenant and sizes: apart from the path's own draws, so arms of a comparison see the same requests. */
  private readonly arrivals: SeededRandom;
  /** How many requests arrive at each traffic tick, drawn by the simulator: apart from the network's draws, for the same reason. */
  readonly arrivalDraws: SeededRandom;
  private readonly subjects = new Map<TenantId, readonly QuotaSubject[]>();
  private readonly nodes: (NodePath | undefined)[] = [];
  /** Each node's schedule usage, by its counter (made with the node's queue, before the path is attached). */
  private readonly usages = new Map<WindowedCounter, ScheduleUsage>();
  private readonly leaseMs: number;
  private nextRequest = 0;

  constructor(
    private readonly scenario: Scenario,
    private readonly workload: RequestPathWorkload,
    private readonly random: SeededRandom,
    private readonly host: RequestHost,
    private readonly hooks: SimRequestHooks = {},
  ) {
    const defaults = defaultRequestRunConfig({ regions: scenario.regions });
    const specs = simAccounts(scenario.regions, workload.accountsPerRegion, defaultAccountShape, workload.concurrencyMax);
    this.specs = workload.accountsTotal === undefined ? specs : specs.slice(0, workload.accountsTotal);
    const limits = workload.slotsPerRegion === undefined ? defaults.queue : slottedQueue(defaults.queue, workload.slotsPerRegion);
    this.queueLimits = workload.schedule === undefined ? limits : { ...limits, quantumTokens: workload.schedule.quantumTokens };
    this.schedule = scheduleSettingsOf(workload.schedule);
    this.books = new RequestBooks(this.specs);
    this.scheduleBooks = new ScheduleBooks({
      settings: this.schedule,
      quantumTokens: this.queueLimits.quantumTokens,
      countersBy: workload.schedule?.countersBy ?? 'used',
    });
    this.upstream = new SimUpstream(this.specs, random.fork(), this.books);
    this.arrivals = random.fork();
    this.arrivalDraws = random.fork();
    this.tenants = pathTenants(scenario.workload.tenants, workload.tenantMix);
    const mix = workload.tenantMix;
    this.arriving =
      mix === undefined
        ? undefined
        : Array.from({ length: scenario.regions }, (_, region) => {
            const indexes = this.tenants.map((_, t) => t).filter((t) => mix.homed !== true || t % scenario.regions === region);
            let sum = 0;
            return { indexes, cumulative: indexes.map((t) => (sum += (this.tenants[t] as { weight: number }).weight)) };
          });
    this.tierFigures = new TierFigures(this.tenants, this.schedule.tierWeights, scenario.durationMs);
    // Long enough that settlement, never lease expiry, ends every request of the run.
    this.leaseMs = Math.min(reservationLeaseMsMax, scenario.durationMs + scenario.convergenceBudgetMs + 60_000);
    const rule = (metric: string, limit: number): LimitRule => ({ metric, window: 'day', sliding: false, limit, mode: 'eventual' });
    const weighted = scenario.workload.quota?.tokensPerDay ?? Number.MAX_SAFE_INTEGER;
    const rules = [rule('weighted_tokens', weighted), rule('input_tokens', Number.MAX_SAFE_INTEGER), rule('output_tokens', Number.MAX_SAFE_INTEGER)];
    for (let t = 0; t < scenario.workload.tenants; t++) this.subjects.set(tenantName(t), [{ scope: 'tenant', subject: tenantName(t), rules }]);
  }

  /** Every node starts with the same accounts and pool strategy in its policy: nothing to broadcast. */
  preparePolicy(policy: PolicyDocument): void {
    for (const spec of this.specs) {
      const upserted = policy.upsertAccount(spec.account);
      assert(upserted.ok, `a simulated account is a valid policy entry (${spec.account.id})`);
    }
    if (this.workload.strategy !== undefined) {
      const updated = policy.updateSettings({ pool: { strategy: this.workload.strategy } });
      assert(updated.ok, 'a strategy the scenario names is a valid pool setting');
    }
    policy.takeUpdates();
  }

  /** A node queue's settings and usage: the scenario's schedule, and production's usage over the node's replicated counter. */
  queueOptions(counter: WindowedCounter): TierQueueOptions {
    const usage = new ScheduleUsage(counter);
    this.usages.set(counter, usage);
    return { settings: this.schedule, usage };
  }

  /** Node `index`'s path over the cores of its (only) incarnation. */
  attach(index: number, core: NodeCore): void {
    assert(this.nodes[index] === undefined, 'a request path node is never restarted (no crash faults)');
    assert(core.queue !== undefined, 'the core has the tier queue the simulator asked for');
    const region = core.region;
    const gate = this.books.observeGate(core.gate);
    const pool: PoolPort = core.pool;
    const queue = this.scheduleBooks.observeQueue(this.hooks.queue?.(core.queue, region) ?? core.queue, region);
    const usage = this.usages.get(core.counter);
    assert(usage !== undefined, "the node's queue was made with the simulator's usage");
    const path = new RequestPath({
      region,
      gate: this.hooks.gate?.(gate, region) ?? gate,
      pool: this.hooks.pool?.(pool, region) ?? pool,
      queue,
      countersBy: this.workload.schedule?.countersBy ?? 'used',
      capToPool: this.schedule.mode === 'dynamic',
      observer: {
        // Latency on the node's clock; the end on the run's, for the served rate's window.
        ended: (request, outcome, submittedAtMs, nowMs, used) => {
          // As the gateway charges its ScheduleUsage at each settlement (a request that reached no model used nothing).
          usage.charge(request.tenant, used, nowMs);
          this.tierFigures.ended(request, outcome, nowMs - submittedAtMs, nowMs - (this.nodes[index] as NodePath).offsetMs, used);
        },
      },
      upstream: this.upstream,
      books: this.books,
      subjectsOf: (tenant) => this.subjects.get(tenant) ?? [],
      homeOf: (home) => {
        const to = regionIndex(home);
        return this.host.reachable(index, to) ? this.host.running(to) : undefined;
      },
      delayMs: (from, to) => this.delayMs(regionIndex(from), regionIndex(to)),
      schedule: (atMs, event) => this.host.schedule(index, atMs - (this.nodes[index] as NodePath).offsetMs, event),
      accountWaitMs: this.workload.accountWaitMs,
      leaseMs: this.leaseMs,
    });
    this.nodes[index] = { core, path, offsetMs: 0 };
  }

  /** `count` arrivals at node `index`: tenant (a few carry most, or by the tenant mix), its tier, and sizes drawn here. */
  arrive(index: number, count: number, localMs: number, nowMs: number): void {
    const node = this.enter(index, localMs, nowMs);
    const { tenants, maxTokens } = this.scenario.workload;
    for (let i = 0; i < count; i++) {
      const arriving = this.arriving?.[index];
      const t =
        arriving === undefined ? Math.floor(tenants * this.arrivals.float() ** 2) : (arriving.indexes[this.drawWeighted(arriving.cumulative)] as number);
      const tenant = this.tenants[t];
      assert(tenant !== undefined, 'an arrival names a tenant of the workload');
      const request: PathRequest = {
        requestId: `${regionNames[index] as string}/p${this.nextRequest++}` as RequestId,
        tenant: tenant.tenant,
        tier: tenant.tier,
        inputTokens: 1 + this.arrivals.int(this.workload.inputTokensMax),
        maxTokens: 1 + this.arrivals.int(maxTokens),
      };
      node.path.submit(request, localMs);
    }
  }

  /** The index of a tenant drawn in proportion to its weight (binary search over the cumulative weights). */
  private drawWeighted(cumulative: readonly number[]): number {
    const target = this.arrivals.float() * (cumulative[cumulative.length - 1] as number);
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((cumulative[middle] as number) > target) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  handle(index: number, event: PathEvent, localMs: number, nowMs: number): void {
    this.enter(index, localMs, nowMs).path.handle(event, localMs);
  }

  /**
   * The end of the safety phase: node `index`'s gateway shuts down as production's does (see
   * `RequestPath.close`), so the liveness phase waits for the calls running, not for a backlog
   * that the slots would take minutes to work through.
   */
  close(index: number, localMs: number, nowMs: number): void {
    this.enter(index, localMs, nowMs).path.close(localMs);
  }

  /** Whether node `index`'s path has closed. */
  closed(index: number): boolean {
    return this.nodes[index]?.path.isClosed ?? false;
  }

  /** On the node's tick: permit waiters past their deadline, and what health records changed in the pool. */
  tick(index: number, localMs: number, nowMs: number): void {
    this.enter(index, localMs, nowMs).path.tick(localMs);
  }

  /** Requests between submission and end, over every node. */
  get flightsOpen(): number {
    return this.nodes.reduce((open, node) => open + (node?.path.flightsOpen ?? 0), 0);
  }

  /** The books' end-of-run checks, then every failure they found, with times from the start of the run. */
  finish(epochMs: number): CheckFailure[] {
    const regions = this.nodes.flatMap((node) =>
      node === undefined
        ? []
        : [
            {
              region: node.core.region,
              pool: node.core.pool.totals(),
              queue: { depth: node.core.queue?.depth ?? 0, inFlight: node.core.queue?.inFlight ?? 0 },
              flightsOpen: node.path.flightsOpen,
            },
          ],
    );
    this.books.checkDrained(regions);
    return [...this.books.failures, ...this.scheduleBooks.failures].map((failure) => ({ ...failure, atMs: failure.atMs - epochMs }));
  }

  figures(): RequestPathFigures {
    const sum = (pick: (path: RequestPath) => number): number => this.nodes.reduce((total, node) => total + (node === undefined ? 0 : pick(node.path)), 0);
    return {
      submitted: sum((p) => p.stats.submitted),
      admitted: sum((p) => p.stats.admitted),
      refusedQuota: sum((p) => p.stats.refusedQuota),
      queueFull: sum((p) => p.stats.queueFull),
      closed: sum((p) => p.stats.closed),
      completed: sum((p) => p.stats.completed),
      failed: sum((p) => p.stats.failed),
      settled: this.books.settled,
      withdrawn: this.books.withdrawn,
      attempts: sum((p) => p.stats.attempts),
      retries: sum((p) => p.stats.retries),
      forwards: sum((p) => p.stats.forwards),
      forwardsRefused: sum((p) => p.stats.forwardsRefused),
      noAccount: sum((p) => p.stats.noAccount),
      permitExpired: sum((p) => p.stats.permitExpired),
      upstreamAccepted: this.upstream.stats.accepted,
      producedTokens: this.books.producedTotal(),
      schedule: this.scheduleBooks.figures(),
      tiers: this.tierFigures.summary(),
    };
  }

  private enter(index: number, localMs: number, nowMs: number): NodePath {
    const node = this.nodes[index];
    assert(node !== undefined, 'arrivals and events reach an attached node');
    node.offsetMs = localMs - nowMs;
    return node;
  }

  /** One way between two regions: half the round trip plus jitter, as the mesh's frames travel. */
  private delayMs(from: number, to: number): number {
    const jitter = this.host.jitterMs > 0 ? this.random.float() * this.host.jitterMs : 0;
    return Math.ceil(this.host.rttMs(from, to) / 2 + jitter);
  }
}

function tenantName(index: number): TenantId {
  // Apart from the quota traffic's tenant keys (`tenant-N`), whose books (sim/durable-books.ts) count only that traffic.
  return asTenantId(`path-tenant-${index}`);
}

function regionIndex(region: RegionId): number {
  const index = regionNames.indexOf(region as (typeof regionNames)[number]);
  assert(index >= 0, `a simulated region (${region})`);
  return index;
}
