// Proves the rate-limit header parser total and exact: any header map, garbage included, reads as a
// well-formed snapshot without throwing, and unified windows printed as the upstream prints them
// read back to the same values.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { unifiedUtilizationMax } from '../../src/core/limits.js';
import { type UnifiedLimits, type UnifiedStatus, type UnifiedWindow, unifiedWindowNames } from '../../src/pool/account-feedback.js';
import { parseRateLimits, unifiedHeaderNames } from '../../src/upstream/rate-limit-headers.js';
import type { HeaderMap } from '../../src/upstream/response-headers.js';
import { checkProperty } from '../support/property.js';

const statuses: readonly UnifiedStatus[] = ['allowed', 'allowed_warning', 'rejected'];
const knownNames = [
  unifiedHeaderNames.status,
  unifiedHeaderNames.reset,
  ...unifiedWindowNames.flatMap((name) => Object.values(unifiedHeaderNames.windows[name])),
  'anthropic-ratelimit-requests-limit',
  'anthropic-ratelimit-tokens-remaining',
  'anthropic-ratelimit-output-tokens-reset',
  'retry-after',
];

/** Values near the valid ones as well as plain garbage, so both sides of each check are met. */
const arbValue = fc.oneof(
  fc.constantFrom(...statuses, 'Allowed', 'throttled', '', ' ', '0', '1', '0.5', '1.02', '10.01', '-1', '1e3', 'NaN', 'Infinity'),
  fc.nat({ max: 4_000_000_000 }).map(String),
  fc.double({ noNaN: false }).map(String),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.string({ maxLength: 20 }),
);
const arbHeaders: fc.Arbitrary<HeaderMap> = fc.dictionary(
  fc.oneof(fc.constantFrom(...knownNames), fc.string({ maxLength: 12 })),
  fc.oneof(arbValue, fc.array(arbValue, { maxLength: 3 })),
  { maxKeys: 14 },
);

const isTime = (value: number | undefined): boolean => value === undefined || (Number.isSafeInteger(value) && value >= 0);

function expectWellFormedWindow(window: UnifiedWindow | undefined): void {
  if (window === undefined) return;
  expect(window.status === undefined || statuses.includes(window.status)).toBe(true);
  expect(window.utilization === undefined || (window.utilization >= 0 && window.utilization <= unifiedUtilizationMax)).toBe(true);
  expect(isTime(window.resetAtMs)).toBe(true);
  // A window the upstream told nothing readable about is absent, not all-undefined.
  expect(window.status !== undefined || window.utilization !== undefined || window.resetAtMs !== undefined).toBe(true);
}

const arbWindow: fc.Arbitrary<UnifiedWindow | undefined> = fc.option(
  fc.record({
    status: fc.option(fc.constantFrom(...statuses), { nil: undefined }),
    // Ten-thousandths, as a decimal the upstream could print; up to the bound.
    utilization: fc.option(
      fc.integer({ min: 0, max: unifiedUtilizationMax * 10_000 }).map((n) => n / 10_000),
      { nil: undefined },
    ),
    resetAtMs: fc.option(
      fc.integer({ min: 0, max: 99_999_999_999 }).map((s) => s * 1_000),
      { nil: undefined },
    ),
  }),
  { nil: undefined },
);
const arbUnified = fc.record({
  status: fc.option(fc.constantFrom(...statuses), { nil: undefined }),
  resetAtMs: fc.option(
    fc.integer({ min: 0, max: 99_999_999_999 }).map((s) => s * 1_000),
    { nil: undefined },
  ),
  windows: fc.record({ 'five-hour': arbWindow, 'seven-day': arbWindow }),
});

/** The headers an upstream sends for `limits`: a field it does not know, it does not send. */
function printUnified(limits: UnifiedLimits): Record<string, string> {
  const headers: Record<string, string> = {};
  if (limits.status !== undefined) headers[unifiedHeaderNames.status] = limits.status;
  if (limits.resetAtMs !== undefined) headers[unifiedHeaderNames.reset] = String(limits.resetAtMs / 1_000);
  for (const name of unifiedWindowNames) {
    const window = limits.windows[name];
    const names = unifiedHeaderNames.windows[name];
    if (window?.status !== undefined) headers[names.status] = window.status;
    if (window?.utilization !== undefined) headers[names.utilization] = String(window.utilization);
    if (window?.resetAtMs !== undefined) headers[names.reset] = String(window.resetAtMs / 1_000);
  }
  return headers;
}

/** What the parser must make of `limits`: empty windows absent, and no group at all if nothing is left. */
function expected(limits: UnifiedLimits): UnifiedLimits | undefined {
  const empty = (w: UnifiedWindow | undefined): boolean =>
    w === undefined || (w.status === undefined && w.utilization === undefined && w.resetAtMs === undefined);
  const windows = {
    'five-hour': empty(limits.windows['five-hour']) ? undefined : limits.windows['five-hour'],
    'seven-day': empty(limits.windows['seven-day']) ? undefined : limits.windows['seven-day'],
  };
  if (limits.status === undefined && limits.resetAtMs === undefined && windows['five-hour'] === undefined && windows['seven-day'] === undefined)
    return undefined;
  return { ...limits, windows };
}

describe('parseRateLimits (property)', () => {
  it('reads any header map as a well-formed snapshot, without throwing', () => {
    checkProperty(
      fc.property(arbHeaders, (headers) => {
        const snapshot = parseRateLimits(headers);
        const unified = snapshot.unified;
        if (unified === undefined) return;
        expect(unified.status === undefined || statuses.includes(unified.status)).toBe(true);
        expect(isTime(unified.resetAtMs)).toBe(true);
        expect(Object.keys(unified.windows).sort()).toEqual([...unifiedWindowNames].sort());
        for (const name of unifiedWindowNames) expectWellFormedWindow(unified.windows[name]);
      }),
      500,
    );
  });

  it('reads printed unified headers back to the same values', () => {
    checkProperty(
      fc.property(arbUnified, (limits) => {
        expect(parseRateLimits(printUnified(limits)).unified).toEqual(expected(limits));
      }),
      500,
    );
  });
});
