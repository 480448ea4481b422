// Proves how account health answers 429s, 529s, repeated failures and 401/403.
// It reads 429s as short throttles or exhausted windows with the pause the headers give, backs off
// 529s exponentially with jitter, opens and probes a circuit on repeated failures, and disables on
// 401/403 until enabled.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/core/random.js';
import {
  circuitFailuresMax,
  circuitOpenMsBase,
  circuitProbeTimeoutMs,
  overloadBackoffMsBase,
  overloadBackoffMsMax,
  rateLimitCooldownMsDefault,
  rateLimitCooldownMsMax,
  throttleShortMsMax,
} from '../../src/core/limits.js';
import { type AccountFeedback, emptyRateLimits, type RateLimitSnapshot, type RateLimitWindow } from '../../src/pool/account-feedback.js';
import { AccountHealth, defaultHealthTimings, rateLimitPause } from '../../src/pool/account-health.js';

const t0 = 1_800_000_000_000;

const window = (remaining: number | undefined, resetAtMs: number | undefined, limit: number | undefined = 1000): RateLimitWindow => ({
  limit,
  remaining,
  resetAtMs,
});
const limits = (parts: Partial<RateLimitSnapshot>): RateLimitSnapshot => ({ ...emptyRateLimits, ...parts });
const rateLimited = (retryAfterMs: number | undefined, rateLimits: RateLimitSnapshot = emptyRateLimits): AccountFeedback => ({
  kind: 'rate-limited',
  retryAfterMs,
  rateLimits,
});
const success: AccountFeedback = { kind: 'success', rateLimits: emptyRateLimits };
const serverError: AccountFeedback = { kind: 'server-error', status: 500 };

describe('rateLimitPause', () => {
  it('pauses a short throttle for exactly its retry-after', () => {
    expect(rateLimitPause(2_000, emptyRateLimits, t0)).toEqual({ kind: 'throttled', untilMs: t0 + 2_000 });
  });

  it('reads room left on the windows as a burst limit, whatever the retry-after', () => {
    const burst = limits({ requests: window(40, t0 + 60_000), tokens: window(90_000, t0 + 60_000) });
    expect(rateLimitPause(30_000, burst, t0)).toEqual({ kind: 'throttled', untilMs: t0 + 30_000 });
    // Without a retry-after, a burst limit pauses for the short-throttle bound, not the default.
    expect(rateLimitPause(undefined, burst, t0)).toEqual({ kind: 'throttled', untilMs: t0 + throttleShortMsMax });
  });

  it('reads a window with nothing left and a far reset as exhausted, until the latest such reset', () => {
    const spent = limits({ requests: window(10, t0 + 20_000), tokens: window(0, t0 + 40_000), outputTokens: window(0, t0 + 90_000) });
    expect(rateLimitPause(1_000, spent, t0)).toEqual({ kind: 'exhausted', untilMs: t0 + 90_000 });
    // A retry-after beyond the resets wins: the later of the two.
    expect(rateLimitPause(120_000, spent, t0)).toEqual({ kind: 'exhausted', untilMs: t0 + 120_000 });
  });

  it('reads a long retry-after without room left as exhausted, a spent window resetting soon as a throttle', () => {
    expect(rateLimitPause(60_000, emptyRateLimits, t0)).toEqual({ kind: 'exhausted', untilMs: t0 + 60_000 });
    expect(rateLimitPause(undefined, limits({ requests: window(0, t0 + 3_000) }), t0)).toEqual({ kind: 'throttled', untilMs: t0 + 3_000 });
  });

  it('falls back to the default when the headers say nothing, ignores past resets, and caps the pause', () => {
    expect(rateLimitPause(undefined, emptyRateLimits, t0)).toEqual({ kind: 'throttled', untilMs: t0 + rateLimitCooldownMsDefault });
    expect(rateLimitPause(undefined, limits({ tokens: window(0, t0 - 5_000) }), t0)).toEqual({ kind: 'throttled', untilMs: t0 + rateLimitCooldownMsDefault });
    const weekly = limits({ tokens: window(0, t0 + 7 * 86_400_000) });
    expect(rateLimitPause(undefined, weekly, t0)).toEqual({ kind: 'exhausted', untilMs: t0 + rateLimitCooldownMsMax });
  });
});

describe('AccountHealth', () => {
  it('cools down on a 429 and recovers when the pause ends, a success not lifting it early', () => {
    const health = new AccountHealth(new SeededRandom(1));
    const change = health.onFeedback(rateLimited(undefined, limits({ tokens: window(0, t0 + 60_000) })), t0);
    expect(change).toMatchObject({ from: 'healthy', to: 'exhausted', availableAtMs: t0 + 60_000, alert: undefined });
    expect(health.canServe(t0 + 30_000)).toBe(false);
    // The late success of a call that started before the 429.
    health.onFeedback(success, t0 + 30_000);
    expect(health.state(t0 + 30_000)).toBe('exhausted');
    expect(health.state(t0 + 59_999)).toBe('exhausted');
    // An exhausted window ends half-open: one probe first, not every waiting call at once.
    expect(health.state(t0 + 60_000)).toBe('half-open');
    // A late 429 with a shorter pause does not shorten the one decided.
    health.onFeedback(rateLimited(1_000), t0 + 59_000);
    expect(health.availableAtMs(t0 + 59_000)).toBe(t0 + 60_000);
    health.beginProbe(t0 + 60_000);
    expect(health.canServe(t0 + 60_001)).toBe(false);
    health.onFeedback(success, t0 + 60_500);
    expect(health.state(t0 + 60_500)).toBe('healthy');
  });

  it('probes once after an exhausted window: a failed probe frees the slot, another 429 pauses again', () => {
    const health = new AccountHealth(new SeededRandom(1));
    health.onFeedback(rateLimited(undefined, limits({ tokens: window(0, t0 + 60_000) })), t0);
    health.beginProbe(t0 + 60_000);
    expect(health.canServe(t0 + 60_000)).toBe(false);
    health.onFeedback({ kind: 'server-error', status: 500 }, t0 + 60_100);
    expect(health.canServe(t0 + 60_100)).toBe(true);
    health.beginProbe(t0 + 60_100);
    health.onFeedback(rateLimited(undefined, limits({ tokens: window(0, t0 + 120_000) })), t0 + 60_200);
    expect(health.state(t0 + 60_200)).toBe('exhausted');
    expect(health.state(t0 + 120_000)).toBe('half-open');
  });

  it('a short throttle ends healthy, with no probe', () => {
    const health = new AccountHealth(new SeededRandom(1));
    health.onFeedback(rateLimited(2_000), t0);
    expect(health.state(t0 + 2_000)).toBe('healthy');
  });

  it('pauses a subscription until its rejected window really resets, and takes its timings from the policy', () => {
    const unified = (status: 'allowed' | 'rejected', resetAtMs: number) => ({
      ...emptyRateLimits,
      unified: {
        status,
        resetAtMs,
        windows: {
          'five-hour': { status, utilization: 1, resetAtMs },
          'seven-day': { status: 'allowed' as const, utilization: 0.4, resetAtMs: t0 + 5 * 86_400_000 },
        },
      },
    });
    // retry-after says a few seconds; the 5-hour window says 3 hours: the window wins.
    expect(rateLimitPause(4_000, unified('rejected', t0 + 3 * 3_600_000), t0)).toEqual({ kind: 'exhausted', untilMs: t0 + 3 * 3_600_000 });
    // Rejected is exhausted, however soon the window resets.
    expect(rateLimitPause(undefined, unified('rejected', t0 + 2_000), t0)).toEqual({ kind: 'exhausted', untilMs: t0 + 2_000 });
    // An allowed window sets no pause of its own.
    expect(rateLimitPause(2_000, unified('allowed', t0 + 3 * 3_600_000), t0)).toEqual({ kind: 'throttled', untilMs: t0 + 2_000 });
    const timings = { ...defaultHealthTimings, rateLimitCooldownMs: 1_234, overloadBackoffMsBase: 10, overloadBackoffMsMax: 10 };
    expect(rateLimitPause(undefined, emptyRateLimits, t0, timings)).toEqual({ kind: 'throttled', untilMs: t0 + 1_234 });
    const health = new AccountHealth(new SeededRandom(3), timings);
    expect(health.onFeedback({ kind: 'overloaded' }, t0).availableAtMs).toBeLessThanOrEqual(t0 + 10);
  });

  it('backs off 529s exponentially with jitter, capped, and starts over after a success', () => {
    const health = new AccountHealth(new SeededRandom(7));
    let nowMs = t0;
    const delays: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const change = health.onFeedback({ kind: 'overloaded' }, nowMs);
      expect(change.to).toBe('overloaded');
      const delayMs = (change.availableAtMs as number) - nowMs;
      const stepMs = Math.min(overloadBackoffMsMax, overloadBackoffMsBase * 2 ** (i - 1));
      expect(delayMs).toBeGreaterThanOrEqual(stepMs / 2);
      expect(delayMs).toBeLessThanOrEqual(stepMs);
      delays.push(delayMs);
      nowMs += delayMs;
      expect(health.state(nowMs)).toBe('healthy');
    }
    expect(delays[5]!).toBeGreaterThan(delays[0]! * 8);
    // Jitter: the capped steps are not all equal.
    expect(new Set(delays.slice(7)).size).toBeGreaterThan(1);
    health.onFeedback(success, nowMs);
    const after = health.onFeedback({ kind: 'overloaded' }, nowMs);
    expect((after.availableAtMs as number) - nowMs).toBeLessThanOrEqual(overloadBackoffMsBase);
  });

  it('disables on 401/403 with one alert, until an operator enables it', () => {
    const health = new AccountHealth(new SeededRandom(1));
    const first = health.onFeedback({ kind: 'auth-failed', status: 401 }, t0);
    expect(first).toEqual({ from: 'healthy', to: 'disabled', availableAtMs: undefined, alert: { kind: 'auth-failed', status: 401 } });
    expect(health.onFeedback({ kind: 'auth-failed', status: 403 }, t0).alert).toBeUndefined();
    health.onFeedback(success, t0 + 1);
    expect(health.state(t0 + 86_400_000)).toBe('disabled');
    expect(health.canServe(t0 + 86_400_000)).toBe(false);
    health.enable();
    expect(health.state(t0 + 2)).toBe('healthy');
  });

  it('opens the circuit after repeated failures, lets one probe through half-open, and closes on its success', () => {
    const health = new AccountHealth(new SeededRandom(1));
    for (let i = 1; i < circuitFailuresMax; i++) expect(health.onFeedback({ kind: 'network', detail: 'reset' }, t0).to).toBe('healthy');
    expect(health.onFeedback(serverError, t0).to).toBe('circuit-open');
    expect(health.canServe(t0 + circuitOpenMsBase - 1)).toBe(false);
    const halfOpenAt = t0 + circuitOpenMsBase;
    expect(health.state(halfOpenAt)).toBe('half-open');
    expect(health.canServe(halfOpenAt)).toBe(true);
    health.beginProbe(halfOpenAt);
    expect(health.canServe(halfOpenAt + 1)).toBe(false);
    expect(health.availableAtMs(halfOpenAt + 1)).toBe(halfOpenAt + circuitProbeTimeoutMs);
    // A probe whose answer never comes frees the slot after the probe timeout.
    expect(health.canServe(halfOpenAt + circuitProbeTimeoutMs)).toBe(true);
    health.onFeedback(success, halfOpenAt + 10);
    expect(health.state(halfOpenAt + 10)).toBe('healthy');
  });

  it('reopens for twice as long when the probe fails, and leaves failures of older calls alone while open', () => {
    const health = new AccountHealth(new SeededRandom(1));
    for (let i = 0; i < circuitFailuresMax; i++) health.onFeedback(serverError, t0);
    // Failures of calls made before the circuit opened do not extend it.
    health.onFeedback(serverError, t0 + 100);
    expect(health.availableAtMs(t0 + 100)).toBe(t0 + circuitOpenMsBase);
    const probeAt = t0 + circuitOpenMsBase;
    health.beginProbe(probeAt);
    const change = health.onFeedback(serverError, probeAt + 50);
    expect(change).toMatchObject({ from: 'half-open', to: 'circuit-open', availableAtMs: probeAt + 50 + 2 * circuitOpenMsBase });
  });

  it('does not change on a client error, and success clears the failure streak', () => {
    const health = new AccountHealth(new SeededRandom(1));
    for (let i = 1; i < circuitFailuresMax; i++) health.onFeedback(serverError, t0);
    expect(health.onFeedback({ kind: 'client-error', status: 400 }, t0)).toMatchObject({ from: 'healthy', to: 'healthy' });
    health.onFeedback(success, t0);
    for (let i = 1; i < circuitFailuresMax; i++) health.onFeedback(serverError, t0);
    expect(health.state(t0)).toBe('healthy');
  });
});
