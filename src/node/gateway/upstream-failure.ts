import type { Rejection } from '../../admission/outcome.js';
import { unreachable } from '../../core/assert.js';
import { accountBusyRetryAfterMs, noAccountRetryAfterMsMin } from '../../core/limits.js';
import type { GatewayError } from '../../net/grpc/carpool-handler.js';
import type { AccountCallError } from '../account-caller.js';
import { statusOfErrorType } from '../../upstream/classify-feedback.js';
import type { CountTokensCallError } from '../../upstream/count-tokens-call.js';
import type { UpstreamError } from '../../upstream/upstream-result.js';

/**
 * How a failed account call reaches the client: as a `GatewayError`, which the adapter maps
 * through the tables of src/admission/outcome.ts. Two shapes come out:
 *
 *  - the pool could not serve (no account, all busy, the wait for a permit ran out, the node is
 *    closing): a `shed` rejection, UNAVAILABLE with a retry hint, as the contract lists "no
 *    account can serve now";
 *  - an upstream answer or failure: an `upstream` error with the HTTP status the table reads. A
 *    failure without a status gets the one an HTTP gateway would answer: 504 for a timeout, 502
 *    for a broken connection, a cut stream or a malformed answer, 503 for an upstream client
 *    that is closing or full, and 500 for a call this node could not even build.
 *
 * A call cancelled by its client maps to a shed rejection too; nobody reads it, since the client
 * is gone, but the handler must return something.
 */
export function gatewayErrorOfCall(error: AccountCallError): GatewayError {
  switch (error.kind) {
    case 'no-account':
      // Undefined when only an operator can help; the client still gets a hint of the pool's scale.
      return shed(error.retryAfterMs ?? noAccountRetryAfterMsMin);
    case 'busy':
      return shed(error.retryAfterMs);
    case 'queue-timeout':
    case 'cancelled':
    case 'closed':
      return shed(accountBusyRetryAfterMs);
    case 'upstream':
      return upstreamErrorOf(error.error);
    default:
      return unreachable(error, 'unknown account call error');
  }
}

export function gatewayErrorOfCount(error: CountTokensCallError): GatewayError {
  switch (error.kind) {
    case 'http-status':
      return { kind: 'upstream', status: error.status, errorType: error.errorType, message: error.message, retryAfterMs: error.retryAfterMs };
    case 'timeout':
      return upstream(504, error.detail);
    case 'network':
    case 'bad-response':
      return upstream(502, error.detail);
    case 'invalid-request':
      return upstream(500, error.detail);
    case 'cancelled':
      return shed(accountBusyRetryAfterMs);
    default:
      return unreachable(error, 'unknown count_tokens error');
  }
}

function upstreamErrorOf(error: UpstreamError): GatewayError {
  switch (error.kind) {
    case 'http-status': {
      const retryAfterMs = error.feedback.kind === 'rate-limited' ? error.feedback.retryAfterMs : undefined;
      return { kind: 'upstream', status: error.status, errorType: error.errorType, message: error.message, retryAfterMs };
    }
    case 'stream-error':
      return { kind: 'upstream', status: statusOfErrorType(error.errorType), errorType: error.errorType, message: error.message, retryAfterMs: undefined };
    case 'timeout':
      return upstream(504, `the upstream timed out (${error.phase})`);
    case 'network':
    case 'bad-response':
    case 'truncated':
      return upstream(502, error.detail);
    case 'unavailable':
      return shed(accountBusyRetryAfterMs);
    case 'invalid-request':
      return upstream(500, error.detail);
    case 'cancelled':
      return shed(accountBusyRetryAfterMs);
    default:
      return unreachable(error, 'unknown upstream error');
  }
}

function upstream(status: number, message: string): GatewayError {
  return { kind: 'upstream', status, errorType: undefined, message, retryAfterMs: undefined };
}

function shed(retryAfterMs: number): GatewayError {
  const rejection: Rejection = { kind: 'shed', retryAfterMs };
  return { kind: 'rejected', rejection };
}
