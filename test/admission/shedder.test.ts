// Proves the shedder drops free before paid before vip as load rises.
// It judges each tier by the queues ahead of it, and gives bounded retry hints that grow with the
// overload.
import { describe, expect, it } from 'vitest';
import { shedRetryAfterMsMax, shedRetryAfterMsMin } from '../../src/core/limits.js';
import { tiers, type Tier } from '../../src/mesh/policy/policy-schema.js';
import { checkShedThresholds, Shedder, type ShedLoad, type ShedThresholds } from '../../src/admission/shedder.js';

const thresholds: ShedThresholds = {
  vip: { depthMax: 400, waitMsMax: 8_000 },
  paid: { depthMax: 200, waitMsMax: 4_000 },
  free: { depthMax: 100, waitMsMax: 1_000 },
};

const nowMs = 1_000_000;

/** A load with `depth` requests per tier, the oldest of each enqueued `waitMs` ago. */
function even(depth: number, waitMs: number): ShedLoad {
  const queue = { depth, oldestEnqueuedAtMs: depth === 0 ? undefined : nowMs - waitMs };
  return { vip: queue, paid: queue, free: queue };
}

const idle: ShedLoad = even(0, 0);

function shedTiers(shedder: Shedder, load: ShedLoad): Tier[] {
  return tiers.filter((tier) => !shedder.decide(tier, load, nowMs).admit);
}

describe('Shedder', () => {
  it('admits everyone when the queues are empty', () => {
    expect(shedTiers(new Shedder(thresholds), idle)).toEqual([]);
  });

  it('sheds free first, then paid, then vip as load rises, and never a higher tier alone', () => {
    const shedder = new Shedder(thresholds);
    const firstShedAt = new Map<Tier, number>();
    for (let step = 0; step <= 400; step++) {
      // Depth and wait rise together, as when arrivals outpace service.
      const shed = shedTiers(shedder, even(step, step * 25));
      for (const tier of shed) if (!firstShedAt.has(tier)) firstShedAt.set(tier, step);
      // Whatever is shed is a lowest-first suffix of the tiers.
      expect(shed).toEqual(tiers.slice(tiers.length - shed.length));
    }
    const free = firstShedAt.get('free');
    const paid = firstShedAt.get('paid');
    const vip = firstShedAt.get('vip');
    expect(free !== undefined && paid !== undefined && vip !== undefined).toBe(true);
    expect(free!).toBeLessThan(paid!);
    expect(paid!).toBeLessThan(vip!);
  });

  it('judges a tier by its own queue and those above it, not those below', () => {
    const shedder = new Shedder(thresholds);
    const freeFlood: ShedLoad = { ...idle, free: { depth: 10_000, oldestEnqueuedAtMs: nowMs - 60_000 } };
    expect(shedTiers(shedder, freeFlood)).toEqual(['free']);
    // A vip backlog under vip's thresholds still sheds the tiers that wait behind it.
    const vipBacklog: ShedLoad = { ...idle, vip: { depth: 150, oldestEnqueuedAtMs: nowMs - 500 } };
    expect(shedTiers(shedder, vipBacklog)).toEqual(['free']);
    expect(shedder.decide('free', vipBacklog, nowMs)).toMatchObject({ admit: false, reason: 'queue-depth' });
  });

  it('names the wait when the oldest request has waited too long, the depth otherwise', () => {
    const shedder = new Shedder(thresholds);
    expect(shedder.decide('free', even(10, 1_001), nowMs)).toMatchObject({ admit: false, reason: 'queue-wait' });
    expect(shedder.decide('free', even(10, 1_000), nowMs)).toEqual({ admit: true });
    expect(shedder.decide('free', { ...idle, free: { depth: 100, oldestEnqueuedAtMs: nowMs } }, nowMs)).toMatchObject({
      admit: false,
      reason: 'queue-depth',
    });
    expect(shedder.decide('free', { ...idle, free: { depth: 99, oldestEnqueuedAtMs: nowMs } }, nowMs)).toEqual({ admit: true });
    expect(shedder.stats.shed.free).toEqual({ 'queue-depth': 1, 'queue-wait': 1 });
    expect(shedder.stats.admitted.free).toBe(2);
  });

  it('gives retry hints within bounds that never fall as the overload grows', () => {
    const shedder = new Shedder(thresholds);
    // A steep wait ramp trips the wait threshold first; a shallow one trips the depth threshold
    // first and the wait threshold much later, so the reason changes mid-ramp.
    for (const waitPerStepMs of [50, 5]) {
      for (const tier of tiers) {
        let previousMs = 0;
        let hints = 0;
        for (let step = 0; step <= 2_000; step++) {
          const decision = shedder.decide(tier, even(step, step * waitPerStepMs), nowMs);
          if (decision.admit) continue;
          hints++;
          expect(decision.retryAfterMs).toBeGreaterThanOrEqual(shedRetryAfterMsMin);
          expect(decision.retryAfterMs).toBeLessThanOrEqual(shedRetryAfterMsMax);
          expect(decision.retryAfterMs).toBeGreaterThanOrEqual(previousMs);
          previousMs = decision.retryAfterMs;
        }
        expect(hints).toBeGreaterThan(0);
        // The steep ramp ends far enough over every threshold to reach the upper clamp.
        if (waitPerStepMs === 50) expect(previousMs).toBe(shedRetryAfterMsMax);
      }
    }
    expect(shedder.stats.shed.free['queue-depth']).toBeGreaterThan(0);
    expect(shedder.stats.shed.free['queue-wait']).toBeGreaterThan(0);
  });

  it('grows the hint with the excess wait and with the excess depth', () => {
    const shedder = new Shedder(thresholds);
    const freeQueue = (depth: number, waitMs: number): ShedLoad => ({ ...idle, free: { depth, oldestEnqueuedAtMs: nowMs - waitMs } });
    // 2 s of wait, 1 s over the threshold: the excess itself.
    expect(shedder.decide('free', freeQueue(10, 2_000), nowMs)).toEqual({ admit: false, reason: 'queue-wait', retryAfterMs: 1_000 });
    // 200 queued for 800 ms: 4 ms each, and 101 past the threshold take 404 ms to serve.
    expect(shedder.decide('free', freeQueue(200, 800), nowMs)).toEqual({ admit: false, reason: 'queue-depth', retryAfterMs: 404 });
    // A fresh burst has no service time to go by: the lower clamp.
    expect(shedder.decide('free', freeQueue(200, 0), nowMs)).toEqual({
      admit: false,
      reason: 'queue-depth',
      retryAfterMs: shedRetryAfterMsMin,
    });
  });

  it('counts no wait for a request stamped after the clock (a step back)', () => {
    const shedder = new Shedder(thresholds);
    const future: ShedLoad = { ...idle, free: { depth: 1, oldestEnqueuedAtMs: nowMs + 60_000 } };
    expect(shedder.decide('free', future, nowMs)).toEqual({ admit: true });
  });
});

describe('checkShedThresholds', () => {
  it('accepts thresholds that fall with the tier', () => {
    expect(checkShedThresholds(thresholds).ok).toBe(true);
  });

  it('refuses a lower tier with a higher threshold, or a depth of zero, naming the field', () => {
    expect(checkShedThresholds({ ...thresholds, free: { depthMax: 300, waitMsMax: 1_000 } })).toMatchObject({
      ok: false,
      error: { kind: 'invalid', field: 'shed.free.depthMax' },
    });
    expect(checkShedThresholds({ ...thresholds, paid: { depthMax: 200, waitMsMax: 9_000 } })).toMatchObject({
      ok: false,
      error: { kind: 'invalid', field: 'shed.paid.waitMsMax' },
    });
    expect(checkShedThresholds({ ...thresholds, free: { depthMax: 0, waitMsMax: 0 } })).toMatchObject({
      ok: false,
      error: { field: 'shed.free.depthMax' },
    });
    expect(() => new Shedder({ ...thresholds, vip: { depthMax: 1, waitMsMax: 1 } })).toThrow(/shed thresholds/);
  });
});
