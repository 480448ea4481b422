import { unifiedUtilizationMax, upstreamRetryAfterMsMax } from '../core/limits.js';
import type { RateLimitSnapshot, RateLimitWindow, UnifiedLimits, UnifiedStatus, UnifiedWindow, UnifiedWindowName } from '../pool/account-feedback.js';
import { type HeaderMap, headerValue } from './response-headers.js';

/**
 * Reads the account's limits from the headers of an Anthropic response. An API key's answers
 * carry four groups:
 *
 *   anthropic-ratelimit-requests-limit: 4000
 *   anthropic-ratelimit-requests-remaining: 3999
 *   anthropic-ratelimit-requests-reset: 2025-01-01T00:00:05Z
 *   (the same three for tokens, input-tokens and output-tokens)
 *   retry-after: 5                                 (seconds, or an HTTP-date)
 *
 * A subscription (OAuth) account's answers carry the unified windows instead:
 *
 *   anthropic-ratelimit-unified-status: allowed          (allowed | allowed_warning | rejected)
 *   anthropic-ratelimit-unified-reset: 1770685200        (unix seconds: the binding window's end)
 *   anthropic-ratelimit-unified-5h-status: allowed
 *   anthropic-ratelimit-unified-5h-utilization: 0.12     (share of the window used, 0 to 1)
 *   anthropic-ratelimit-unified-5h-reset: 1770685200
 *   (the same three for 7d, the weekly window)
 *
 * Anthropic does not document the unified headers; the names, the three statuses and the unix
 * second resets are as Claude Code and the relays that pool subscriptions read them: Claude Code
 * issues anthropics/claude-code#12829 and #27508 (which lists `5h_reset: 1740350340`,
 * `7d_status: allowed`), the relay sub2api (Wei-Shaw/sub2api,
 * backend/internal/service/ratelimit_service.go and its 429 tests, which send
 * `anthropic-ratelimit-unified-5h-reset: 1770998400`), and opencode's fix for dropping the
 * utilisation (anomalyco/opencode#49653). Other windows the upstream sends (`7d_sonnet`,
 * `overage`, `representative-claim`) are not read: the pool tracks the two that bind the account.
 * Some clients also accept an RFC 3339 reset there (prime-agent#1184); so does this parser, since
 * telling the two apart costs nothing on the usual path.
 *
 * Resets become milliseconds since the epoch, the clock the pool's `nowMs` runs on. A value that
 * does not parse is undefined rather than a guess: the pool falls back to its own defaults for
 * what it was not told, which is safer than acting on garbage. Nothing here throws.
 */

/**
 * The last reset stamp read from one header, and its value. A stamp has whole seconds and the
 * same one comes back on every call within that second (or for hours, for a window's end),
 * while parsing an RFC 3339 one costs most of a microsecond; one entry per header keeps this
 * bounded.
 */
interface ResetCache {
  last: string | undefined;
  lastAtMs: number | undefined;
}

interface Group extends ResetCache {
  readonly field: 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';
  readonly limitName: string;
  readonly remainingName: string;
  readonly resetName: string;
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
  last: undefined,
  lastAtMs: undefined,
}));

const unifiedPrefix = 'anthropic-ratelimit-unified';

interface UnifiedWindowHeaders {
  readonly name: UnifiedWindowName;
  readonly statusName: string;
  readonly utilizationName: string;
  readonly reset: ResetCache & { readonly name: string };
}

/** The header names of the account-wide status and reset, and of each window, built once. */
const unifiedStatusName = `${unifiedPrefix}-status`;
const unifiedReset: ResetCache & { readonly name: string } = { name: `${unifiedPrefix}-reset`, last: undefined, lastAtMs: undefined };
const unifiedWindowHeaders: readonly UnifiedWindowHeaders[] = (
  [
    ['five-hour', '5h'],
    ['seven-day', '7d'],
  ] as const
).map(([name, tag]) => ({
  name,
  statusName: `${unifiedPrefix}-${tag}-status`,
  utilizationName: `${unifiedPrefix}-${tag}-utilization`,
  reset: { name: `${unifiedPrefix}-${tag}-reset`, last: undefined, lastAtMs: undefined },
}));

/** The header names `parseRateLimits` reads for the unified windows, for an emulator or a test that prints them. */
export const unifiedHeaderNames = Object.freeze({
  status: unifiedStatusName,
  reset: unifiedReset.name,
  windows: Object.freeze(
    Object.fromEntries(
      unifiedWindowHeaders.map((w) => [w.name, Object.freeze({ status: w.statusName, utilization: w.utilizationName, reset: w.reset.name })]),
    ) as Record<UnifiedWindowName, { readonly status: string; readonly utilization: string; readonly reset: string }>,
  ),
});

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
    const resetAtMs = resetOf(group, headerValue(headers, group.resetName), parseRfc3339Ms);
    // A group the upstream did not send (or sent only garbage for) is absent, not all-undefined,
    // so the pool can tell "no such limit" from "a limit whose fields we could not read".
    if (limit === undefined && remaining === undefined && resetAtMs === undefined) continue;
    windows[group.field] = Object.freeze({ limit, remaining, resetAtMs });
  }
  return Object.freeze({ ...windows, unified: parseUnified(headers) });
}

/**
 * The unified windows, or undefined when the answer carries none of their headers (every API
 * key's answer) or only garbage in them; likewise one window is absent, not all-undefined.
 */
function parseUnified(headers: HeaderMap): UnifiedLimits | undefined {
  const status = parseUnifiedStatus(headerValue(headers, unifiedStatusName));
  const resetAtMs = resetOf(unifiedReset, headerValue(headers, unifiedReset.name), parseUnifiedResetMs);
  let fiveHour: UnifiedWindow | undefined;
  let sevenDay: UnifiedWindow | undefined;
  for (const window of unifiedWindowHeaders) {
    const windowStatus = parseUnifiedStatus(headerValue(headers, window.statusName));
    const utilization = parseUtilization(headerValue(headers, window.utilizationName));
    const windowResetAtMs = resetOf(window.reset, headerValue(headers, window.reset.name), parseUnifiedResetMs);
    if (windowStatus === undefined && utilization === undefined && windowResetAtMs === undefined) continue;
    const parsed = Object.freeze({ status: windowStatus, utilization, resetAtMs: windowResetAtMs });
    if (window.name === 'five-hour') fiveHour = parsed;
    else sevenDay = parsed;
  }
  if (status === undefined && resetAtMs === undefined && fiveHour === undefined && sevenDay === undefined) return undefined;
  return Object.freeze({ status, resetAtMs, windows: Object.freeze({ 'five-hour': fiveHour, 'seven-day': sevenDay }) });
}

function resetOf(cache: ResetCache, value: string | undefined, parse: (value: string) => number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value !== cache.last) {
    cache.lastAtMs = parse(value);
    cache.last = value;
  }
  return cache.lastAtMs;
}

/** The three statuses the upstream sends; any other text is unknown, not a guess at one. */
function parseUnifiedStatus(value: string | undefined): UnifiedStatus | undefined {
  return value === 'allowed' || value === 'allowed_warning' || value === 'rejected' ? value : undefined;
}

/**
 * A unified reset: unix seconds (what the upstream sends; twelve digits reach far past any real
 * reset and keep the product exact), or else an RFC 3339 stamp.
 */
export function parseUnifiedResetMs(value: string): number | undefined {
  const seconds = parseCount(value);
  if (seconds !== undefined) return value.length <= 12 ? seconds * 1_000 : undefined;
  return parseRfc3339Ms(value);
}

const decimal = /^\d{1,6}(?:\.\d{1,17})?$/;

/**
 * A window's utilisation: a plain decimal from 0 to `unifiedUtilizationMax`. Signs, exponents,
 * `NaN` and `Infinity` are refused: `Number()` would take them, and the upstream sends none.
 */
export function parseUtilization(value: string | undefined): number | undefined {
  if (value === undefined || !decimal.test(value)) return undefined;
  const share = Number(value);
  return share <= unifiedUtilizationMax ? share : undefined;
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
