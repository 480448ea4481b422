import type { TokenWeights } from '../mesh/policy/policy-schema.js';
import { estimateWeightedTokens, type TokenUsage, weightedTokens } from './estimate.js';

/**
 * What a request is charged, per counter metric, before it runs (the reservation) and after it
 * (the settlement). The tenant metrics a gateway knows are those of the account counters
 * (src/pool/account-usage.ts), with one meaning each:
 *
 *   requests         1 per request that reached the model
 *   input_tokens     uncached input plus cache writes
 *   output_tokens
 *   weighted_tokens  all four kinds under the tenant's weights (DESIGN.md §3)
 *
 * A limit on any other metric (`cost`, say) is neither reserved nor charged: its amounts are
 * zero, which the quota gate reads as "not charged". Here, in the admission core, so the gateway
 * (src/node/gateway) and the simulator's request path (sim/request-path.ts) charge alike; the
 * gateway's input estimate stays with it (src/node/gateway/request-amounts.ts).
 */

/** The reservation: one request, the input bound, all of `max_tokens`, priced at the dearest input weight. */
export function estimatedAmounts(inputTokens: number, maxTokens: number, weights: TokenWeights): ReadonlyMap<string, number> {
  return new Map([
    ['requests', 1],
    ['input_tokens', inputTokens],
    ['output_tokens', maxTokens],
    ['weighted_tokens', estimateWeightedTokens(inputTokens, maxTokens, weights)],
  ]);
}

/**
 * The settlement of a request from what its calls used. `reachedModel` is false for a request
 * that never got an answer from an account (refused in the queue, every account throttled, the
 * client gone before the headers): it settles to zero, the reservation refunded whole. Every
 * metric is named, so the gate charges none of them its estimate.
 */
export function settledAmounts(usage: TokenUsage, weights: TokenWeights, reachedModel: boolean): ReadonlyMap<string, number> {
  if (!reachedModel)
    return new Map([
      ['requests', 0],
      ['input_tokens', 0],
      ['output_tokens', 0],
      ['weighted_tokens', 0],
    ]);
  return new Map([
    ['requests', 1],
    ['input_tokens', usage.input + usage.cacheWrite],
    ['output_tokens', usage.output],
    ['weighted_tokens', weightedTokens(usage, weights)],
  ]);
}
