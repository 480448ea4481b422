import { estimateWeightedTokens, type TokenUsage, weightedTokens } from '../../admission/estimate.js';
import type { TokenWeights } from '../../mesh/policy/policy-schema.js';

/**
 * What a request is charged, per counter metric, before it runs (the reservation) and after it
 * (the settlement). The tenant metrics the gateway knows are those of the account counters
 * (src/pool/account-usage.ts), with one meaning each:
 *
 *   requests         1 per request that reached the model
 *   input_tokens     uncached input plus cache writes
 *   output_tokens
 *   weighted_tokens  all four kinds under the tenant's weights (DESIGN.md §3)
 *
 * A limit on any other metric (`cost`, say) is neither reserved nor charged by this gateway: its
 * amounts are zero, which the quota gate reads as "not charged".
 *
 * The input estimate. Counting tokens exactly would take a tokenizer (or a count_tokens call) per
 * request; instead the estimate is the byte length of `request_json` plus a fixed overhead, an
 * upper bound for what requests carry in practice: every text token is at least one byte of its
 * UTF-8 text, and JSON quoting and escaping only add bytes; the overhead covers what the API adds
 * around the text (turn markers, the tool-use preamble of about 300 tokens). It errs high, about
 * fourfold for English text, which costs only reserved room until settlement refunds it. The
 * known exceptions are media the JSON only refers to (an image or document by URL or file id, up
 * to some 1,600 tokens an image and more for a document): such a request is charged its true
 * usage at settlement, but a strict or escrow limit was checked against the smaller estimate.
 */
export const inputOverheadTokens = 1_024;

export function inputTokensUpperBound(requestJsonBytes: number): number {
  return requestJsonBytes + inputOverheadTokens;
}

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
  if (!reachedModel) return new Map([['requests', 0], ['input_tokens', 0], ['output_tokens', 0], ['weighted_tokens', 0]]);
  return new Map([
    ['requests', 1],
    ['input_tokens', usage.input + usage.cacheWrite],
    ['output_tokens', usage.output],
    ['weighted_tokens', weightedTokens(usage, weights)],
  ]);
}
