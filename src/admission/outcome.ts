import { assert, unreachable } from '../core/assert.js';
import type { LimitWindowUnit } from '../mesh/policy/policy-schema.js';

/**
 * The typed outcomes of an admission decision, and the one table that maps them to gRPC status
 * names and HTTP statuses; below it, the table for upstream errors that reach a client.
 *
 * Style guide §8 asks for a single mapping: the gRPC surface, the HTTP surface and anything else
 * that answers a client must look a rejection up in `rejectionStatus` and take retry hints from
 * `retryHeaders`, never map kinds on their own. Two hand-written switches would drift, and a
 * client would then retry a request on one surface that the other calls final.
 *
 * The core names gRPC statuses as strings so that it imports no gRPC library (style guide §1);
 * the adapter turns a name into its code with `grpcStatusCodes` or its library's own enum.
 */

/** The canonical gRPC status names (grpc/doc/statuscodes.md). */
export type GrpcStatusName =
  | 'OK'
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** The wire codes of the gRPC status names, for an adapter that writes `grpc-status` itself. */
export const grpcStatusCodes: Readonly<Record<GrpcStatusName, number>> = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
});

/**
 * Why a request was not admitted. Every kind that a retry can cure carries `retryAfterMs`, the
 * earliest time (from the decision) at which the same request could pass; the kinds that only a
 * changed request can cure carry none.
 */
export type Rejection =
  /** A tenant quota (a limit rule of the policy) would be exceeded. */
  | {
      readonly kind: 'quota';
      /** The rule's counter metric, such as `requests` or `weighted_tokens`. */
      readonly metric: string;
      /** The rule's limit, in the metric's units per window. */
      readonly limit: number;
      readonly window: LimitWindowUnit;
      readonly retryAfterMs: number;
    }
  /** A rate limiter (per client IP and user, or the tenant's burst) refused the request. */
  | { readonly kind: 'rate'; readonly retryAfterMs: number }
  /** The tenant already has its maximum number of requests in flight. */
  | { readonly kind: 'concurrency'; readonly retryAfterMs: number }
  /**
   * No valid credentials. `reason` is for node-side metrics and logs only: a reply must not say
   * which check failed, since that helps only a prober (see ./request-auth.ts). `credential` says
   * which kind the surface takes, for the reply's wording: a tenant's API key unless said otherwise.
   */
  | { readonly kind: 'unauthenticated'; readonly reason: string; readonly credential?: 'api-key' | 'admin-token' }
  /** The node sheds load: its queues are past the thresholds for the request's priority. */
  | { readonly kind: 'shed'; readonly retryAfterMs: number }
  /**
   * Too few mesh members answered a quorum round: the round a strict or escrowed limit needs to
   * admit a request (`admission`), a QUORUM read of usage (`read`), which any tenant may ask for,
   * or an operator's credit of usage (`credit`, src/node/admin/admin-service.ts).
   */
  | { readonly kind: 'no-quorum'; readonly operation: 'admission' | 'read' | 'claim' | 'credit'; readonly retryAfterMs: number }
  /** A malformed request: `field` names the offending field by its path. */
  | { readonly kind: 'invalid'; readonly field: string; readonly reason: string }
  /**
   * The request's estimate alone is over a limit of the tenant (or its user): it could not pass
   * even in an empty window, so no wait helps; only a smaller request (`max_tokens`, a shorter
   * body) or a raised limit does.
   */
  | {
      readonly kind: 'exceeds-limit';
      readonly scope: string;
      readonly metric: string;
      readonly limit: number;
      readonly window: LimitWindowUnit;
      /** The request's estimate in the metric's units. */
      readonly amount: number;
    }
  /** A request with this id is still running at this node; its answer will be kept for a retry. */
  | { readonly kind: 'request-running'; readonly retryAfterMs: number }
  /**
   * This request id already ran and was settled, and its answer cannot be given again (it is no
   * longer kept, it failed, or it ran as the other method): `reason` says which. Running it again
   * would call the upstream twice for one id, so only a new id helps.
   */
  | { readonly kind: 'request-done'; readonly reason: string };

export type RejectionKind = Rejection['kind'];

export interface RejectionStatus {
  readonly grpc: GrpcStatusName;
  readonly http: number;
  /** Whether the same request may succeed later; exactly the kinds that carry `retryAfterMs`. */
  readonly retryable: boolean;
}

/**
 * THE mapping of rejections to statuses; see the file comment. Typed as a `Record` over every
 * kind, so adding a kind without a row does not compile (and test/admission/outcome.test.ts
 * also checks it at run time).
 *
 * Over-quota, rate and concurrency rejections are the client's own consumption: gRPC's
 * RESOURCE_EXHAUSTED and HTTP 429. Shedding and a missing quorum are the server's trouble:
 * UNAVAILABLE and 503, which gRPC clients retry by default and proxies understand as transient.
 *
 * A request that can never fit a limit is FAILED_PRECONDITION (400): RESOURCE_EXHAUSTED would
 * promise that waiting helps. A request id already used answers by where its first request is:
 * still running, ABORTED (409) with a hint to come back for the answer; done with no answer to
 * give, ALREADY_EXISTS (409), final.
 */
export const rejectionStatus: Readonly<Record<RejectionKind, RejectionStatus>> = Object.freeze({
  quota: Object.freeze({ grpc: 'RESOURCE_EXHAUSTED', http: 429, retryable: true }),
  rate: Object.freeze({ grpc: 'RESOURCE_EXHAUSTED', http: 429, retryable: true }),
  concurrency: Object.freeze({ grpc: 'RESOURCE_EXHAUSTED', http: 429, retryable: true }),
  unauthenticated: Object.freeze({ grpc: 'UNAUTHENTICATED', http: 401, retryable: false }),
  shed: Object.freeze({ grpc: 'UNAVAILABLE', http: 503, retryable: true }),
  'no-quorum': Object.freeze({ grpc: 'UNAVAILABLE', http: 503, retryable: true }),
  invalid: Object.freeze({ grpc: 'INVALID_ARGUMENT', http: 400, retryable: false }),
  'exceeds-limit': Object.freeze({ grpc: 'FAILED_PRECONDITION', http: 400, retryable: false }),
  'request-running': Object.freeze({ grpc: 'ABORTED', http: 409, retryable: true }),
  'request-done': Object.freeze({ grpc: 'ALREADY_EXISTS', http: 409, retryable: false }),
} satisfies Record<RejectionKind, RejectionStatus>);

/**
 * Refusals of the admin surface (src/node/admin/, src/net/admin-http.ts) that admission never
 * makes, in the same shape: a known admin token without the role a call needs, an admin call
 * naming a tenant, account or key that does not exist, and a usage-ledger question put to a node
 * that keeps no ledger (it has no `dataDir`; another node of the mesh may). None can be cured by
 * waiting. The last is FAILED_PRECONDITION in gRPC, the state of this node rather than anything
 * the request named, and 404 in HTTP, where the routes it asks for are not served here.
 */
export type AdminRefusalKind = 'forbidden' | 'not-found' | 'no-ledger';

export const adminRefusalStatus: Readonly<Record<AdminRefusalKind, RejectionStatus>> = Object.freeze({
  forbidden: Object.freeze({ grpc: 'PERMISSION_DENIED', http: 403, retryable: false }),
  'not-found': Object.freeze({ grpc: 'NOT_FOUND', http: 404, retryable: false }),
  'no-ledger': Object.freeze({ grpc: 'FAILED_PRECONDITION', http: 404, retryable: false }),
} satisfies Record<AdminRefusalKind, RejectionStatus>);

/** Retry hints as response metadata: gRPC trailers and HTTP headers take the same names. */
export interface RetryHeaders {
  /** gRPC retry pushback (gRFC A6), whole milliseconds. */
  readonly 'grpc-retry-pushback-ms'?: string;
  /** HTTP Retry-After (RFC 9110 §10.2.3), whole seconds. */
  readonly 'retry-after'?: string;
}

const noHeaders: RetryHeaders = Object.freeze({});

/** The retry hint of a rejection, or `undefined` for the kinds a retry cannot cure. */
export function retryAfterMsOf(rejection: Rejection): number | undefined {
  switch (rejection.kind) {
    case 'quota':
    case 'rate':
    case 'concurrency':
    case 'shed':
    case 'no-quorum':
    case 'request-running':
      return rejection.retryAfterMs;
    case 'unauthenticated':
    case 'invalid':
    case 'exceeds-limit':
    case 'request-done':
      return undefined;
    default:
      return unreachable(rejection, 'unknown rejection kind');
  }
}

/**
 * The retry headers for a rejection: both names for the retryable kinds, none for the rest.
 *
 * Both surfaces get both values, rounded up so a client that obeys them never comes back early:
 * pushback in whole milliseconds, Retry-After in whole seconds (its only form besides a date).
 * A hint below zero (a reset already past, by a skewed clock) is sent as zero. Jitter is the
 * client's business: this hint is deterministic so that the simulator can replay it. A gRPC
 * client honours pushback only for statuses its retry policy lists; RESOURCE_EXHAUSTED is not
 * retried by default, which suits a quota that resets in hours.
 */
export function retryHeaders(rejection: Rejection): RetryHeaders {
  const retryAfterMs = retryAfterMsOf(rejection);
  assert((retryAfterMs !== undefined) === rejectionStatus[rejection.kind].retryable, 'exactly the retryable kinds carry a retry hint');
  if (retryAfterMs === undefined) return noHeaders;
  return retryHintHeaders(retryAfterMs);
}

/** The retry headers for a hint in milliseconds, rounded as `retryHeaders` describes. */
export function retryHintHeaders(retryAfterMs: number): RetryHeaders {
  assert(Number.isFinite(retryAfterMs), 'a retry hint is a finite number of milliseconds');
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return { 'grpc-retry-pushback-ms': String(ms), 'retry-after': String(Math.ceil(ms / 1000)) };
}

/**
 * Upstream errors: what a client is told when the upstream refused its call and the pool could
 * not serve it elsewhere. They are not rejections (admission let the request in) but they reach
 * the same two surfaces, so they map here, in the same file, by the class of the upstream's HTTP
 * status. An `error` event in the middle of a stream has no status; the caller gives it the
 * status the API answers its error type with (src/upstream/classify-feedback.ts,
 * `statusOfErrorType`), so both paths meet this one table.
 *
 * Two rules shape the rows. First, the account's trouble is never the client's: a 401, 402 or
 * 403 concerns the pool's credentials, so the client hears UNAVAILABLE (503), never
 * UNAUTHENTICATED, which would tell it that its own key is wrong; and a 429 means the pool's
 * accounts are throttled, which the client sees like its own quota, RESOURCE_EXHAUSTED (429),
 * the status the contract (proto/carpool/v1/carpool.proto) promises. Second, only messages
 * about the request itself pass through (400, 404, 413: "max_tokens: field required" helps the
 * client fix it); the others may describe the account, its organisation or its limits, so the
 * client gets the row's fixed `reply` instead.
 */
export type UpstreamStatusClass =
  /** 400 and any other 4xx without a row: the request's own fault. */
  | 'bad-request'
  /** 404: an unknown model or endpoint. */
  | 'not-found'
  /** 413: the request is too large for the upstream. */
  | 'too-large'
  /** 401, 402, 403: the account's key was refused, its credit is gone, or it lacks permission. */
  | 'account-refused'
  /** 429: every account that could take the request is throttled. */
  | 'rate-limited'
  /** 529: the upstream sheds load. */
  | 'overloaded'
  /** 504 (`timeout_error`): the upstream gave up on the request. */
  | 'timeout'
  /** Any other 5xx. */
  | 'server-error'
  /** Not an error status at all (1xx, 2xx, 3xx, garbage): something in between answered. */
  | 'bad-gateway';

export interface UpstreamErrorStatus extends RejectionStatus {
  /** Whether the upstream's own error message may reach the client; see the comment above. */
  readonly passesMessage: boolean;
  /** What the client is told when the upstream's message may not reach it. */
  readonly reply: string;
}

/**
 * THE mapping of upstream errors to statuses. `retryable` says whether the same request may
 * succeed later or on another account; a retry hint is sent only when the caller has one (the
 * upstream's `retry-after`, or when the pool expects an account back), via `retryHintHeaders`.
 *
 * A 413 maps to INVALID_ARGUMENT, not to RESOURCE_EXHAUSTED as gRPC's own size check does: in this
 * API RESOURCE_EXHAUSTED means "over a limit, come back later", and no wait cures a request that
 * is too large. A timeout is DEADLINE_EXCEEDED (504), which gRPC clients do not retry by default:
 * a request that timed out once is likely to time out again.
 */
export const upstreamErrorStatus: Readonly<Record<UpstreamStatusClass, UpstreamErrorStatus>> = Object.freeze({
  'bad-request': row('INVALID_ARGUMENT', 400, false, true, 'the upstream refused the request'),
  'not-found': row('NOT_FOUND', 404, false, true, 'the upstream does not know what the request names'),
  'too-large': row('INVALID_ARGUMENT', 413, false, true, 'the request is too large for the upstream'),
  'account-refused': row('UNAVAILABLE', 503, true, false, 'no upstream account can serve the request now'),
  'rate-limited': row('RESOURCE_EXHAUSTED', 429, true, false, 'the upstream accounts are rate limited'),
  overloaded: row('UNAVAILABLE', 503, true, false, 'the upstream is overloaded'),
  timeout: row('DEADLINE_EXCEEDED', 504, true, false, 'the upstream timed out'),
  'server-error': row('UNAVAILABLE', 502, true, false, 'the upstream failed'),
  'bad-gateway': row('UNAVAILABLE', 502, true, false, 'the upstream gave no usable answer'),
} satisfies Record<UpstreamStatusClass, UpstreamErrorStatus>);

function row(grpc: GrpcStatusName, http: number, retryable: boolean, passesMessage: boolean, reply: string): UpstreamErrorStatus {
  return Object.freeze({ grpc, http, retryable, passesMessage, reply });
}

/** The class of an upstream HTTP status, the key into `upstreamErrorStatus`. */
export function upstreamStatusClass(status: number): UpstreamStatusClass {
  switch (status) {
    case 401:
    case 402:
    case 403:
      return 'account-refused';
    case 404:
      return 'not-found';
    case 413:
      return 'too-large';
    case 429:
      return 'rate-limited';
    case 504:
      return 'timeout';
    case 529:
      return 'overloaded';
    default:
      if (Number.isInteger(status) && status >= 400 && status <= 499) return 'bad-request';
      if (Number.isInteger(status) && status >= 500 && status <= 599) return 'server-error';
      return 'bad-gateway';
  }
}
