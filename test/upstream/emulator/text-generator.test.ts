// Proves the emulator's generated answers are deterministic in seed and prompt, honour max_tokens
// and stop sequences with the right stop reasons, and count as many tokens as they bill.
import { describe, expect, it } from 'vitest';
import { generateText, type GenerationOptions } from '../../../src/upstream/emulator/text-generator.js';
import { countTextTokens } from '../../../src/upstream/emulator/token-count.js';

const base: GenerationOptions = { seed: 1, promptSeed: 12345, maxTokens: 1_000, lengthMin: 40, lengthMax: 80, stopSequences: [] };

describe('generateText', () => {
  it('gives the same answer for the same seed and prompt, another for another', () => {
    expect(generateText(base)).toEqual(generateText(base));
    expect(generateText({ ...base, promptSeed: 12346 }).text).not.toBe(generateText(base).text);
    expect(generateText({ ...base, seed: 2 }).text).not.toBe(generateText(base).text);
  });

  it('ends on its own with end_turn and a full stop, within its length range', () => {
    const answer = generateText(base);
    expect(answer.stopReason).toBe('end_turn');
    expect(answer.text.endsWith('.')).toBe(true);
    expect(answer.outputTokens).toBeGreaterThanOrEqual(40);
    expect(answer.outputTokens).toBeLessThanOrEqual(80);
    expect(countTextTokens(answer.text)).toBe(answer.outputTokens);
  });

  it('is cut by max_tokens as a prefix of the whole answer', () => {
    const whole = generateText(base);
    const cut = generateText({ ...base, maxTokens: 10 });
    expect(cut.stopReason).toBe('max_tokens');
    expect(cut.outputTokens).toBe(10);
    expect(whole.text.startsWith(cut.text)).toBe(true);
  });

  it('stops before the first stop sequence and bills the tokens that produced it', () => {
    const whole = generateText(base);
    const answer = generateText({ ...base, stopSequences: ['ZZZ', '.'] });
    expect(answer.stopReason).toBe('stop_sequence');
    expect(answer.stopSequence).toBe('.');
    expect(answer.text).toBe(whole.text.slice(0, whole.text.indexOf('.')));
    expect(answer.outputTokens).toBe(answer.pieces.length + 1);
  });

  it('finds a stop sequence that spans pieces', () => {
    const whole = generateText(base);
    const spanning = whole.text.slice(3, 12);
    const answer = generateText({ ...base, stopSequences: [spanning] });
    expect(answer.stopReason).toBe('stop_sequence');
    expect(answer.text).toBe(whole.text.slice(0, 3));
  });
});
