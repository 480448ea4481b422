// Proves the SSE parser reads the event stream format as the standard defines it: line endings,
// comments, multi-line data, ids, a truncated last event dropped, and bounded lines and events.
import { describe, expect, it } from 'vitest';
import { type SseEvent, SseParser } from '../../src/upstream/sse-parser.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function parseAll(chunks: readonly string[]): SseEvent[] {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  for (const chunk of chunks) {
    const pushed = parser.push(bytes(chunk));
    if (!pushed.ok) throw new Error(pushed.error.kind);
    events.push(...pushed.value);
  }
  const ended = parser.end();
  if (!ended.ok) throw new Error(ended.error.kind);
  return [...events, ...ended.value];
}

describe('SseParser', () => {
  it('reads Anthropic-style events, with the event name and JSON data', () => {
    const stream =
      'event: message_start\ndata: {"type":"message_start"}\n\n' +
      'event: ping\ndata: {"type": "ping"}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n';
    expect(parseAll([stream]).map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([
      ['message_start', { type: 'message_start' }],
      ['ping', { type: 'ping' }],
      ['content_block_delta', { type: 'content_block_delta', delta: { text: 'Hi' } }],
    ]);
  });

  it('accepts \\r\\n and \\r line ends, also split between chunks', () => {
    expect(parseAll(['event: a\r\ndata: 1\r\n\r\n', 'event: b\rdata: 2\r\r'])).toEqual([
      { event: 'a', data: '1', id: undefined },
      { event: 'b', data: '2', id: undefined },
    ]);
    // A chunk ending in a whole \r\n, then a blank line: the event type must be reset by it.
    expect(parseAll(['event: a\r\n', '\ndata: z\n\n'])).toEqual([{ event: 'message', data: 'z', id: undefined }]);
    expect(parseAll(['data: x\r', '\n', '\r', '\ndata: y\n\n'])).toEqual([
      { event: 'message', data: 'x', id: undefined },
      { event: 'message', data: 'y', id: undefined },
    ]);
  });

  it('joins data lines, ignores comments, unknown fields and retry, keeps the last id', () => {
    const stream = ': keep-alive\nid: 7\nretry: 10\nfoo: bar\ndata: one\ndata:two\ndata\n\n: again\ndata: next\n\n';
    expect(parseAll([stream])).toEqual([
      { event: 'message', data: 'one\ntwo\n', id: '7' },
      { event: 'message', data: 'next', id: '7' },
    ]);
  });

  it('dispatches nothing for an event without data, and drops an event cut off before its blank line', () => {
    expect(parseAll(['event: lonely\n\n', 'event: cut\ndata: {"partial":'])).toEqual([]);
  });

  it('decodes a UTF-8 character split across chunks, and skips a leading byte-order mark', () => {
    const text = '\uFEFFdata: caf\u00e9 \u{1F600}\n\n';
    const encoded = bytes(text);
    const parser = new SseParser();
    const events: SseEvent[] = [];
    for (let i = 0; i < encoded.length; i++) {
      const pushed = parser.push(encoded.subarray(i, i + 1));
      if (pushed.ok) events.push(...pushed.value);
    }
    expect(events).toEqual([{ event: 'message', data: 'caf\u00e9 \u{1F600}', id: undefined }]);
  });

  it('refuses a line or an event past its bound, and any input after that', () => {
    const lines = new SseParser(16, 32);
    expect(lines.push(bytes('data: 0123456789'))).toEqual({ ok: true, value: [] });
    expect(lines.push(bytes('abc'))).toEqual({ ok: false, error: { kind: 'sse-line-too-long', bytesMax: 16 } });
    expect(lines.push(bytes('\n\n')).ok).toBe(false);
    const events = new SseParser(16, 32);
    expect(events.push(bytes('data: 0123456789\ndata: 0123456789\n')).ok).toBe(true);
    expect(events.push(bytes('data: 0123456789\n'))).toEqual({ ok: false, error: { kind: 'sse-event-too-large', bytesMax: 32 } });
    expect(events.end().ok).toBe(false);
  });

  it('refuses input after the end', () => {
    const parser = new SseParser();
    expect(parser.end()).toEqual({ ok: true, value: [] });
    expect(parser.push(bytes('data: x\n\n'))).toEqual({ ok: false, error: { kind: 'sse-ended', detail: 'push after end' } });
  });
});
