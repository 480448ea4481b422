// Proves the GCRA limiter admits exactly rate and burst and weighs cost.
// It survives a backwards clock, and bounds its keys exactly.
import { describe, expect, it } from 'vitest';
import { parseUserId, type UserId } from '../../src/core/ids.js';
import { clientIpLengthMax, limiterHeapSlackMax, rateKeyLengthMax } from '../../src/core/limits.js';
import { GcraLimiter, rateKey } from '../../src/admission/gcra.js';

/** 10 per second, burst 5: T = 100 ms, and an idle key may spend 5 at once. */
function asUserId(text: string): UserId {
  const parsed = parseUserId(text);
  if (!parsed.ok) throw new Error(`bad user id in test: ${text}`);
  return parsed.value;
}

const tenPerSecond = { rate: 10, periodMs: 1000, burst: 5 } as const;

/** Cells of cost 1 admitted at one instant until the first refusal, counted up to a cap so a broken limiter cannot hang the test. */
function admittedAt(limiter: GcraLimiter<string>, key: string, nowMs: number): number {
  let admitted = 0;
  while (admitted < 1_000 && limiter.take(key, nowMs).allowed) admitted++;
  return admitted;
}

describe('GcraLimiter rate and burst', () => {
  it('admits the burst at once, then one per emission interval', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    const remaining = [1, 2, 3, 4, 5].map(() => limiter.take('k', 0));
    expect(remaining).toEqual([4, 3, 2, 1, 0].map((left) => ({ allowed: true, remaining: left })));
    expect(limiter.take('k', 0)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 100 });
    expect(limiter.take('k', 99)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 1 });
    expect(limiter.take('k', 100)).toEqual({ allowed: true, remaining: 0 });
    expect(limiter.take('k', 100)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 100 });
    expect(limiter.stats.allowed).toBe(6);
    expect(limiter.stats.limited).toBe(3);
  });

  it('admits a steady stream at the rate forever, and refusals cost nothing', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    for (let i = 0; i < 5; i++) limiter.take('k', 0);
    for (let t = 100; t <= 100_000; t += 100) {
      expect(limiter.take('k', t).allowed).toBe(true);
      // Hammering between admissions must not push the next admission later.
      expect(limiter.take('k', t + 50).allowed).toBe(false);
    }
  });

  it('refills the whole burst after an idle spell of burst × T, and no more', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    for (let i = 0; i < 5; i++) limiter.take('k', 0);
    expect(admittedAt(limiter, 'k', 10_000)).toBe(5);
  });

  it('keeps exact time when T is not a whole number of milliseconds', () => {
    // 3 per second: T = 333⅓ ms. A floating TAT would be 1000.0000000000001 after three intervals.
    const limiter = new GcraLimiter<string>({ rate: 3, periodMs: 1000, burst: 3 });
    for (let i = 0; i < 3; i++) expect(limiter.take('k', 0).allowed).toBe(true);
    expect(limiter.take('k', 1)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 333 });
    expect(limiter.take('k', 333)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 1 });
    expect(limiter.take('k', 334)).toEqual({ allowed: true, remaining: 0 });
    // A full burst at every period boundary for an hour must always pass: each one is paid off
    // exactly at the next boundary. A floating TAT fails this for 7 or 11 per second.
    for (const base of [0, 1_700_000_000_000]) {
      for (const rate of [7, 11]) {
        const steady = new GcraLimiter<string>({ rate, periodMs: 1000, burst: rate });
        let admitted = 0;
        for (let second = 0; second < 3600; second++) {
          for (let i = 0; i <= rate; i++) if (steady.take('k', base + second * 1000).allowed) admitted++;
        }
        expect(admitted).toBe(3600 * rate);
      }
    }
  });
});

describe('GcraLimiter cost', () => {
  it('spends cost cells at once and waits for the missing ones', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    expect(limiter.take('k', 0, 3)).toEqual({ allowed: true, remaining: 2 });
    // Three more need one cell beyond the burst: one interval.
    expect(limiter.take('k', 0, 3)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 100 });
    expect(limiter.take('k', 0, 2)).toEqual({ allowed: true, remaining: 0 });
    expect(limiter.take('k', 0, 2)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 200 });
    expect(limiter.take('k', 200, 2)).toEqual({ allowed: true, remaining: 0 });
  });

  it('refuses for good a cost above the burst, without touching the key', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    expect(limiter.take('k', 0, 6)).toEqual({ allowed: false, reason: 'cost-exceeds-burst', burst: 5 });
    expect(limiter.stats.costExceedsBurst).toBe(1);
    expect(limiter.size).toBe(0);
    expect(limiter.take('k', 0, 5)).toEqual({ allowed: true, remaining: 0 });
  });
});

describe('GcraLimiter with a backwards clock', () => {
  it('treats the key as having just spent its burst: no fresh burst, no lockout for the step', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    for (let i = 0; i < 5; i++) expect(limiter.take('k', 60_000).allowed).toBe(true);
    // The clock steps back a minute. Unclamped, the key would wait 60.1 s.
    expect(limiter.take('k', 0)).toEqual({ allowed: false, reason: 'rate', retryAfterMs: 100 });
    expect(limiter.stats.clamped).toBe(1);
    expect(limiter.take('k', 99).allowed).toBe(false);
    expect(limiter.take('k', 100)).toEqual({ allowed: true, remaining: 0 });
    expect(limiter.take('k', 100).allowed).toBe(false);
    // From the step on, admissions follow the rate exactly as after a spent burst.
    let admitted = 0;
    for (let t = 101; t <= 1_100; t++) if (limiter.take('k', t).allowed) admitted++;
    expect(admitted).toBe(10);
  });

  it('grants nothing extra for a step back within the burst tolerance', () => {
    const limiter = new GcraLimiter<string>(tenPerSecond);
    for (let i = 0; i < 3; i++) limiter.take('k', 1_000);
    // Two cells are left at t = 1000; stepping back 200 ms must not add the two it would refill.
    expect(admittedAt(limiter, 'k', 800)).toBe(0);
    expect(limiter.stats.clamped).toBe(0);
    expect(admittedAt(limiter, 'k', 1_000)).toBe(2);
  });
});

describe('GcraLimiter key bound', () => {
  it('drops idle keys exactly and refuses new keys while every tracked key is active', () => {
    const limiter = new GcraLimiter<string>({ ...tenPerSecond, keysMax: 3 });
    for (const key of ['a', 'b', 'c']) expect(limiter.take(key, 0).allowed).toBe(true);
    // Full of active keys: the new key is refused until the earliest falls idle at t = 100.
    expect(limiter.take('d', 0)).toEqual({ allowed: false, reason: 'limiter-full', retryAfterMs: 100 });
    expect(limiter.stats.refusedFull).toBe(1);
    // A tracked key is never refused for room.
    expect(limiter.take('a', 0)).toEqual({ allowed: true, remaining: 3 });
    expect(limiter.take('d', 99)).toEqual({ allowed: false, reason: 'limiter-full', retryAfterMs: 1 });

    // At t = 100, b and c are idle (TAT 100) and a is not (TAT 200).
    expect(limiter.take('d', 100)).toEqual({ allowed: true, remaining: 4 });
    expect(limiter.stats.idleDropped).toBe(1);
    expect(limiter.take('e', 100)).toEqual({ allowed: true, remaining: 4 });
    expect(limiter.stats.idleDropped).toBe(2);
    expect(limiter.size).toBe(3);
    // a kept its state: one cell still owed, so 3 left after this one, not the 4 of a fresh key.
    expect(limiter.take('a', 100)).toEqual({ allowed: true, remaining: 3 });
    // a, d and e are active; b was dropped and must wait like any new key.
    expect(limiter.take('b', 100)).toEqual({ allowed: false, reason: 'limiter-full', retryAfterMs: 100 });
    // Once d and e fall idle, b returns as a fresh key: dropping it lost nothing it had.
    expect(limiter.take('b', 200)).toEqual({ allowed: true, remaining: 4 });
  });

  it('clamps a key stranded ahead by a backwards clock, so a refusal hint stays within one burst', () => {
    const limiter = new GcraLimiter<string>({ ...tenPerSecond, keysMax: 1 });
    for (let i = 0; i < 5; i++) limiter.take('a', 60_000);
    const refused = limiter.take('b', 0);
    expect(refused).toEqual({ allowed: false, reason: 'limiter-full', retryAfterMs: 500 });
    expect(limiter.take('b', 500).allowed).toBe(true);
  });

  it('keeps its heap within twice the keys plus the slack, however often one key is taken', () => {
    const limiter = new GcraLimiter<string>({ rate: 1000, periodMs: 1000, burst: 1 });
    let heapLengthMax = 0;
    for (let t = 0; t < 20_000; t++) {
      expect(limiter.take('hot', t).allowed).toBe(true);
      heapLengthMax = Math.max(heapLengthMax, limiter.heapLength);
    }
    expect(heapLengthMax).toBeLessThanOrEqual(2 * limiter.size + limiterHeapSlackMax);
    expect(limiter.stats.heapRebuilds).toBeGreaterThan(0);
  });

  it('drops idle keys one by one as new keys arrive, across many generations', () => {
    const limiter = new GcraLimiter<string>({ rate: 10, periodMs: 1000, burst: 1, keysMax: 100 });
    // Each millisecond a new key arrives; each stays active for 100 ms, so at most 100 are active.
    for (let t = 0; t < 10_000; t++) expect(limiter.take(`k${t}`, t).allowed).toBe(true);
    expect(limiter.size).toBe(100);
    expect(limiter.stats.idleDropped).toBe(9_900);
    expect(limiter.stats.refusedFull).toBe(0);
  });
});

describe('rateKey', () => {
  const user = asUserId('alice');

  it('keys on the IP and the user without ambiguity', () => {
    const a = rateKey('10.0.0.1', asUserId('2/bob'));
    const b = rateKey('10.0.0.1/2', asUserId('bob'));
    expect(a.ok && b.ok && a.value !== b.value).toBe(true);
    expect(rateKey('2001:DB8::1', user)).toEqual(rateKey('2001:db8::1', user));
  });

  it('bounds the key length and refuses an IP that cannot be one', () => {
    const longest = rateKey('f'.repeat(clientIpLengthMax), asUserId('u'.repeat(64)));
    expect(longest.ok && longest.value.length).toBe(rateKeyLengthMax);
    expect(rateKey('f'.repeat(clientIpLengthMax + 1), user)).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'ip' } });
    expect(rateKey('', user).ok).toBe(false);
    expect(rateKey('10.0.0.1, 10.0.0.2', user).ok).toBe(false);
  });
});
