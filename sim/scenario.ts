import type { ConsistencyMode } from '../src/mesh/policy/policy-schema.js';
import type { ScheduleMode } from '../src/mesh/policy/schedule-schema.js';
import type { BaseStrategyName } from '../src/pool/strategies.js';

/**
 * A scenario is data: which regions run, what traffic they serve, which faults strike when, and
 * how long the mesh has to converge once the faults heal. Scenario files live in
 * sim/scenarios/*.json; `parseScenario` validates one and names the field of any mistake.
 *
 * Times are simulated milliseconds from the start of the run. A run has two phases: the safety
 * phase (0 .. durationMs: traffic and faults, invariants checked throughout) and the liveness
 * phase (durationMs .. durationMs + convergenceBudgetMs: every fault healed, no new traffic,
 * all live replicas must converge to the oracle's value).
 */
export const regionNames = ['us-east', 'us-west', 'eu-west', 'ap-northeast', 'ap-southeast'] as const;

/**
 * Round-trip times in ms between the regions above, in order (public cloud inter-region figures,
 * rounded). One-way latency is half, plus jitter.
 */
export const rttMatrixMs: readonly (readonly number[])[] = [
  [1, 65, 75, 150, 215],
  [65, 1, 135, 105, 165],
  [75, 135, 1, 220, 160],
  [150, 105, 220, 1, 70],
  [215, 165, 160, 70, 1],
];

export type PartitionKind =
  /** One node cut from all others. */
  | 'isolate'
  /** A majority and a minority half. */
  | 'majority'
  /** Each node sees only its ring neighbours (a "majorities ring": every node sees a majority, no two the same). */
  | 'ring'
  /** Two halves joined through one bridge node that sees both. */
  | 'bridge'
  /** Frames from `node` to the others are dropped, frames to it still arrive. */
  | 'one-way';

export type Fault =
  | { readonly kind: 'partition'; readonly atMs: number; readonly durationMs: number; readonly partition: PartitionKind; readonly node?: number }
  | { readonly kind: 'crash'; readonly atMs: number; readonly durationMs: number; readonly node: number; readonly durable: boolean }
  | { readonly kind: 'pause'; readonly atMs: number; readonly durationMs: number; readonly node: number }
  /** The node's clock is off by `skewMs` for the duration. */
  | { readonly kind: 'skew'; readonly atMs: number; readonly durationMs: number; readonly node: number; readonly skewMs: number }
  /** The node's clock jumps between +skewMs and −skewMs every `periodMs`. */
  | { readonly kind: 'strobe'; readonly atMs: number; readonly durationMs: number; readonly node: number; readonly skewMs: number; readonly periodMs: number };

export interface Workload {
  /** Tenants sharing the mesh. */
  readonly tenants: number;
  /** Requests per second per region, summed over tenants. */
  readonly requestsPerSecond: number;
  /** Poisson arrivals, or bursts of `burstSize` requests at the same rate on average. */
  readonly arrivals: 'poisson' | 'bursty';
  readonly burstSize: number;
  /** Token sizes: each request reserves `maxTokens` and settles a uniform share of it. */
  readonly maxTokens: number;
  /**
   * Whether a settled request gives back what it reserved beyond what it used (the default). Off,
   * every request uses its whole estimate: nothing flows back, so a count a protocol lost is
   * never made up by later refunds (sim/buggify.ts).
   */
  readonly refunds?: boolean;
  /** A daily weighted-token quota per tenant, enforced in every region by the admission code. */
  readonly quota?: QuotaWorkload;
  /**
   * Requests carry client-chosen ids that are claimed mesh-wide before they may reach the
   * upstream (src/admission/request-claims.ts); some arrivals retry a recent id at any region.
   * The `claims` checker fails the run if an id ever reaches the upstream twice.
   */
  readonly claims?: ClaimWorkload;
  /**
   * Arrivals run the whole request path (sim/sim-requests.ts) through each node's core instead of
   * a bare quota admission: gate, tier queue, account pool, simulated upstream accounts, forwards.
   */
  readonly requestPath?: RequestPathWorkload;
}

/**
 * The request path's accounts and sizes. Its requests reserve their input (uniform in
 * [1, inputTokensMax]) and `maxTokens` (uniform in [1, workload.maxTokens]); a quota, if any,
 * must be eventual and binds their weighted tokens. Crash faults are refused with it for now.
 */
export interface RequestPathWorkload {
  /** Simulated upstream accounts homed in each region, alternating API keys and subscriptions. */
  readonly accountsPerRegion: number;
  /** Each account's `concurrencyMax` in the policy: the permits one node's pool hands out. */
  readonly concurrencyMax: number;
  readonly inputTokensMax: number;
  /** How long a request waits for a permit (the gateway's `accountWaitMs`). */
  readonly accountWaitMs: number;
  /**
   * Calls each region's tier queue lets run at once (its `inFlightMax`; 32 when left out). The
   * queue then holds 12.5 times as many waiting (within its bounds), as 32 slots and 400 places do.
   */
  readonly slotsPerRegion?: number;
  /** How each region's tier queue orders its requests; the policy's defaults when left out. */
  readonly schedule?: ScheduleWorkload;
  /** Tenants by tier, and heavy ones among them; when left out, tenant t is of tier t mod 3 and a few tenants carry most requests. */
  readonly tenantMix?: TenantMix;
  /** How each pool picks among its accounts (the policy's `settings.pool.strategy`); round-robin when left out. */
  readonly strategy?: BaseStrategyName;
  /** Only the first this many accounts (in region order) are in the policy: 1 is the "direct" baseline of one account. */
  readonly accountsTotal?: number;
}

/**
 * The knobs of the tier queue's schedule (src/mesh/policy/schedule-schema.ts) a scenario sets;
 * the rest of the settings are the policy's defaults. Complete once parsed.
 */
export interface ScheduleWorkload {
  readonly mode: ScheduleMode;
  readonly levels: number;
  readonly escapeEvery: number;
  readonly escapeAfterMs: number;
  readonly agingMs: number;
  readonly levelTokensPerMinute: number;
  /** U, the most one request counts for fairness, in weighted tokens (the queue's `quantumTokens` limit). */
  readonly quantumTokens: number;
  /**
   * What a finished request charges its tenant's virtual counter: `used`, the weighted tokens its
   * calls used (as the gateway does), or `estimate`, what it was charged when it started. The
   * queue's fairness bound is stated for counters charged by estimates, so the `fairness`
   * checker runs only with `estimate` (sim/schedule-books.ts).
   */
  readonly countersBy: 'used' | 'estimate';
}

/**
 * Tenants by tier, in this order (vip first), summing to `workload.tenants`. In each tier the
 * first `heavyPerTier` tenants are heavy: each sends `heavyFactor` times as many requests as a
 * light tenant of any tier.
 */
export interface TenantMix {
  readonly vip: number;
  readonly paid: number;
  readonly free: number;
  readonly heavyPerTier: number;
  readonly heavyFactor: number;
  /**
   * Each tenant sends from one region only (tenant i from region i mod regions), as tenants near
   * one region do; otherwise every tenant arrives at every region. The queue's fairness bound
   * holds per node for tenants no other node serves (sim/schedule-books.ts).
   */
  readonly homed?: boolean;
}

export interface ClaimWorkload {
  /** Share of arrivals that reuse one of the recent ids (a client's retry, at whichever region it arrives). */
  readonly retryShare: number;
  /** Share of admitted requests that reach the upstream; the rest end before it and withdraw their claim. */
  readonly dispatchShare: number;
}

export interface QuotaWorkload {
  readonly mode: ConsistencyMode;
  /** Each tenant's limit on weighted tokens per day. */
  readonly tokensPerDay: number;
}

export interface NetworkProfile {
  /** Uniform extra one-way delay in [0, jitterMs). */
  readonly jitterMs: number;
  /** Probability that a droppable frame (a gossip delta, an ack, a heartbeat) is lost. */
  readonly loss: number;
  /** Probability that a droppable frame is delivered twice. */
  readonly duplicate: number;
  /** Bytes per millisecond per link (bandwidth); 0 = unlimited. */
  readonly bytesPerMs: number;
  /** Extra one-way delay on some directed links (from → to), which reorders what crosses them (sim/buggify.ts). */
  readonly slowLinks?: readonly SlowLink[];
  /**
   * Directed links that lose every droppable frame sent in a window while the connection stays
   * up, as a socket queue that drops under pressure does (sim/buggify.ts, "lost last words").
   */
  readonly mutedLinks?: readonly MutedLink[];
}

export interface MutedLink {
  readonly from: number;
  readonly to: number;
  readonly fromMs: number;
  readonly toMs: number;
}

export interface SlowLink {
  readonly from: number;
  readonly to: number;
  readonly extraMs: number;
}

/**
 * Every node's disk: a pump's group commit completes a whole number of ms after the change that
 * asked for it, drawn uniformly from [commitMsMin, commitMsMax] (sim/simulator.ts). Frames wait
 * for it, and a crash within it loses what it would have written.
 */
export interface DiskProfile {
  readonly commitMsMin: number;
  readonly commitMsMax: number;
}

/** A fast local disk: production's pump turn plus its sync, ≤ 1 ms at p99, in whole ms. */
export const defaultDisk: DiskProfile = { commitMsMin: 1, commitMsMax: 2 };

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** 2 to 5 regions, one node each, named after `regionNames`. */
  readonly regions: number;
  readonly durationMs: number;
  readonly convergenceBudgetMs: number;
  readonly gossipIntervalMs: number;
  readonly workload: Workload;
  readonly network: NetworkProfile;
  /** The nodes' disks; `defaultDisk` when left out. */
  readonly disk?: DiskProfile;
  readonly faults: readonly Fault[];
  /**
   * The fault kinds a swarm built on this scenario draws from (sim/swarm.ts); every kind when
   * left out. A run of the scenario itself ignores it: it has its own `faults`.
   */
  readonly swarmFaults?: readonly Fault['kind'][];
  /**
   * Whether a swarm built on this scenario also aims at the dangerous interleavings
   * (sim/buggify.ts): tight limits, no refunds, amnesia during rounds, slow links. A run of the
   * scenario itself ignores it.
   */
  readonly buggify?: boolean;
}
