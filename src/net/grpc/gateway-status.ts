import {
  adminRefusalStatus,
  grpcStatusCodes,
  type Rejection,
  type RejectionKind,
  rejectionStatus,
  retryHeaders,
  retryHintHeaders,
  upstreamErrorStatus,
  upstreamStatusClass,
} from '../../admission/outcome.js';
import { unreachable } from '../../core/assert.js';
import { formatDurationMs } from '../../core/duration-text.js';
import { grpcStatusMessageCharsMax } from '../../core/limits.js';
import type { ServiceError } from './carpool-handler.js';

/**
 * What a client is told for a `GatewayError` (or an Admin service refusal): the status code, the
 * message, and the retry pushback. The codes and hints come from the tables of
 * src/admission/outcome.ts and nowhere else; this file only words the messages. It imports no
 * gRPC library, so a test can check every kind without a server.
 *
 * Messages never carry an authentication failure's reason (a prober would learn which check it
 * passed), and carry an upstream's own message only for the classes the table lets pass. A
 * message with a retry hint says it as a duration people read ("retry in 20 min"); the
 * `grpc-retry-pushback-ms` trailer carries the exact milliseconds.
 */
export interface GatewayStatus {
  /** The gRPC status code (`grpc-status`). */
  readonly code: number;
  /** The status message (`grpc-message`), at most `grpcStatusMessageCharsMax` characters. */
  readonly details: string;
  /** The `grpc-retry-pushback-ms` trailer, whole milliseconds as text, when there is a hint. */
  readonly pushbackMs: string | undefined;
}

/** The one reply to every failed tenant authentication, whatever the reason. */
export const unauthenticatedMessage = 'missing or unknown API key';

/** The one reply to every failed admin authentication, on the Admin service and the admin HTTP endpoint alike. */
export const adminUnauthenticatedMessage = 'missing or unknown admin token';

/** The reply to a handler that threw: nothing about the bug reaches the client. */
export const internalMessage = 'internal error';

/** What a quorum was needed for: a strict or escrowed admission, a QUORUM read, a request id's claim, an operator's credit. */
const noQuorumMessages: { readonly [O in Extract<Rejection, { kind: 'no-quorum' }>['operation']]: string } = {
  read: 'too few regions answered the QUORUM read (a LOCAL read answers now)',
  admission: 'too few regions answered the quorum round a strict or escrowed limit needs',
  claim: 'too few regions answered the quorum round that claims this request id mesh-wide (a region that reaches most of the mesh can)',
  credit: 'too few regions answered the quorum round a credit needs',
};

const rejectionMessages: { readonly [K in RejectionKind]: (rejection: Extract<Rejection, { kind: K }>) => string } = {
  quota: (rejection) => `quota reached: ${rejection.metric} is limited to ${rejection.limit} per ${rejection.window}`,
  rate: () => 'rate limit reached',
  concurrency: () => 'too many requests in flight',
  unauthenticated: (rejection) => (rejection.credential === 'admin-token' ? adminUnauthenticatedMessage : unauthenticatedMessage),
  shed: () => 'the region is overloaded',
  'no-quorum': (rejection) => noQuorumMessages[rejection.operation],
  invalid: (rejection) => invalidMessage(rejection.field, rejection.reason),
  'exceeds-limit': (rejection) =>
    `the request can never fit: its estimate of ${rejection.amount} ${rejection.metric} is over the ${rejection.scope}'s limit of ${rejection.limit} per ${rejection.window}; lower max_tokens or shorten the request`,
  'request-running': () => 'a request with this id is still running here: ask again with the same id for its answer',
  'request-done': (rejection) => rejection.reason,
};

export function gatewayStatusOf(error: ServiceError): GatewayStatus {
  switch (error.kind) {
    case 'rejected': {
      const rejection = error.rejection;
      const message = (rejectionMessages[rejection.kind] as (rejection: Rejection) => string)(rejection);
      const pushbackMs = retryHeaders(rejection)['grpc-retry-pushback-ms'];
      return status(rejectionStatus[rejection.kind].grpc, withRetry(message, pushbackMs), pushbackMs);
    }
    case 'upstream': {
      const row = upstreamErrorStatus[upstreamStatusClass(error.status)];
      const message = row.passesMessage ? upstreamMessage(error.status, error.errorType, error.message) : row.reply;
      const hint = row.retryable && error.retryAfterMs !== undefined ? retryHintHeaders(error.retryAfterMs)['grpc-retry-pushback-ms'] : undefined;
      return status(row.grpc, withRetry(message, hint), hint);
    }
    case 'invalid':
      // The same row as an admission's `invalid` rejection: one mapping for one meaning.
      return status(rejectionStatus.invalid.grpc, invalidMessage(error.field, error.reason), undefined);
    case 'forbidden':
      return status(adminRefusalStatus.forbidden.grpc, error.reason, undefined);
    case 'not-found':
      return status(adminRefusalStatus['not-found'].grpc, `${error.field}: ${error.reason}`, undefined);
    case 'no-ledger':
      return status(adminRefusalStatus['no-ledger'].grpc, error.reason, undefined);
    default:
      return unreachable(error, 'unknown gateway error kind');
  }
}

/** `message; retry in 20 min` when there is a hint. */
function withRetry(message: string, pushbackMs: string | undefined): string {
  return pushbackMs === undefined ? message : `${message}; retry in ${formatDurationMs(Number(pushbackMs))}`;
}

function invalidMessage(field: string, reason: string): string {
  return `invalid ${field}: ${reason}`;
}

function upstreamMessage(status: number, errorType: string | undefined, message: string): string {
  const prefix = errorType === undefined ? `upstream ${status}` : `upstream ${status} ${errorType}`;
  return message.length === 0 ? prefix : `${prefix}: ${message}`;
}

function status(name: keyof typeof grpcStatusCodes, message: string, pushbackMs: string | undefined): GatewayStatus {
  const details = message.length <= grpcStatusMessageCharsMax ? message : `${message.slice(0, grpcStatusMessageCharsMax - 1)}…`;
  return { code: grpcStatusCodes[name], details, pushbackMs };
}
