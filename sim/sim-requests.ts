import type { QuotaSubject } from '../src/admission/quota-gate.js';
import { assert } from '../src/core/assert.js';
import { asTenantId, type RegionId, type RequestId, type TenantId } from '../src/core/ids.js';
import { reservationLeaseMsMax } from '../src/core/limits.js';
import type { SeededRandom } from '../src/core/random.js';
import type { NodeCore } from '../src/engine/node-core.js';
import type { PolicyDocument } from '../src/mesh/policy/policy-document.js';
import { type LimitRule, tiers } from '../src/mesh/policy/policy-schema.js';
import { type TierQueueLimits } from '../src/schedule/tier-queue.js';
import { tierQueueDepthMax, tierQueueTotalDepthMax } from '../src/core/limits.js';
import { type GatePort, RequestBooks } from './request-books.js';
import { type PathEvent, type PathRequest, type PoolPort, RequestPath } from './request-path.js';
import { defaultAccountShape, defaultRequestRunConfig, simAccounts } from './request-run.js';
import { regionNames, type RequestPathWorkload, type Scenario } from './scenario.js';
import type { CheckFailure, RequestPathFigures } from './sim-result.js';
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
 * At the end the books' checkers (`settled-once`, `account-limits`, `charges`, see
 * sim/request-books.ts) run over every node and join the simulator's failures.
 */

/** Test-only substitutions above the books' seam, as in sim/request-run.ts: a mutant gate or pool. */
export interface SimRequestHooks {
  readonly gate?: (gate: GatePort, region: RegionId) => GatePort;
  readonly pool?: (pool: PoolPort, region: RegionId) => PoolPort;
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

export class SimRequests {
  readonly books: RequestBooks;
  readonly upstream: SimUpstream;
  readonly queueLimits: TierQueueLimits;
  private readonly specs: readonly SimAccountSpec[];
  private readonly subjects = new Map<TenantId, readonly QuotaSubject[]>();
  private readonly nodes: (NodePath | undefined)[] = [];
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
    this.specs = simAccounts(scenario.regions, workload.accountsPerRegion, defaultAccountShape, workload.concurrencyMax);
    this.queueLimits = workload.slotsPerRegion === undefined ? defaults.queue : slottedQueue(defaults.queue, workload.slotsPerRegion);
    this.books = new RequestBooks(this.specs);
    this.upstream = new SimUpstream(this.specs, random.fork(), this.books);
    // Long enough that settlement, never lease expiry, ends every request of the run.
    this.leaseMs = Math.min(reservationLeaseMsMax, scenario.durationMs + scenario.convergenceBudgetMs + 60_000);
    const rule = (metric: string, limit: number): LimitRule => ({ metric, window: 'day', sliding: false, limit, mode: 'eventual' });
    const weighted = scenario.workload.quota?.tokensPerDay ?? Number.MAX_SAFE_INTEGER;
    const rules = [rule('weighted_tokens', weighted), rule('input_tokens', Number.MAX_SAFE_INTEGER), rule('output_tokens', Number.MAX_SAFE_INTEGER)];
    for (let t = 0; t < scenario.workload.tenants; t++) this.subjects.set(tenantName(t), [{ scope: 'tenant', subject: tenantName(t), rules }]);
  }

  /** Every node starts with the same accounts in its policy: nothing to broadcast. */
  preparePolicy(policy: PolicyDocument): void {
    for (const spec of this.specs) {
      const upserted = policy.upsertAccount(spec.account);
      assert(upserted.ok, `a simulated account is a valid policy entry (${spec.account.id})`);
    }
    policy.takeUpdates();
  }

  /** Node `index`'s path over the cores of its (only) incarnation. */
  attach(index: number, core: NodeCore): void {
    assert(this.nodes[index] === undefined, 'a request path node is never restarted (no crash faults)');
    assert(core.queue !== undefined, 'the core has the tier queue the simulator asked for');
    const region = core.region;
    const gate = this.books.observeGate(core.gate);
    const pool: PoolPort = core.pool;
    const path = new RequestPath({
      region,
      gate: this.hooks.gate?.(gate, region) ?? gate,
      pool: this.hooks.pool?.(pool, region) ?? pool,
      queue: core.queue,
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

  /** `count` arrivals at node `index`: tenant (a few carry most), tier and sizes drawn here. */
  arrive(index: number, count: number, localMs: number, nowMs: number): void {
    const node = this.enter(index, localMs, nowMs);
    const { tenants, maxTokens } = this.scenario.workload;
    for (let i = 0; i < count; i++) {
      const t = Math.floor(tenants * this.random.float() ** 2);
      const request: PathRequest = {
        requestId: `${regionNames[index] as string}/p${this.nextRequest++}` as RequestId,
        tenant: tenantName(t),
        tier: tiers[t % tiers.length] as (typeof tiers)[number],
        inputTokens: 1 + this.random.int(this.workload.inputTokensMax),
        maxTokens: 1 + this.random.int(maxTokens),
      };
      node.path.submit(request, localMs);
    }
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
    return this.books.failures.map((failure) => ({ ...failure, atMs: failure.atMs - epochMs }));
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
