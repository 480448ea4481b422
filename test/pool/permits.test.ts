// Proves account permits cap concurrency and queue FIFO with deadlines.
// Freed permits go to the oldest waiter, and cancel, release and removal are safe to repeat.
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { accountBusyRetryAfterMs } from '../../src/core/limits.js';
import { type Permit, PermitTable, type WaiterId } from '../../src/pool/permits.js';

const a = 'acct-a' as AccountId;
const b = 'acct-b' as AccountId;

function granted(table: PermitTable<string>, account: AccountId, nowMs = 0): Permit {
  const result = table.acquire(account, nowMs, 'ctx', nowMs);
  if (!result.ok || result.value.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
  return result.value.permit;
}

function queued(table: PermitTable<string>, account: AccountId, deadlineMs: number, context = 'ctx', nowMs = 0): WaiterId {
  const result = table.acquire(account, deadlineMs, context, nowMs);
  if (!result.ok || result.value.kind !== 'queued') throw new Error(`expected a ticket, got ${JSON.stringify(result)}`);
  return result.value.waiterId;
}

describe('PermitTable', () => {
  it('grants up to the cap, then refuses a caller that may not wait as busy', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 2);
    granted(table, a);
    granted(table, a);
    expect(table.inFlight(a)).toBe(2);
    expect(table.acquire(a, 0, 'ctx', 0)).toEqual({ ok: false, error: { kind: 'busy', retryAfterMs: accountBusyRetryAfterMs } });
    expect(table.acquire(b, 10, 'ctx', 0)).toEqual({ ok: false, error: { kind: 'unknown-account', accountId: b } });
  });

  it('hands freed permits to waiters in the order they queued, and no newcomer overtakes them', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 1);
    const first = granted(table, a);
    const w1 = queued(table, a, 100, 'one');
    const w2 = queued(table, a, 100, 'two');
    expect(table.release(first.id).ok).toBe(true);
    // The permit went to w1, so a newcomer finds none free and must queue behind w2.
    const w3 = queued(table, a, 100, 'three');
    const events = table.takeEvents();
    expect(events).toMatchObject([{ kind: 'granted', waiterId: w1, permit: { accountId: a }, context: 'one' }]);
    const second = (events[0] as { permit: Permit }).permit;
    expect(table.release(second.id).ok).toBe(true);
    expect(table.takeEvents().map((event) => event.waiterId)).toEqual([w2]);
    expect(table.queued(a)).toBe(1);
    expect(table.cancel(w3)).toBe('cancelled');
  });

  it('expires waiters at their deadline on tick, and only then', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 0);
    const early = queued(table, a, 50);
    const late = queued(table, a, 80);
    table.tick(49);
    expect(table.takeEvents()).toEqual([]);
    table.tick(50);
    expect(table.takeEvents()).toEqual([{ kind: 'expired', waiterId: early, accountId: a, context: 'ctx' }]);
    table.tick(1_000);
    expect(table.takeEvents().map((event) => [event.kind, event.waiterId])).toEqual([['expired', late]]);
    expect(table.waitingCount).toBe(0);
  });

  it('cancels idempotently, revoking a grant that was not taken yet and handing it on', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 1);
    const held = granted(table, a);
    const w1 = queued(table, a, 100);
    const w2 = queued(table, a, 100);
    table.release(held.id);
    // w1 was granted but has not drained its grant: cancelling gives the permit to w2.
    expect(table.cancel(w1)).toBe('revoked');
    expect(table.cancel(w1)).toBe('not-waiting');
    const events = table.takeEvents();
    expect(events.map((event) => [event.kind, event.waiterId])).toEqual([['granted', w2]]);
    expect(table.inFlight(a)).toBe(1);
    // A grant already taken cannot be cancelled away: the caller releases it.
    expect(table.cancel(w2)).toBe('not-waiting');
    expect(table.inFlight(a)).toBe(1);
    expect(table.cancel(12345 as WaiterId)).toBe('not-waiting');
  });

  it('treats a second release, or a release of a revoked grant, as a typed no-op', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 2);
    const p = granted(table, a);
    expect(table.release(p.id)).toEqual({ ok: true, value: undefined });
    expect(table.release(p.id)).toEqual({ ok: false, error: { kind: 'unknown-permit', permitId: p.id } });
    expect(table.inFlight(a)).toBe(0);
    expect(table.stats.unknownReleases).toBe(1);
  });

  it('refuses past the per-account queue, the total queue and the held table', () => {
    const table = new PermitTable<string>({ waitersPerAccountMax: 2, waitersMax: 3, heldMax: 2 });
    table.setAccount(a, 0);
    table.setAccount(b, 5);
    queued(table, a, 10);
    queued(table, a, 10);
    expect(table.acquire(a, 10, 'x', 0)).toEqual({ ok: false, error: { kind: 'queue-full', scope: 'account', max: 2 } });
    granted(table, b);
    granted(table, b);
    // b has free slots but the node's held table is full: its capacity, refused at once.
    expect(table.acquire(b, 10, 'x', 0)).toEqual({ ok: false, error: { kind: 'permits-full', max: 2 } });
    const c = 'acct-c' as AccountId;
    table.setAccount(c, 0);
    queued(table, c, 10);
    expect(table.acquire(c, 10, 'x', 0)).toEqual({ ok: false, error: { kind: 'queue-full', scope: 'total', max: 3 } });
    // Undrained outcomes hold their places: expiring every ticket does not free the total bound.
    table.tick(10);
    expect(table.acquire(c, 20, 'x', 10)).toEqual({ ok: false, error: { kind: 'queue-full', scope: 'total', max: 3 } });
    expect(table.takeEvents()).toHaveLength(3);
    expect(table.acquire(c, 20, 'x', 10).ok).toBe(true);
  });

  it('grants waiters when a cap is raised and lets excess drain when it is lowered', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 2);
    const p1 = granted(table, a);
    const p2 = granted(table, a);
    const w1 = queued(table, a, 100);
    table.setAccount(a, 1);
    table.release(p1.id);
    // In flight 1 of a cap of 1: the freed permit is not handed on.
    expect(table.takeEvents()).toEqual([]);
    table.setAccount(a, 3);
    expect(table.takeEvents().map((event) => [event.kind, event.waiterId])).toEqual([['granted', w1]]);
    expect(table.inFlight(a)).toBe(2);
    table.release(p2.id);
    expect(table.inFlight(a)).toBe(1);
  });

  it('evicts waiters of a removed account, keeps its permits valid until released, then forgets it', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 1);
    const held = granted(table, a);
    const waiter = queued(table, a, 100);
    table.removeAccount(a);
    expect(table.takeEvents()).toEqual([{ kind: 'evicted', waiterId: waiter, accountId: a, reason: 'account-removed', context: 'ctx' }]);
    expect(table.has(a)).toBe(false);
    expect(table.acquire(a, 100, 'ctx', 0).ok).toBe(false);
    expect(table.accountCount).toBe(1);
    expect(table.release(held.id).ok).toBe(true);
    expect(table.accountCount).toBe(0);
  });

  it('evicts only the waiters that match', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 0);
    const keep = queued(table, a, 100, 'vip');
    const drop = queued(table, a, 100, 'other');
    expect(table.evict(a, (tenant) => tenant !== 'vip', 'not-allowed')).toBe(1);
    expect(table.takeEvents()).toEqual([{ kind: 'evicted', waiterId: drop, accountId: a, reason: 'not-allowed', context: 'other' }]);
    expect(table.cancel(keep)).toBe('cancelled');
  });

  it('keeps the deadline heap bounded when tickets leave by cancel', () => {
    const table = new PermitTable<string>();
    table.setAccount(a, 0);
    for (let i = 0; i < 5_000; i++) expect(table.cancel(queued(table, a, 1_000 + i))).toBe('cancelled');
    const heap = (table as unknown as { deadlines: { size: number } }).deadlines;
    expect(heap.size).toBeLessThanOrEqual(1_024 + 1);
  });
});
