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

interface Group {
  readonly field: 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';
  readonly limitName: string;
  readonly remainingName: string;
  readonly resetName: string;
  /**
   * The last reset stamp read for the group, and its value. A stamp has whole seconds and the
   * same one comes back on every call within that second, while parsing one costs most of a
   * microsecond; one entry per group keeps this bounded.
   */
  lastReset: string | undefined;
  lastResetAtMs: number | undefined;
}

/**
 * The four groups, with their header names built once: a name built per call is a fresh string,
 * and looking one up in the headers object costs a hash each time.
 */
const groups: readonly Group[] = (
  [
    ['requests', 'requests'],
    ['tokens', 'tokens'],
    ['inputTokens', 'input-tokens'],
    ['outputTokens', 'output-tokens'],
  ] as const
).map(([field, name]) => ({
  field,
  limitName: `anthropic-ratelimit-${name}-limit`,
  remainingName: `anthropic-ratelimit-${name}-remaining`,
  resetName: `anthropic-ratelimit-${name}-reset`,
  lastReset: undefined,
  lastResetAtMs: undefined,
}));

export function parseRateLimits(headers: HeaderMap): RateLimitSnapshot {
  const windows: Record<Group['field'], RateLimitWindow | undefined> = {
    requests: undefined,
    tokens: undefined,
    inputTokens: undefined,
    outputTokens: undefined,
  };
  for (const group of groups) {
    const limit = parseCount(headerValue(headers, group.limitName));
    const remaining = parseCount(headerValue(headers, group.remainingName));
    const resetAtMs = resetOf(group, headerValue(headers, group.resetName));
    // A group the upstream did not send (or sent only garbage for) is absent, not all-undefined,
    // so the pool can tell "no such limit" from "a limit whose fields we could not read".
    if (limit === undefined && remaining === undefined && resetAtMs === undefined) continue;
    windows[group.field] = Object.freeze({ limit, remaining, resetAtMs });
  }
  return Object.freeze({ ...windows, unified: undefined });
}

function resetOf(group: Group, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value !== group.lastReset) {
    group.lastResetAtMs = parseRfc3339Ms(value);
    group.lastReset = value;
  }
  return group.lastResetAtMs;
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

/**
 * A non-negative decimal count; fifteen digits keep it an exact integer in a double. Checked by
 * character rather than with /^\d{1,15}$/: eight counts a response, and the loop is cheaper.
 */
function parseCount(value: string | undefined): number | undefined {
  if (value === undefined || value.length === 0 || value.length > 15) return undefined;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x30 || code > 0x39) return undefined;
  }
  return Number(value);
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
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
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
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (year < 1970 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 60) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59));
}

const monthDays = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days of `month` (1-12) in the Gregorian calendar, as `Date` counts them, without making one. */
function daysInMonth(year: number, month: number): number {
  if (month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)) return 29;
  return monthDays[month - 1] ?? 0;
}
