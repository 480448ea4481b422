import type { TokenUsage } from '../admission/estimate.js';
import type { Tier } from '../mesh/policy/policy-schema.js';
import type { UpstreamError } from '../upstream/upstream-result.js';

/**
 * What the request path tells the metrics binding, as a small interface (style guide §9): the
 * gateway, the call scheduler and the upstream client call it, and only the Prometheus binding
 * (prometheus-node-metrics.ts) knows that prom-client exists. Counts the stats objects already
 * keep (requests, refusals, calls) are read from them at scrape time and are not repeated here;
 * this carries what no stats object holds: timings, and tokens by kind.
 *
 * The observer owns the clock of its timings: a caller reads `nowMs()` when a timed step starts
 * and again when it ends, and reports the difference. The production observer reads a monotonic
 * clock with sub-millisecond resolution (a local admission takes microseconds, and the wall clock
 * may step); the no-op observer answers 0, so a node that does not observe reads no clock at all.
 *
 * Every label value a method takes comes from a fixed set (outcome, tier, mode, error kind):
 * never a tenant, user or request id.
 */

/** How an admission decision ended: the quota gate reserved the estimate, or refused it. */
export type AdmissionOutcome = 'admitted' | 'refused';

/** How a wait in the admission queue ended. A request refused because the queue was full never waited. */
export type QueueWaitOutcome = 'granted' | 'queue-timeout' | 'cancelled' | 'closed';
export const queueWaitOutcomes: readonly QueueWaitOutcome[] = ['granted', 'queue-timeout', 'cancelled', 'closed'];

/** Which upstream call: `complete` (one JSON answer) or `stream` (server-sent events). */
export type UpstreamMode = 'complete' | 'stream';
export const upstreamModes: readonly UpstreamMode[] = ['complete', 'stream'];

/** How an upstream call ended: `ok`, or the kind of its `UpstreamError` (a fixed set). */
export type UpstreamOutcome = 'ok' | UpstreamError['kind'];

/** What the call scheduler reports. */
export interface QueueObserver {
  /** Milliseconds on the observer's monotonic clock; only differences of two readings mean anything. */
  nowMs(): number;
  /** A request left the queue after `waitMs`: with a slot, or without one. */
  queueWait(tier: Tier, outcome: QueueWaitOutcome, waitMs: number): void;
}

/** What the upstream client reports, on the node that calls the upstream. */
export interface UpstreamObserver {
  nowMs(): number;
  /** From dispatch to the response headers (connecting and the origin's queue included). */
  upstreamHeaders(mode: UpstreamMode, latencyMs: number): void;
  /** From dispatch to the first `content_block_delta` of a stream: the time to the first token. */
  upstreamFirstToken(latencyMs: number): void;
  /** From dispatch to the end of the call, a stream's draining included, however it ended. */
  upstreamCall(mode: UpstreamMode, outcome: UpstreamOutcome, latencyMs: number): void;
}

/** Everything the request path of a node reports. */
export interface GatewayObserver extends QueueObserver, UpstreamObserver {
  /** The quota decision of one completion (`runtime.admit`: a local check or a quorum round). */
  admission(outcome: AdmissionOutcome, latencyMs: number): void;
  /** The tokens a settled request used, by kind; called once per request that reached the model. */
  tokens(usage: TokenUsage): void;
}

/** Observes nothing and reads no clock: the default of every instrumented part. */
export const noopObserver: GatewayObserver = Object.freeze({
  nowMs: () => 0,
  queueWait: () => {},
  upstreamHeaders: () => {},
  upstreamFirstToken: () => {},
  upstreamCall: () => {},
  admission: () => {},
  tokens: () => {},
});
