import type { AccountFeedback } from '../pool/account-feedback.js';
import { parseRateLimits, parseRetryAfterMs } from './rate-limit-headers.js';
import { type HeaderMap, headerValue } from './response-headers.js';

/**
 * The one table from what an upstream call ended with to what the pool learns about the account
 * (src/pool/account-feedback.ts):
 *
 *   2xx                  success        with the rate-limit snapshot of the headers
 *   429                  rate-limited   with retry-after and the snapshot
 *   529                  overloaded
 *   401, 402, 403        auth-failed    (402 `billing_error`: the account has no credit left;
 *                                        like a revoked key it heals only by an operator's hand)
 *   other 5xx            server-error
 *   other 4xx            client-error   (the request's fault, not the account's)
 *   1xx, 3xx, others     network        (the client follows no redirects: something in between
 *                                        answered, not the API)
 *
 * An `error` event in the middle of a stream has no status of its own; its error type maps to
 * the status the API gives that type (`statusOfErrorType`), and from there through the table.
 */
export function feedbackOfStatus(status: number, headers: HeaderMap, nowMs: number): AccountFeedback {
  if (status >= 200 && status <= 299) return { kind: 'success', rateLimits: parseRateLimits(headers) };
  if (status === 429) {
    return { kind: 'rate-limited', retryAfterMs: parseRetryAfterMs(headerValue(headers, 'retry-after'), nowMs), rateLimits: parseRateLimits(headers) };
  }
  if (status === 529) return { kind: 'overloaded' };
  if (status === 401 || status === 402 || status === 403) return { kind: 'auth-failed', status };
  if (status >= 500 && status <= 599) return { kind: 'server-error', status };
  if (status >= 400 && status <= 499) return { kind: 'client-error', status };
  return networkFeedback(`unexpected status ${status}`);
}

/**
 * Feedback for an `error` event mid-stream. The stream's own headers said 200, so a
 * `rate_limit_error` here carries their snapshot but no retry-after.
 */
export function feedbackOfErrorType(errorType: string, headers: HeaderMap, nowMs: number): AccountFeedback {
  const status = statusOfErrorType(errorType);
  if (status === 429) return { kind: 'rate-limited', retryAfterMs: undefined, rateLimits: parseRateLimits(headers) };
  return feedbackOfStatus(status, headers, nowMs);
}

/** No usable answer: refused, reset, timed out, or a body that broke the protocol. */
export function networkFeedback(detail: string): AccountFeedback {
  return { kind: 'network', detail };
}

/**
 * The status the Messages API answers each of its error types with. An unknown type is read as
 * the API failing (500): a new type the account caused would come with a status of its own, and
 * this only serves events mid-stream.
 */
export function statusOfErrorType(errorType: string): number {
  switch (errorType) {
    case 'invalid_request_error':
      return 400;
    case 'authentication_error':
      return 401;
    case 'billing_error':
      return 402;
    case 'permission_error':
      return 403;
    case 'not_found_error':
      return 404;
    case 'request_too_large':
      return 413;
    case 'rate_limit_error':
      return 429;
    case 'timeout_error':
      return 504;
    case 'overloaded_error':
      return 529;
    default:
      return 500;
  }
}
