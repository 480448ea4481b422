// Proves the one estimated charge: a cancelled stream's output is ceil(relayed content bytes / 4)
// over UTF-8 (text, thinking and tool-input deltas, multi-byte text counted in bytes), its input as
// message_start reported it, and a message_delta's reported output replaces the estimate.
import { describe, expect, it } from 'vitest';
import { MessageStream } from '../../src/upstream/message-stream.js';
import { relayedBytesPerToken, relayedUsage } from '../../src/upstream/relayed-usage.js';
import type { SseEvent } from '../../src/upstream/sse-parser.js';

const event = (name: string, data: unknown): SseEvent => ({ event: name, data: JSON.stringify(data), id: undefined });
const start = event('message_start', {
  type: 'message_start',
  message: { id: 'msg_1', model: 'm', usage: { input_tokens: 12, output_tokens: 1, cache_creation_input_tokens: 3, cache_read_input_tokens: 40 } },
});

function fed(...events: SseEvent[]): MessageStream {
  const stream = new MessageStream();
  for (const e of events) expect(stream.onEvent(e).ok).toBe(true);
  return stream;
}

describe('relayedUsage', () => {
  it('counts the content bytes of every kind of delta, multi-byte text in UTF-8 bytes', () => {
    const stream = fed(
      start,
      event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }),
      event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } }),
      event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'not-content' } }),
      event('content_block_stop', { type: 'content_block_stop', index: 0 }),
      event('content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }),
      event('content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Größe 相乗り 🚗' } }),
      event('content_block_stop', { type: 'content_block_stop', index: 1 }),
      event('content_block_start', { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 't', name: 'n', input: {} } }),
      event('content_block_delta', { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"a":1}' } }),
    );
    const bytes = 3 + new TextEncoder().encode('Größe 相乗り 🚗').length + 7;
    expect(stream.contentBytes).toBe(bytes);
    expect(stream.outputTokensReported).toBe(false);
    expect(relayedUsage(stream, bytes)).toEqual({
      usage: { input: 12, output: Math.ceil(bytes / relayedBytesPerToken), cacheWrite: 3, cacheRead: 40 },
      estimated: true,
    });
    // Only what was relayed counts, not all that was read; message_start's placeholder never does.
    expect(relayedUsage(stream, 0)).toEqual({ usage: { input: 12, output: 0, cacheWrite: 3, cacheRead: 40 }, estimated: true });
    expect(relayedUsage(stream, 9).usage.output).toBe(3);
  });

  it("takes a message_delta's output count as exact, not an estimate", () => {
    const stream = fed(
      start,
      event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hello there' } }),
      event('content_block_stop', { type: 'content_block_stop', index: 0 }),
      event('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }),
    );
    expect(stream.outputTokensReported).toBe(true);
    expect(relayedUsage(stream, 0)).toEqual({ usage: { input: 12, output: 2, cacheWrite: 3, cacheRead: 40 }, estimated: false });
  });
});
