// Proves the successor's release: a new incarnation refunds what its dead predecessors reserved.
// A new incarnation of a member refunds exactly what its dead predecessors left reserved under
// eventual limits, never another member's reservations or its own open ones, and never twice (not
// by itself, not by a later successor). The quota gate takes holds for eventual limits only.
import { describe, expect, it } from 'vitest';
import { ReservationTable } from '../../src/admission/reservations.js';
import { holdKeyOf, nodeOfReplica, releasePredecessors } from '../../src/admission/successor-release.js';
import { asReplicaId, asTenantId, type RequestId } from '../../src/core/ids.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { GateMesh, quotaRequest } from '../support/gate-mesh.js';

const tenant = asTenantId('acme');
const key = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'day', index: 20_000 });

/** A replica with reservation books over its own counter, its holds on `key`'s hold key. */
function replica(id: string): { counter: WindowedCounter; books: ReservationTable; reserve: (request: string, amount: number) => void } {
  const counter = new WindowedCounter(asReplicaId(id));
  const books = new ReservationTable(counter);
  return {
    counter,
    books,
    reserve: (request, amount) => {
      const reserved = books.reserve(request as RequestId, tenant, [key], amount, 0, 60_000, [holdKeyOf(counter, key)]);
      if (!reserved.ok) throw new Error(reserved.error.kind);
    },
  };
}

/** Joins the whole state of each `from` into `to`, as digest repair would. */
function sync(to: WindowedCounter, ...from: WindowedCounter[]): void {
  for (const source of from) to.join(source.state());
}

describe('releasePredecessors', () => {
  it('refunds what a dead incarnation left open, and nothing of other members or its own open reservations', () => {
    const dead = replica('n0~a');
    dead.reserve('settled', 1_000);
    dead.books.settle('settled' as RequestId, 400);
    dead.reserve('open-1', 700);
    dead.reserve('open-2', 300);
    const other = replica('n1~a');
    other.reserve('theirs', 500);
    const successor = replica('n0~b');
    successor.reserve('mine', 200);
    sync(successor.counter, dead.counter, other.counter);
    // 400 settled + 1,000 open at the dead one, 500 at the other member, 200 of its own.
    expect(successor.counter.value(key)).toBe(2_100);

    const report = releasePredecessors(successor.counter, successor.books.openHolds());
    expect(report).toEqual({ keys: 1, amount: 1_000 });
    expect(successor.counter.value(key)).toBe(1_100);
    // Again: nothing more.
    expect(releasePredecessors(successor.counter, successor.books.openHolds())).toEqual({ keys: 0, amount: 0 });
    // Its own reservation still settles normally, and the hold key ends at the other member's part.
    successor.books.settle('mine' as RequestId, 50);
    expect(successor.counter.value(key)).toBe(950);
    expect(successor.counter.value(holdKeyOf(successor.counter, key))).toBe(500);
  });

  it('lets a later successor release only what nobody released before it', () => {
    const first = replica('n0~a');
    first.reserve('r1', 800);
    const second = replica('n0~b');
    sync(second.counter, first.counter);
    releasePredecessors(second.counter, second.books.openHolds());
    second.reserve('r2', 300);
    // The second incarnation dies too; the third has both states.
    const third = replica('n0~c');
    sync(third.counter, first.counter, second.counter);
    expect(third.counter.value(key)).toBe(300);
    expect(releasePredecessors(third.counter, third.books.openHolds())).toEqual({ keys: 1, amount: 300 });
    expect(third.counter.value(key)).toBe(0);
    // A third that never saw the second's release releases both, exactly once.
    const fresh = replica('n0~d');
    sync(fresh.counter, first.counter);
    expect(releasePredecessors(fresh.counter, fresh.books.openHolds()).amount).toBe(800);
    expect(fresh.counter.value(key)).toBe(0);
  });

  it('reads the member of a replica id from before its last tilde', () => {
    expect(nodeOfReplica(asReplicaId('us-east-1~lx9k2a0f3'))).toBe('us-east-1');
    expect(nodeOfReplica(asReplicaId('a~b~c'))).toBe('a~b');
  });
});

describe('the quota gate', () => {
  it('takes holds for eventual limits only', () => {
    const mesh = new GateMesh(1, 1);
    const eventual: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 10_000, mode: 'eventual' };
    const strict: LimitRule = { metric: 'requests', window: 'day', sliding: false, limit: 10, mode: 'strict' };
    mesh.admit(0, quotaRequest('r1', [eventual, strict], { weighted_tokens: 600, requests: 1 }));
    expect(mesh.runUntil(() => mesh.decisions.of('r1') !== undefined, 2_000)).toBe(true);
    const holds = mesh.nodes[0]!.reservations.openHolds();
    expect([...holds.values()]).toEqual([600]);
    expect([...holds.keys()][0]).toContain('held_tenant');
  });
});
