import { emulatorResetStampsMax } from '../../core/limits.js';
import type { LimitState, RateLimitState } from './rate-limiter.js';

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
