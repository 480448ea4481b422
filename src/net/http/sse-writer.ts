import type { ServerResponse } from 'node:http';
import { drainOrEnd, endedErrorOf } from '../drain-or-end.js';
import { assert } from '../../core/assert.js';
import { CallEndedError, type SseEvent, type StreamSink } from '../grpc/carpool-handler.js';

/**
 * Server-sent events onto one HTTP response, with backpressure.
 *
 * `res.write` always takes the bytes and returns false once the socket's buffer holds
 * `writableHighWaterMark` bytes (16 KiB) or more; a writer that then waits for `drain` before the
 * next frame holds at most that mark plus one frame in memory whatever the handler's pace, so a
 * slow client slows the upstream read (the gateway awaits each send) instead of growing a buffer.
 * `drain` never comes for a response whose client left, so the wait also ends, rejected with a
 * `CallEndedError`, when the call's signal fires (the response's `close`).
 *
 * The status line and headers go out with the first frame (`open`), so that a request refused
 * before any event is still answered with a plain HTTP error, and one that fails later gets an
 * SSE `error` event instead (the caller's choice, by `started`).
 */
export class SseWriter {
  private sending = false;
  private finished = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly signal: AbortSignal,
    /** Writes the status line and headers; called once, before the first frame. */
    private readonly open: () => void,
  ) {}

  /** Whether the headers (and so at least one frame) went out. */
  get started(): boolean {
    return this.res.headersSent;
  }

  /** Writes one frame (complete `event:`/`data:` lines and the blank line) and waits for room. */
  async write(frame: Uint8Array | string): Promise<void> {
    assert(!this.sending, 'one write at a time: await each write before the next');
    if (this.finished) throw new CallEndedError('finished');
    if (this.signal.aborted) throw this.endedError();
    this.sending = true;
    try {
      if (!this.res.headersSent) this.open();
      if (!this.res.write(frame)) await this.drained();
    } finally {
      this.sending = false;
    }
  }

  /** Later writes reject as `finished`; the caller ends the response. */
  finish(): void {
    this.finished = true;
  }

  private drained(): Promise<void> {
    return drainOrEnd(this.res, this.signal);
  }

  private endedError(): CallEndedError {
    return endedErrorOf(this.signal);
  }
}

const eventPrefix = Buffer.from('event: ');
const dataPrefix = Buffer.from('\ndata: ');
const frameEnd = Buffer.from('\n\n');
const newline = 0x0a;

/**
 * One upstream event as SSE bytes, as the upstream sent it: `event: <type>\ndata: <data>\n\n`.
 * Data that spans lines (the SSE parser joined several `data:` lines with `\n`) goes out as as
 * many `data:` lines again, so the client's parser rebuilds the same text.
 */
export function sseFrameOf(event: SseEvent): Buffer {
  const data = event.dataJson;
  if (!data.includes(newline)) return Buffer.concat([eventPrefix, Buffer.from(event.type), dataPrefix, data, frameEnd]);
  const lines = Buffer.from(data).toString('utf8').split('\n');
  return Buffer.from(`event: ${event.type}\n${lines.map((line) => `data: ${line}`).join('\n')}\n\n`);
}

/** The gateway's `StreamSink` for an Anthropic stream: each event relayed in the upstream's bytes. */
export class AnthropicSseSink implements StreamSink {
  constructor(readonly writer: SseWriter) {}

  send(event: SseEvent): Promise<void> {
    return this.writer.write(sseFrameOf(event));
  }
}
