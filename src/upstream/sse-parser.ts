import { assert } from '../core/assert.js';
import { sseEventBytesMax, sseLineBytesMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';

/**
 * An incremental parser of server-sent events (the WHATWG HTML "event stream" format), as the
 * Anthropic Messages API streams a completion:
 *
 *   event: content_block_delta
 *   data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}
 *
 * Bytes arrive in chunks cut anywhere: inside a line, between `\r` and `\n`, inside a multi-byte
 * UTF-8 character. `push` takes each chunk and returns the events it completed; `end` says the
 * stream is over and drops an event that never got its blank line (the standard's rule: a
 * truncated stream must not deliver a half event). Lines end in `\n`, `\r\n` or `\r`; a leading
 * byte-order mark is skipped; comment lines (`:`) and unknown fields are ignored; `data` lines
 * join with `\n`; an event without data is not dispatched. Unknown event types are delivered like
 * any other: telling them apart is the caller's business.
 *
 * Bounds: a line longer than `sseLineBytesMax` or an event longer than `sseEventBytesMax` is an
 * error value, after which the parser refuses further input: a never-ending line from a broken
 * upstream must not grow memory without bound.
 */
export interface SseEvent {
  /** The `event` field, or `message` when the event had none. */
  readonly event: string;
  readonly data: string;
  /** The last event id seen on the stream, if any. */
  readonly id: string | undefined;
}

export type SseError =
  | { readonly kind: 'sse-line-too-long'; readonly bytesMax: number }
  | { readonly kind: 'sse-event-too-large'; readonly bytesMax: number }
  | { readonly kind: 'sse-ended'; readonly detail: string };

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });
  /** Text of the line being read, without its end. */
  private line = '';
  /** Whether the previous chunk ended in `\r`, whose `\n` may open the next chunk. */
  private afterCr = false;
  private eventType = '';
  private data: string[] = [];
  private dataLength = 0;
  private lastId: string | undefined;
  private failed: SseError | undefined;
  private ended = false;

  constructor(
    private readonly lineBytesMax: number = sseLineBytesMax,
    private readonly eventBytesMax: number = sseEventBytesMax,
  ) {
    assert(lineBytesMax > 0 && eventBytesMax >= lineBytesMax, 'an event holds at least one line');
  }

  /** The events `chunk` completes. */
  push(chunk: Uint8Array): Result<SseEvent[], SseError> {
    if (this.ended) return err({ kind: 'sse-ended', detail: 'push after end' });
    if (this.failed !== undefined) return err(this.failed);
    return this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  /** Ends the stream: what the decoder still held, and no event without its blank line. */
  end(): Result<SseEvent[], SseError> {
    if (this.failed !== undefined) return err(this.failed);
    if (this.ended) return ok([]);
    const events = this.feed(this.decoder.decode());
    this.ended = true;
    this.line = '';
    this.resetEvent();
    return events;
  }

  private feed(text: string): Result<SseEvent[], SseError> {
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      if (c === 0x0a && this.afterCr && i === 0) {
        // The `\n` of a `\r\n` split across chunks: the line already ended at the `\r`.
        this.afterCr = false;
        start = i + 1;
        continue;
      }
      const failure = this.appendLine(text.slice(start, i));
      if (failure !== undefined) return this.fail(failure);
      const dispatched = this.endLine();
      if (dispatched.failure !== undefined) return this.fail(dispatched.failure);
      if (dispatched.event !== undefined) events.push(dispatched.event);
      // A `\r` that ends the text may be the first half of a `\r\n` whose `\n` opens the next
      // chunk (found by the chunking property: deciding this after skipping a whole `\r\n` made
      // the next chunk's blank line vanish).
      this.afterCr = c === 0x0d && i + 1 === text.length;
      if (c === 0x0d && i + 1 < text.length && text.charCodeAt(i + 1) === 0x0a) i++;
      start = i + 1;
    }
    if (start < text.length) {
      this.afterCr = false;
      const failure = this.appendLine(text.slice(start));
      if (failure !== undefined) return this.fail(failure);
    }
    return ok(events);
  }

  private appendLine(text: string): SseError | undefined {
    this.line += text;
    // Characters, not bytes: a UTF-16 unit stands for up to three UTF-8 bytes, so this bound is
    // conservative by at most that factor, and checking it costs nothing per byte.
    if (this.line.length > this.lineBytesMax) return { kind: 'sse-line-too-long', bytesMax: this.lineBytesMax };
    return undefined;
  }

  private endLine(): { event?: SseEvent; failure?: SseError } {
    const line = this.line;
    this.line = '';
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return {};
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        return {};
      case 'data':
        this.data.push(value);
        this.dataLength += value.length + 1;
        if (this.dataLength > this.eventBytesMax) return { failure: { kind: 'sse-event-too-large', bytesMax: this.eventBytesMax } };
        return {};
      case 'id':
        // The standard ignores an id holding NULL.
        if (!value.includes('\u0000')) this.lastId = value;
        return {};
      default:
        // `retry` and unknown fields: nothing a proxy of completions acts on.
        return {};
    }
  }

  private dispatch(): { event?: SseEvent } {
    if (this.data.length === 0) {
      this.resetEvent();
      return {};
    }
    const event: SseEvent = { event: this.eventType === '' ? 'message' : this.eventType, data: this.data.join('\n'), id: this.lastId };
    this.resetEvent();
    return { event };
  }

  private resetEvent(): void {
    this.eventType = '';
    this.data = [];
    this.dataLength = 0;
  }

  private fail(failure: SseError): Result<SseEvent[], SseError> {
    this.failed = failure;
    this.line = '';
    this.resetEvent();
    return err(failure);
  }
}
