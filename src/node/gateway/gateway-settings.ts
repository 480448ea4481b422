import type { GcraConfig } from '../../admission/gcra.js';
import type { ShedThresholds } from '../../admission/shedder.js';
import { gatewayAccountWaitMsMax, tierQueueWaitMsMax, upstreamDrainGraceMs } from '../../core/limits.js';
import type { AnswerLedgerBounds } from '../answer-ledger.js';
import { answerStoreBounds } from './answer-store.js';
import { defaultTierQueueLimits, type TierQueueLimits } from '../../schedule/tier-queue.js';

/**
 * The knobs of a node's request path, with their defaults in one place. A node's configuration
 * may set the rate limits (src/node/node-config.ts `rateLimits`); the rest are defaults that
 * tests shrink to see queueing and shedding with a handful of requests.
 */
export interface RateLimitSettings {
  /** Per client IP and user (`rateKey`): what one client of a tenant may send. */
  readonly client: GcraConfig;
  /** Per tenant, over all its clients: the tenant's burst at this node. */
  readonly tenant: GcraConfig;
}

export interface GatewaySettings {
  readonly rateLimits: RateLimitSettings;
  /**
   * Shedding by queue depth and wait per tier; lower tiers no higher than the tiers above. The
   * policy's `settings.shed`, when set, replaces these at every node (src/mesh/policy/policy-schema.ts
   * `ShedSettings`); these apply while it is not.
   */
  readonly shed: ShedThresholds;
  readonly queue: TierQueueLimits;
  /** Longest a request waits in the admission queue before it is shed, at most `tierQueueWaitMsMax`. */
  readonly queueWaitMs: number;
  /** Longest a call waits for an account's permit, at most `gatewayAccountWaitMsMax`. */
  readonly accountWaitMs: number;
  /** How long an upstream call may run past its client's deadline, at most `upstreamDrainGraceMs`. */
  readonly drainGraceMs: number;
  /** Bounds of the answers kept for retries (src/node/gateway/answer-store.ts). */
  readonly answers: AnswerLedgerBounds;
}

/**
 * Rates a well-behaved client never meets: 20 requests a second sustained per client with a
 * burst of 100, and 200 a second per tenant at one node with a burst of 1,000. Quotas, not
 * these, are where tenants' real budgets live; these only stop a runaway loop early.
 */
export const defaultRateLimitSettings: RateLimitSettings = Object.freeze({
  client: Object.freeze({ rate: 1_200, periodMs: 60_000, burst: 100 }),
  tenant: Object.freeze({ rate: 12_000, periodMs: 60_000, burst: 1_000 }),
});

/**
 * Shedding thresholds well inside the queue's bounds, so that requests are refused with a retry
 * hint before the queue refuses them for space: free traffic goes once a quarter of a tier's
 * depth waits or the oldest request has waited 10 s, paid at half and 20 s, vip at three
 * quarters and 30 s (the depth counts the queues at and above the request's tier).
 */
export const defaultShedThresholds: ShedThresholds = Object.freeze({
  vip: Object.freeze({ depthMax: (3 * defaultTierQueueLimits.tierDepthMax) / 4, waitMsMax: 30_000 }),
  paid: Object.freeze({ depthMax: defaultTierQueueLimits.tierDepthMax / 2, waitMsMax: 20_000 }),
  free: Object.freeze({ depthMax: defaultTierQueueLimits.tierDepthMax / 4, waitMsMax: 10_000 }),
});

export const defaultGatewaySettings: GatewaySettings = Object.freeze({
  rateLimits: defaultRateLimitSettings,
  shed: defaultShedThresholds,
  queue: defaultTierQueueLimits,
  queueWaitMs: tierQueueWaitMsMax,
  accountWaitMs: gatewayAccountWaitMsMax,
  drainGraceMs: upstreamDrainGraceMs,
  answers: answerStoreBounds,
});
