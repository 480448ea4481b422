import { emulatorResetStampsMax } from '../../core/limits.js';
import type { LimitState, RateLimitState } from './rate-limiter.js';
import type { SubscriptionState } from './subscription-windows.js';

/**
 * The rate-limit headers of a Messages response, as the real API sends them on every answer of an
 * authenticated request:
 *
 *   anthropic-ratelimit-requests-limit: 50
 *   anthropic-ratelimit-requests-remaining: 49
 *   anthropic-ratelimit-requests-reset: 2025-01-01T00:00:02Z
 *   (the same for -tokens-, -input-tokens-, -output-tokens-)
 *   retry-after: 12                                (429 only: whole seconds, rounded up)
 *
 * Resets are RFC 3339 stamps in whole seconds, rounded up so that a client waiting until the
 * stamp never comes back early.
 */
export type Headers = Record<string, string>;

export function rfc3339(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * Formatted stamps by whole second, direct-mapped: every answer reports four resets and they
 * repeat within a second, while formatting a date costs more than the rest of the headers.
 */
const stampSeconds = new Float64Array(emulatorResetStampsMax).fill(Number.NaN);
const stampTexts: string[] = new Array<string>(emulatorResetStampsMax).fill('');

/** `rfc3339(ms)`, formatted once per second. */
export function resetStamp(ms: number): string {
  const second = Math.ceil(ms / 1000);
  const slot = ((second % emulatorResetStampsMax) + emulatorResetStampsMax) % emulatorResetStampsMax;
  if (stampSeconds[slot] === second) return stampTexts[slot] as string;
  const text = rfc3339(ms);
  stampSeconds[slot] = second;
  stampTexts[slot] = text;
  return text;
}

/**
 * The twelve headers of `state`, added to `headers` (a fresh object by default) and returned:
 * the server adds them to the headers of its answer without copying one object into another.
 */
export function rateLimitHeaders(state: RateLimitState, headers: Headers = {}): Headers {
  const { requests, tokens, inputTokens, outputTokens } = state;
  headers['anthropic-ratelimit-requests-limit'] = String(requests.limit);
  headers['anthropic-ratelimit-requests-remaining'] = String(requests.remaining);
  headers['anthropic-ratelimit-requests-reset'] = resetStamp(requests.resetAtMs);
  headers['anthropic-ratelimit-tokens-limit'] = String(tokens.limit);
  headers['anthropic-ratelimit-tokens-remaining'] = String(tokens.remaining);
  headers['anthropic-ratelimit-tokens-reset'] = resetStamp(tokens.resetAtMs);
  headers['anthropic-ratelimit-input-tokens-limit'] = String(inputTokens.limit);
  headers['anthropic-ratelimit-input-tokens-remaining'] = String(inputTokens.remaining);
  headers['anthropic-ratelimit-input-tokens-reset'] = resetStamp(inputTokens.resetAtMs);
  headers['anthropic-ratelimit-output-tokens-limit'] = String(outputTokens.limit);
  headers['anthropic-ratelimit-output-tokens-remaining'] = String(outputTokens.remaining);
  headers['anthropic-ratelimit-output-tokens-reset'] = resetStamp(outputTokens.resetAtMs);
  return headers;
}

/** `retry-after` in whole seconds, rounded up: a client that waits that long is admitted. */
export function retryAfterSeconds(retryAfterMs: number): string {
  return String(Math.max(0, Math.ceil(retryAfterMs / 1000)));
}

/**
 * The state a 429 reports. `remaining` 0 says the window is spent (every limit shows nothing left
 * until the retry time), which clients treat as a cool-down until the reset; a positive
 * `remaining` is a short throttle: the requests limit still shows room, as when the real API
 * refuses a burst that its per-minute figures would allow.
 */
export function throttledState(state: RateLimitState, remaining: number, nowMs: number, retryAfterMs: number): RateLimitState {
  if (remaining > 0) return { ...state, requests: { ...state.requests, remaining: Math.min(remaining, state.requests.limit) } };
  const spent = (limit: LimitState): LimitState => ({ limit: limit.limit, remaining: 0, resetAtMs: Math.max(limit.resetAtMs, nowMs + retryAfterMs) });
  return { requests: spent(state.requests), inputTokens: spent(state.inputTokens), outputTokens: spent(state.outputTokens), tokens: spent(state.tokens) };
}

/**
 * The subscription-window headers every answer of an OAuth (subscription) account carries, beside
 * the per-minute ones above:
 *
 *   anthropic-ratelimit-unified-status: allowed            allowed | allowed_warning | rejected
 *   anthropic-ratelimit-unified-reset: 1790814600          unix seconds, of the representative window
 *   anthropic-ratelimit-unified-representative-claim: five_hour      five_hour | seven_day
 *   anthropic-ratelimit-unified-5h-status: allowed         the same three values, per window
 *   anthropic-ratelimit-unified-5h-utilization: 0.42       used share as a decimal fraction, may pass 1
 *   anthropic-ratelimit-unified-5h-reset: 1790814600       unix seconds
 *   anthropic-ratelimit-unified-7d-status / -7d-utilization / -7d-reset      the weekly window
 *   retry-after: 7999                                      (429 only) seconds until the window ends
 *
 * Sources of the names and formats:
 *   - the unified status and reset (unix seconds, parsed as an integer) on a 429, and the 5-hour
 *     status with `allowed`, `allowed_warning` and `rejected`: Wei-Shaw/sub2api,
 *     backend/internal/service/ratelimit_service.go (handle429, UpdateSessionWindow),
 *     https://github.com/Wei-Shaw/sub2api; and Wei-Shaw/claude-relay-service,
 *     src/services/relay/claudeRelayService.js (`parseInt(headers['anthropic-ratelimit-unified-reset'])`
 *     on 429, `anthropic-ratelimit-unified-5h-status` on 200),
 *     https://github.com/Wei-Shaw/claude-relay-service;
 *   - `representative-claim: five_hour` beside `unified-status: allowed` and a 7-day utilisation:
 *     https://github.com/anthropics/claude-code/issues/12829;
 *   - `5h-utilization = 0.42` and `7d-utilization = 0.30` read off a real subscription response:
 *     https://github.com/anomalyco/opencode/pull/49499; the full set a real answer carries, with
 *     5h-utilization a fraction from 0.0 to 1.0: https://github.com/makecindy/cindy/issues/2626;
 *   - a 429 of an exhausted window: `5h-status=rejected`, `5h-utilization=1.08`,
 *     `retry-after=13262` (about the advertised reset): https://github.com/Yeachan-Heo/gajae-code/pull/2444;
 *     "a drained five-hour window answers with Retry-After: 7999 ... a rejected window's -reset
 *     epoch": https://github.com/lidge-jun/opencodex/pull/3809.
 *
 * The real API also sends `-surpassed-threshold`, `overage-*`, `fallback-percentage` and, for some
 * models, a `7d_oi` window; the emulator has no overage or per-model windows and leaves them out.
 * Utilisation is written with up to four decimals (the real API was seen with two), so a small
 * test budget still shows it rising; a reset is rounded up to the second, so a client waiting
 * until it never comes back early.
 */
export function unifiedHeaders(state: SubscriptionState, headers: Headers = {}): Headers {
  headers['anthropic-ratelimit-unified-status'] = state.status;
  headers['anthropic-ratelimit-unified-reset'] = unixSeconds(state.representative.resetAtMs);
  headers['anthropic-ratelimit-unified-representative-claim'] = state.representative.name;
  headers['anthropic-ratelimit-unified-5h-status'] = state.fiveHour.status;
  headers['anthropic-ratelimit-unified-5h-utilization'] = utilizationText(state.fiveHour.utilization);
  headers['anthropic-ratelimit-unified-5h-reset'] = unixSeconds(state.fiveHour.resetAtMs);
  headers['anthropic-ratelimit-unified-7d-status'] = state.sevenDay.status;
  headers['anthropic-ratelimit-unified-7d-utilization'] = utilizationText(state.sevenDay.utilization);
  headers['anthropic-ratelimit-unified-7d-reset'] = unixSeconds(state.sevenDay.resetAtMs);
  return headers;
}

/** Whole unix seconds, rounded up. */
export function unixSeconds(ms: number): string {
  return String(Math.ceil(ms / 1000));
}

/** A fraction with at most four decimals and no trailing zeros: "0", "0.42", "1.08". */
export function utilizationText(utilization: number): string {
  return String(Math.round(utilization * 10_000) / 10_000);
}
