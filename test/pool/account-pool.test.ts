// Proves the pool's selection end to end.
// Sticky sessions spill over in rendezvous order and return, VIP and local-region tiers, queueing
// and eviction, no-account hints, probes, and policy updates that keep health and permits.
import { describe, expect, it } from 'vitest';
import { type AccountId, asRegionId, asTenantId, type RegionId } from '../../src/core/ids.js';
import { noAccountRetryAfterMsMin } from '../../src/core/limits.js';
import { SeededRandom } from '../../src/core/random.js';
import { err, OK_VOID } from '../../src/core/result.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { emptyRateLimits } from '../../src/pool/account-feedback.js';
import { AccountPool, type AccountPoolOptions, type AccountRequest, type AccountSelection } from '../../src/pool/account-pool.js';
import type { AccountRoom } from '../../src/pool/account-usage.js';
import type { Permit } from '../../src/pool/permits.js';
import { rendezvousOrder } from '../../src/pool/rendezvous.js';
import { stableHash } from '../../src/pool/stable-hash.js';

const t0 = 1_800_000_000_000;
const east = asRegionId('us-east');
const west = asRegionId('eu-west');
const acme = asTenantId('acme');
const vip = asTenantId('bigco');

function account(id: string, parts: Partial<Account> = {}): Account {
  return { id: id as AccountId, kind: 'api-key', homeRegion: east, weight: 1, concurrencyMax: 1, limits: [], ...parts };
}

function pool(accounts: readonly Account[], options: Partial<AccountPoolOptions> = {}): AccountPool {
  const p = new AccountPool({ random: new SeededRandom(9), ...options });
  p.update(accounts);
  return p;
}

const request = (parts: Partial<AccountRequest> = {}): AccountRequest => ({ tenant: acme, deadlineMs: t0, ...parts });

function grant(result: ReturnType<AccountPool['acquire']>): Extract<AccountSelection, { kind: 'granted' }> {
  if (!result.ok || result.value.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
  return result.value;
}

/** The session's preference order over `ids`, as every node computes it. */
function preference(sessionKey: string, ids: readonly string[]): string[] {
  return rendezvousOrder(
    stableHash(sessionKey),
    ids.map((id) => ({ id, idHash: stableHash(id), weight: 1 })),
  ).map((item) => item.id);
}

describe('AccountPool sticky sessions', () => {
  const ids = ['a1', 'a2', 'a3', 'a4'];

  it('pins a session, spills to its next account in rendezvous order when full, and returns when a permit frees', () => {
    const p = pool(ids.map((id) => account(id)));
    const [first, second, third] = preference('s-1', ids);
    const pinned = grant(p.acquire(request({ sessionKey: 's-1' }), t0));
    expect(pinned.account.id).toBe(first);
    const spilled = grant(p.acquire(request({ sessionKey: 's-1' }), t0));
    expect(spilled.account.id).toBe(second);
    expect(grant(p.acquire(request({ sessionKey: 's-1' }), t0)).account.id).toBe(third);
    p.release(pinned.permit);
    expect(grant(p.acquire(request({ sessionKey: 's-1' }), t0)).account.id).toBe(first);
  });

  it('spills while the pinned account cools down or has no quota room, and returns after', () => {
    let roomless: string | undefined;
    const room: AccountRoom = {
      hasRoom: (a) => (a.id === roomless ? err({ kind: 'account-quota', metric: 'requests', limit: 1, window: 'minute', retryAfterMs: 5_000 }) : OK_VOID),
    };
    const p = pool(
      ids.map((id) => account(id, { concurrencyMax: 100 })),
      { room },
    );
    const [first, second] = preference('s-2', ids) as [AccountId, AccountId];
    p.onFeedback(first, { kind: 'rate-limited', retryAfterMs: 2_000, rateLimits: emptyRateLimits }, t0);
    expect(grant(p.acquire(request({ sessionKey: 's-2' }), t0 + 1_000)).account.id).toBe(second);
    expect(grant(p.acquire(request({ sessionKey: 's-2' }), t0 + 2_000)).account.id).toBe(first);
    roomless = first;
    expect(grant(p.acquire(request({ sessionKey: 's-2' }), t0 + 3_000)).account.id).toBe(second);
    roomless = undefined;
    expect(grant(p.acquire(request({ sessionKey: 's-2' }), t0 + 4_000)).account.id).toBe(first);
  });

  it('uses the base strategy without a key, and ignores keys when not sticky', () => {
    const p = pool(
      ids.map((id) => account(id, { concurrencyMax: 10 })),
      { strategy: 'round-robin', sticky: false },
    );
    const picks = Array.from({ length: 8 }, () => grant(p.acquire(request({ sessionKey: 'same' }), t0)).account.id);
    expect(picks).toEqual([...ids, ...ids]);
  });
});

describe('AccountPool tiers', () => {
  it('prefers accounts homed in the local region and forwards only when they are full', () => {
    const p = pool([account('e1', { homeRegion: east }), account('w1', { homeRegion: west })]);
    const local = (region: RegionId): AccountRequest => request({ localRegion: region, deadlineMs: t0 });
    expect(grant(p.acquire(local(west), t0)).account.id).toBe('w1');
    expect(grant(p.acquire(local(west), t0)).account.id).toBe('e1');
    expect(p.stats.remoteGrants).toBe(1);
  });

  it('serves a VIP tenant from its dedicated accounts first, then shared ones; never the other way', () => {
    const p = pool([account('shared-1'), account('vip-1', { dedicatedTenants: [vip] }), account('vip-2', { dedicatedTenants: [vip, asTenantId('other')] })]);
    const forVip = request({ tenant: vip });
    const got = [grant(p.acquire(forVip, t0)).account.id, grant(p.acquire(forVip, t0)).account.id].sort();
    expect(got).toEqual(['vip-1', 'vip-2']);
    expect(grant(p.acquire(forVip, t0)).account.id).toBe('shared-1');
    expect(p.stats.vipSpills).toBe(1);
    // Everything is busy now; a shared tenant queues on the shared account, not a dedicated one.
    const queued = p.acquire(request({ deadlineMs: t0 + 1_000 }), t0);
    expect(queued.ok && queued.value).toMatchObject({ kind: 'queued', account: { id: 'shared-1' } });
  });

  it('keeps a VIP tenant off shared accounts when spilling is off', () => {
    const p = pool([account('shared-1'), account('vip-1', { dedicatedTenants: [vip] })], { vipSpillToShared: false });
    grant(p.acquire(request({ tenant: vip }), t0));
    expect(p.acquire(request({ tenant: vip }), t0)).toEqual({ ok: false, error: { kind: 'busy', retryAfterMs: 1_000 } });
    p.onFeedback('vip-1' as AccountId, { kind: 'auth-failed', status: 401 }, t0);
    expect(p.acquire(request({ tenant: vip }), t0)).toEqual({ ok: false, error: { kind: 'no-account', retryAfterMs: undefined } });
  });
});

describe('AccountPool queueing and health', () => {
  it('queues when every eligible account is full and grants the waiter on release', () => {
    const p = pool([account('a1'), account('a2')]);
    const held = [grant(p.acquire(request(), t0)), grant(p.acquire(request(), t0))];
    const queued = p.acquire(request({ deadlineMs: t0 + 5_000 }), t0);
    if (!queued.ok || queued.value.kind !== 'queued') throw new Error('expected a ticket');
    const target = queued.value.account.id;
    const holder = held.find((h) => h.account.id === target)!;
    p.release(held.find((h) => h.account.id !== target)!.permit);
    expect(p.takeEvents()).toEqual([]);
    p.release(holder.permit);
    expect(p.takeEvents()).toMatchObject([{ kind: 'granted', waiterId: queued.value.waiterId, permit: { accountId: target }, context: acme }]);
  });

  it('evicts waiters when their account stops being healthy, and expires them at their deadline', () => {
    const p = pool([account('a1')]);
    const held = grant(p.acquire(request(), t0));
    const first = p.acquire(request({ deadlineMs: t0 + 5_000 }), t0);
    const second = p.acquire(request({ deadlineMs: t0 + 100 }), t0);
    if (!first.ok || first.value.kind !== 'queued' || !second.ok || second.value.kind !== 'queued') throw new Error('expected tickets');
    p.tick(t0 + 100);
    expect(p.takeEvents().map((e) => [e.kind, e.waiterId])).toEqual([['expired', second.value.waiterId]]);
    const report = p.onFeedback(held.account.id, { kind: 'overloaded' }, t0 + 200);
    expect(report).toMatchObject({ to: 'overloaded', evicted: 1 });
    expect(p.takeEvents()).toMatchObject([{ kind: 'evicted', waiterId: first.value.waiterId, reason: 'account-unavailable' }]);
  });

  it('refuses with the earliest comeback as the hint, and none when only an operator can help', () => {
    const p = pool([account('a1', { concurrencyMax: 5 }), account('a2', { concurrencyMax: 5 }), account('zero', { concurrencyMax: 0 })]);
    p.onFeedback('a1' as AccountId, { kind: 'rate-limited', retryAfterMs: 30_000, rateLimits: emptyRateLimits }, t0);
    p.onFeedback('a2' as AccountId, { kind: 'rate-limited', retryAfterMs: 12_000, rateLimits: emptyRateLimits }, t0);
    expect(p.acquire(request(), t0 + 2_000)).toEqual({ ok: false, error: { kind: 'no-account', retryAfterMs: 10_000 } });
    expect(p.stats.noAccount).toBe(1);
    // Accounts this request already tried count as available now, with the minimum hint.
    const tried = new Set(['a1', 'a2'] as AccountId[]);
    expect(p.acquire(request({ excluded: tried }), t0 + 40_000)).toEqual({ ok: false, error: { kind: 'no-account', retryAfterMs: noAccountRetryAfterMsMin } });
    p.onFeedback('a1' as AccountId, { kind: 'auth-failed', status: 403 }, t0);
    p.onFeedback('a2' as AccountId, { kind: 'auth-failed', status: 401 }, t0);
    expect(p.acquire(request(), t0 + 40_000)).toEqual({ ok: false, error: { kind: 'no-account', retryAfterMs: undefined } });
    expect(p.stats.alerts).toBe(2);
    expect(p.enable('a2' as AccountId, t0)).toBe(true);
    expect(grant(p.acquire(request(), t0 + 40_000)).account.id).toBe('a2');
  });

  it('sends exactly one probe to a half-open account', () => {
    const p = pool([account('a1', { concurrencyMax: 5 })]);
    for (let i = 0; i < 3; i++) p.onFeedback('a1' as AccountId, { kind: 'server-error', status: 503 }, t0);
    expect(p.status(t0)[0]).toMatchObject({ state: 'circuit-open' });
    const probeAt = t0 + 5_000;
    const probe = grant(p.acquire(request(), probeAt));
    expect(probe.probe).toBe(true);
    const next = p.acquire(request({ deadlineMs: probeAt + 1_000 }), probeAt);
    expect(next.ok === false && next.error.kind).toBe('no-account');
    p.release(probe.permit);
    p.onFeedback('a1' as AccountId, { kind: 'success', rateLimits: emptyRateLimits }, probeAt + 10);
    expect(grant(p.acquire(request(), probeAt + 10)).probe).toBe(false);
  });

  it('refuses with the minimum hint while a half-open account has every permit held by calls from before', () => {
    const p = pool([account('a1', { concurrencyMax: 1 })]);
    const before = grant(p.acquire(request(), t0));
    for (let i = 0; i < 3; i++) p.onFeedback('a1' as AccountId, { kind: 'server-error', status: 503 }, t0);
    // Half-open at t0 + 5 s: its probe may go, but the one permit is still out, and a probe never queues.
    expect(p.acquire(request({ deadlineMs: t0 + 9_000 }), t0 + 5_000)).toEqual({
      ok: false,
      error: { kind: 'no-account', retryAfterMs: noAccountRetryAfterMsMin },
    });
    p.release(before.permit);
    expect(grant(p.acquire(request(), t0 + 5_000)).probe).toBe(true);
  });

  it('reports each account for status and counts states from a bounded set', () => {
    const p = pool([account('b'), account('a', { dedicatedTenants: [vip] })]);
    p.onFeedback('b' as AccountId, { kind: 'overloaded' }, t0);
    const status = p.status(t0);
    expect(status.map((s) => [s.id, s.state, s.dedicated])).toEqual([
      ['a', 'healthy', true],
      ['b', 'overloaded', false],
    ]);
    expect(p.stateCounts(t0)).toEqual({ healthy: 1, throttled: 0, exhausted: 0, overloaded: 1, 'circuit-open': 0, 'half-open': 0, disabled: 0 });
  });
});

describe('AccountPool policy updates', () => {
  it('keeps health and permits of accounts that stay, and lets removed ones drain', () => {
    const p = pool([account('a1', { concurrencyMax: 2 }), account('a2', { concurrencyMax: 2 })]);
    p.onFeedback('a2' as AccountId, { kind: 'auth-failed', status: 401 }, t0);
    const held: Permit = grant(p.acquire(request(), t0)).permit;
    expect(held.accountId).toBe('a1');
    grant(p.acquire(request(), t0));
    const waiter = p.acquire(request({ deadlineMs: t0 + 10_000 }), t0);
    expect(waiter.ok && waiter.value.kind).toBe('queued');
    p.update([account('a1', { concurrencyMax: 2, weight: 7 }), account('a2', { concurrencyMax: 2, weight: 7 }), account('a3')]);
    expect(p.status(t0).map((s) => [s.id, s.state, s.inFlight])).toEqual([
      ['a1', 'healthy', 2],
      ['a2', 'disabled', 0],
      ['a3', 'healthy', 0],
    ]);
    p.update([account('a2'), account('a3')]);
    expect(p.account('a1' as AccountId)).toBeUndefined();
    expect(p.takeEvents()).toMatchObject([{ kind: 'evicted', reason: 'account-removed' }]);
    expect(p.release(held)).toEqual({ ok: true, value: undefined });
    expect(p.release(held).ok).toBe(false);
    expect(grant(p.acquire(request(), t0)).account.id).toBe('a3');
  });

  it('grants waiters when a cap is raised, and evicts tenants a new dedication leaves out', () => {
    const p = pool([account('a1')]);
    grant(p.acquire(request({ tenant: vip }), t0));
    const mine = p.acquire(request({ tenant: vip, deadlineMs: t0 + 10_000 }), t0);
    const theirs = p.acquire(request({ tenant: acme, deadlineMs: t0 + 10_000 }), t0);
    if (!mine.ok || mine.value.kind !== 'queued' || !theirs.ok || theirs.value.kind !== 'queued') throw new Error('expected tickets');
    p.update([account('a1', { concurrencyMax: 3, dedicatedTenants: [vip] })]);
    const events = p.takeEvents();
    expect(events.map((e) => [e.kind, e.waiterId, e.context])).toEqual([
      ['evicted', theirs.value.waiterId, acme],
      ['granted', mine.value.waiterId, vip],
    ]);
    expect(p.acquire(request({ tenant: acme }), t0)).toEqual({ ok: false, error: { kind: 'no-account', retryAfterMs: undefined } });
  });
});
