// Proves the cost of a ledger row: weighted tokens at the model's list input price, dated ids
// priced as their model, and no price (null) for a model the table does not know.
import { describe, expect, it } from 'vitest';
import { weightedTokens } from '../../src/admission/estimate.js';
import { costMicrosOf, listPriceCentsPerMillionOf } from '../../src/ledger/model-prices.js';
import { defaultTokenWeights } from '../../src/mesh/policy/policy-schema.js';

describe('model prices', () => {
  it('prices a million weighted tokens at the list input price', () => {
    expect(costMicrosOf('claude-opus-4-1', 1_000_000)).toBe(15_000_000);
    expect(costMicrosOf('claude-opus-4-6', 1_000_000)).toBe(5_000_000);
    expect(costMicrosOf('claude-sonnet-4-5', 1_000_000)).toBe(3_000_000);
    expect(costMicrosOf('claude-haiku-4-5', 1_000_000)).toBe(1_000_000);
    expect(costMicrosOf('claude-3-5-haiku', 1_000_000)).toBe(800_000);
  });

  it('gives the list price of a call when the tokens carry the default weights', () => {
    // Sonnet 4.6 lists $3 input, $15 output, $3.75 cache writes, $0.30 cache reads per million.
    const usage = { input: 1_000, output: 2_000, cacheWrite: 4_000, cacheRead: 10_000 };
    const listMicros = 1_000 * 3 + 2_000 * 15 + 4_000 * 3.75 + 10_000 * 0.3;
    expect(costMicrosOf('claude-sonnet-4-6', weightedTokens(usage, defaultTokenWeights))).toBe(listMicros);
  });

  it('prices a dated snapshot id as its model and rounds to whole micro-dollars', () => {
    expect(listPriceCentsPerMillionOf('claude-sonnet-4-5-20250929')).toBe(300);
    expect(listPriceCentsPerMillionOf('claude-opus-4-20250514')).toBe(1500);
    expect(listPriceCentsPerMillionOf('claude-3-5-haiku-20241022')).toBe(80);
    expect(costMicrosOf('claude-3-5-haiku-20241022', 3)).toBe(2); // 2.4 micro-dollars
    expect(costMicrosOf('claude-3-5-haiku', 5)).toBe(4);
  });

  it('has no price for a model it does not list, nor for a near miss of one it does', () => {
    expect(costMicrosOf('claude-nonexistent-1', 1_000)).toBeNull();
    expect(costMicrosOf('claude-opus-4-9', 1_000)).toBeNull();
    expect(costMicrosOf('claude-sonnet-4-6-latest', 1_000)).toBeNull();
    expect(costMicrosOf('gpt-4o', 1_000)).toBeNull();
  });
});
