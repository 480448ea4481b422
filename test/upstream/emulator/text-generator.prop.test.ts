// Proves, for any seed, prompt, length range, max_tokens and stop sequences, that a generated
// answer respects max_tokens, that its pieces make its text, that its stop reason agrees with
// how it ended, and that text without a stop sequence counts as many tokens as it bills.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emulatorOutputTokensMax } from '../../../src/core/limits.js';
import { generateText } from '../../../src/upstream/emulator/text-generator.js';
import { countTextTokens } from '../../../src/upstream/emulator/token-count.js';
import { checkProperty } from '../../support/property.js';

const arbOptions = fc
  .record({
    seed: fc.nat(),
    promptSeed: fc.nat(),
    maxTokens: fc.integer({ min: 1, max: 400 }),
    lengthMin: fc.integer({ min: 1, max: 300 }),
    extra: fc.integer({ min: 0, max: 100 }),
    stopSequences: fc.array(fc.constantFrom('.', ',', ' the', 'Pool', 'xyz', 'e'), { maxLength: 2 }),
  })
  .map(({ extra, ...rest }) => ({ ...rest, lengthMax: Math.min(rest.lengthMin + extra, emulatorOutputTokensMax) }));

describe('generateText properties', () => {
  it('respects max_tokens, its pieces and its stop reason', () => {
    checkProperty(
      fc.property(arbOptions, (options) => {
        const answer = generateText(options);
        expect(answer.outputTokens).toBeLessThanOrEqual(options.maxTokens);
        expect(answer.outputTokens).toBeLessThanOrEqual(options.lengthMax);
        expect(answer.pieces.join('')).toBe(answer.text);
        switch (answer.stopReason) {
          case 'max_tokens':
            expect(answer.outputTokens).toBe(options.maxTokens);
            break;
          case 'end_turn':
            expect(answer.outputTokens).toBeGreaterThanOrEqual(options.lengthMin);
            expect(answer.text.endsWith('.')).toBe(true);
            break;
          case 'stop_sequence':
            expect(options.stopSequences).toContain(answer.stopSequence);
            break;
        }
        if (answer.stopReason !== 'stop_sequence') {
          expect(answer.stopSequence).toBeNull();
          expect(countTextTokens(answer.text)).toBe(answer.outputTokens);
          for (const sequence of options.stopSequences) expect(answer.text.includes(sequence)).toBe(false);
        }
      }),
      300,
    );
  });
});
