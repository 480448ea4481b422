import type { ConsistencyMode } from '../src/mesh/policy/policy-schema.js';
import type { Fault, Scenario } from './scenario.js';
import type { ScheduleFigures } from './schedule-books.js';
import type { TierFiguresSummary } from './tier-figures.js';

/**
 * What one simulator run produces: the verdict, the figures for the summary table, and a record
 * of the run over time for the HTML report.
 */
export interface CheckFailure {
  /** Which checker failed, e.g. 'convergence', 'final-read', 'invariant'. */
  readonly checker: string;
  readonly atMs: number;
  readonly message: string;
}

export interface ConvergenceFigure {
  /** The partition kind or fault that was healed, e.g. 'majority', 'crash'. */
  readonly fault: string;
  /** Simulated ms from the heal to the moment every live replica agreed (undefined: never). */
  readonly convergedAfterMs: number | undefined;
}

/** One sample of the run, taken every `sampleEveryMs` of simulated time. */
export interface Sample {
  readonly atMs: number;
  /** Per region: the value of the watched counter (the busiest tenant's day tokens). */
  readonly values: readonly number[];
  /** The oracle's value of the watched counter at that moment. */
  readonly truth: number;
  /** max − min over the live regions' values of the watched counter. */
  readonly divergence: number;
}

export interface SimRecord {
  readonly regions: readonly string[];
  readonly sampleEveryMs: number;
  readonly samples: readonly Sample[];
  /** Faults as they actually happened (a fault may be clipped by the end of the safety phase). */
  readonly faults: readonly Fault[];
  /** When the safety phase ended and every fault was healed. */
  readonly healedAtMs: number;
}

export interface QuotaFigures {
  readonly mode: ConsistencyMode;
  readonly tokensPerDay: number;
  readonly admitted: number;
  readonly rejected: number;
  /** Rejected while the true total plus the request was still within the limit. */
  readonly falseRejections: number;
  /** Of the rejections, those for want of a quorum (strict rounds and escrow claims). */
  readonly noQuorum: number;
  /** Admission latency from arrival to decision, simulated ms, over every decided request. */
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  /** The largest amount by which a tenant's true total ended over its limit, in tokens. */
  readonly overshootTokensMax: number;
  /**
   * For that tenant, the eventual mode's steady-state bound: Σ over regions of its admit rate
   * (tokens/s) × the propagation delay (gossip interval + the longest one-way latency + jitter).
   * Partitions stretch the delay, so overshoot past this bound during a partition is expected.
   */
  readonly overshootBoundTokens: number;
}

/** Request-id claims when the scenario sets them (`workload.claims`). */
export interface ClaimFigures {
  readonly claimed: number;
  readonly granted: number;
  /** Refused: another region holds the id. */
  readonly heldElsewhere: number;
  /** Refused at once: this node holds the id (or claims it already). */
  readonly heldHere: number;
  readonly noQuorum: number;
  readonly shed: number;
  /** Granted and admitted requests that reached the upstream. */
  readonly dispatched: number;
  /** Granted claims given back: refused by the quota, or ended before the upstream. */
  readonly withdrawn: number;
  /** Arrivals that reused a recent id. */
  readonly retries: number;
}

/** The nodes' disks and what their crashes did to requests (see sim/durable-books.ts). */
export interface DurabilityFigures {
  /** Group commits that wrote something, over every node's disk. */
  readonly commits: number;
  /** Commits a disk refused (each is tried again, first, at the node's next pump). */
  readonly commitsRefused: number;
  /** Crashes with state after which the node resumed its replica from its disk. */
  readonly restarts: number;
  /** Requests a restart charged their whole estimate: admitted on disk, settlement not. */
  readonly interrupted: number;
  /** Of those, requests that had settled but whose settlement the crash caught before its commit. */
  readonly settlementsLost: number;
  /** Admitted requests whose node crashed before committing the admission: they never reached the upstream. */
  readonly undispatched: number;
  /** Arrivals refused because their node's disk refused writes. */
  readonly refusedDiskFailing: number;
}

/** What requests did on the request path (sim/request-path.ts), summed over the regions. */
export interface RequestPathCounts {
  readonly submitted: number;
  readonly admitted: number;
  readonly refusedQuota: number;
  readonly queueFull: number;
  /** Admitted, then withdrawn unserved when the path closed at the end of the arrivals. */
  readonly closed: number;
  readonly completed: number;
  readonly failed: number;
  readonly settled: number;
  readonly withdrawn: number;
  readonly attempts: number;
  readonly retries: number;
  readonly forwards: number;
  readonly forwardsRefused: number;
  readonly noAccount: number;
  readonly permitExpired: number;
}

/** What the request path did over every node (sim/sim-requests.ts). */
export interface RequestPathFigures extends RequestPathCounts {
  /** Calls the simulated upstream took, and the input and output tokens they produced. */
  readonly upstreamAccepted: number;
  readonly producedTokens: { readonly input: number; readonly output: number };
  /** What the schedule books saw of the tier queues' starts (sim/schedule-books.ts). */
  readonly schedule: ScheduleFigures;
  /** Served, refused and latencies per tier, and tokens per tenant (sim/tier-figures.ts). */
  readonly tiers: TierFiguresSummary;
}

export interface SimResult {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly ok: boolean;
  readonly failures: readonly CheckFailure[];
  /** Hash of every event the run processed: equal for equal (seed, scenario). */
  readonly traceHash: string;
  readonly convergence: readonly ConvergenceFigure[];
  /** Simulated time covered and wall time taken. */
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly stats: {
    readonly requests: number;
    readonly framesDelivered: number;
    readonly framesDropped: number;
    readonly bytesDelivered: number;
    readonly events: number;
    /** Units (weighted tokens) that successors released of what crashed incarnations left reserved. */
    readonly releasedUnits?: number;
  };
  readonly record: SimRecord;
  /** Admission figures when the scenario sets a quota. */
  readonly quota?: QuotaFigures;
  readonly claims?: ClaimFigures;
  /** The request path's figures when the workload runs it (sim/sim-requests.ts). */
  readonly requestPath?: RequestPathFigures;
  readonly durability: DurabilityFigures;
  /** The command that replays this run exactly. */
  readonly replay: string;
}
