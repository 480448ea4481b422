import type { TokenUsage } from '../admission/estimate.js';
import type { AccountFeedback } from '../pool/account-feedback.js';
import type { TimeoutPhase } from './call-guard.js';
import type { StreamedMessage } from './message-stream.js';

/**
 * What an upstream call ends with. Every outcome, success or failure, carries the usage the
 * upstream reported so far (zero when it reported none), because billing charges what a call
 * used however it ended; and every outcome that heard from the account carries the
 * `AccountFeedback` the pool learns from.
 */

/** A non-streaming call that returned its message. */
export interface Completion {
  /** The response body as the API sent it, parsed. */
  readonly message: Readonly<Record<string, unknown>>;
  /**
   * The same body's bytes as received (UTF-8 JSON), when the one who made the Completion has
   * them: passed on to the client and kept for replays as they are, never serialized again.
   */
  readonly bodyJson?: Uint8Array;
  readonly usage: TokenUsage;
  readonly requestId: string | undefined;
  readonly feedback: AccountFeedback;
  /** The caller cancelled after the headers; the body was read anyway, for its usage. */
  readonly cancelled: boolean;
  /**
   * Answered from an account home node's ledger for a request another region already ran and
   * settled (src/node/forward/forward-executor.ts): `usage` is zero and nothing is to be counted.
   */
  readonly settledElsewhere?: boolean;
}

/** A stream that reached `message_stop`. */
export interface StreamCompletion {
  readonly message: StreamedMessage;
  readonly usage: TokenUsage;
  readonly requestId: string | undefined;
  readonly feedback: AccountFeedback;
  /**
   * The caller cancelled mid-stream (or its sink failed): events stopped reaching it, and the
   * stream was drained to its end so `usage` is the full charge.
   */
  readonly cancelled: boolean;
  /** As for `Completion`: a replay of a request another region settled. */
  readonly settledElsewhere?: boolean;
}

interface ErrorBase {
  readonly requestId: string | undefined;
  /** Usage seen before the failure: what a cut-off call is still charged. */
  readonly usage: TokenUsage;
}

/** The upstream answered with an error status. */
export interface HttpStatusError extends ErrorBase {
  readonly kind: 'http-status';
  readonly status: number;
  /** `error.type` of an API error body; undefined for a proxy's HTML or text. */
  readonly errorType: string | undefined;
  readonly message: string;
  readonly feedback: AccountFeedback;
}

/** No usable response: refused, reset, or closed before the headers. */
export interface NetworkError extends ErrorBase {
  readonly kind: 'network';
  readonly detail: string;
  readonly feedback: AccountFeedback;
}

export type UpstreamTimeoutPhase = TimeoutPhase | 'connect';

/** A phase of the call took too long: connecting, the headers, a silence mid-body, the whole call. */
export interface TimeoutError extends ErrorBase {
  readonly kind: 'timeout';
  readonly phase: UpstreamTimeoutPhase;
  readonly feedback: AccountFeedback;
}

/**
 * The response broke the protocol: malformed JSON, a body or header block past its bound, a
 * stream that is not server-sent events, an SSE line too long, an event out of order.
 */
export interface BadResponseError extends ErrorBase {
  readonly kind: 'bad-response';
  readonly detail: string;
  readonly feedback: AccountFeedback;
}

/** A stream ended, or its connection broke, before `message_stop`. */
export interface TruncatedError extends ErrorBase {
  readonly kind: 'truncated';
  readonly detail: string;
  readonly feedback: AccountFeedback;
}

/** The upstream sent an `error` event mid-stream, such as `overloaded_error`. */
export interface StreamEventError extends ErrorBase {
  readonly kind: 'stream-error';
  readonly errorType: string;
  readonly message: string;
  readonly feedback: AccountFeedback;
}

/**
 * The caller cancelled before the headers, or after them with `onCancel: 'abort'`. Feedback is
 * the headers' (success) when they had arrived, and undefined before: the call said nothing
 * about the account then.
 *
 * A stream cancelled after its headers carries the usage of src/upstream/relayed-usage.ts: its
 * input as reported and its output counted from the text relayed to the caller, with `estimated`
 * set unless a `message_delta` had reported the output. Before the headers nothing was relayed:
 * zero usage, not estimated.
 */
export interface CancelledError extends ErrorBase {
  readonly kind: 'cancelled';
  readonly feedback: AccountFeedback | undefined;
  readonly estimated: boolean;
}

/** The call could not be built: a bad base URL, a credential or header with bytes HTTP forbids. */
export interface InvalidRequestError extends ErrorBase {
  readonly kind: 'invalid-request';
  readonly detail: string;
  readonly feedback: undefined;
}

/**
 * The client refused or cut the call: it is closing (or closed, cutting calls past its grace
 * period), or it already runs `upstreamCallsInFlightMax` calls.
 */
export interface UnavailableError extends ErrorBase {
  readonly kind: 'unavailable';
  readonly reason: 'closed' | 'calls-in-flight-max';
  readonly feedback: AccountFeedback | undefined;
}

export type UpstreamError =
  | HttpStatusError
  | NetworkError
  | TimeoutError
  | BadResponseError
  | TruncatedError
  | StreamEventError
  | CancelledError
  | InvalidRequestError
  | UnavailableError;
