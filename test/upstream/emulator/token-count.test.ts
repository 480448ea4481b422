// Proves the emulator's tokenizer follows its documented rules, is deterministic, and that a
// prompt's layout counts the same tokens whichever endpoint asks and changes with its content.
import { describe, expect, it } from 'vitest';
import { layOutPrompt } from '../../../src/upstream/emulator/prompt-segments.js';
import type { PromptRequest } from '../../../src/upstream/emulator/request-validation.js';
import {
  countBlockTokens,
  countTextTokens,
  mediaBlockTokens,
  messageOverheadTokens,
  requestOverheadTokens,
  systemOverheadTokens,
  toolsOverheadTokens,
} from '../../../src/upstream/emulator/token-count.js';

const prompt = (overrides: Partial<PromptRequest> = {}): PromptRequest => ({
  model: 'claude-sonnet-4-6',
  messages: [{ role: 'user', content: 'Hello, world' }],
  system: undefined,
  tools: [],
  cacheControl: undefined,
  ...overrides,
});

describe('countTextTokens', () => {
  it('counts words by five letters, marks one each, and lets single spaces ride', () => {
    expect(countTextTokens('')).toBe(0);
    expect(countTextTokens('hello')).toBe(1);
    expect(countTextTokens('Hello, world')).toBe(3);
    expect(countTextTokens('tokenization')).toBe(3);
    expect(countTextTokens('a b c')).toBe(3);
    expect(countTextTokens('x\n\n\n\n\ny')).toBe(3);
    expect(countTextTokens('{"a": 1}')).toBe(7);
  });

  it('gives wide scripts a token per character and emoji a token each', () => {
    expect(countTextTokens('你好世界')).toBe(4);
    expect(countTextTokens('カタカナ')).toBe(4);
    expect(countTextTokens('ok 😀😀')).toBe(3);
    expect(countTextTokens('café')).toBe(1);
  });

  it('classes Latin-1 by the same rules and steps over a surrogate pair as one character', () => {
    expect(countTextTokens('naïve café')).toBe(2);
    expect(countTextTokens('a\u00a0\u00a0\u00a0b')).toBe(3);
    expect(countTextTokens('×÷¿')).toBe(3);
    // Six astral letters are one run of six characters (two tokens), not twelve code units.
    expect(countTextTokens('𝔸'.repeat(6))).toBe(2);
    expect(countTextTokens('a\ud800b')).toBe(3);
    expect(countTextTokens('\udc00\ud800')).toBe(2);
  });

  it('is deterministic and grows with the text', () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(50);
    expect(countTextTokens(text)).toBe(countTextTokens(text));
    expect(countTextTokens(text + text)).toBe(2 * countTextTokens(text));
  });
});

describe('countBlockTokens', () => {
  it('charges media a fixed amount, tool use by name and input, other blocks by their JSON', () => {
    expect(countBlockTokens({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'A'.repeat(100_000) } })).toBe(mediaBlockTokens);
    expect(countBlockTokens({ type: 'tool_use', id: 't1', name: 'get', input: { city: 'Paris' } })).toBe(1 + countTextTokens('{"city":"Paris"}'));
    expect(countBlockTokens({ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'sunny day' }] })).toBe(2);
    expect(countBlockTokens({ type: 'text', text: 'hi', cache_control: { type: 'ephemeral' } })).toBe(1);
  });
});

describe('layOutPrompt', () => {
  it('adds the request, message, system and tool overheads', () => {
    expect(layOutPrompt(prompt()).totalTokens).toBe(requestOverheadTokens + messageOverheadTokens + 3);
    expect(layOutPrompt(prompt({ system: 'Be brief.' })).totalTokens).toBe(requestOverheadTokens + systemOverheadTokens + 3 + messageOverheadTokens + 3);
    const withTool = layOutPrompt(prompt({ tools: [{ name: 'get', input_schema: { type: 'object' } }] })).totalTokens;
    expect(withTool).toBeGreaterThan(requestOverheadTokens + toolsOverheadTokens + messageOverheadTokens + 3);
  });

  it('hashes the model and content but not the cache markers', () => {
    const plain = prompt({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }] });
    const marked = prompt({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello', cache_control: { type: 'ephemeral' } }] }] });
    expect(layOutPrompt(plain).seed).toBe(layOutPrompt(marked).seed);
    expect(layOutPrompt(marked).segments.at(-1)!.cacheTtl).toBe('5m');
    expect(layOutPrompt(prompt({ model: 'claude-haiku-4-5' })).seed).not.toBe(layOutPrompt(prompt()).seed);
    expect(layOutPrompt(prompt({ messages: [{ role: 'user', content: 'Hello, world!' }] })).seed).not.toBe(layOutPrompt(prompt()).seed);
    expect(layOutPrompt(prompt({ messages: [{ role: 'assistant', content: 'Hello, world' }] })).seed).not.toBe(layOutPrompt(prompt()).seed);
  });

  it('puts the top-level cache marker on the last segment', () => {
    const layout = layOutPrompt(prompt({ cacheControl: '1h' }));
    expect(layout.segments.at(-1)!.cacheTtl).toBe('1h');
    expect(layout.segments.slice(0, -1).every((s) => s.cacheTtl === undefined)).toBe(true);
  });
});
