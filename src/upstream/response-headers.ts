import { upstreamRequestIdLengthMax } from '../core/limits.js';

/**
 * Response headers as an HTTP library hands them over: lower-case names, a list for a header
 * sent more than once. Only reading is needed here, so undici's `IncomingHttpHeaders` and
 * Node's fit this type alike, and tests can pass plain objects.
 */
export type HeaderMap = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * The one value of header `name`, trimmed; undefined when it is missing, empty, or sent more than
 * once. A repeated rate-limit or retry header is ambiguous, and guessing which copy is right
 * could cool an account down for the wrong time.
 */
export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const raw = headers[name];
  if (raw === undefined) return undefined;
  const value = typeof raw === 'string' ? raw : raw.length === 1 ? raw[0] : undefined;
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/**
 * The upstream's `request-id`, which support tickets and logs quote. It is kept only when it is
 * short printable ASCII, so it is safe as a log field.
 */
export function upstreamRequestId(headers: HeaderMap): string | undefined {
  const value = headerValue(headers, 'request-id');
  if (value === undefined || value.length > upstreamRequestIdLengthMax) return undefined;
  return /^[\x21-\x7e]+$/.test(value) ? value : undefined;
}
