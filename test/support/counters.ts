// Arbitraries and canonical forms shared by the CRDT and codec tests.
import fc from 'fast-check';
import { asReplicaId, type ReplicaId } from '../../src/core/ids.js';
import { counterKey, type CounterKey } from '../../src/crdt/counter-key.js';
import { windowUnits } from '../../src/crdt/window.js';
import type { BoundedCounter } from '../../src/crdt/bounded-counter.js';
import { WindowedCounter, type CounterDelta } from '../../src/crdt/windowed-counter.js';

export const replicaNames = ['us-east-1', 'eu-west-1', 'ap-south-1', 'us-west-2', 'sa-east-1'].map(asReplicaId);

/** A small key universe, so random operations collide on keys as real traffic does. */
export const keyPool: readonly CounterKey[] = (() => {
  const keys: CounterKey[] = [];
  for (const subject of ['acme', 'globex', 'initech']) {
    for (const metric of ['requests', 'weighted_tokens']) {
      for (const unit of ['minute', 'day'] as const) {
        keys.push(counterKey('tenant', subject, metric, { unit, index: unit === 'day' ? 20418 : 29_401_234 }));
      }
    }
  }
  return keys;
})();

const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
export const arbId = fc.string({ unit: printable, minLength: 1, maxLength: 64 });
export const arbName = fc.stringMatching(/^[a-z][a-z0-9_]{0,31}$/);
export const arbReplica: fc.Arbitrary<ReplicaId> = fc.oneof(fc.constantFrom(...replicaNames), arbId.map(asReplicaId));

export const arbKey: fc.Arbitrary<CounterKey> = fc
  .record({
    scope: fc.oneof(fc.constantFrom('tenant', 'user', 'account'), arbName),
    subject: arbId,
    metric: fc.oneof(fc.constantFrom('requests', 'input_tokens', 'weighted_tokens'), arbName),
    unit: fc.constantFrom(...windowUnits),
    index: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 40 })),
  })
  .map(({ scope, subject, metric, unit, index }) => counterKey(scope, subject, metric, { unit, index }));

export const arbCount = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
export const arbVersion = fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 0xffff_ffff }));

/** An operation on a windowed counter replica, as the property tests generate them. */
export type CounterOp =
  | { readonly kind: 'inc' | 'dec'; readonly replica: number; readonly key: number; readonly amount: number }
  | { readonly kind: 'gossip'; readonly replica: number };

export function arbCounterOps(replicaCount: number, length: number): fc.Arbitrary<CounterOp[]> {
  const replica = fc.integer({ min: 0, max: replicaCount - 1 });
  const change = fc.record({
    kind: fc.constantFrom('inc' as const, 'dec' as const),
    replica,
    key: fc.integer({ min: 0, max: keyPool.length - 1 }),
    amount: fc.integer({ min: 1, max: 1000 }),
  });
  const gossip = fc.record({ kind: fc.constant('gossip' as const), replica });
  return fc.array(fc.oneof({ arbitrary: change, weight: 4 }, { arbitrary: gossip, weight: 1 }), { maxLength: length, size: 'max' });
}

/** Builds replicas by applying the change operations (gossip operations only stamp batches). */
export function buildReplicas(replicaCount: number, ops: readonly CounterOp[]): WindowedCounter[] {
  const replicas = replicaNames.slice(0, replicaCount).map((id) => new WindowedCounter(id));
  for (const op of ops) {
    const replica = replicas[op.replica]!;
    if (op.kind === 'gossip') replica.takeDelta();
    else if (op.kind === 'inc') replica.increment(keyPool[op.key]!, op.amount);
    else replica.decrement(keyPool[op.key]!, op.amount);
  }
  return replicas;
}

export function copyOf(counter: WindowedCounter): WindowedCounter {
  const copy = new WindowedCounter(counter.self);
  copy.join(counter.state());
  return copy;
}

/** A replica-independent, order-independent form of a state: entries sorted, plus the digest. */
export function canonical(counter: WindowedCounter): { entries: string[]; digest: [string, number][] } {
  return {
    entries: canonicalEntries(counter.state()),
    digest: [...counter.digest()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  };
}

export function canonicalEntries(delta: CounterDelta): string[] {
  return delta.entries.map((e) => `${e.key.id}|${e.replica}|${e.p}|${e.n}|${e.version}`).sort();
}

export function canonicalRights(counter: BoundedCounter): string[] {
  return counter
    .state()
    .map(
      (row) =>
        `${row.owner}|${row.used}|${[...row.cells]
          .map(([to, amount]) => `${to}=${amount}`)
          .sort()
          .join(',')}`,
    )
    .sort();
}
