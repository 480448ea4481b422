/**
 * The Anthropic API's error shape, which the official SDKs and Claude Code read:
 *
 *   {"type":"error","error":{"type":"rate_limit_error","message":"..."}}
 *
 * as a response body, and the same JSON as the data of an SSE `error` event once a stream has
 * started. The SDKs pick their error class from the HTTP status alone (401 AuthenticationError, 429
 * RateLimitError, 503 ServiceUnavailableError, …); `error.type` is named here from the status,
 * which comes from the one table (src/admission/outcome.ts, rendered by ./http-status.ts), so the
 * type is a word for the status and never a second mapping of kinds.
 */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error';

/** The Anthropic error type for an HTTP status, as the API uses them. */
export function anthropicErrorTypeOf(status: number): AnthropicErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 400 && status <= 499 ? 'invalid_request_error' : 'api_error';
  }
}

export function anthropicErrorBody(status: number, message: string): string {
  return JSON.stringify({ type: 'error', error: { type: anthropicErrorTypeOf(status), message } });
}

/** An SSE `error` event: a failure after the stream's first event, when the status line is long sent. */
export function anthropicErrorEvent(status: number, message: string): string {
  return `event: error\ndata: ${anthropicErrorBody(status, message)}\n\n`;
}
