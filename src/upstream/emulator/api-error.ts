/**
 * The errors the Messages API emulator answers, in one table: each error type with the HTTP
 * status the real API gives it, and the body it sends,
 *
 *   {"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"},"request_id":"req_..."}
 *
 * The official SDK picks its error class from the status alone (404 → NotFoundError, 529 →
 * OverloadedError), and reads `error.type` and `error.message` from the body.
 */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error';

export const apiErrorStatus: Readonly<Record<ApiErrorType, number>> = Object.freeze({
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
});

export interface ApiError {
  readonly kind: 'api-error';
  readonly type: ApiErrorType;
  readonly message: string;
}

export function apiError(type: ApiErrorType, message: string): ApiError {
  return { kind: 'api-error', type, message };
}

export interface ErrorBody {
  readonly type: 'error';
  readonly error: { readonly type: ApiErrorType; readonly message: string };
  readonly request_id: string;
}

export function errorBody(error: ApiError, requestId: string): ErrorBody {
  return { type: 'error', error: { type: error.type, message: error.message }, request_id: requestId };
}
