// Proves the escrow book spends only rights it holds (all keys or none).
// It replicates each changed row once per take, relays raised rows, rebalances at most half a
// surplus toward demand, and expires windows.
import { describe, expect, it } from 'vitest';
import { claimKey, demandKey, EscrowBook } from '../../src/admission/escrow.js';
import { asReplicaId, type ReplicaId } from '../../src/core/ids.js';
import { windowExpiryHorizonMs } from '../../src/core/limits.js';
import { BoundedCounter, type KeyedRightsRow, type RightsRow } from '../../src/crdt/bounded-counter.js';
import { counterKey, type CounterKey } from '../../src/crdt/counter-key.js';
import { windowAt, windowEndMs } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';

// The start of a minute, in the middle of a day: demand windows are minutes, limits here days.
const t0 = 1_764_000_000_000;
const tokens = counterKey('tenant', 'acme', 'weighted_tokens', windowAt('day', t0));
const requests = counterKey('tenant', 'acme', 'requests', windowAt('day', t0));
const [A, B, C] = ['a~1', 'b~1', 'c~1'].map(asReplicaId) as [ReplicaId, ReplicaId, ReplicaId];

function book(self: ReplicaId, keysMax?: number): { book: EscrowBook; counter: WindowedCounter } {
  const counter = new WindowedCounter(self);
  return { book: new EscrowBook(self, counter, keysMax), counter };
}

function row(owner: ReplicaId, cells: [ReplicaId, number][], used = 0): RightsRow {
  return { owner, cells: new Map(cells), used };
}

/** The bounded counter of `key` as a set of replicated rows shows it. */
function view(rows: readonly KeyedRightsRow[], key: CounterKey): BoundedCounter {
  const counter = new BoundedCounter(asReplicaId('observer~1'));
  counter.join(rows.filter((r) => r.key.id === key.id).map((r) => r.row));
  return counter;
}

describe('EscrowBook spend, refund and grant', () => {
  it('spends on every key or on none, and never more than the rights held', () => {
    const { book: a } = book(A);
    expect(a.grant(tokens, 100)).toBe(true);
    expect(a.grant(requests, 2)).toBe(true);
    expect(a.spend([tokens, requests], [60, 3])).toBe(false);
    expect([a.rights(tokens), a.rights(requests)]).toEqual([100, 2]);
    expect(a.spend([tokens, requests], [60, 1])).toBe(true);
    expect(a.spend([tokens, requests], [60, 1])).toBe(false);
    expect([a.rights(tokens), a.rights(requests)]).toEqual([40, 1]);
    expect(a.spend([tokens, requests], [40, 1])).toBe(true);
    expect([a.rights(tokens), a.rights(requests)]).toEqual([0, 0]);
    expect(a.spend([tokens], [1])).toBe(false);
    // A key the book never saw holds no rights.
    const other = counterKey('tenant', 'globex', 'requests', windowAt('day', t0));
    expect(a.spend([other], [1])).toBe(false);
    expect(a.rights(other)).toBe(0);
  });

  it('gives rights back on refund, and ignores a refund into a window it no longer keeps', () => {
    const { book: a } = book(A);
    a.grant(tokens, 50);
    expect(a.spend([tokens], [30])).toBe(true);
    a.refund(tokens, 10);
    expect(a.rights(tokens)).toBe(30);
    a.refund(tokens, 0);
    expect(a.rights(tokens)).toBe(30);
    const unknown = counterKey('tenant', 'globex', 'weighted_tokens', windowAt('day', t0));
    a.refund(unknown, 10);
    expect(a.rights(unknown)).toBe(0);
    expect(a.size).toBe(1);
  });

  it('grants into a new window until the book is full, then refuses and counts the drop', () => {
    const { book: a } = book(A, 1);
    expect(a.grant(tokens, 5)).toBe(true);
    expect(a.grant(tokens, 5)).toBe(true);
    expect(a.rights(tokens)).toBe(10);
    expect(a.grant(requests, 5)).toBe(false);
    expect(a.rights(requests)).toBe(0);
    expect(a.stats.keysDropped).toBe(1);
  });

  it('names a claims counter and a per-minute demand counter apart from the limit key', () => {
    expect(claimKey(tokens)).toMatchObject({ scope: 'tenant_claims', subject: 'acme', metric: 'weighted_tokens', window: tokens.window });
    expect(demandKey(tokens, t0 + 59_999)).toMatchObject({ scope: 'tenant_demand', window: windowAt('minute', t0) });
    expect(demandKey(tokens, t0 + 60_000).window.index).toBe(windowAt('minute', t0).index + 1);
  });
});

describe('EscrowBook as a rights replica', () => {
  it('takes each changed (key, owner) once per call, as its latest snapshot', () => {
    const { book: a } = book(A);
    a.grant(tokens, 10);
    a.spend([tokens], [3]);
    a.spend([tokens], [2]);
    a.grant(requests, 4);
    const taken = a.takeChanged();
    expect(taken.map((r) => [r.key.id, r.row.owner])).toEqual([
      [tokens.id, A],
      [requests.id, A],
    ]);
    expect(taken[0]!.row).toEqual(row(A, [[A, 10]], 5));
    expect(a.takeChanged()).toEqual([]);
    // A snapshot taken earlier does not move with later writes.
    a.grant(tokens, 1);
    expect(taken[0]!.row).toEqual(row(A, [[A, 10]], 5));
    expect(a.takeChanged().map((r) => r.row)).toEqual([row(A, [[A, 11]], 5)]);
  });

  it('joins rows, relays the ones a join raised, and not the ones it already held', () => {
    const { book: a } = book(A);
    const { book: c } = book(C);
    // B created 10 rights and handed 4 of them to C; the row reaches C only through A.
    const fromB: KeyedRightsRow = {
      key: tokens,
      row: row(
        B,
        [
          [B, 10],
          [C, 4],
        ],
        1,
      ),
    };
    a.join([fromB]);
    const relayed = a.takeChanged();
    expect(relayed).toEqual([fromB]);
    c.join(relayed);
    expect(c.rights(tokens)).toBe(4);
    a.join([fromB]);
    a.join([{ key: tokens, row: row(B, [[B, 9]], 0) }]);
    expect(a.takeChanged()).toEqual([]);
    // A row raised in one cell is relayed whole, merged with what A held.
    a.join([{ key: tokens, row: row(B, [[B, 12]], 0) }]);
    expect(a.takeChanged()).toEqual([
      {
        key: tokens,
        row: row(
          B,
          [
            [B, 12],
            [C, 4],
          ],
          1,
        ),
      },
    ]);
  });

  it('gives a new peer the full state: every non-empty row of every window', () => {
    const { book: a } = book(A);
    a.grant(tokens, 7);
    a.join([{ key: requests, row: row(B, [[B, 3]]) }]);
    const state = a.state();
    expect(state.map((r) => `${r.key.metric}/${r.row.owner}`).sort()).toEqual(['requests/b~1', 'weighted_tokens/a~1']);
    const { book: fresh } = book(C);
    fresh.join(state);
    expect(view(fresh.state(), tokens).localRights(A)).toBe(7);
  });
});

describe('EscrowBook rebalance', () => {
  /** Two books whose counters exchanged their demand, and whose rows flow from `from` to `to`. */
  function pair(): { a: EscrowBook; b: EscrowBook; ca: WindowedCounter; cb: WindowedCounter; sync: () => void } {
    const { book: a, counter: ca } = book(A);
    const { book: b, counter: cb } = book(B);
    const sync = (): void => {
      ca.join(cb.state());
      cb.join(ca.state());
      const fromA = a.takeChanged();
      const fromB = b.takeChanged();
      b.join(fromA);
      a.join(fromB);
    };
    return { a, b, ca, cb, sync };
  }

  it('moves rights from a node without demand to one with demand, half the surplus per call', () => {
    const { a, b, sync } = pair();
    a.grant(tokens, 100);
    b.recordDemand(tokens, 40, t0);
    sync();
    const history: number[] = [a.rights(tokens)];
    for (let i = 0; i < 20; i++) {
      const before = a.rights(tokens);
      const transfers = a.rebalance(t0 + 1_000);
      sync();
      const moved = before - a.rights(tokens);
      // A has no demand, so all it holds is surplus.
      expect(moved).toBeLessThanOrEqual(Math.floor(before / 2));
      expect(transfers).toBe(moved > 0 ? 1 : 0);
      history.push(a.rights(tokens));
      expect(a.rights(tokens) + b.rights(tokens)).toBe(100);
    }
    expect(history.slice(0, 4)).toEqual([100, 50, 25, 13]);
    expect(a.rights(tokens)).toBeLessThanOrEqual(1);
    expect(a.stats.rightsTransferred).toBe(100 - a.rights(tokens));
    // B holds all it is owed and has no one to give to.
    expect(b.rebalance(t0 + 1_000)).toBe(0);
  });

  it('moves no more than half of what exceeds the proportional share, toward that share', () => {
    const { a, b, sync } = pair();
    a.grant(tokens, 100);
    a.recordDemand(tokens, 10, t0);
    b.recordDemand(tokens, 30, t0);
    sync();
    // A's share of the 100 rights is a quarter: 75 are surplus, of which at most 37 move.
    a.rebalance(t0 + 1_000);
    expect(a.rights(tokens)).toBe(100 - 37);
    sync();
    expect(b.rights(tokens)).toBe(37);
    for (let i = 0; i < 30; i++) {
      const surplus = a.rights(tokens) - 25;
      const before = a.rights(tokens);
      a.rebalance(t0 + 1_000);
      sync();
      expect(before - a.rights(tokens)).toBeLessThanOrEqual(Math.max(0, Math.floor(surplus / 2)));
    }
    // Converged within the hysteresis: a rights total of 100 tolerates one unit of surplus.
    expect(a.rights(tokens)).toBeGreaterThanOrEqual(25);
    expect(a.rights(tokens)).toBeLessThanOrEqual(26);
  });

  it('moves nothing without demand, to a replica without demand, or in a window that ended', () => {
    const { a, b, sync } = pair();
    a.grant(tokens, 100);
    sync();
    expect(a.rebalance(t0 + 1_000)).toBe(0);
    a.recordDemand(tokens, 5, t0);
    sync();
    // Only A itself has demand: nobody is below a share.
    expect(a.rebalance(t0 + 1_000)).toBe(0);
    expect(b.rights(tokens)).toBe(0);
    const minute = counterKey('tenant', 'acme', 'requests', windowAt('minute', t0));
    a.grant(minute, 100);
    b.recordDemand(minute, 50, t0);
    sync();
    expect(a.rebalance(windowEndMs(minute.window))).toBe(0);
    expect(a.rights(minute)).toBe(100);
  });

  it('reads demand over about the last minute: the previous minute fades out as the current one ages', () => {
    const { a, b, sync } = pair();
    a.grant(tokens, 1_000);
    b.recordDemand(tokens, 60, t0);
    sync();
    // Ten seconds into the next minute, B's demand still counts five sixths.
    expect(a.rebalance(t0 + 70_000)).toBe(1);
    // Two minutes on, it is gone: nothing more moves.
    const held = a.rights(tokens);
    expect(a.rebalance(t0 + 120_000)).toBe(0);
    expect(a.rights(tokens)).toBe(held);
  });

  it('never leaves any replica with negative rights, in the joined truth or in its own view', () => {
    // Three books, stale views: C hears A's transfers late, and everyone spends what it holds.
    const books = [A, B, C].map((id) => book(id));
    const [a, b, c] = books.map((x) => x.book) as [EscrowBook, EscrowBook, EscrowBook];
    const pending: KeyedRightsRow[][] = [[], [], []];
    a.grant(tokens, 90);
    b.recordDemand(tokens, 30, t0);
    c.recordDemand(tokens, 60, t0);
    for (const x of books) for (const y of books) x.counter.join(y.counter.state());
    const allRows = (): KeyedRightsRow[] => books.flatMap((x) => x.book.state());
    for (let round = 0; round < 12; round++) {
      const nowMs = t0 + 1_000 + round;
      for (const [i, x] of books.entries()) {
        x.book.rebalance(nowMs);
        const changed = x.book.takeChanged();
        // Rows reach the next book at once and the one after a round late.
        books[(i + 1) % 3]!.book.join(changed);
        pending[(i + 2) % 3]!.push(...changed);
      }
      for (const [i, x] of books.entries()) {
        x.book.join(pending[i]!);
        pending[i] = [];
        const spend = Math.floor(x.book.rights(tokens) / 3);
        if (spend > 0) expect(x.book.spend([tokens], [spend])).toBe(true);
        expect(x.book.spend([tokens], [x.book.rights(tokens) + 1])).toBe(false);
      }
      const truth = view(allRows(), tokens);
      for (const id of [A, B, C]) expect(truth.localRights(id)).toBeGreaterThanOrEqual(0);
      for (const x of books) {
        expect(x.book.rights(tokens)).toBeGreaterThanOrEqual(0);
        // A replica's own view never credits it with more than it truly holds.
        expect(x.book.rights(tokens)).toBeLessThanOrEqual(truth.localRights(x.book.self));
      }
      expect(truth.value()).toBeGreaterThanOrEqual(0);
    }
    expect(b.stats.transfers + a.stats.transfers + c.stats.transfers).toBeGreaterThan(0);
    expect(view(allRows(), tokens).localRights(C)).toBeGreaterThan(0);
  });
});

describe('EscrowBook expiry', () => {
  it('drops windows once they ended more than the expiry horizon ago, and refuses their rows after', () => {
    const minute = counterKey('tenant', 'acme', 'requests', windowAt('minute', t0));
    const { book: a } = book(A);
    a.grant(minute, 10);
    a.grant(tokens, 10);
    const endMs = windowEndMs(minute.window);
    expect(a.expire(endMs + windowExpiryHorizonMs)).toBe(0);
    expect(a.rights(minute)).toBe(10);
    expect(a.expire(endMs + windowExpiryHorizonMs + 1)).toBe(1);
    expect(a.size).toBe(1);
    expect(a.rights(minute)).toBe(0);
    expect(a.rights(tokens)).toBe(10);
    // A late row for the dropped window does not bring it back; a refund into it goes nowhere.
    a.join([
      {
        key: minute,
        row: row(B, [
          [B, 5],
          [A, 5],
        ]),
      },
    ]);
    a.refund(minute, 3);
    expect(a.size).toBe(1);
    expect(a.rights(minute)).toBe(0);
    expect(a.state().every((r) => r.key.id === tokens.id)).toBe(true);
  });

  it('keeps no unsaved rows without a durable owner, and forgets expired windows in its change sets', () => {
    // Found by the bounds audit (issue 17): on a node without a store nobody took `unsaved`, so
    // it held the entry of every window the node ever changed, expired ones included.
    const { book: volatile } = book(A);
    const { book: durable } = book(B);
    durable.keepDurable();
    const startMs = t0;
    for (let minute = 0; minute < 60; minute++) {
      const nowMs = startMs + minute * 60_000;
      const key = counterKey('tenant', 'acme', 'requests', windowAt('minute', nowMs));
      for (const x of [volatile, durable]) {
        x.grant(key, 10);
        expect(x.spend([key], [1])).toBe(true);
        x.expire(nowMs);
      }
    }
    expect(volatile.tableSizes().unsaved).toBe(0);
    // Without a gossip take (no mesh) the own-changed set still follows the live windows only.
    const live = volatile.size;
    expect(live).toBeLessThan(60);
    expect(volatile.tableSizes().ownChanged).toBeLessThanOrEqual(live);
    expect(durable.tableSizes().unsaved).toBeLessThanOrEqual(durable.size);
    expect(durable.takeUnsaved().length).toBe(durable.size);
    expect(durable.tableSizes().unsaved).toBe(0);
  });
});
