import { assert, isCount } from '../core/assert.js';
import type { TokenWeights } from '../mesh/policy/policy-schema.js';

/**
 * Weighted tokens (DESIGN.md §3): input, output, cache-write and cache-read tokens are counted
 * separately and combined by the tenant's per-mille weights, never as a flat sum. Amounts are
 * whole units, rounded up, so a weight below 1 never turns a token into nothing.
 */
export interface TokenUsage {
  readonly input: number;
  readonly output: number;
  readonly cacheWrite: number;
  readonly cacheRead: number;
}

/** No tokens at all: what a call that never reached a model is charged. */
export const zeroUsage: TokenUsage = Object.freeze({ input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });

export function weightedTokens(usage: TokenUsage, weights: TokenWeights): number {
  for (const value of [usage.input, usage.output, usage.cacheWrite, usage.cacheRead]) assert(isCount(value), 'token counts are counts');
  const perMille = usage.input * weights.input + usage.output * weights.output + usage.cacheWrite * weights.cacheWrite + usage.cacheRead * weights.cacheRead;
  return Math.ceil(perMille / 1000);
}

/**
 * The reservation for a request before it runs: its counted input tokens and `max_tokens` of
 * output. Which input tokens will be cache writes or reads is unknown until the upstream
 * answers, so every input token is priced at the dearest input weight: the estimate is an
 * upper bound of the final charge, and settlement only ever refunds.
 */
export function estimateWeightedTokens(inputTokens: number, maxTokens: number, weights: TokenWeights): number {
  assert(isCount(inputTokens) && isCount(maxTokens), 'token counts are counts');
  const inputWeight = Math.max(weights.input, weights.cacheWrite, weights.cacheRead);
  return Math.ceil((inputTokens * inputWeight + maxTokens * weights.output) / 1000);
}
