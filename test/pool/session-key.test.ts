// Proves session keys come from metadata.user_id first, else the cached prompt prefix, else none.
// From the prompt the key is the stable head of the cached prefix: the same across turns of one
// conversation, different between conversations.
import { describe, expect, it } from 'vitest';
import { sessionKeyDepthMax } from '../../src/core/limits.js';
import { sessionKeyOf, sessionKeySource } from '../../src/pool/session-key.js';

const cached = { type: 'ephemeral' };
const system = [{ type: 'text', text: 'You are a careful assistant.', cache_control: cached }];

/** Turn n of a conversation that opens with `opening`, its breakpoint on the newest message. */
function turn(opening: string, n: number): unknown {
  const messages: unknown[] = [{ role: 'user', content: opening }];
  for (let i = 1; i < n; i++) {
    messages.push({ role: 'assistant', content: `answer ${i}` });
    messages.push({ role: 'user', content: [{ type: 'text', text: `follow-up ${i}`, cache_control: cached }] });
  }
  if (n === 1) messages[0] = { role: 'user', content: [{ type: 'text', text: opening, cache_control: cached }] };
  return { model: 'claude', max_tokens: 100, system, messages };
}

describe('sessionKeyOf', () => {
  it('prefers metadata.user_id', () => {
    const key = sessionKeyOf({ metadata: { user_id: 'user_abc_session_1' }, messages: [] });
    expect(key).toBeDefined();
    expect(sessionKeySource(key!)).toBe('user');
    expect(sessionKeyOf({ metadata: { user_id: 'user_abc_session_1' }, system, messages: [] })).toBe(key);
    expect(sessionKeyOf({ metadata: { user_id: 'user_abc_session_2' } })).not.toBe(key);
  });

  it('keeps one key across the turns of a conversation whose breakpoint moves forward', () => {
    const first = sessionKeyOf(turn('plan my trip', 1));
    expect(first).toBeDefined();
    expect(sessionKeySource(first!)).toBe('prefix');
    for (let n = 2; n <= 5; n++) expect(sessionKeyOf(turn('plan my trip', n))).toBe(first);
    expect(sessionKeyOf(turn('write a poem', 3))).not.toBe(first);
  });

  it('shares a key between requests that cache only the same system prompt, and ignores uncached tails', () => {
    const a = sessionKeyOf({ system: [...system, { type: 'text', text: 'today is Monday' }], messages: [{ role: 'user', content: 'hi' }] });
    const b = sessionKeyOf({ system: [...system, { type: 'text', text: 'today is Tuesday' }], messages: [{ role: 'user', content: 'bye' }] });
    expect(a).toBeDefined();
    expect(a).toBe(b);
    const other = sessionKeyOf({ system: [{ type: 'text', text: 'You are a pirate.', cache_control: cached }], messages: [] });
    expect(other).not.toBe(a);
  });

  it('reads string content as the text block it stands for, and ignores cache_control details', () => {
    const asString = sessionKeyOf({
      system,
      messages: [
        { role: 'user', content: 'hello' },
        { role: 'user', content: [{ type: 'text', text: 'x', cache_control: cached }] },
      ],
    });
    const asBlocks = sessionKeyOf({
      system,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'hello' }] },
        { role: 'user', content: [{ type: 'text', text: 'y', cache_control: { type: 'ephemeral', ttl: '1h' } }] },
      ],
    });
    expect(asString).toBe(asBlocks);
  });

  it('counts tools as part of the prefix', () => {
    const tool = (name: string): unknown => ({ name, input_schema: { type: 'object' }, cache_control: cached });
    const a = sessionKeyOf({ tools: [tool('search')], messages: [] });
    const b = sessionKeyOf({ tools: [tool('fetch')], messages: [] });
    expect(a).toBeDefined();
    expect(a).not.toBe(b);
  });

  it('gives no key without caching, for non-objects, and for bodies nested past the bound', () => {
    expect(sessionKeyOf({ system: 'plain', messages: [{ role: 'user', content: 'hi' }] })).toBeUndefined();
    expect(sessionKeyOf(null)).toBeUndefined();
    expect(sessionKeyOf('text')).toBeUndefined();
    expect(sessionKeyOf({ metadata: { user_id: '' } })).toBeUndefined();
    let deep: unknown = 'leaf';
    for (let i = 0; i <= sessionKeyDepthMax; i++) deep = { nested: deep };
    expect(sessionKeyOf({ system: [{ type: 'text', text: 'x', cache_control: cached, extra: deep }] })).toBeUndefined();
    expect(sessionKeyOf({ system: [{ type: 'text', text: 'x', cache_control: cached, extra: { nested: 'shallow' } }] })).toBeDefined();
  });
});
