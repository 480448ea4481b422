// Proves the account rate limiter is a set of continuously refilling token buckets driven by an
// injected clock: it admits a minute's burst, refuses with the wait until every bucket allows,
// charges output as produced (even into debt), and reports headers in the real API's format, its
// memoized reset stamps included.
import { describe, expect, it } from 'vitest';
import { emulatorResetStampsMax } from '../../../src/core/limits.js';
import { rateLimitHeaders, resetStamp, retryAfterSeconds, rfc3339, throttledState } from '../../../src/upstream/emulator/rate-limit-headers.js';
import { AccountRateLimiter, TokenBucket } from '../../../src/upstream/emulator/rate-limiter.js';

describe('TokenBucket', () => {
  it('starts full, refills at limit per minute, and never over its capacity', () => {
    const bucket = new TokenBucket(60, 0);
    expect(bucket.levelAt(0)).toBe(60);
    bucket.take(60, 0);
    expect(bucket.levelAt(0)).toBe(0);
    expect(bucket.levelAt(1_000)).toBeCloseTo(1);
    expect(bucket.levelAt(30_000)).toBeCloseTo(30);
    expect(bucket.levelAt(600_000)).toBe(60);
  });

  it('says how long until an amount is available, capping the amount at a full bucket', () => {
    const bucket = new TokenBucket(60, 0);
    bucket.take(60, 0);
    expect(bucket.waitMs(1, 0)).toBe(1_000);
    expect(bucket.waitMs(30, 0)).toBe(30_000);
    expect(bucket.waitMs(1_000, 0)).toBe(60_000);
    expect(bucket.waitMs(1, 1_000)).toBe(0);
  });

  it('treats a clock that steps back as standing still', () => {
    const bucket = new TokenBucket(60, 10_000);
    bucket.take(30, 10_000);
    expect(bucket.levelAt(5_000)).toBe(30);
    expect(bucket.levelAt(11_000)).toBeCloseTo(31);
  });

  it('reports whole units left and when it will be full', () => {
    const bucket = new TokenBucket(60, 0);
    bucket.take(61, 0);
    expect(bucket.state(0)).toEqual({ limit: 60, remaining: 0, resetAtMs: 61_000 });
  });
});

describe('AccountRateLimiter', () => {
  it('admits a burst of the request limit, then refuses until a request refills', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 3, inputTokensPerMinute: 1_000, outputTokensPerMinute: 1_000 }, 0);
    for (let i = 0; i < 3; i++) expect(limiter.admit(10, 0).ok).toBe(true);
    const refused = limiter.admit(10, 0);
    expect(refused).toEqual({ ok: false, error: { kind: 'rate-limited', limit: 'requests', retryAfterMs: 20_000 } });
    expect(limiter.admit(10, 19_999).ok).toBe(false);
    expect(limiter.admit(10, 20_000).ok).toBe(true);
  });

  it('refuses on input tokens without taking a request, and waits for the largest shortfall', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 100, inputTokensPerMinute: 600, outputTokensPerMinute: 1_000 }, 0);
    expect(limiter.admit(500, 0).ok).toBe(true);
    const refused = limiter.admit(200, 0);
    expect(refused.ok ? undefined : refused.error).toEqual({ kind: 'rate-limited', limit: 'input-tokens', retryAfterMs: 10_000 });
    expect(limiter.state(0).requests.remaining).toBe(99);
  });

  it('admits a request larger than the whole bucket once the bucket is full', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 100, inputTokensPerMinute: 600, outputTokensPerMinute: 1_000 }, 0);
    expect(limiter.admit(1_000, 0).ok).toBe(true);
    const refused = limiter.admit(1_000, 0);
    expect(refused.ok ? undefined : refused.error.retryAfterMs).toBe(100_000);
    expect(limiter.admit(1_000, 100_000).ok).toBe(true);
  });

  it('charges output as produced, into debt, and holds later requests until it refills', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 100, inputTokensPerMinute: 10_000, outputTokensPerMinute: 60 }, 0);
    expect(limiter.admit(1, 0).ok).toBe(true);
    limiter.chargeOutput(40, 0);
    limiter.chargeOutput(40, 0);
    const refused = limiter.admit(1, 0);
    expect(refused.ok ? undefined : refused.error).toEqual({ kind: 'rate-limited', limit: 'output-tokens', retryAfterMs: 21_000 });
    expect(limiter.admit(1, 21_000).ok).toBe(true);
  });

  it('reports the scarcer token limit as the combined tokens limit', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 100, inputTokensPerMinute: 10_000, outputTokensPerMinute: 500 }, 0);
    expect(limiter.state(0).tokens.limit).toBe(500);
    limiter.admit(9_900, 0);
    expect(limiter.state(0).tokens).toEqual(limiter.state(0).inputTokens);
  });
});

describe('rate-limit headers', () => {
  it('formats RFC 3339 resets in whole seconds, rounded up', () => {
    expect(rfc3339(Date.UTC(2025, 0, 1, 0, 0, 0))).toBe('2025-01-01T00:00:00Z');
    expect(rfc3339(Date.UTC(2025, 0, 1, 0, 0, 0) + 1)).toBe('2025-01-01T00:00:01Z');
    expect(retryAfterSeconds(1)).toBe('1');
    expect(retryAfterSeconds(20_000)).toBe('20');
  });

  it('formats each reset stamp as rfc3339 does, whatever seconds share a slot', () => {
    const start = Date.UTC(2025, 0, 1);
    // Seconds a slot count apart share a slot: alternating between them must not mix them up.
    const instants = [start, start + emulatorResetStampsMax * 1000, start + 1, start - 999, start + emulatorResetStampsMax * 1000 + 1, -1_500, 0, start];
    for (let round = 0; round < 2; round++) for (const ms of instants) expect(resetStamp(ms)).toBe(rfc3339(ms));
  });

  it('sends the four groups of limit, remaining and reset', () => {
    const limiter = new AccountRateLimiter({ requestsPerMinute: 50, inputTokensPerMinute: 30_000, outputTokensPerMinute: 8_000 }, 0);
    limiter.admit(100, 0);
    const headers = rateLimitHeaders(limiter.state(0));
    expect(headers).toMatchObject({
      'anthropic-ratelimit-requests-limit': '50',
      'anthropic-ratelimit-requests-remaining': '49',
      'anthropic-ratelimit-requests-reset': '1970-01-01T00:00:02Z',
      'anthropic-ratelimit-input-tokens-remaining': '29900',
      'anthropic-ratelimit-output-tokens-limit': '8000',
      'anthropic-ratelimit-tokens-limit': '8000',
    });
    expect(Object.keys(headers)).toHaveLength(12);
  });

  it('shows a spent window as nothing left until the retry, and a throttle as room left', () => {
    const state = new AccountRateLimiter({ requestsPerMinute: 50, inputTokensPerMinute: 30_000, outputTokensPerMinute: 8_000 }, 0).state(0);
    const spent = throttledState(state, 0, 0, 30_000);
    expect([spent.requests.remaining, spent.inputTokens.remaining, spent.outputTokens.remaining]).toEqual([0, 0, 0]);
    expect(spent.requests.resetAtMs).toBe(30_000);
    expect(throttledState(state, 7, 0, 30_000).requests.remaining).toBe(7);
  });
});
