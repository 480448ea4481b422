/**
 * List prices of Claude models for the usage ledger's cost column, in US dollars per million
 * input tokens, from Anthropic's pricing page (https://docs.anthropic.com/en/docs/about-claude/pricing,
 * "Model pricing"). Only the input price is needed: weighted tokens (DESIGN.md §3) already carry
 * the other kinds at their price ratios (output 5×, cache write 1.25×, cache read 0.1×), so
 * cost = weighted tokens × input price per token. A tenant whose weights are not price ratios
 * gets a cost that follows its weights, which is what it is billed by.
 *
 * Ids are matched by prefix, most specific first, so dated ids (`claude-sonnet-4-5-20250929`) and
 * aliases (`claude-sonnet-4-5`) find their family. A model not listed has no cost (null), never a
 * guessed one.
 */
const inputDollarsPerMillion: readonly (readonly [string, number])[] = [
  ['claude-opus-4-5', 5],
  ['claude-opus-4-1', 15],
  ['claude-opus-4', 15],
  ['claude-sonnet-4', 3],
  ['claude-3-7-sonnet', 3],
  ['claude-3-5-sonnet', 3],
  ['claude-haiku-4-5', 1],
  ['claude-3-5-haiku', 0.8],
  ['claude-3-haiku', 0.25],
  ['claude-3-opus', 15],
];

/** Micro-dollars for `weightedTokens` of `model`, rounded; null for a model without a listed price. */
export function costMicrosOf(model: string, weightedTokens: number): number | null {
  for (const [prefix, dollars] of inputDollarsPerMillion) {
    // Dollars per million tokens are micro-dollars per token.
    if (model.startsWith(prefix)) return Math.round(weightedTokens * dollars);
  }
  return null;
}
