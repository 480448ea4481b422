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

export function rateLimitHeaders(state: RateLimitState): Headers {
  const headers: Headers = {};
  const put = (group: string, limit: LimitState): void => {
    headers[`anthropic-ratelimit-${group}-limit`] = String(limit.limit);
    headers[`anthropic-ratelimit-${group}-remaining`] = String(limit.remaining);
    headers[`anthropic-ratelimit-${group}-reset`] = rfc3339(limit.resetAtMs);
  };
  put('requests', state.requests);
  put('tokens', state.tokens);
  put('input-tokens', state.inputTokens);
  put('output-tokens', state.outputTokens);
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
