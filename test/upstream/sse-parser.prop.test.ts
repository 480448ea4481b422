// Proves an SSE stream cut into chunks anywhere (inside lines, line ends and UTF-8 characters)
// parses to exactly the events of the whole stream read at once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SseEvent, SseParser } from '../../src/upstream/sse-parser.js';
import { checkProperty } from '../support/property.js';

const arbLineEnd = fc.constantFrom('\n', '\r\n', '\r');
const arbValue = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':', '{', '"', '\u00e9', '\u{1F600}', 'z'), maxLength: 12 });
const arbField = fc.oneof(
  arbValue.map((v) => `data: ${v}`),
  arbValue.map((v) => `data:${v}`),
  fc.constantFrom('event: message_start', 'event: content_block_delta', 'event: ping', 'event: error'),
  arbValue.map((v) => `: ${v}`),
  arbValue.map((v) => `id: ${v}`),
  fc.constant('retry: 100'),
);
const arbEvent = fc
  .tuple(fc.array(fc.tuple(arbField, arbLineEnd), { minLength: 1, maxLength: 5 }), arbLineEnd)
  .map(([lines, end]) => lines.map(([line, lineEnd]) => line + lineEnd).join('') + end);
const arbStream = fc.array(arbEvent, { maxLength: 8 }).map((events) => new TextEncoder().encode(events.join('')));

function parse(stream: Uint8Array, cuts: readonly number[]): SseEvent[] {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  let from = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)) {
    const pushed = parser.push(stream.subarray(from, cut));
    expect(pushed.ok).toBe(true);
    if (pushed.ok) events.push(...pushed.value);
    from = cut;
  }
  const last = parser.push(stream.subarray(from));
  const ended = parser.end();
  expect(last.ok && ended.ok).toBe(true);
  if (last.ok) events.push(...last.value);
  if (ended.ok) events.push(...ended.value);
  return events;
}

describe('SseParser chunking', () => {
  it('gives the same events however the stream is cut', () => {
    checkProperty(
      fc.property(arbStream, fc.array(fc.nat(), { maxLength: 20 }), (stream, cuts) => {
        expect(parse(stream, cuts)).toEqual(parse(stream, []));
      }),
      300,
    );
  });
});
