import { upstreamRetryAfterMsMax } from '../core/limits.js';
import type { RateLimitSnapshot, RateLimitWindow } from '../pool/account-feedback.js';
import { type HeaderMap, headerValue } from './response-headers.js';

/**
 * Reads the account's limits from the headers of an Anthropic response:
 *
 *   anthropic-ratelimit-requests-limit: 4000
 *   anthropic-ratelimit-requests-remaining: 3999
 *   anthropic-ratelimit-requests-reset: 2025-01-01T00:00:05Z
 *   (the same three for tokens, input-tokens and output-tokens)
 *   retry-after: 5                                 (seconds, or an HTTP-date)
 *
 * Resets are RFC 3339 stamps, turned into milliseconds since the epoch, the clock the pool's
 * `nowMs` runs on. A value that does not parse is undefined rather than a guess: the pool falls
 * back to its own defaults for what it was not told, which is safer than acting on garbage.
 */

const groups = [
  ['requests', 'requests'],
  ['tokens', 'tokens'],
  ['inputTokens', 'input-tokens'],
  ['outputTokens', 'output-tokens'],
] as const;

export function parseRateLimits(headers: HeaderMap): RateLimitSnapshot {
  const windows: Record<(typeof groups)[number][0], RateLimitWindow | undefined> = {
    requests: undefined,
    tokens: undefined,
    inputTokens: undefined,
    outputTokens: undefined,
  };
  for (const [field, name] of groups) {
    const prefix = `anthropic-ratelimit-${name}-`;
    const limit = parseCount(headerValue(headers, `${prefix}limit`));
    const remaining = parseCount(headerValue(headers, `${prefix}remaining`));
    const resetAtMs = parseRfc3339Ms(headerValue(headers, `${prefix}reset`));
    // A group the upstream did not send (or sent only garbage for) is absent, not all-undefined,
    // so the pool can tell "no such limit" from "a limit whose fields we could not read".
    if (limit === undefined && remaining === undefined && resetAtMs === undefined) continue;
    windows[field] = Object.freeze({ limit, remaining, resetAtMs });
  }
  return Object.freeze(windows);
}

/**
 * `retry-after` as milliseconds from `nowMs`: delay-seconds or an IMF-fixdate HTTP-date (RFC
 * 9110 §10.2.3). A date in the past is zero; a wait past `upstreamRetryAfterMsMax` is clamped.
 */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d{1,12}$/.test(value)) return Math.min(Number(value) * 1_000, upstreamRetryAfterMsMax);
  const atMs = parseHttpDateMs(value);
  if (atMs === undefined) return undefined;
  return Math.min(Math.max(0, atMs - nowMs), upstreamRetryAfterMsMax);
}

/** A non-negative decimal count; fifteen digits keep it an exact integer in a double. */
function parseCount(value: string | undefined): number | undefined {
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time in milliseconds since the epoch. Parsed by hand rather than with
 * `Date.parse`, whose leniency differs between engines and which accepts days like February 30.
 */
export function parseRfc3339Ms(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = rfc3339.exec(value);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  // Years before the epoch are no reset time; they would also meet Date.UTC's two-digit years.
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  // Second 60 is a leap second; it is read as the last millisecond before the next minute.
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const fractionMs = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const offsetHours = Number(m[10]);
    const offsetMins = Number(m[11]);
    if (offsetHours > 23 || offsetMins > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const secondMs = second === 60 ? 59_999 : second * 1_000 + fractionMs;
  return Date.UTC(year, month - 1, day, hour, minute) + secondMs - offsetMinutes * 60_000;
}

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const imfFixdate = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/** An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP-date form senders may use. */
function parseHttpDateMs(value: string): number | undefined {
  const m = imfFixdate.exec(value);
  if (m === null) return undefined;
  const day = Number(m[1]);
  const month = months.indexOf(m[2] as string) + 1;
  const year = Number(m[3]);
  const [hour, minute, second] = [Number(m[4]), Number(m[5]), Number(m[6])];
  if (year < 1970 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 60) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59));
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
