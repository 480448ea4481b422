// Proves the one table from an upstream status (or a mid-stream error type) to the feedback the
// pool learns about the account, including the retry-after and rate limits of a 429.
import { describe, expect, it } from 'vitest';
import { feedbackOfErrorType, feedbackOfStatus, statusOfErrorType } from '../../src/upstream/classify-feedback.js';

const nowMs = Date.UTC(2025, 0, 1);

describe('feedbackOfStatus', () => {
  const table: [number, string][] = [
    [200, 'success'],
    [201, 'success'],
    [429, 'rate-limited'],
    [529, 'overloaded'],
    [401, 'auth-failed'],
    [402, 'auth-failed'],
    [403, 'auth-failed'],
    [500, 'server-error'],
    [502, 'server-error'],
    [503, 'server-error'],
    [504, 'server-error'],
    [400, 'client-error'],
    [404, 'client-error'],
    [413, 'client-error'],
    [100, 'network'],
    [302, 'network'],
    [600, 'network'],
  ];
  for (const [status, kind] of table) {
    it(`maps ${status} to ${kind}`, () => expect(feedbackOfStatus(status, {}, nowMs).kind).toBe(kind));
  }

  it('carries the status of auth, server and client errors', () => {
    expect(feedbackOfStatus(403, {}, nowMs)).toEqual({ kind: 'auth-failed', status: 403 });
    expect(feedbackOfStatus(503, {}, nowMs)).toEqual({ kind: 'server-error', status: 503 });
    expect(feedbackOfStatus(413, {}, nowMs)).toEqual({ kind: 'client-error', status: 413 });
  });

  it('gives a 429 its retry-after and rate-limit snapshot', () => {
    const feedback = feedbackOfStatus(
      429,
      { 'retry-after': '12', 'anthropic-ratelimit-tokens-remaining': '0', 'anthropic-ratelimit-tokens-reset': '2025-01-01T00:00:12Z' },
      nowMs,
    );
    expect(feedback).toEqual({
      kind: 'rate-limited',
      retryAfterMs: 12_000,
      rateLimits: {
        requests: undefined,
        tokens: { limit: undefined, remaining: 0, resetAtMs: nowMs + 12_000 },
        inputTokens: undefined,
        outputTokens: undefined,
      },
    });
  });

  it('gives a success the snapshot of its headers', () => {
    const feedback = feedbackOfStatus(200, { 'anthropic-ratelimit-requests-remaining': '7' }, nowMs);
    expect(feedback.kind === 'success' && feedback.rateLimits.requests?.remaining).toBe(7);
  });
});

describe('feedbackOfErrorType (error events mid-stream)', () => {
  const table: [string, string][] = [
    ['overloaded_error', 'overloaded'],
    ['rate_limit_error', 'rate-limited'],
    ['api_error', 'server-error'],
    ['authentication_error', 'auth-failed'],
    ['permission_error', 'auth-failed'],
    ['billing_error', 'auth-failed'],
    ['invalid_request_error', 'client-error'],
    ['a_type_from_the_future', 'server-error'],
  ];
  for (const [errorType, kind] of table) {
    it(`maps ${errorType} to ${kind}`, () => expect(feedbackOfErrorType(errorType, {}, nowMs).kind).toBe(kind));
  }

  it('gives a mid-stream rate limit no retry-after, even if the 200 carried one', () => {
    expect(feedbackOfErrorType('rate_limit_error', { 'retry-after': '5' }, nowMs)).toMatchObject({ kind: 'rate-limited', retryAfterMs: undefined });
  });

  it('maps error types to the statuses the API uses', () => {
    expect(['overloaded_error', 'rate_limit_error', 'api_error', 'not_found_error'].map(statusOfErrorType)).toEqual([529, 429, 500, 404]);
  });
});
