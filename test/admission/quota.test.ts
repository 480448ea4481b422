// Proves quota rules map to the right counters, read usage from fixed and sliding windows, and
// that the eventual decision admits exactly up to the limit in the local view.
import { describe, expect, it } from 'vitest';
import { chargedKeys, checkEventual, retryAfterMsFor, usedUnder } from '../../src/admission/quota.js';
import { asReplicaId } from '../../src/core/ids.js';
import { windowAt } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';

const t0 = Date.UTC(2026, 10, 26, 10, 0, 5);
const daily: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 10_000, mode: 'eventual' };
const perMinute: LimitRule = { metric: 'requests', window: 'minute', sliding: true, limit: 3, mode: 'eventual' };
const strictDaily: LimitRule = { metric: 'requests', window: 'day', sliding: false, limit: 0, mode: 'strict' };

function admitAndCharge(counter: WindowedCounter, rules: LimitRule[], tokens: number, nowMs: number): boolean {
  const decision = checkEventual(counter, 'tenant', 'acme', rules, (metric) => (metric === 'requests' ? 1 : tokens), nowMs);
  if (!decision.ok) return false;
  for (const key of chargedKeys('tenant', 'acme', rules, nowMs)) counter.increment(key, key.metric === 'requests' ? 1 : tokens);
  return true;
}

describe('quota', () => {
  it('charges the fixed window and the current 10 s sub-bucket of a sliding rule', () => {
    const keys = chargedKeys('tenant', 'acme', [daily, perMinute], t0);
    expect(keys.map((k) => `${k.metric}/${k.window.unit}:${k.window.index}`)).toEqual([
      `weighted_tokens/day:${windowAt('day', t0).index}`,
      `requests/sec10:${windowAt('sec10', t0).index}`,
    ]);
  });

  it('admits up to a fixed limit and refuses past it with the time to the window end', () => {
    const counter = new WindowedCounter(asReplicaId('n~1'));
    expect(admitAndCharge(counter, [daily], 6_000, t0)).toBe(true);
    expect(admitAndCharge(counter, [daily], 4_000, t0)).toBe(true);
    const refused = checkEventual(counter, 'tenant', 'acme', [daily], () => 1, t0);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error).toMatchObject({ kind: 'quota', metric: 'weighted_tokens', limit: 10_000, window: 'day' });
      expect(refused.error.retryAfterMs).toBe(Date.UTC(2026, 10, 27) - t0);
    }
    expect(usedUnder(counter, 'tenant', 'acme', daily, t0)).toBe(10_000);
  });

  it('slides a per-minute limit: refused within the minute, admitted once old buckets leave', () => {
    const counter = new WindowedCounter(asReplicaId('n~1'));
    expect([0, 1_000, 2_000].map((d) => admitAndCharge(counter, [perMinute], 0, t0 + d))).toEqual([true, true, true]);
    expect(admitAndCharge(counter, [perMinute], 0, t0 + 30_000)).toBe(false);
    expect(retryAfterMsFor(perMinute, t0 + 30_000)).toBe(5_000);
    // 60 s after the bucket that held all three ended, the sum no longer sees them.
    expect(admitAndCharge(counter, [perMinute], 0, t0 + 65_000)).toBe(true);
  });

  it('leaves strict and escrow rules to their own modes', () => {
    const counter = new WindowedCounter(asReplicaId('n~1'));
    expect(checkEventual(counter, 'tenant', 'acme', [strictDaily], () => 1, t0).ok).toBe(true);
  });
});
