// Proves a streamed Anthropic message is rebuilt block by block with its cumulative usage, that
// usage is known at every point of a cut-off stream, and that malformed or out-of-order events
// and mid-stream errors end the stream with a typed error.
import { describe, expect, it } from 'vitest';
import { MessageStream } from '../../src/upstream/message-stream.js';
import { type SseEvent, SseParser } from '../../src/upstream/sse-parser.js';

const ev = (event: string, data: unknown): SseEvent => ({ event, data: JSON.stringify(data), id: undefined });

const stream: readonly SseEvent[] = [
  ev('message_start', {
    type: 'message_start',
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [],
      stop_reason: null,
      usage: { input_tokens: 25, output_tokens: 1, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000 },
    },
  }),
  ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  ev('ping', { type: 'ping' }),
  ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
  ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ', world' } }),
  ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
  ev('content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } }),
  ev('content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": ' } }),
  ev('content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } }),
  ev('content_block_stop', { type: 'content_block_stop', index: 1 }),
  ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } }),
  ev('message_stop', { type: 'message_stop' }),
];

function feed(events: readonly SseEvent[]): MessageStream {
  const message = new MessageStream();
  for (const event of events) {
    const fed = message.onEvent(event);
    if (!fed.ok) throw new Error(JSON.stringify(fed.error));
  }
  return message;
}

describe('MessageStream', () => {
  it('rebuilds the message: blocks, tool input, stop reason and usage', () => {
    const message = feed(stream).message();
    expect(message).toMatchObject({
      id: 'msg_1',
      model: 'claude-sonnet-4-5',
      stopReason: 'tool_use',
      usage: { input: 25, output: 42, cacheWrite: 100, cacheRead: 2000 },
    });
    expect(message?.content.map((b) => [b.type, b.text])).toEqual([
      ['text', 'Hello, world'],
      ['tool_use', '{"city": "Paris"}'],
    ]);
    expect(message?.content[1]?.start).toMatchObject({ id: 'toolu_1', name: 'get_weather' });
  });

  it('knows the usage at every cut: what a stream stopped early is charged', () => {
    const seen = [];
    const message = new MessageStream();
    for (const event of stream) {
      message.onEvent(event);
      seen.push(message.usage.output);
    }
    expect(seen[0]).toBe(1);
    expect(seen.at(-1)).toBe(42);
    // Cumulative counts never go down, and a message_delta that repeats them changes nothing.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    expect(message.message()?.usage.input).toBe(25);
  });

  it('parses from raw SSE bytes through the SSE parser', () => {
    const text = stream.map((e) => `event: ${e.event}\ndata: ${e.data}\n\n`).join('');
    const parser = new SseParser();
    const message = new MessageStream();
    const parsed = parser.push(new TextEncoder().encode(text));
    if (!parsed.ok) throw new Error(parsed.error.kind);
    for (const event of parsed.value) expect(message.onEvent(event).ok).toBe(true);
    expect(message.done).toBe(true);
    expect(message.message()?.content[0]?.text).toBe('Hello, world');
  });

  it('ends with an upstream error on an error event, keeping the usage so far', () => {
    const message = feed(stream.slice(0, 4));
    const failed = message.onEvent(ev('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    expect(failed).toEqual({ ok: false, error: { kind: 'upstream-error', errorType: 'overloaded_error', message: 'Overloaded' } });
    expect(message.done).toBe(true);
    expect(message.message()).toBeUndefined();
    expect(message.usage).toEqual({ input: 25, output: 1, cacheWrite: 100, cacheRead: 2000 });
  });

  it('ignores event and delta types it does not know', () => {
    const message = feed([
      stream[0]!,
      ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }),
      ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Hmm.' } }),
      ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'abc' } }),
      ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'future_delta', stuff: 1 } }),
      ev('some_future_event', { type: 'some_future_event' }),
      ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
      ev('message_stop', { type: 'message_stop' }),
    ]);
    expect(message.message()?.content).toEqual([{ type: 'thinking', text: 'Hmm.', start: { type: 'thinking', thinking: '' } }]);
  });

  const bad: [string, readonly SseEvent[]][] = [
    ['data that is not JSON', [{ event: 'message_start', data: '{"type":', id: undefined }]],
    ['a block before message_start', [stream[1]!]],
    [
      'a block index out of order',
      [stream[0]!, ev('content_block_start', { type: 'content_block_start', index: 3, content_block: { type: 'text', text: '' } })],
    ],
    ['a delta for a stopped block', [...stream.slice(0, 6), stream[3]!]],
    ['a negative token count', [ev('message_start', { type: 'message_start', message: { id: 'm', usage: { input_tokens: -1 } } })]],
    ['an event after message_stop', [...stream, stream[2]!]],
    ['a second message_start', [stream[0]!, stream[0]!]],
  ];
  for (const [what, events] of bad) {
    it(`refuses ${what} with a bad-event error, and everything after it`, () => {
      const message = new MessageStream();
      const results = events.map((event) => message.onEvent(event));
      const last = results.at(-1)!;
      expect(last.ok ? 'ok' : last.error.kind).toBe('bad-event');
      expect(message.onEvent(stream[2]!).ok).toBe(false);
    });
  }
});
