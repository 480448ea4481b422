// Proves reservations charge every key or none, settle by refunding or charging the difference,
// expire by lease charged in full, and are idempotent on the request id.
import { describe, expect, it, vi } from 'vitest';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, asTenantId, type RequestId } from '../../src/core/ids.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';

const tenant = asTenantId('acme');
const day = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'day', index: 20418 });
const hour = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'hour', index: 490_000 });
const id = (text: string): RequestId => text as RequestId;

function setup(openMax?: number): { counter: WindowedCounter; table: ReservationTable } {
  const counter = new WindowedCounter(asReplicaId('us-east~1'));
  return { counter, table: new ReservationTable(counter, openMax === undefined ? {} : { openMax }) };
}

describe('ReservationTable', () => {
  it('reserves on every key and refunds the unused part at settlement', () => {
    const { counter, table } = setup();
    expect(table.reserve(id('r1'), tenant, [day, hour], 1000, 0, 60_000).ok).toBe(true);
    expect([counter.value(day), counter.value(hour)]).toEqual([1000, 1000]);
    expect(table.settle(id('r1'), 300)).toEqual({ ok: true, value: { requestId: 'r1', reserved: 1000, charged: 300, by: 'usage' } });
    expect([counter.value(day), counter.value(hour)]).toEqual([300, 300]);
    expect(counter.contributions(day).get(counter.self)).toEqual({ p: 1000, n: 700 });
  });

  it('charges the excess when a request used more than estimated', () => {
    const { counter, table } = setup();
    table.reserve(id('r1'), tenant, [day], 100, 0, 60_000);
    table.settle(id('r1'), 130);
    expect(counter.value(day)).toBe(130);
  });

  it('is idempotent: a retried reserve or settle changes nothing', () => {
    const { counter, table } = setup();
    const first = table.reserve(id('r1'), tenant, [day], 500, 0, 60_000);
    const again = table.reserve(id('r1'), tenant, [day], 500, 10, 60_000);
    expect(again).toEqual(first);
    expect(counter.value(day)).toBe(500);
    const settled = table.settle(id('r1'), 200);
    expect(table.settle(id('r1'), 50)).toEqual(settled);
    expect(counter.value(day)).toBe(200);
    const late = table.reserve(id('r1'), tenant, [day], 500, 20, 60_000);
    expect(late.ok ? 'ok' : late.error.kind).toBe('already-settled');
    expect(counter.value(day)).toBe(200);
  });

  it('settles vanished requests when their lease runs out, charging the full reservation', () => {
    const { counter, table } = setup();
    table.reserve(id('a'), tenant, [day], 100, 0, 1_000);
    table.reserve(id('b'), tenant, [day], 200, 0, 5_000);
    table.reserve(id('c'), tenant, [day], 300, 0, 500);
    table.settle(id('c'), 10);
    expect(table.expire(999)).toEqual([]);
    expect(table.expire(1_000).map((s) => [s.requestId, s.charged, s.by])).toEqual([['a', 100, 'lease']]);
    expect(table.openCount).toBe(1);
    // The request finishing after its lease is told the outcome the lease fixed.
    expect(table.settle(id('a'), 1)).toMatchObject({ ok: true, value: { charged: 100, by: 'lease' } });
    expect(counter.value(day)).toBe(100 + 200 + 10);
  });

  it('charges no key when one key refuses, and bounds open reservations', () => {
    const counter = new WindowedCounter(asReplicaId('us-east~1'), { keysMax: 1 });
    const table = new ReservationTable(counter);
    const refused = table.reserve(id('r1'), tenant, [day, hour], 100, 0, 60_000);
    expect(refused.ok ? 'ok' : refused.error.kind).toBe('counter');
    expect(counter.value(day)).toBe(0);
    const small = setup(2);
    small.table.reserve(id('x'), tenant, [day], 1, 0, 60_000);
    small.table.reserve(id('y'), tenant, [day], 1, 0, 60_000);
    const full = small.table.reserve(id('z'), tenant, [day], 1, 0, 60_000);
    expect(full.ok ? 'ok' : full.error.kind).toBe('reservations-full');
  });

  it('refuses to settle an unknown request', () => {
    expect(setup().table.settle(id('nope'), 1)).toEqual({ ok: false, error: { kind: 'unknown-reservation', requestId: 'nope' } });
  });
});

describe('ReservationTable memory', () => {
  it('keeps its lease list bounded when requests settle before their leases run out', () => {
    const { table } = setup();
    for (let i = 0; i < 20_000; i++) {
      table.reserve(id(`r${i}`), tenant, [day], 1, i, 60_000);
      table.settle(id(`r${i}`), 1);
    }
    // Never expired; the book still holds no more than the compaction allows.
    expect(table.leasesHeld).toBeLessThanOrEqual(1_025);
  });

  it('expires in work proportional to what expires, not to every lease it holds', () => {
    // Many long leases stay open while short ones arrive out of lease order and run out: the
    // old list re-sorted every lease at each expire (issue 17: 312,515 entries sorted for 3,585
    // requests). Counting the elements handed to Array.prototype.sort catches a full re-sort.
    const { table } = setup();
    for (let i = 0; i < 5_000; i++) table.reserve(id(`long${i}`), tenant, [day], 1, 0, 600_000);
    let sorted = 0;
    const original: (this: unknown[], compare?: (a: unknown, b: unknown) => number) => unknown[] = Array.prototype.sort;
    const sort = vi.spyOn(Array.prototype, 'sort').mockImplementation(function (this: unknown[], compare) {
      sorted += this.length;
      return original.call(this, compare);
    });
    let expired = 0;
    try {
      for (let t = 1; t <= 500; t++) {
        // Two per step, the later one with the shorter lease, so arrivals are never in lease order.
        table.reserve(id(`a${t}`), tenant, [day], 1, t, 20);
        table.reserve(id(`b${t}`), tenant, [day], 1, t, 10);
        const before = table.leasesHeld;
        const settled = table.expire(t);
        // Every lease taken off the book this call was one that ran out (none was settled early).
        expect(before - table.leasesHeld).toBe(settled.length);
        expired += settled.length;
      }
    } finally {
      sort.mockRestore();
    }
    expect(expired).toBeGreaterThan(900);
    expect(table.openCount).toBe(5_000 + 1_000 - expired);
    expect(sorted).toBeLessThanOrEqual(2 * expired);
  });
});
