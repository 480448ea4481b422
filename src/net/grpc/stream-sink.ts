import { assert } from '../../core/assert.js';
import { drainOrEnd, endedErrorOf } from '../drain-or-end.js';
import { grpcStreamEventsBufferedMax } from '../../core/limits.js';
import { CallEndedError, type SseEvent, type StreamSummary } from './carpool-handler.js';
import { encodeStreamEvent, type WireStreamEvent } from './carpool-wire.js';

/**
 * The `StreamSink` of one StreamComplete call, over a grpc-js server stream (and, with another
 * encoding, the sink of a forwarded call's events: ./forward-service.ts).
 *
 * A grpc-js server stream is an object-mode Writable: `write` always takes the message and returns
 * false once `writableHighWaterMark` messages wait unflushed, and a message counts as flushed when
 * HTTP/2 took it, which flow control holds back while the client does not read. So a sink that
 * waits for `drain` after every write that returned false holds at most the high-water mark in
 * memory, whatever the handler's pace: a slow client slows the handler (and through it the
 * upstream's TCP window) instead of growing a buffer. The mark is grpc-js's choice (Node's
 * object-mode default, 16), so the constructor checks it against the named bound.
 *
 * `drain` never comes for a call that ended, since grpc-js stops calling write callbacks once the
 * call is cancelled; the wait therefore also ends, rejected, when the call's signal fires.
 */

/** The part of a grpc-js server stream the sink uses. */
export interface WritableCall<Wire = WireStreamEvent> {
  readonly writableHighWaterMark: number;
  write(message: Wire): boolean;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** How a sink turns its events and its last message into wire messages. */
export interface StreamEncoding<Event, End, Wire> {
  event(event: Event): Wire;
  end(end: End): Wire;
}

/** carpool.v1 StreamComplete: SSE events, then the summary. */
export const carpoolStreamEncoding: StreamEncoding<SseEvent, StreamSummary, WireStreamEvent> = Object.freeze({
  event: (event: SseEvent) => encodeStreamEvent({ kind: 'event', event }),
  end: (summary: StreamSummary) => encodeStreamEvent({ kind: 'summary', summary }),
});

export class GrpcStreamSink<Event = SseEvent, End = StreamSummary, Wire = WireStreamEvent> {
  private sending = false;
  private finished = false;

  constructor(
    private readonly call: WritableCall<Wire>,
    private readonly signal: AbortSignal,
    private readonly encoding: StreamEncoding<Event, End, Wire> = carpoolStreamEncoding as unknown as StreamEncoding<Event, End, Wire>,
  ) {
    assert(call.writableHighWaterMark <= grpcStreamEventsBufferedMax, 'the stream buffers no more events than grpcStreamEventsBufferedMax');
  }

  async send(event: Event): Promise<void> {
    assert(!this.sending, 'one send at a time: await each send before the next');
    if (this.finished) throw new CallEndedError('finished');
    this.throwIfEnded();
    this.sending = true;
    try {
      if (!this.call.write(this.encoding.event(event))) await this.drained();
    } finally {
      this.sending = false;
    }
  }

  /**
   * Closes the sink to the handler (later sends reject as `finished`) and, when the call is still
   * open, writes the summary as the last message. The caller ends the stream after it.
   */
  finish(end: End | undefined): void {
    this.finished = true;
    if (end !== undefined && !this.signal.aborted) this.call.write(this.encoding.end(end));
  }

  private drained(): Promise<void> {
    return drainOrEnd(this.call, this.signal);
  }

  private throwIfEnded(): void {
    if (this.signal.aborted) throw this.endedError();
  }

  private endedError(): CallEndedError {
    return endedErrorOf(this.signal);
  }
}
