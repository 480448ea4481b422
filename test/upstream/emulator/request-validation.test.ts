// Proves the emulator refuses malformed Messages and count_tokens bodies with an error that names
// the bad field by its dotted path, and accepts well-formed ones with the fields it reads.
import { describe, expect, it } from 'vitest';
import { emulatorCacheBreakpointsMax, emulatorMaxTokensMax } from '../../../src/core/limits.js';
import { invalidRequestMessage, validateCountTokensRequest, validateMessagesRequest } from '../../../src/upstream/emulator/request-validation.js';

const valid = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] };

function fieldOf(body: unknown): string {
  const result = validateMessagesRequest(body);
  if (result.ok) throw new Error('expected the body to be refused');
  return result.error.field;
}

describe('validateMessagesRequest', () => {
  it('accepts a minimal body and reads its fields', () => {
    const result = validateMessagesRequest({ ...valid, stream: true, stop_sequences: ['END'], metadata: { user_id: 'u1' }, system: [{ type: 'text', text: 'sys' }] });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({ model: 'claude-sonnet-4-6', maxTokens: 100, stream: true, stopSequences: ['END'], userId: 'u1' });
    expect(result.value.system).toEqual([{ type: 'text', text: 'sys' }]);
  });

  it('lets fields it does not read pass', () => {
    expect(validateMessagesRequest({ ...valid, thinking: { type: 'adaptive' }, tool_choice: { type: 'auto' }, output_config: {} }).ok).toBe(true);
  });

  it('names each bad field', () => {
    expect(fieldOf('nope')).toBe('body');
    expect(fieldOf({ ...valid, model: undefined })).toBe('model');
    expect(fieldOf({ ...valid, model: 7 })).toBe('model');
    expect(fieldOf({ ...valid, max_tokens: undefined })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: 0 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: 1.5 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: emulatorMaxTokensMax + 1 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, messages: [] })).toBe('messages');
    expect(fieldOf({ ...valid, messages: 'hi' })).toBe('messages');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: 'a' }, { role: 'robot', content: 'b' }] })).toBe('messages.1.role');
    expect(fieldOf({ ...valid, messages: [{ role: 'user' }] })).toBe('messages.0.content');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: '' }] })).toBe('messages.0.content');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text' }] }] })).toBe('messages.0.content.1.text');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ text: 'a' }] }] })).toBe('messages.0.content.0.type');
    expect(fieldOf({ ...valid, system: [{ type: 'image' }] })).toBe('system.0.type');
    expect(fieldOf({ ...valid, system: 5 })).toBe('system');
    expect(fieldOf({ ...valid, stream: 'yes' })).toBe('stream');
    expect(fieldOf({ ...valid, metadata: { user_id: 5 } })).toBe('metadata.user_id');
    expect(fieldOf({ ...valid, stop_sequences: ['ok', ''] })).toBe('stop_sequences.1');
    expect(fieldOf({ ...valid, temperature: 1.5 })).toBe('temperature');
    expect(fieldOf({ ...valid, top_k: -1 })).toBe('top_k');
    expect(fieldOf({ ...valid, tools: [{ input_schema: {} }] })).toBe('tools.0.name');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ type: 'text', text: 'a', cache_control: { type: 'forever' } }] }] })).toBe('messages.0.content.0.cache_control.type');
    expect(fieldOf({ ...valid, cache_control: { type: 'ephemeral', ttl: '2h' } })).toBe('cache_control.ttl');
  });

  it(`allows at most ${emulatorCacheBreakpointsMax} cache breakpoints`, () => {
    const marked = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ type: 'text', text: `b${i}`, cache_control: { type: 'ephemeral' } }));
    expect(validateMessagesRequest({ ...valid, messages: [{ role: 'user', content: marked(emulatorCacheBreakpointsMax) }] }).ok).toBe(true);
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: marked(emulatorCacheBreakpointsMax) }], cache_control: { type: 'ephemeral' } })).toBe('cache_control');
  });

  it('formats the message as the API does: the field, a colon, the reason', () => {
    const result = validateMessagesRequest({ ...valid, max_tokens: 'many' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(invalidRequestMessage(result.error)).toBe('max_tokens: Input should be a valid integer');
  });
});

describe('validateCountTokensRequest', () => {
  it('needs no max_tokens but checks the prompt', () => {
    expect(validateCountTokensRequest({ model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'Hi' }] }).ok).toBe(true);
    const result = validateCountTokensRequest({ model: 'claude-sonnet-4-6' });
    expect(result.ok ? undefined : result.error.field).toBe('messages');
  });
});
