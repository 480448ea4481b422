// Proves the emulator's prompt cache writes a marked prefix on first sight and reads it on the
// next identical request within its lifetime, per account and model, splits tokens across
// several breakpoints, ignores short prefixes, changes nothing until commit, and stays bounded.
import { describe, expect, it } from 'vitest';
import { cacheTtl1hMs, cacheTtl5mMs, PromptCache } from '../../../src/upstream/emulator/prompt-cache.js';
import { layOutPrompt, type PromptSegment } from '../../../src/upstream/emulator/prompt-segments.js';
import type { PromptRequest } from '../../../src/upstream/emulator/request-validation.js';

const longText = (word: string, words: number): string => Array.from({ length: words }, () => word).join(' ');

/** A prompt whose system prompt (about `systemWords` tokens) is marked for caching. */
function segments(question: string, options: { systemWords?: number; model?: string; ttl?: '5m' | '1h' } = {}): readonly PromptSegment[] {
  const request: PromptRequest = {
    model: options.model ?? 'claude-sonnet-4-6',
    system: [
      {
        type: 'text',
        text: longText('rule', options.systemWords ?? 2_000),
        cache_control: { type: 'ephemeral', ...(options.ttl === undefined ? {} : { ttl: options.ttl }) },
      },
    ],
    messages: [{ role: 'user', content: question }],
    tools: [],
    cacheControl: undefined,
  };
  return layOutPrompt(request).segments;
}

const total = (s: readonly PromptSegment[]): number => s.reduce((sum, segment) => sum + segment.tokens, 0);

describe('PromptCache', () => {
  it('writes a prefix on first sight, then reads it; the rest is plain input', () => {
    const cache = new PromptCache();
    const first = cache.plan('acct', segments('What is a carpool?'), 0);
    expect(first.usage.cacheReadInputTokens).toBe(0);
    expect(first.usage.cacheCreationInputTokens).toBeGreaterThan(2_000);
    expect(first.usage.cacheCreation5mInputTokens).toBe(first.usage.cacheCreationInputTokens);
    expect(first.usage.inputTokens + first.usage.cacheCreationInputTokens).toBe(total(segments('What is a carpool?')));
    cache.commit(first, 0);

    const second = cache.plan('acct', segments('And a mesh?'), 1_000);
    expect(second.usage.cacheReadInputTokens).toBe(first.usage.cacheCreationInputTokens);
    expect(second.usage.cacheCreationInputTokens).toBe(0);
    expect(second.usage.inputTokens).toBe(total(segments('And a mesh?')) - second.usage.cacheReadInputTokens);
  });

  it('changes nothing until the plan is committed', () => {
    const cache = new PromptCache();
    cache.plan('acct', segments('q'), 0);
    expect(cache.plan('acct', segments('q'), 0).usage.cacheReadInputTokens).toBe(0);
    expect(cache.size).toBe(0);
  });

  it('keeps caches apart per account and per model', () => {
    const cache = new PromptCache();
    cache.commit(cache.plan('a', segments('q'), 0), 0);
    expect(cache.plan('b', segments('q'), 0).usage.cacheReadInputTokens).toBe(0);
    expect(cache.plan('a', segments('q', { model: 'claude-haiku-4-5' }), 0).usage.cacheReadInputTokens).toBe(0);
    expect(cache.plan('a', segments('q'), 0).usage.cacheReadInputTokens).toBeGreaterThan(0);
  });

  it('expires after five minutes unless read, and each read refreshes the lifetime', () => {
    const cache = new PromptCache();
    cache.commit(cache.plan('a', segments('q'), 0), 0);
    const read = cache.plan('a', segments('q'), cacheTtl5mMs - 1);
    expect(read.usage.cacheReadInputTokens).toBeGreaterThan(0);
    cache.commit(read, cacheTtl5mMs - 1);
    expect(cache.plan('a', segments('q'), 2 * cacheTtl5mMs - 2).usage.cacheReadInputTokens).toBeGreaterThan(0);
    expect(cache.plan('a', segments('q'), 2 * cacheTtl5mMs - 1).usage.cacheReadInputTokens).toBe(0);
  });

  it('keeps a one-hour prefix for an hour and bills its write as such', () => {
    const cache = new PromptCache();
    const write = cache.plan('a', segments('q', { ttl: '1h' }), 0);
    expect(write.usage.cacheCreation1hInputTokens).toBe(write.usage.cacheCreationInputTokens);
    cache.commit(write, 0);
    expect(cache.plan('a', segments('q', { ttl: '1h' }), cacheTtl1hMs - 1).usage.cacheReadInputTokens).toBeGreaterThan(0);
  });

  it('does not cache a prefix shorter than the minimum', () => {
    const cache = new PromptCache(1_024);
    const short = cache.plan('a', segments('q', { systemWords: 500 }), 0);
    expect(short.usage.cacheCreationInputTokens).toBe(0);
    expect(short.writes).toHaveLength(0);
  });

  it('reads the longest cached prefix and writes the rest up to the last breakpoint', () => {
    const cache = new PromptCache(0);
    /** A conversation of `turns` turns with a cache marker at the end of each turn listed in `marked`. */
    const conversation = (turns: number, marked: readonly number[]): PromptRequest => ({
      model: 'claude-sonnet-4-6',
      system: undefined,
      tools: [],
      cacheControl: undefined,
      messages: Array.from({ length: turns }, (_, i) => ({
        role: i % 2 === 0 ? ('user' as const) : ('assistant' as const),
        content: [{ type: 'text', text: longText(`turn${i}`, 50), ...(marked.includes(i) ? { cache_control: { type: 'ephemeral' } } : {}) }],
      })),
    });
    const first = layOutPrompt(conversation(1, [0]));
    cache.commit(cache.plan('a', first.segments, 0), 0);
    const third = layOutPrompt(conversation(3, [0, 2]));
    const plan = cache.plan('a', third.segments, 0);
    expect(plan.usage.cacheReadInputTokens).toBe(first.totalTokens);
    expect(plan.usage.cacheCreationInputTokens).toBe(third.totalTokens - first.totalTokens);
    expect(plan.usage.inputTokens).toBe(0);
    // Without a marker where the cached prefix ends, the cache is not looked up there.
    expect(cache.plan('a', layOutPrompt(conversation(3, [2])).segments, 0).usage.cacheReadInputTokens).toBe(0);
  });

  it('holds at most its bound, dropping the least recently used', () => {
    const cache = new PromptCache(0, 2);
    const plan = (q: string) => cache.plan('a', segments(q, { systemWords: 10 + q.length }), 0);
    cache.commit(plan('a'), 0);
    cache.commit(plan('bb'), 0);
    cache.commit(cache.plan('a', segments('a', { systemWords: 11 }), 0), 0);
    cache.commit(plan('ccc'), 0);
    expect(cache.size).toBe(2);
    expect(cache.evictions).toBe(1);
    expect(cache.plan('a', segments('a', { systemWords: 11 }), 0).usage.cacheReadInputTokens).toBeGreaterThan(0);
    expect(cache.plan('a', segments('bb', { systemWords: 12 }), 0).usage.cacheReadInputTokens).toBe(0);
  });
});
