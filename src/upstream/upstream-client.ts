import { Agent, type Dispatcher } from 'undici';
import { type TokenUsage, zeroUsage } from '../admission/estimate.js';
import { assert } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../platform/system-clock.js';
import {
  upstreamAfterStopIdleMs,
  upstreamCallsInFlightMax,
  upstreamCloseGraceMs,
  upstreamCompleteHeadersTimeoutMs,
  upstreamConnectionsPerOriginMax,
  upstreamConnectTimeoutMs,
  upstreamDeadlineMs,
  upstreamErrorBodyBytesMax,
  upstreamIdleTimeoutMs,
  upstreamKeepAliveTimeoutMs,
  upstreamOriginsMax,
  upstreamResponseBytesMax,
  upstreamResponseHeaderBytesMax,
  upstreamStreamHeadersTimeoutMs,
} from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { noopObserver, type UpstreamMode, type UpstreamObserver } from '../observe/gateway-observer.js';
import type { AccountFeedback } from '../pool/account-feedback.js';
import { CallGuard, type CancelMode, systemTimers, type Timers } from './call-guard.js';
import { feedbackOfErrorType, feedbackOfStatus, networkFeedback } from './classify-feedback.js';
import { parseErrorBody } from './error-body.js';
import { MessageStream, type StreamError } from './message-stream.js';
import { parseMessageUsage } from './message-usage.js';
import { relayedUsage } from './relayed-usage.js';
import { type HeaderMap, headerValue, upstreamRequestId } from './response-headers.js';
import { type SseEvent, SseParser } from './sse-parser.js';
import { type BuiltRequest, buildRequest, type Credential, redact, type UpstreamRequest, type UpstreamTarget } from './upstream-request.js';
import type { Completion, StreamCompletion, UpstreamError } from './upstream-result.js';

/**
 * The client of the Anthropic Messages API that every upstream call of a node goes through.
 *
 * The flow of one call:
 *
 *   build    credential and version headers, the JSON body (upstream-request.ts)
 *   dispatch POST over a keep-alive connection of the origin's pool; timers armed (call-guard.ts)
 *   headers  status, request-id, rate limits -> AccountFeedback (classify-feedback.ts)
 *   body     complete(): the JSON message, bounded; stream(): SSE events through SseParser and
 *            MessageStream, each handed to the caller's sink as it arrives
 *   result   a Completion / StreamCompletion, or an UpstreamError; both carry usage so far
 *
 * Nothing a broken upstream sends makes a call throw: every failure comes back as an
 * `UpstreamError` value, with the connection closed (not returned to the pool) when the body was
 * not read to its end, and every timer cleared.
 *
 * Why a sink and not an async iterator for streams. The gateway forwards each event to its own
 * client and must stop reading the upstream while that client is slow. A sink that returns a
 * promise (resolved when the write has drained) gives exactly that: the client awaits it before
 * it reads the next chunk, so backpressure reaches the upstream's TCP window. And the client,
 * not the caller, owns the read loop, which is what cancellation needs: when the caller goes
 * away the loop stops delivering but keeps reading to the final usage, with no second consumer
 * to hand the stream over to and no iterator the caller must remember to finish. The final
 * result is the one promise `stream()` returns.
 *
 * Connect timeouts are per client, not per call: a connection is opened for the pool and may
 * serve many calls. A call's own headers timeout runs from dispatch, so it covers connecting too.
 *
 * Timings. The observer hears, for every call that was dispatched, the time to the headers, a
 * stream's time to its first `content_block_delta`, and the time to the end of the call with
 * its outcome. A call refused before dispatch (the client closing or full, a request that could
 * not be built) is not timed. The start is one clock read kept in the call's state, so timing
 * adds no object and no closure to a call.
 */

export interface UpstreamClientOptions {
  /** Converts `retry-after` dates to a wait; the system clock by default. */
  readonly clock?: Clock;
  /** The call timers; tests count them to prove none outlives its call. */
  readonly timers?: Timers;
  readonly connectionsPerOriginMax?: number;
  readonly callsInFlightMax?: number;
  readonly connectTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly responseHeaderBytesMax?: number;
  /** Defaults of the per-call timeouts. */
  readonly completeHeadersTimeoutMs?: number;
  readonly streamHeadersTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly deadlineMs?: number;
  /** Told the timings of each call; observes nothing by default. */
  readonly observer?: UpstreamObserver;
}

export interface CallTimeouts {
  /** From dispatch to the response headers (connecting and queueing included). */
  readonly headersTimeoutMs: number;
  /** Longest silence while a body chunk is awaited. */
  readonly idleTimeoutMs: number;
  /** From dispatch to the end of the call, draining included. */
  readonly deadlineMs: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  readonly timeouts?: Partial<CallTimeouts>;
  /**
   * What the caller's abort does once the call was sent: `drain` (the default) reads on to the
   * final usage without delivering anything more, whether the headers had arrived or not;
   * `abort` closes the connection at once, and the usage is what was seen so far (for a stream,
   * its input and the output relayed: src/upstream/relayed-usage.ts). A signal already aborted
   * when the call is made sends nothing, in either mode.
   */
  readonly onCancel?: CancelMode;
}

/** A sink for the events of a stream; a returned promise holds the next read until it settles. */
export type EventSink = (event: SseEvent) => void | PromiseLike<void>;

export interface StreamOptions extends CallOptions {
  /**
   * Receives each event the message accepted, in order: `message_start` through `message_stop`,
   * pings and unknown event types included. An `error` event is not delivered; it ends the call
   * with a `stream-error`. A sink that throws or rejects counts as the caller going away.
   */
  readonly onEvent: EventSink;
  /**
   * Told every event the message accepted, as it is read, whether or not it still reaches
   * `onEvent`: a stream the caller left is drained to its end, and whoever keeps the answer for a
   * retry needs all of it. Must not throw.
   */
  readonly onRead?: (event: SseEvent) => void;
}

export interface UpstreamClientStats {
  readonly callsInFlight: number;
  /** Open connections over all origins, busy or idle. */
  readonly connectionsOpen: number;
}

const eventStream = /^text\/event-stream\s*(?:;|$)/i;
/** One decoder for every body: `decode` without `stream` keeps no state from call to call. */
const utf8 = new TextDecoder();

/** What one call knows about its response, for building its result. */
interface CallState {
  readonly guard: CallGuard;
  readonly credential: Credential;
  readonly mode: UpstreamMode;
  /** When the call was dispatched, on the observer's clock. */
  readonly startedMs: number;
  /** Whether a stream's first token (`content_block_delta`) has been timed. */
  firstTokenSeen: boolean;
  requestId: string | undefined;
  headers: HeaderMap;
  /** Set when the headers arrive: what the status says about the account. */
  feedback: AccountFeedback | undefined;
  /** The stream's message, once a 2xx event stream is being read. */
  message: MessageStream | undefined;
  /** Content bytes of the events the caller's sink accepted: a cancelled stream's output estimate. */
  relayedBytes: number;
}

type Body = Dispatcher.ResponseData['body'];

export class UpstreamClient {
  private readonly agent: Agent;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly observer: UpstreamObserver;
  private readonly callsInFlightMax: number;
  private readonly defaults: {
    readonly completeHeadersTimeoutMs: number;
    readonly streamHeadersTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly deadlineMs: number;
  };
  /** The timeouts of a call that sets none of its own, checked once rather than per call. */
  private readonly completeTimeouts: CallTimeouts;
  private readonly streamTimeouts: CallTimeouts;
  private readonly calls = new Map<CallGuard, Promise<unknown>>();
  private closing: Promise<void> | undefined;

  constructor(options: UpstreamClientOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.observer = options.observer ?? noopObserver;
    this.callsInFlightMax = options.callsInFlightMax ?? upstreamCallsInFlightMax;
    assert(this.callsInFlightMax >= 1 && this.callsInFlightMax <= upstreamCallsInFlightMax, 'calls in flight within 1 and the bound');
    this.defaults = {
      completeHeadersTimeoutMs: checkedMs(options.completeHeadersTimeoutMs ?? upstreamCompleteHeadersTimeoutMs),
      streamHeadersTimeoutMs: checkedMs(options.streamHeadersTimeoutMs ?? upstreamStreamHeadersTimeoutMs),
      idleTimeoutMs: checkedMs(options.idleTimeoutMs ?? upstreamIdleTimeoutMs),
      deadlineMs: checkedMs(options.deadlineMs ?? upstreamDeadlineMs),
    };
    const { idleTimeoutMs, deadlineMs } = this.defaults;
    this.completeTimeouts = Object.freeze({ headersTimeoutMs: this.defaults.completeHeadersTimeoutMs, idleTimeoutMs, deadlineMs });
    this.streamTimeouts = Object.freeze({ headersTimeoutMs: this.defaults.streamHeadersTimeoutMs, idleTimeoutMs, deadlineMs });
    const connections = options.connectionsPerOriginMax ?? upstreamConnectionsPerOriginMax;
    assert(connections >= 1 && connections <= upstreamConnectionsPerOriginMax, 'connections per origin within 1 and the bound');
    const keepAliveTimeoutMs = checkedMs(options.keepAliveTimeoutMs ?? upstreamKeepAliveTimeoutMs);
    const headerBytesMax = options.responseHeaderBytesMax ?? upstreamResponseHeaderBytesMax;
    assert(headerBytesMax >= 1_024 && headerBytesMax <= upstreamResponseHeaderBytesMax, 'response header bytes within 1 KiB and the bound');
    this.agent = new Agent({
      connections,
      maxOrigins: upstreamOriginsMax,
      keepAliveTimeout: keepAliveTimeoutMs,
      // A server's Keep-Alive hint may shorten the idle time of a connection but not stretch it.
      keepAliveMaxTimeout: keepAliveTimeoutMs,
      connect: { timeout: checkedMs(options.connectTimeoutMs ?? upstreamConnectTimeoutMs) },
      maxHeaderSize: headerBytesMax,
      // The call guard enforces the real timeouts per call; these are backstops that can only
      // fire if it failed to, since no per-call timeout may exceed the deadline bound.
      headersTimeout: upstreamDeadlineMs,
      bodyTimeout: upstreamDeadlineMs,
    });
  }

  /** A non-streaming call: the whole message, its usage, and the account's feedback. */
  complete(target: UpstreamTarget, request: UpstreamRequest, options: CallOptions = {}): Promise<Result<Completion, UpstreamError>> {
    const built = buildRequest(target, request, false);
    if (!built.ok) return Promise.resolve(err({ ...built.error, requestId: undefined, usage: zeroUsage, feedback: undefined }));
    return this.run(options, this.completeTimeouts, 'complete', (guard, startedMs) => this.runComplete(guard, startedMs, target.credential, built.value));
  }

  /** A streaming call: events reach `options.onEvent` as they arrive; the result is the whole message. */
  stream(target: UpstreamTarget, request: UpstreamRequest, options: StreamOptions): Promise<Result<StreamCompletion, UpstreamError>> {
    const built = buildRequest(target, request, true);
    if (!built.ok) return Promise.resolve(err({ ...built.error, requestId: undefined, usage: zeroUsage, feedback: undefined }));
    return this.run(options, this.streamTimeouts, 'stream', (guard, startedMs) =>
      this.runStream(guard, startedMs, target.credential, built.value, options.onEvent, options.onRead),
    );
  }

  stats(): UpstreamClientStats {
    let connectionsOpen = 0;
    // The agent makes a Pool per origin (a connection count); a Client factory would report a flag.
    for (const origin of Object.values(this.agent.stats)) connectionsOpen += Number(origin.connected);
    return { callsInFlight: this.calls.size, connectionsOpen };
  }

  /**
   * Refuses new calls, waits up to `graceMs` for the calls in flight (draining streams
   * included), then cuts those still running and closes every connection. Calls cut here end
   * with `unavailable` / `closed` and the usage they had seen.
   */
  close(graceMs: number = upstreamCloseGraceMs): Promise<void> {
    this.closing ??= this.shutDown(checkedMs(graceMs));
    return this.closing;
  }

  private async shutDown(graceMs: number): Promise<void> {
    const inFlight = Promise.allSettled(this.calls.values());
    let timer: unknown;
    const graceOver = new Promise<'grace-over'>((resolve) => {
      timer = this.timers.start(() => resolve('grace-over'), graceMs);
    });
    const first = await Promise.race([inFlight.then(() => 'drained' as const), graceOver]);
    this.timers.cancel(timer);
    if (first === 'grace-over') for (const guard of this.calls.keys()) guard.stop({ kind: 'closed' });
    // A stopped call fails its pending read at once, so this wait is short.
    await Promise.allSettled(this.calls.values());
    await this.agent.close();
  }

  private run<T>(
    options: CallOptions,
    defaults: CallTimeouts,
    mode: UpstreamMode,
    call: (guard: CallGuard, startedMs: number) => Promise<Result<T, UpstreamError>>,
  ): Promise<Result<T, UpstreamError>> {
    if (this.closing !== undefined) return Promise.resolve(err(unavailable('closed')));
    if (this.calls.size >= this.callsInFlightMax) return Promise.resolve(err(unavailable('calls-in-flight-max')));
    const own = options.timeouts;
    const timeouts =
      own === undefined
        ? defaults
        : {
            headersTimeoutMs: checkedMs(own.headersTimeoutMs ?? defaults.headersTimeoutMs),
            idleTimeoutMs: checkedMs(own.idleTimeoutMs ?? defaults.idleTimeoutMs),
            deadlineMs: checkedMs(own.deadlineMs ?? defaults.deadlineMs),
          };
    const guard = new CallGuard(this.timers, timeouts, options.onCancel ?? 'drain', options.signal);
    const startedMs = this.observer.nowMs();
    const done = this.settle(guard, call(guard, startedMs), mode, startedMs);
    this.calls.set(guard, done);
    return done;
  }

  /**
   * Clears the call's timers and forgets it once it ends (an async function: fewer turns than
   * `finally`), and reports how long it took and how it ended.
   */
  private async settle<T>(guard: CallGuard, call: Promise<Result<T, UpstreamError>>, mode: UpstreamMode, startedMs: number): Promise<Result<T, UpstreamError>> {
    try {
      const result = await call;
      this.observer.upstreamCall(mode, result.ok ? 'ok' : result.error.kind, this.observer.nowMs() - startedMs);
      return result;
    } finally {
      guard.dispose();
      this.calls.delete(guard);
    }
  }

  private async runComplete(guard: CallGuard, startedMs: number, credential: Credential, built: BuiltRequest): Promise<Result<Completion, UpstreamError>> {
    const state = newState(guard, credential, 'complete', startedMs);
    const response = await this.dispatch(state, built);
    if (!response.ok) return response;
    const { statusCode, body } = response.value;
    if (statusCode < 200 || statusCode > 299) return err(await this.readErrorStatus(state, statusCode, body));
    const contentLength = Number(headerValue(state.headers, 'content-length'));
    if (contentLength > upstreamResponseBytesMax) {
      discard(state, body);
      return err(badResponse(state, `a body of ${contentLength} bytes is over ${upstreamResponseBytesMax}`));
    }
    const read = await readBounded(state, body, upstreamResponseBytesMax);
    if (!read.ok) return err(failure(state, read.error));
    if (read.value.overflow) {
      discard(state, body);
      return err(badResponse(state, `the body is over ${upstreamResponseBytesMax} bytes`));
    }
    let message: unknown;
    try {
      message = JSON.parse(utf8.decode(read.value.bytes));
    } catch (error) {
      return err(badResponse(state, `the body is not JSON: ${error instanceof Error ? error.message : 'parse error'}`));
    }
    if (!isObject(message)) return err(badResponse(state, 'the body is not a JSON object'));
    const usage = parseMessageUsage(message);
    if (!usage.ok) return err(badResponse(state, usage.error));
    return ok({
      message,
      bodyJson: read.value.bytes,
      usage: usage.value,
      requestId: state.requestId,
      feedback: state.feedback as AccountFeedback,
      cancelled: guard.cancelled,
    });
  }

  private async runStream(
    guard: CallGuard,
    startedMs: number,
    credential: Credential,
    built: BuiltRequest,
    onEvent: EventSink,
    onRead: ((event: SseEvent) => void) | undefined,
  ): Promise<Result<StreamCompletion, UpstreamError>> {
    const state = newState(guard, credential, 'stream', startedMs);
    const response = await this.dispatch(state, built);
    if (!response.ok) return response;
    const { statusCode, body } = response.value;
    if (statusCode < 200 || statusCode > 299) return err(await this.readErrorStatus(state, statusCode, body));
    const contentType = headerValue(state.headers, 'content-type') ?? '';
    if (!eventStream.test(contentType)) {
      discard(state, body);
      return err(badResponse(state, `a stream answered with content-type '${redact(contentType, credential).slice(0, 100)}'`));
    }
    const message = new MessageStream();
    state.message = message;
    const parser = new SseParser();
    const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
    // Each turn reads one chunk. The loop ends with the body, or is cut by the message bounds
    // (MessageStream, SseParser) or, for a body of pings or unknown events, by the deadline.
    for (;;) {
      const chunk = await nextChunk(state, chunks);
      if (!chunk.ok) return err(chunk.error);
      const events = chunk.value === undefined ? parser.end() : parser.push(chunk.value);
      if (!events.ok) {
        discard(state, body);
        return err(
          badResponse(state, `${events.error.kind} (${events.error.kind === 'sse-ended' ? events.error.detail : `bound ${events.error.bytesMax} bytes`})`),
        );
      }
      for (const event of events.value) {
        // Anything after message_stop is not part of the message; the body should end here.
        if (message.done) break;
        const fed = message.onEvent(event);
        if (!fed.ok) {
          discard(state, body);
          return err(this.streamFailure(state, fed.error));
        }
        onRead?.(event);
        if (!state.firstTokenSeen && event.event === 'content_block_delta') {
          state.firstTokenSeen = true;
          this.observer.upstreamFirstToken(this.observer.nowMs() - startedMs);
        }
        if (guard.delivering && (await deliver(guard, onEvent, event))) state.relayedBytes = message.contentBytes;
      }
      if (message.done) break;
      if (chunk.value === undefined) {
        return err({
          kind: 'truncated',
          detail: 'the stream ended without message_stop',
          ...seen(state),
          feedback: networkFeedback('stream ended without message_stop'),
        });
      }
    }
    await finishBody(state, body, chunks);
    const streamed = message.message();
    assert(streamed !== undefined, 'a stream done without failure has reached message_stop');
    return ok({
      message: streamed,
      usage: streamed.usage,
      requestId: state.requestId,
      feedback: state.feedback as AccountFeedback,
      cancelled: guard.cancelled,
    });
  }

  private async dispatch(state: CallState, built: BuiltRequest): Promise<Result<Dispatcher.ResponseData, UpstreamError>> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.agent.request({
        origin: built.origin,
        path: built.path,
        method: 'POST',
        headers: built.headers,
        body: built.body,
        signal: state.guard.signal,
      });
    } catch (error) {
      return err(failure(state, error));
    }
    // A body is a stream that emits 'error' when the call is stopped; with no listener that
    // would be an uncaught exception, so every body gets one. Readers see errors by their reads.
    response.body.on('error', ignore);
    state.guard.headersArrived();
    this.observer.upstreamHeaders(state.mode, this.observer.nowMs() - state.startedMs);
    state.headers = response.headers;
    state.requestId = upstreamRequestId(response.headers);
    state.feedback = feedbackOfStatus(response.statusCode, response.headers, this.clock.nowMs());
    return ok(response);
  }

  /** An error status: the body is read (bounded) for the API's error type and message. */
  private async readErrorStatus(state: CallState, status: number, body: Body): Promise<UpstreamError> {
    const read = await readBounded(state, body, upstreamErrorBodyBytesMax);
    // The status already says what the pool needs; a body cut short only loses the message.
    const bytes = read.ok ? read.value.bytes : new Uint8Array(0);
    if (!read.ok || read.value.overflow) discard(state, body);
    const parsed = parseErrorBody(redact(utf8.decode(bytes), state.credential));
    return { kind: 'http-status', status, errorType: parsed.errorType, message: parsed.message, ...seen(state), feedback: state.feedback as AccountFeedback };
  }

  private streamFailure(state: CallState, error: StreamError): UpstreamError {
    switch (error.kind) {
      case 'upstream-error':
        return {
          kind: 'stream-error',
          errorType: error.errorType,
          message: redact(error.message, state.credential),
          ...seen(state),
          feedback: feedbackOfErrorType(error.errorType, state.headers, this.clock.nowMs()),
        };
      case 'bad-event':
        return badResponse(state, `bad ${error.event} event: ${error.detail}`);
      case 'message-too-large':
        return badResponse(state, error.detail);
    }
  }
}

function newState(guard: CallGuard, credential: Credential, mode: UpstreamMode, startedMs: number): CallState {
  return {
    guard,
    credential,
    mode,
    startedMs,
    firstTokenSeen: false,
    requestId: undefined,
    headers: {},
    feedback: undefined,
    message: undefined,
    relayedBytes: 0,
  };
}

function seen(state: CallState): { readonly requestId: string | undefined; readonly usage: TokenUsage } {
  return { requestId: state.requestId, usage: state.message?.usage ?? zeroUsage };
}

function badResponse(state: CallState, detail: string): UpstreamError {
  const text = redact(detail, state.credential);
  return { kind: 'bad-response', detail: text, ...seen(state), feedback: networkFeedback(`bad response: ${text}`) };
}

function unavailable(reason: 'closed' | 'calls-in-flight-max'): UpstreamError {
  return { kind: 'unavailable', reason, requestId: undefined, usage: zeroUsage, feedback: undefined };
}

/**
 * What a failed dispatch or read means. The guard's recorded cause comes first: a timeout or a
 * cancel shows up as the library's abort error, which says nothing about why. The rest are the
 * library's own errors, read by their stable codes.
 */
function failure(state: CallState, error: unknown): UpstreamError {
  const base = seen(state);
  const cause = state.guard.cause;
  if (cause !== undefined) {
    switch (cause.kind) {
      case 'timeout':
        return { kind: 'timeout', phase: cause.phase, ...base, feedback: networkFeedback(`${cause.phase} timeout after ${cause.afterMs} ms`) };
      case 'cancelled': {
        // A stream that was being read is charged what it relayed (relayed-usage.ts); before that, nothing.
        if (state.message === undefined) return { kind: 'cancelled', ...base, feedback: state.feedback, estimated: false };
        const relayed = relayedUsage(state.message, state.relayedBytes);
        return { kind: 'cancelled', requestId: state.requestId, usage: relayed.usage, feedback: state.feedback, estimated: relayed.estimated };
      }
      case 'closed':
        return { kind: 'unavailable', reason: 'closed', ...base, feedback: state.feedback };
      case 'discarded':
        // The client gave up on this body and reports why itself; it reads no further.
        break;
    }
  }
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const text = redact(
    `${code ?? (error instanceof Error ? error.name : 'error')}: ${error instanceof Error ? error.message : String(error)}`,
    state.credential,
  );
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'timeout', phase: 'connect', ...base, feedback: networkFeedback(text) };
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { kind: 'timeout', phase: 'headers', ...base, feedback: networkFeedback(text) };
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'timeout', phase: 'idle', ...base, feedback: networkFeedback(text) };
    case 'UND_ERR_HEADERS_OVERFLOW':
      return badResponse(state, `response headers over the header bound (${text})`);
  }
  // A stream whose connection broke is cut short like one that ended early: billing charges the
  // usage seen, and the pool hears a network failure.
  if (state.message !== undefined) {
    const detail = `the connection broke before message_stop: ${text}`;
    return { kind: 'truncated', detail, ...base, feedback: networkFeedback(detail) };
  }
  return { kind: 'network', detail: text, ...base, feedback: networkFeedback(text) };
}

async function nextChunk(state: CallState, chunks: AsyncIterator<Uint8Array>, idleTimeoutMs?: number): Promise<Result<Uint8Array | undefined, UpstreamError>> {
  state.guard.awaitingChunk(idleTimeoutMs);
  try {
    const step = await chunks.next();
    return ok(step.done === true ? undefined : step.value);
  } catch (error) {
    return err(failure(state, error));
  } finally {
    state.guard.chunkArrived();
  }
}

/**
 * Reads a body up to `bytesMax`; `overflow` says it had more, which is left unread (and the body
 * paused). The idle timer runs while a chunk is awaited, as for a stream.
 *
 * The body is read through its events rather than its async iterator, which costs a promise and
 * a listener round trip per chunk: a JSON answer is one or two chunks, usually buffered already
 * when reading starts. The listeners are anonymous on purpose (a named closure costs a
 * `defineProperty` per call under tsx) and stay behind as no-ops once the read has settled: by
 * then the body has ended or failed, or the caller discards it.
 *
 * The idle timer is armed only when the next chunk may have to come from the network. Bytes
 * already buffered are delivered within this turn of the event loop, and so is the end of a body
 * whose `content-length` has been read in full (undici ends it in the parse of its last byte),
 * before any timer could fire; a timer armed for them would only be cleared again, and a Node
 * timer costs about a microsecond to arm or clear.
 */
function readBounded(state: CallState, body: Body, bytesMax: number): Promise<Result<{ bytes: Uint8Array; overflow: boolean }, unknown>> {
  const guard = state.guard;
  const lengthHeader = headerValue(state.headers, 'content-length');
  const expectedBytes = lengthHeader === undefined ? -1 : Number(lengthHeader);
  return new Promise((resolve) => {
    // A body already cut has emitted its error, or will to the listener every body has; either
    // way it is the answer.
    if (body.destroyed) {
      resolve(err(body.errored ?? prematureClose()));
      return;
    }
    const parts: Buffer[] = [];
    let length = 0;
    let settled = false;
    if (body.readableLength === 0 && expectedBytes !== 0) guard.awaitingChunk();
    // Bounded by `bytesMax` (each chunk is kept or ends the read) and by the deadline.
    body
      .on('data', (chunk: Buffer) => {
        if (settled) return;
        guard.chunkArrived();
        if (length + chunk.length > bytesMax) {
          settled = true;
          body.pause();
          resolve(ok({ bytes: joined(parts, length), overflow: true }));
          return;
        }
        parts.push(chunk);
        length += chunk.length;
        if (body.readableLength === 0 && length !== expectedBytes) guard.awaitingChunk();
      })
      .on('end', () => {
        if (settled) return;
        settled = true;
        guard.chunkArrived();
        resolve(ok({ bytes: joined(parts, length), overflow: false }));
      })
      .on('error', (error: unknown) => {
        if (settled) return;
        settled = true;
        guard.chunkArrived();
        resolve(err(error));
      })
      .on('close', () => {
        if (settled) return;
        settled = true;
        guard.chunkArrived();
        resolve(err(prematureClose()));
      });
  });
}

function joined(parts: readonly Buffer[], length: number): Uint8Array {
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
}

/** What a body closed without an end or an error reads as; the text Node's own readers give. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * After `message_stop` the body should end at once; reading that end lets the connection go
 * back to the pool. Anything else (more bytes, a silence, a broken connection) closes it: the
 * message is complete either way.
 */
async function finishBody(state: CallState, body: Body, chunks: AsyncIterator<Uint8Array>): Promise<void> {
  const rest = await nextChunk(state, chunks, upstreamAfterStopIdleMs);
  if (!rest.ok || rest.value !== undefined) discard(state, body);
}

/**
 * Gives the sink an event and waits for it, unless the caller leaves meanwhile. True when the sink
 * accepted it (returned, or its promise resolved): the event was relayed.
 */
async function deliver(guard: CallGuard, onEvent: EventSink, event: SseEvent): Promise<boolean> {
  let pending: void | PromiseLike<void>;
  try {
    pending = onEvent(event);
  } catch {
    guard.callerCancelled();
    return false;
  }
  if (pending === undefined || typeof pending.then !== 'function') return true;
  const waited = await guard.waitForSink(pending);
  if (waited === 'failed') guard.callerCancelled();
  return waited === 'done';
}

/** Stops reading a body: its connection is closed, not returned to the pool half read. */
function discard(state: CallState, body: Body): void {
  state.guard.stop({ kind: 'discarded' });
  body.destroy();
}

function checkedMs(value: number): number {
  assert(Number.isSafeInteger(value) && value >= 1 && value <= upstreamDeadlineMs, 'a timeout is a whole number of milliseconds within the deadline bound');
  return value;
}

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ignore(): void {}
