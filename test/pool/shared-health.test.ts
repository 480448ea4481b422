// The pool's side of mesh-wide account health: the home region publishes a pause, disable or
// recovery; every region follows it; only the home grants the probe after a pause; an operator's
// re-enable from any region brings the account back everywhere; a subscription's window headroom
// steers least loaded and weighted picks; the policy's strategy and timings take effect.
import { describe, expect, it } from 'vitest';
import { type AccountId, asNodeId, asRegionId, asTenantId, type RegionId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { emptyRateLimits, type RateLimitSnapshot } from '../../src/pool/account-feedback.js';
import { defaultHealthTimings } from '../../src/pool/account-health.js';
import { AccountPool, type AccountRequest } from '../../src/pool/account-pool.js';

const t0 = 1_800_000_000_000;
const regions = ['us-east', 'eu-west', 'ap-south'].map((r) => asRegionId(r));
const east = regions[0] as RegionId;
const acme = asTenantId('acme');
const subscription = 'sub-1' as AccountId;

function account(id: string, parts: Partial<Account> = {}): Account {
  return { id: id as AccountId, kind: 'oauth', homeRegion: east, weight: 1, concurrencyMax: 4, limits: [], ...parts };
}

/** One pool per region, with the mesh's gossip done by hand: every changed record to every other pool. */
function mesh(accounts: readonly Account[]) {
  const pools = regions.map((region, i) => {
    const pool = new AccountPool({ random: new SeededRandom(i + 1), shared: { node: asNodeId(`${region}-1`), region } });
    pool.update(accounts);
    return pool;
  });
  const gossip = (nowMs: number): void => {
    for (const from of pools) {
      const changed = from.register?.takeChanged() ?? [];
      for (const to of pools) if (to !== from) to.register?.join(changed, nowMs);
    }
  };
  return { pools, gossip, home: pools[0] as AccountPool, west: pools[1] as AccountPool, south: pools[2] as AccountPool };
}

const request = (parts: Partial<AccountRequest> = {}): AccountRequest => ({ tenant: acme, deadlineMs: t0, ...parts });

function exhausted(resetAtMs: number): RateLimitSnapshot {
  return {
    ...emptyRateLimits,
    unified: {
      status: 'rejected',
      resetAtMs,
      windows: {
        'five-hour': { status: 'rejected', utilization: 1, resetAtMs },
        'seven-day': { status: 'allowed', utilization: 0.3, resetAtMs: resetAtMs + 86_400_000 },
      },
    },
  };
}

function windows(fiveHour: number): RateLimitSnapshot {
  return {
    ...emptyRateLimits,
    unified: {
      status: 'allowed',
      resetAtMs: t0 + 3_600_000,
      windows: { 'five-hour': { status: 'allowed', utilization: fiveHour, resetAtMs: t0 + 3_600_000 }, 'seven-day': undefined },
    },
  };
}

describe('mesh-wide account health in the pool', () => {
  it("pauses the account everywhere until the window's real reset, then lets the home grant one probe", () => {
    const m = mesh([account('sub-1')]);
    const resetAtMs = t0 + 3 * 3_600_000;
    m.home.onFeedback(subscription, { kind: 'rate-limited', retryAfterMs: 5_000, rateLimits: exhausted(resetAtMs) }, t0);
    m.gossip(t0 + 10);
    for (const pool of m.pools) {
      const status = pool.status(t0 + 20)[0];
      expect(status?.state).toBe('exhausted');
      expect(status?.availableAtMs).toBe(resetAtMs);
      const refused = pool.acquire(request(), t0 + 20);
      expect(refused.ok ? 'granted' : refused.error).toEqual({ kind: 'no-account', retryAfterMs: resetAtMs - t0 - 20 });
    }
    // The home turns forwarded calls away while paused, with the time to come back.
    expect(m.home.admitForward(subscription, t0 + 20)).toEqual({ ok: false, retryAfterMs: resetAtMs - t0 - 20 });
    // After the reset: other regions may send again, and the home lets exactly one through first.
    const after = resetAtMs + 1;
    expect(m.west.acquire(request(), after).ok).toBe(true);
    expect(m.home.admitForward(subscription, after)).toEqual({ ok: true, probe: true });
    expect(m.home.admitForward(subscription, after).ok).toBe(false);
    // The probe's success at the home makes the account available, and the mesh hears it.
    m.home.onFeedback(subscription, { kind: 'success', rateLimits: windows(0.01) }, after + 500);
    m.gossip(after + 510);
    for (const pool of m.pools) expect(pool.status(after + 520)[0]?.shared).toEqual({ kind: 'available' });
    expect(m.home.admitForward(subscription, after + 520)).toEqual({ ok: true, probe: false });
  });

  it('writes nothing from a region that is not the home: the home saw the same answer', () => {
    const m = mesh([account('sub-1')]);
    m.west.onFeedback(subscription, { kind: 'rate-limited', retryAfterMs: 60_000, rateLimits: emptyRateLimits }, t0);
    expect(m.west.stats.sharedWrites).toBe(0);
    expect(m.west.register?.takeChanged()).toEqual([]);
  });

  it('one re-enable, from any region, brings a disabled account back everywhere', () => {
    const m = mesh([account('sub-1')]);
    m.home.onFeedback(subscription, { kind: 'auth-failed', status: 401 }, t0);
    m.gossip(t0 + 10);
    for (const pool of m.pools) {
      expect(pool.status(t0 + 20)[0]).toMatchObject({ state: 'disabled', disabledReason: 'the upstream answered 401' });
      expect(pool.acquire(request(), t0 + 20).ok).toBe(false);
    }
    expect(m.south.enable(subscription, t0 + 30)).toBe(true);
    m.gossip(t0 + 40);
    for (const pool of m.pools) {
      expect(pool.status(t0 + 50)[0]?.state).toBe('healthy');
      expect(pool.acquire(request(), t0 + 50).ok).toBe(true);
    }
  });

  it('a credential that cannot be renewed disables the account everywhere, with its reason', () => {
    const m = mesh([account('sub-1')]);
    const report = m.home.disable(subscription, { kind: 'credential', detail: 'refresh refused: invalid_grant' }, t0);
    expect(report?.alert).toEqual({ kind: 'credential', detail: 'refresh refused: invalid_grant' });
    m.gossip(t0 + 10);
    for (const pool of m.pools)
      expect(pool.status(t0 + 20)[0]).toMatchObject({
        state: 'disabled',
        disabledReason: 'credential: refresh refused: invalid_grant',
        disabled: { kind: 'credential' },
      });
  });

  it('a record heard before the policy names its account applies once it does', () => {
    const m = mesh([]);
    m.home.update([account('sub-1')]);
    m.home.onFeedback(subscription, { kind: 'auth-failed', status: 403 }, t0);
    m.gossip(t0 + 10);
    m.west.update([account('sub-1')]);
    expect(m.west.status(t0 + 20)[0]?.state).toBe('disabled');
  });

  it("evicts the account's waiters in a region when the mesh pauses it", () => {
    const m = mesh([account('sub-1', { concurrencyMax: 1 })]);
    expect(m.west.acquire(request({ deadlineMs: t0 + 60_000 }), t0).ok).toBe(true);
    const queued = m.west.acquire(request({ deadlineMs: t0 + 60_000 }), t0);
    expect(queued.ok && queued.value.kind).toBe('queued');
    m.home.onFeedback(subscription, { kind: 'rate-limited', retryAfterMs: undefined, rateLimits: exhausted(t0 + 3_600_000) }, t0);
    m.gossip(t0 + 10);
    expect(m.west.takeEvents().map((event) => event.kind)).toEqual(['evicted']);
  });
});

describe('window headroom and policy settings in the pool', () => {
  const accounts = [account('sub-a'), account('sub-b')];

  it('least loaded prefers the account with more of its window left', () => {
    const pool = new AccountPool({ random: new SeededRandom(3) });
    pool.update(accounts);
    pool.onFeedback('sub-a' as AccountId, { kind: 'success', rateLimits: windows(0.92) }, t0);
    pool.onFeedback('sub-b' as AccountId, { kind: 'success', rateLimits: windows(0.2) }, t0);
    for (let i = 0; i < 20; i++) {
      const granted = pool.acquire(request(), t0);
      expect(granted.ok && granted.value.kind === 'granted' && granted.value.account.id).toBe('sub-b');
      if (granted.ok && granted.value.kind === 'granted') pool.release(granted.value.permit);
    }
    expect(pool.status(t0)[0]?.windows?.windows['five-hour']?.utilization).toBe(0.92);
  });

  it('weighted gives a nearly spent account a trickle, and a request may name its tenant strategy', () => {
    const pool = new AccountPool({ random: new SeededRandom(3), strategy: 'round-robin' });
    pool.update(accounts);
    pool.onFeedback('sub-a' as AccountId, { kind: 'success', rateLimits: windows(0.95) }, t0);
    const picks = new Map<string, number>();
    for (let i = 0; i < 120; i++) {
      const granted = pool.acquire(request({ strategy: 'weighted' }), t0);
      if (!granted.ok || granted.value.kind !== 'granted') throw new Error('expected a grant');
      picks.set(granted.value.account.id, (picks.get(granted.value.account.id) ?? 0) + 1);
      pool.release(granted.value.permit);
    }
    // Weights 1 × 1/11 and 1: sub-a takes 1 pick in 12.
    expect(picks.get('sub-a')).toBe(10);
    expect(picks.get('sub-b')).toBe(110);
  });

  it("takes the policy's strategy and health timings", () => {
    const pool = new AccountPool({ random: new SeededRandom(3) });
    pool.update(accounts);
    pool.configure({ strategy: 'round-robin', sticky: false, timings: { ...defaultHealthTimings, rateLimitCooldownMs: 777 } });
    expect(pool.defaultStrategy).toBe('round-robin');
    const report = pool.onFeedback('sub-a' as AccountId, { kind: 'rate-limited', retryAfterMs: undefined, rateLimits: emptyRateLimits }, t0);
    expect(report?.availableAtMs).toBe(t0 + 777);
    const ids = [0, 1, 2, 3].map(() => {
      const granted = pool.acquire(request({ sessionKey: 'pinned' }), t0 + 1_000);
      if (!granted.ok || granted.value.kind !== 'granted') throw new Error('expected a grant');
      pool.release(granted.value.permit);
      return granted.value.account.id;
    });
    // Not sticky: the session key no longer pins; round robin alternates.
    expect(ids).toEqual(['sub-a', 'sub-b', 'sub-a', 'sub-b']);
  });
});

describe('after a pause, in the regions that did not probe', () => {
  it('a region the home turned away while its probe was out takes the account back as soon as the probe succeeds', () => {
    const m = mesh([account('sub-1')]);
    const resetAtMs = t0 + 60_000;
    m.home.onFeedback(subscription, { kind: 'rate-limited', retryAfterMs: undefined, rateLimits: exhausted(resetAtMs) }, t0);
    m.gossip(t0 + 10);
    const after = resetAtMs + 1;
    expect(m.home.admitForward(subscription, after)).toEqual({ ok: true, probe: true });
    // A second region's forward meets the probe out: a short hint, not the probe's timeout.
    const refused = m.home.admitForward(subscription, after);
    expect(refused).toEqual({ ok: false, retryAfterMs: 1_000 });
    m.south.onFeedback(subscription, { kind: 'rate-limited', retryAfterMs: 1_000, rateLimits: emptyRateLimits }, after);
    expect(m.south.acquire(request(), after + 10).ok).toBe(false);
    // The probe succeeds at the home; its word reaches the others, which serve at once.
    m.home.onFeedback(subscription, { kind: 'success', rateLimits: windows(0.01) }, after + 200);
    m.gossip(after + 210);
    expect(m.south.acquire(request(), after + 220).ok).toBe(true);
  });
});
