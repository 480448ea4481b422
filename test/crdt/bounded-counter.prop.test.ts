// Proves the escrow counter's join laws and that no interleaving of increments, decrements,
// transfers and joins takes the global value below zero or any replica's rights below zero.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundedCounter } from '../../src/crdt/bounded-counter.js';
import { checkProperty } from '../support/property.js';
import { canonicalRights, replicaNames } from '../support/counters.js';

type Op =
  | { kind: 'inc'; at: number; amount: number }
  | { kind: 'dec'; at: number; amount: number }
  | { kind: 'transfer'; at: number; to: number; amount: number }
  | { kind: 'join'; at: number; from: number };

const replicaCount = 4;
const at = fc.nat(replicaCount - 1);
const amount = fc.integer({ min: 0, max: 60 });
const arbOps = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('inc' as const), at, amount }),
    fc.record({ kind: fc.constant('dec' as const), at, amount }),
    fc.record({ kind: fc.constant('transfer' as const), at, to: at, amount }),
    fc.record({ kind: fc.constant('join' as const), at, from: at }),
  ),
  { maxLength: 80, size: 'max' },
);

function run(ops: readonly Op[], check?: (replicas: BoundedCounter[], truth: number) => void): BoundedCounter[] {
  const replicas = replicaNames.slice(0, replicaCount).map((id) => new BoundedCounter(id));
  let truth = 0;
  for (const op of ops) {
    const replica = replicas[op.at]!;
    if (op.kind === 'inc') {
      replica.increment(op.amount);
      truth += op.amount;
    } else if (op.kind === 'dec') {
      if (replica.decrement(op.amount).ok) truth -= op.amount;
    } else if (op.kind === 'transfer') {
      if (op.to !== op.at) replica.transfer(replicas[op.to]!.self, op.amount);
    } else {
      replica.join(replicas[op.from]!.state());
    }
    check?.(replicas, truth);
  }
  return replicas;
}

function joinOf(self: BoundedCounter, ...others: BoundedCounter[]): BoundedCounter {
  const merged = new BoundedCounter(self.self);
  for (const other of [self, ...others]) merged.join(other.state());
  return merged;
}

describe('BoundedCounter invariant', () => {
  it('never lets the global value or any replica rights go below zero', () => {
    checkProperty(
      fc.property(arbOps, (ops) => {
        run(ops, (replicas, truth) => {
          const global = joinOf(replicas[0]!, ...replicas.slice(1));
          expect(global.value()).toBe(truth);
          expect(global.value()).toBeGreaterThanOrEqual(0);
          for (const replica of replicas) {
            expect(replica.localRights()).toBeGreaterThanOrEqual(0);
            expect(global.localRights(replica.self)).toBeGreaterThanOrEqual(0);
          }
        });
      }),
      // fast-check's default 100 in `npm test`; `FC_RUNS=1000` soaks it (see ../support/property.ts).
      100,
    );
  });
});

describe('BoundedCounter laws', () => {
  const arbTriple = arbOps.map((ops) => run(ops));

  it('join is commutative', () => {
    checkProperty(
      fc.property(arbTriple, ([x, y]) => {
        expect(canonicalRights(joinOf(x!, y!))).toEqual(canonicalRights(joinOf(y!, x!)));
      }),
    );
  });

  it('join is associative', () => {
    checkProperty(
      fc.property(arbTriple, ([x, y, z]) => {
        expect(canonicalRights(joinOf(joinOf(x!, y!), z!))).toEqual(canonicalRights(joinOf(x!, joinOf(y!, z!))));
      }),
    );
  });

  it('join is idempotent', () => {
    checkProperty(
      fc.property(arbTriple, ([x, y]) => {
        expect(canonicalRights(joinOf(joinOf(x!, y!), y!))).toEqual(canonicalRights(joinOf(x!, y!)));
      }),
    );
  });

  it('joining the stream of deltas equals joining the full states', () => {
    checkProperty(
      fc.property(arbOps, (ops) => {
        const replicas = replicaNames.slice(0, replicaCount).map((id) => new BoundedCounter(id));
        const viaDeltas = new BoundedCounter(replicaNames[4]!);
        for (const op of ops) {
          const replica = replicas[op.at]!;
          if (op.kind === 'inc') viaDeltas.join(replica.increment(op.amount));
          else if (op.kind === 'dec') {
            const result = replica.decrement(op.amount);
            if (result.ok) viaDeltas.join(result.value);
          } else if (op.kind === 'transfer' && op.to !== op.at) {
            const result = replica.transfer(replicas[op.to]!.self, op.amount);
            if (result.ok) viaDeltas.join(result.value);
          } else if (op.kind === 'join') replica.join(replicas[op.from]!.state());
        }
        const viaStates = new BoundedCounter(replicaNames[4]!);
        for (const replica of replicas) viaStates.join(replica.state());
        expect(canonicalRights(viaDeltas)).toEqual(canonicalRights(viaStates));
      }),
    );
  });
});
