import type { ChatErrorBody } from './chat-shapes.js';
import type { TranslationError } from './translation-error.js';

/**
 * OpenAI's error body, `{"error":{"message","type","param","code"}}`, for every way the Chat
 * Completions route refuses or fails: a request that does not translate (400), a refusal of the
 * gateway (the route takes the HTTP status from the one outcome table of src/admission/outcome.ts
 * and renders it here), and an `error` event of an upstream stream.
 *
 * The official SDKs pick their exception class by HTTP status, not by `type`; `type` and `code`
 * are for people reading the body, so they follow the words OpenAI itself uses for each status.
 */

/** `type` and default `code` per HTTP status; a status not listed takes its class's row. */
const errorTypes: ReadonlyMap<number, { readonly type: string; readonly code: string | null }> = new Map([
  [400, { type: 'invalid_request_error', code: null }],
  [401, { type: 'authentication_error', code: 'invalid_api_key' }],
  [403, { type: 'permission_error', code: null }],
  [404, { type: 'invalid_request_error', code: 'not_found' }],
  [409, { type: 'invalid_request_error', code: 'conflict' }],
  [413, { type: 'invalid_request_error', code: 'request_too_large' }],
  [429, { type: 'rate_limit_error', code: 'rate_limit_exceeded' }],
  [500, { type: 'server_error', code: null }],
  [503, { type: 'server_error', code: 'overloaded' }],
  [529, { type: 'server_error', code: 'overloaded' }],
]);

function errorTypeOf(status: number): { readonly type: string; readonly code: string | null } {
  const row = errorTypes.get(status);
  if (row !== undefined) return row;
  return status >= 500 ? { type: 'server_error', code: null } : { type: 'invalid_request_error', code: null };
}

export interface ChatFailure {
  /** The HTTP status the failure has (or would have had, for a stream that already started). */
  readonly status: number;
  readonly message: string;
  /** The request field at fault, when there is one. */
  readonly param?: string;
  /** Overrides the status's default code, such as `insufficient_quota` for a quota refusal. */
  readonly code?: string;
}

/** The error body for a failure with an HTTP status. */
export function chatErrorBody(failure: ChatFailure): ChatErrorBody {
  const row = errorTypeOf(failure.status);
  return { error: { message: failure.message, type: row.type, param: failure.param ?? null, code: failure.code ?? row.code } };
}

/** The 400 body for a request that did not translate. */
export function translationErrorBody(error: TranslationError): ChatErrorBody {
  return {
    error: {
      message: error.message,
      type: 'invalid_request_error',
      param: error.param,
      code: error.kind === 'unsupported' ? 'unsupported_parameter' : 'invalid_value',
    },
  };
}

/**
 * The HTTP status an Anthropic error type stands for (the Messages API's errors page), so that an
 * `error` event inside an upstream stream renders like the same error before the stream.
 */
const anthropicErrorStatuses: ReadonlyMap<string, number> = new Map([
  ['invalid_request_error', 400],
  ['authentication_error', 401],
  ['billing_error', 402],
  ['permission_error', 403],
  ['not_found_error', 404],
  ['request_too_large', 413],
  ['rate_limit_error', 429],
  ['api_error', 500],
  ['timeout_error', 504],
  ['overloaded_error', 529],
]);

/** The status of an Anthropic error type; an unknown type is a server error. */
export function statusOfAnthropicError(type: unknown): number {
  return (typeof type === 'string' ? anthropicErrorStatuses.get(type) : undefined) ?? 500;
}
