// Proves the concurrency limiter caps tenants and users per node and is idempotent on request ids.
// It reads a zero cap as none, and bounds its tables with typed errors.
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from '../../src/admission/concurrency.js';
import { retryHeaders } from '../../src/admission/outcome.js';
import { AssertionError } from '../../src/core/assert.js';
import { asTenantId, type RequestId, type UserId } from '../../src/core/ids.js';
import { concurrencyHeldMax, concurrencyKeysMax, concurrencyRetryAfterMs } from '../../src/core/limits.js';

const acme = asTenantId('acme');
const globex = asTenantId('globex');
const alice = 'alice' as UserId;
const bob = 'bob' as UserId;
const id = (text: string): RequestId => text as RequestId;

const tenantFull = { ok: false, error: { kind: 'concurrency', scope: 'tenant', retryAfterMs: concurrencyRetryAfterMs } };
const userFull = { ok: false, error: { kind: 'concurrency', scope: 'user', retryAfterMs: concurrencyRetryAfterMs } };

describe('ConcurrencyLimiter caps', () => {
  it('refuses a tenant at its cap, and a release frees a slot', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('r1'), acme, 2).ok).toBe(true);
    expect(limiter.acquire(id('r2'), acme, 2).ok).toBe(true);
    expect(limiter.acquire(id('r3'), acme, 2)).toEqual(tenantFull);
    expect(limiter.inFlight(acme)).toBe(2);
    expect(limiter.release(id('r1'))).toBe(true);
    expect(limiter.inFlight(acme)).toBe(1);
    expect(limiter.acquire(id('r3'), acme, 2)).toEqual({ ok: true, value: { requestId: 'r3', tenant: 'acme', user: undefined } });
    expect(limiter.inFlight(acme)).toBe(2);
    expect(limiter.stats).toMatchObject({ acquired: 3, refusedTenant: 1, released: 1 });
  });

  it('counts tenants apart', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('a1'), acme, 1).ok).toBe(true);
    expect(limiter.acquire(id('g1'), globex, 1).ok).toBe(true);
    expect(limiter.acquire(id('a2'), acme, 1)).toEqual(tenantFull);
    expect([limiter.inFlight(acme), limiter.inFlight(globex), limiter.size]).toEqual([1, 1, 2]);
  });

  it('holds a user to its own cap inside the tenant cap', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('r1'), acme, 3, { id: alice, max: 1 }).ok).toBe(true);
    expect(limiter.acquire(id('r2'), acme, 3, { id: alice, max: 1 })).toEqual(userFull);
    expect(limiter.acquire(id('r2'), acme, 3, { id: bob, max: 5 }).ok).toBe(true);
    expect(limiter.acquire(id('r3'), acme, 3).ok).toBe(true);
    // The tenant is now full: bob's larger cap does not let him past it.
    expect(limiter.acquire(id('r4'), acme, 3, { id: bob, max: 5 })).toEqual(tenantFull);
    expect([limiter.inFlight(acme), limiter.inFlightUser(acme, alice), limiter.inFlightUser(acme, bob)]).toEqual([3, 1, 1]);
    expect(limiter.release(id('r1'))).toBe(true);
    expect(limiter.inFlightUser(acme, alice)).toBe(0);
    expect(limiter.acquire(id('r4'), acme, 3, { id: alice, max: 1 }).ok).toBe(true);
    expect(limiter.stats).toMatchObject({ refusedUser: 1, refusedTenant: 1 });
  });

  it('counts a user id separately under each tenant', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('a1'), acme, 5, { id: alice, max: 1 }).ok).toBe(true);
    expect(limiter.acquire(id('g1'), globex, 5, { id: alice, max: 1 }).ok).toBe(true);
    expect([limiter.inFlightUser(acme, alice), limiter.inFlightUser(globex, alice)]).toEqual([1, 1]);
  });

  it('reads a cap of zero as admitting nothing, and tracks no key for the refusal', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('r1'), acme, 0)).toEqual(tenantFull);
    expect(limiter.acquire(id('r1'), acme, 4, { id: alice, max: 0 })).toEqual(userFull);
    expect([limiter.size, limiter.keys, limiter.inFlight(acme)]).toEqual([0, 0, 0]);
  });

  it('gives a rejection that maps to retry headers', () => {
    const limiter = new ConcurrencyLimiter();
    const refused = limiter.acquire(id('r1'), acme, 0);
    if (refused.ok || refused.error.kind !== 'concurrency') throw new Error('expected a concurrency rejection');
    expect(retryHeaders(refused.error)).toEqual({ 'grpc-retry-pushback-ms': String(concurrencyRetryAfterMs), 'retry-after': '1' });
  });
});

describe('ConcurrencyLimiter idempotency', () => {
  it('returns the held permit for a repeated acquire without taking a second slot', () => {
    const limiter = new ConcurrencyLimiter();
    const first = limiter.acquire(id('r1'), acme, 1, { id: alice, max: 1 });
    expect(first.ok).toBe(true);
    // The tenant and the user are at their caps, yet the held request gets its permit back.
    const again = limiter.acquire(id('r1'), acme, 1, { id: alice, max: 1 });
    expect(again.ok && first.ok && again.value === first.value).toBe(true);
    // Even with the cap lowered since: the request is already counted.
    expect(limiter.acquire(id('r1'), acme, 0, { id: alice, max: 0 })).toEqual(first);
    expect([limiter.size, limiter.inFlight(acme), limiter.inFlightUser(acme, alice)]).toEqual([1, 1, 1]);
    expect(limiter.stats).toMatchObject({ acquired: 1, reacquired: 2 });
  });

  it('refuses a held id for another tenant or user, changing nothing', () => {
    const limiter = new ConcurrencyLimiter();
    expect(limiter.acquire(id('r1'), acme, 5, { id: alice, max: 5 }).ok).toBe(true);
    const conflict = { ok: false, error: { kind: 'invalid', field: 'requestId', reason: 'is already in flight for another tenant or user' } };
    expect(limiter.acquire(id('r1'), globex, 5, { id: alice, max: 5 })).toEqual(conflict);
    expect(limiter.acquire(id('r1'), acme, 5, { id: bob, max: 5 })).toEqual(conflict);
    expect(limiter.acquire(id('r1'), acme, 5)).toEqual(conflict);
    expect([limiter.size, limiter.keys, limiter.inFlight(acme), limiter.inFlight(globex), limiter.inFlightUser(acme, bob)]).toEqual([1, 2, 1, 0, 0]);
    expect(limiter.stats.idConflicts).toBe(3);
  });

  it('releases once: a second release or an unknown id changes nothing', () => {
    const limiter = new ConcurrencyLimiter();
    limiter.acquire(id('r1'), acme, 5, { id: alice, max: 5 });
    limiter.acquire(id('r2'), acme, 5, { id: alice, max: 5 });
    expect(limiter.release(id('r1'))).toBe(true);
    expect(limiter.release(id('r1'))).toBe(false);
    expect(limiter.release(id('never'))).toBe(false);
    expect([limiter.size, limiter.inFlight(acme), limiter.inFlightUser(acme, alice)]).toEqual([1, 1, 1]);
    expect(limiter.stats.released).toBe(1);
  });

  it('forgets a key when its count drops to zero', () => {
    const limiter = new ConcurrencyLimiter();
    limiter.acquire(id('r1'), acme, 5, { id: alice, max: 5 });
    limiter.acquire(id('r2'), acme, 5);
    expect(limiter.keys).toBe(2);
    limiter.release(id('r1'));
    expect(limiter.keys).toBe(1);
    limiter.release(id('r2'));
    expect([limiter.size, limiter.keys]).toEqual([0, 0]);
    // A forgotten tenant comes back as a new key, counted again.
    limiter.acquire(id('r3'), acme, 5);
    expect([limiter.size, limiter.keys, limiter.inFlight(acme)]).toEqual([1, 1, 1]);
  });
});

describe('ConcurrencyLimiter bounds', () => {
  it('refuses a new request when the held table is full, and accepts one after a release', () => {
    const limiter = new ConcurrencyLimiter({ heldMax: 2 });
    limiter.acquire(id('a1'), acme, 10);
    limiter.acquire(id('g1'), globex, 10);
    expect(limiter.acquire(id('a2'), acme, 10)).toEqual({ ok: false, error: { kind: 'concurrency-full', table: 'held', max: 2 } });
    // A request over its own cap is told so, not blamed on the node.
    expect(limiter.acquire(id('a2'), acme, 1)).toEqual(tenantFull);
    // A held id still gets its permit: it needs no new room.
    expect(limiter.acquire(id('a1'), acme, 10).ok).toBe(true);
    limiter.release(id('g1'));
    expect(limiter.acquire(id('a2'), acme, 10).ok).toBe(true);
    expect(limiter.stats.refusedFull).toBe(1);
  });

  it('refuses a request that needs a new key when the key table is full', () => {
    const limiter = new ConcurrencyLimiter({ keysMax: 2 });
    expect(limiter.acquire(id('r1'), acme, 10, { id: alice, max: 10 }).ok).toBe(true);
    const keysFull = { ok: false, error: { kind: 'concurrency-full', table: 'keys', max: 2 } };
    expect(limiter.acquire(id('r2'), globex, 10)).toEqual(keysFull);
    expect(limiter.acquire(id('r2'), acme, 10, { id: bob, max: 10 })).toEqual(keysFull);
    // Keys already tracked take no room.
    expect(limiter.acquire(id('r2'), acme, 10).ok).toBe(true);
    expect(limiter.acquire(id('r3'), acme, 10, { id: alice, max: 10 }).ok).toBe(true);
    expect([limiter.keys, limiter.size]).toEqual([2, 3]);
    limiter.release(id('r1'));
    limiter.release(id('r3'));
    expect(limiter.keys).toBe(1);
    expect(limiter.acquire(id('r4'), globex, 10).ok).toBe(true);
  });

  it('asserts its options lie within the named bounds', () => {
    expect(() => new ConcurrencyLimiter({ heldMax: 0 })).toThrow(AssertionError);
    expect(() => new ConcurrencyLimiter({ heldMax: concurrencyHeldMax + 1 })).toThrow(AssertionError);
    expect(() => new ConcurrencyLimiter({ keysMax: concurrencyKeysMax + 1 })).toThrow(AssertionError);
    expect(() => new ConcurrencyLimiter({ keysMax: 1.5 })).toThrow(AssertionError);
    expect(() => new ConcurrencyLimiter().acquire(id('r1'), acme, -1)).toThrow(AssertionError);
    expect(new ConcurrencyLimiter()).toMatchObject({ heldMax: concurrencyHeldMax, keysMax: concurrencyKeysMax });
  });
});
