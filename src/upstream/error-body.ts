import { upstreamErrorMessageCharsMax } from '../core/limits.js';

/**
 * Reads the body of an Anthropic error response:
 *
 *   {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}
 *
 * Not every error comes from the API itself: a load balancer or proxy in front of it answers
 * with HTML or plain text (a 502 page, a 413 from a body limit). Those give no error type and
 * their text, flattened to one line, as the message, so the caller still learns something.
 * Messages are cut at `upstreamErrorMessageCharsMax`: they end up in logs and in the caller's
 * error, and an upstream must not be able to fill either.
 */
export interface UpstreamErrorBody {
  /** `error.type` of an API error body, such as `rate_limit_error`; undefined for other bodies. */
  readonly errorType: string | undefined;
  readonly message: string;
}

export function parseErrorBody(text: string): UpstreamErrorBody {
  const api = parseApiError(text);
  if (api !== undefined) return api;
  return { errorType: undefined, message: oneLine(text) };
}

function parseApiError(text: string): UpstreamErrorBody | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(body) || !isObject(body.error)) return undefined;
  const { type, message } = body.error;
  if (typeof type !== 'string') return undefined;
  return { errorType: oneLine(type), message: typeof message === 'string' ? oneLine(message) : '' };
}

/** Control characters and runs of white space become one space, and the text is cut to its bound. */
export function oneLine(text: string): string {
  const flat = text.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length <= upstreamErrorMessageCharsMax ? flat : `${flat.slice(0, upstreamErrorMessageCharsMax - 1)}…`;
}

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
