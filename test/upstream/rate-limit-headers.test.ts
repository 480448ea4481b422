// Proves the four anthropic-ratelimit-* groups, the unified subscription windows and retry-after
// are read exactly, resets become epoch milliseconds, and missing, repeated or garbage values read
// as undefined.
import { describe, expect, it } from 'vitest';
import { parseRateLimits, parseRetryAfterMs, parseRfc3339Ms, parseUtilization } from '../../src/upstream/rate-limit-headers.js';

describe('parseRateLimits', () => {
  it('reads all four groups', () => {
    const snapshot = parseRateLimits({
      'anthropic-ratelimit-requests-limit': '4000',
      'anthropic-ratelimit-requests-remaining': '3999',
      'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:05Z',
      'anthropic-ratelimit-tokens-limit': '400000',
      'anthropic-ratelimit-tokens-remaining': '0',
      'anthropic-ratelimit-tokens-reset': '2025-01-01T00:01:00.250Z',
      'anthropic-ratelimit-input-tokens-limit': '300000',
      'anthropic-ratelimit-input-tokens-remaining': '12',
      'anthropic-ratelimit-input-tokens-reset': '2025-01-01T02:00:00+02:00',
      'anthropic-ratelimit-output-tokens-limit': '100000',
      'anthropic-ratelimit-output-tokens-remaining': '99000',
      'anthropic-ratelimit-output-tokens-reset': '2024-12-31T23:30:00-00:30',
    });
    const jan1 = Date.UTC(2025, 0, 1);
    expect(snapshot).toEqual({
      requests: { limit: 4000, remaining: 3999, resetAtMs: jan1 + 5_000 },
      tokens: { limit: 400_000, remaining: 0, resetAtMs: jan1 + 60_250 },
      inputTokens: { limit: 300_000, remaining: 12, resetAtMs: jan1 },
      outputTokens: { limit: 100_000, remaining: 99_000, resetAtMs: jan1 },
    });
  });

  it('leaves out a group that was not sent, and reads garbage fields as undefined', () => {
    const snapshot = parseRateLimits({
      'anthropic-ratelimit-requests-limit': '50',
      'anthropic-ratelimit-requests-remaining': '-3',
      'anthropic-ratelimit-requests-reset': 'soon',
      'anthropic-ratelimit-tokens-limit': '1e5',
      'anthropic-ratelimit-tokens-remaining': '',
      'anthropic-ratelimit-input-tokens-remaining': ['5', '6'],
    });
    expect(snapshot.requests).toEqual({ limit: 50, remaining: undefined, resetAtMs: undefined });
    // Every field garbage, empty or repeated: as good as absent.
    expect(snapshot.tokens).toBeUndefined();
    expect(snapshot.inputTokens).toBeUndefined();
    expect(snapshot.outputTokens).toBeUndefined();
    expect(parseRateLimits({})).toEqual({ requests: undefined, tokens: undefined, inputTokens: undefined, outputTokens: undefined });
  });

  it('reads counts of up to fifteen digits only', () => {
    const remaining = (value: string): number | undefined => parseRateLimits({ 'anthropic-ratelimit-requests-remaining': value }).requests?.remaining;
    expect(remaining('999999999999999')).toBe(999_999_999_999_999);
    expect(remaining('007')).toBe(7);
    for (const bad of ['1000000000000000', '5a', '+5', '٣', '0x10']) expect(remaining(bad)).toBeUndefined();
  });

  it('follows a reset that changes from one response to the next, and back', () => {
    // Each group remembers the last stamp it parsed; a new stamp, or garbage, must not read as the old one.
    const resetOf = (value: string): number | undefined => parseRateLimits({ 'anthropic-ratelimit-tokens-reset': value }).tokens?.resetAtMs;
    const first = Date.UTC(2025, 0, 1, 0, 0, 5);
    const second = Date.UTC(2025, 0, 1, 0, 0, 6);
    expect(resetOf('2025-01-01T00:00:05Z')).toBe(first);
    expect(resetOf('2025-01-01T00:00:05Z')).toBe(first);
    expect(resetOf('2025-01-01T00:00:06Z')).toBe(second);
    expect(resetOf('garbage')).toBeUndefined();
    expect(resetOf('2025-01-01T00:00:05Z')).toBe(first);
    expect(parseRateLimits({ 'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:06Z' }).requests?.resetAtMs).toBe(second);
  });
});

describe('parseRateLimits: unified subscription windows', () => {
  // A subscription account's answer as Claude Code and the relays see it (see the source file).
  const subscription = {
    'anthropic-ratelimit-unified-status': 'allowed_warning',
    'anthropic-ratelimit-unified-reset': '1770685200',
    'anthropic-ratelimit-unified-5h-status': 'allowed_warning',
    'anthropic-ratelimit-unified-5h-utilization': '0.92',
    'anthropic-ratelimit-unified-5h-reset': '1770685200',
    'anthropic-ratelimit-unified-7d-status': 'allowed',
    'anthropic-ratelimit-unified-7d-utilization': '0.13',
    'anthropic-ratelimit-unified-7d-reset': '1771189200',
    'anthropic-ratelimit-unified-7d_sonnet-utilization': '0.01',
    'anthropic-ratelimit-unified-representative-claim': 'five_hour',
  };

  it('reads the account status, its reset and both windows, resets in epoch milliseconds', () => {
    expect(parseRateLimits(subscription).unified).toEqual({
      status: 'allowed_warning',
      resetAtMs: 1_770_685_200_000,
      windows: {
        'five-hour': { status: 'allowed_warning', utilization: 0.92, resetAtMs: 1_770_685_200_000 },
        'seven-day': { status: 'allowed', utilization: 0.13, resetAtMs: 1_771_189_200_000 },
      },
    });
    // The API-key groups are absent, not empty, on such an answer.
    expect(parseRateLimits(subscription).requests).toBeUndefined();
  });

  it('reads an exhausted window as rejected, with its utilisation above one', () => {
    const unified = parseRateLimits({
      'anthropic-ratelimit-unified-status': 'rejected',
      'anthropic-ratelimit-unified-reset': '1770685200',
      'anthropic-ratelimit-unified-5h-status': 'rejected',
      'anthropic-ratelimit-unified-5h-utilization': '1.02',
    }).unified;
    expect(unified?.status).toBe('rejected');
    expect(unified?.windows['five-hour']).toEqual({ status: 'rejected', utilization: 1.02, resetAtMs: undefined });
    expect(unified?.windows['seven-day']).toBeUndefined();
  });

  it('is absent on an API key answer, and on an answer whose unified headers are all garbage', () => {
    expect(parseRateLimits({ 'anthropic-ratelimit-requests-limit': '50' }).unified).toBeUndefined();
    expect(
      parseRateLimits({
        'anthropic-ratelimit-unified-status': 'throttled',
        'anthropic-ratelimit-unified-reset': 'soon',
        'anthropic-ratelimit-unified-5h-utilization': '-0.5',
        'anthropic-ratelimit-unified-7d-status': ['allowed', 'rejected'],
      }).unified,
    ).toBeUndefined();
  });

  it('reads each garbage field as undefined and keeps the rest', () => {
    const unified = parseRateLimits({
      'anthropic-ratelimit-unified-status': 'Allowed',
      'anthropic-ratelimit-unified-reset': '1770685200',
      'anthropic-ratelimit-unified-5h-status': 'allowed',
      'anthropic-ratelimit-unified-5h-utilization': '42%',
      'anthropic-ratelimit-unified-5h-reset': '17706852001234',
    }).unified;
    expect(unified).toEqual({
      status: undefined,
      resetAtMs: 1_770_685_200_000,
      windows: { 'five-hour': { status: 'allowed', utilization: undefined, resetAtMs: undefined }, 'seven-day': undefined },
    });
  });

  it('takes an RFC 3339 reset too, and follows a reset that changes between answers', () => {
    const resetOf = (value: string): number | undefined =>
      parseRateLimits({ 'anthropic-ratelimit-unified-7d-reset': value }).unified?.windows['seven-day']?.resetAtMs;
    expect(resetOf('2026-02-16T00:00:00Z')).toBe(Date.UTC(2026, 1, 16));
    expect(resetOf('1771189200')).toBe(1_771_189_200_000);
    expect(resetOf('1771189200')).toBe(1_771_189_200_000);
    expect(resetOf('1771189201')).toBe(1_771_189_201_000);
    expect(resetOf('garbage')).toBeUndefined();
    expect(resetOf('1771189200')).toBe(1_771_189_200_000);
  });

  it('reads a utilisation only as a plain decimal from 0 to 10', () => {
    for (const [text, share] of [
      ['0', 0],
      ['1', 1],
      ['0.5', 0.5],
      ['1.000', 1],
      ['10', 10],
      ['000.25', 0.25],
    ] as const)
      expect(parseUtilization(text)).toBe(share);
    for (const bad of [undefined, '', '-0', '+0.5', '.5', '5.', '1e-3', 'NaN', 'Infinity', '0x1', '10.5', '1234567', '0.5 ', '٠.5'])
      expect(parseUtilization(bad)).toBeUndefined();
  });
});

describe('parseRfc3339Ms', () => {
  const cases: [string, number | undefined][] = [
    ['2025-03-04T05:06:07Z', Date.UTC(2025, 2, 4, 5, 6, 7)],
    ['2025-03-04t05:06:07z', Date.UTC(2025, 2, 4, 5, 6, 7)],
    ['2025-03-04T05:06:07.5Z', Date.UTC(2025, 2, 4, 5, 6, 7, 500)],
    ['2025-03-04T05:06:07.123456789Z', Date.UTC(2025, 2, 4, 5, 6, 7, 123)],
    ['2025-03-04T05:06:07+05:30', Date.UTC(2025, 2, 3, 23, 36, 7)],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2016-12-31T23:59:60Z', Date.UTC(2017, 0, 1) - 1],
    ['2025-02-29T00:00:00Z', undefined],
    ['2025-13-01T00:00:00Z', undefined],
    ['2025-01-01T24:00:00Z', undefined],
    ['2025-01-01T00:00:00', undefined],
    ['2025-01-01', undefined],
    ['1700000000', undefined],
    ['0099-01-01T00:00:00Z', undefined],
    ['', undefined],
  ];
  for (const [text, expected] of cases) {
    it(`reads '${text}' as ${String(expected)}`, () => expect(parseRfc3339Ms(text)).toBe(expected));
  }

  it('knows the length of every month, leap and century years included', () => {
    for (const year of [1970, 1999, 2000, 2023, 2024, 2100, 2400]) {
      for (let month = 1; month <= 12; month++) {
        const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
        const yearMonth = `${year}-${String(month).padStart(2, '0')}`;
        expect(parseRfc3339Ms(`${yearMonth}-${days}T00:00:00Z`)).toBe(Date.UTC(year, month - 1, days));
        expect(parseRfc3339Ms(`${yearMonth}-${days + 1}T00:00:00Z`)).toBeUndefined();
      }
    }
  });
});

describe('parseRetryAfterMs', () => {
  const nowMs = Date.UTC(2025, 0, 1, 12, 0, 0);
  it('reads delay-seconds', () => {
    expect(parseRetryAfterMs('0', nowMs)).toBe(0);
    expect(parseRetryAfterMs('17', nowMs)).toBe(17_000);
  });
  it('reads an HTTP-date relative to now, a past one as zero', () => {
    expect(parseRetryAfterMs('Wed, 01 Jan 2025 12:00:30 GMT', nowMs)).toBe(30_000);
    expect(parseRetryAfterMs('Wed, 01 Jan 2025 11:00:00 GMT', nowMs)).toBe(0);
  });
  it('clamps a wait past a week', () => {
    expect(parseRetryAfterMs('999999999999', nowMs)).toBe(7 * 24 * 3_600_000);
  });
  it('reads garbage as undefined', () => {
    for (const text of [undefined, '-1', '1.5', 'soon', '1e3', 'Wed, 32 Jan 2025 12:00:00 GMT', 'Wednesday, 01-Jan-25 12:00:00 GMT']) {
      expect(parseRetryAfterMs(text, nowMs)).toBeUndefined();
    }
  });
});
