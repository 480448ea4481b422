import { assert, isCount } from '../core/assert.js';

/**
 * List prices of the Claude models, for the `costMicros` of a ledger row.
 *
 * Source: Anthropic's pricing page, https://platform.claude.com/docs/en/about-claude/pricing
 * ("Model pricing", "Base input tokens" column), read in December 2026. Prices are in US cents
 * per million input tokens, so every listed price is an integer.
 *
 * Why one price per model is enough. For every model listed here the page prices output at 5×
 * the input price, 5-minute cache writes at 1.25× and cache hits at 0.1×: exactly the default
 * token weights of DESIGN.md §3 (`defaultTokenWeights`: 1000, 5000, 1250, 100 per mille). So
 * tokens weighted with the default weights, times the input price, are the list price of the
 * call. Models whose prices break those ratios are left out on purpose (Haiku 3's cache prices
 * are 1.2× and 0.12×; Opus 5.5 and Sonnet 5.5 read the cache at 0.05×): a price from the input
 * rate alone would misstate them, and an unknown price (null) is honest where a wrong one is not.
 * One-hour cache writes (2× on the page) are not told apart by the upstream's usage report and
 * are priced as 5-minute writes.
 */
const listPriceCentsPerMillion: ReadonlyMap<string, number> = new Map([
  ['claude-opus-4-8', 500],
  ['claude-opus-4-7', 500],
  ['claude-opus-4-6', 500],
  ['claude-opus-4-5', 500],
  ['claude-opus-4-1', 1500],
  ['claude-opus-4-0', 1500],
  ['claude-opus-4', 1500],
  ['claude-sonnet-4-6', 300],
  ['claude-sonnet-4-5', 300],
  ['claude-sonnet-4-0', 300],
  ['claude-sonnet-4', 300],
  ['claude-3-7-sonnet', 300],
  ['claude-haiku-4-5', 100],
  ['claude-3-5-haiku', 80],
]);

/** A dated snapshot id (`claude-sonnet-4-5-20250929`) is priced as its model (`claude-sonnet-4-5`). */
const datedSuffix = /-\d{8}$/;

/** The model's list price in US cents per million input tokens, or null for a model not listed. */
export function listPriceCentsPerMillionOf(model: string): number | null {
  return listPriceCentsPerMillion.get(model) ?? listPriceCentsPerMillion.get(model.replace(datedSuffix, '')) ?? null;
}

/**
 * What `weightedTokens` cost at the model's list price, in micro-dollars (millionths of a US
 * dollar), rounded to the nearest; null for a model without a known price.
 *
 * Pass tokens weighted with the default weights (`weightedTokens(usage, defaultTokenWeights)`,
 * src/admission/estimate.ts): those carry the list price ratios. A tenant's own weights may
 * differ from them, and tokens under those weights would give a cost in the tenant's units, not
 * in dollars.
 *
 * A cent per million tokens is a hundredth of a micro-dollar per token, hence the division.
 */
export function costMicrosOf(model: string, weightedTokens: number): number | null {
  assert(isCount(weightedTokens), 'weighted tokens are a count');
  const cents = listPriceCentsPerMillionOf(model);
  if (cents === null) return null;
  return Math.round((weightedTokens * cents) / 100);
}
