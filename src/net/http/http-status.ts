import { rejectionStatus, retryHeaders, retryHintHeaders, type RetryHeaders, upstreamErrorStatus, upstreamStatusClass } from '../../admission/outcome.js';
import { unreachable } from '../../core/assert.js';
import type { GatewayError } from '../grpc/carpool-handler.js';
import { gatewayStatusOf } from '../grpc/gateway-status.js';

/**
 * What an HTTP client is told for a `GatewayError`: the status, the retry hint and the message.
 * The HTTP rendering of the ONE table (src/admission/outcome.ts): the status is the row's `http`,
 * the hint comes from `retryHeaders`/`retryHintHeaders`, whether a retry can help is the row's
 * `retryable`, and the message is the one the gRPC surface words (../grpc/gateway-status.ts), with
 * the proto's field names put as an HTTP client knows them. Nothing here maps a kind on its own.
 *
 * The body's shape is the surface's own: the Anthropic routes wrap this in
 * `{"type":"error","error":{...}}` (./anthropic-error.ts); another surface (an OpenAI-compatible
 * route) wraps the same status in its own shape.
 */
export interface HttpErrorStatus {
  readonly status: number;
  readonly message: string;
  /** Whether the same request may succeed later: the table's `retryable`, sent as `x-should-retry`. */
  readonly retryable: boolean;
  /** `retry-after` (whole seconds) and `retry-after-ms`, when there is a hint. */
  readonly retryAfterSeconds: string | undefined;
  readonly retryAfterMs: string | undefined;
}

export function httpStatusOf(error: GatewayError): HttpErrorStatus {
  const message = httpWording(gatewayStatusOf(error).details);
  switch (error.kind) {
    case 'rejected': {
      const row = rejectionStatus[error.rejection.kind];
      return withHint(row.http, message, row.retryable, retryHeaders(error.rejection));
    }
    case 'upstream': {
      const row = upstreamErrorStatus[upstreamStatusClass(error.status)];
      const hint = row.retryable && error.retryAfterMs !== undefined ? retryHintHeaders(error.retryAfterMs) : {};
      return withHint(row.http, message, row.retryable, hint);
    }
    case 'invalid':
      // The same row as an admission's `invalid` rejection, as on the gRPC surface.
      return withHint(rejectionStatus.invalid.http, message, rejectionStatus.invalid.retryable, {});
    default:
      return unreachable(error, 'unknown gateway error kind');
  }
}

function withHint(status: number, message: string, retryable: boolean, hint: RetryHeaders): HttpErrorStatus {
  return { status, message, retryable, retryAfterSeconds: hint['retry-after'], retryAfterMs: hint['grpc-retry-pushback-ms'] };
}

/**
 * The gateway names fields by their proto names (`request_json.max_tokens`); over HTTP the body
 * is the request itself, so `max_tokens` is what its author wrote.
 */
export function httpWording(message: string): string {
  return message
    .replace(/\brequest_json\./g, '')
    .replace(/\brequest_json\b/g, 'request body')
    .replace(/\bStreamComplete\b/g, '"stream": true')
    .replace(/\bComplete\b/g, '"stream": false');
}
