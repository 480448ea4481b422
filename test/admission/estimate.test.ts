// Proves weighted tokens follow the tenant's weights and an estimate bounds any final charge.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { estimateWeightedTokens, weightedTokens } from '../../src/admission/estimate.js';
import { defaultTokenWeights } from '../../src/mesh/policy/policy-schema.js';
import { checkProperty } from '../support/property.js';

describe('weighted tokens', () => {
  it('prices each kind by its weight, rounding up', () => {
    // 1000 input × 1 + 200 output × 5 + 400 cache write × 1.25 + 1000 cache read × 0.1
    expect(weightedTokens({ input: 1000, output: 200, cacheWrite: 400, cacheRead: 1000 }, defaultTokenWeights)).toBe(1000 + 1000 + 500 + 100);
    expect(weightedTokens({ input: 0, output: 0, cacheWrite: 0, cacheRead: 1 }, defaultTokenWeights)).toBe(1);
    expect(weightedTokens({ input: 0, output: 0, cacheWrite: 0, cacheRead: 0 }, defaultTokenWeights)).toBe(0);
  });

  it('estimates at least what any split of the input into cache kinds and any output up to max_tokens costs', () => {
    checkProperty(
      fc.property(fc.nat(200_000), fc.nat(64_000), fc.nat(), fc.nat(), fc.nat(), (input, maxTokens, a, b, out) => {
        const cacheWrite = input === 0 ? 0 : a % (input + 1);
        const cacheRead = input - cacheWrite === 0 ? 0 : b % (input - cacheWrite + 1);
        const usage = { input: input - cacheWrite - cacheRead, cacheWrite, cacheRead, output: maxTokens === 0 ? 0 : out % (maxTokens + 1) };
        expect(estimateWeightedTokens(input, maxTokens, defaultTokenWeights)).toBeGreaterThanOrEqual(weightedTokens(usage, defaultTokenWeights));
      }),
    );
  });
});
