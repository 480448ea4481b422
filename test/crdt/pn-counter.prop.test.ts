// Proves the PN-counter join is commutative, associative and idempotent.
// Joining deltas equals joining states.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/core/ids.js';
import { PnCounter, type PnState } from '../../src/crdt/pn-counter.js';
import { checkProperty } from '../support/property.js';
import { replicaNames } from '../support/counters.js';

const arbState: fc.Arbitrary<PnState> = fc
  .array(fc.tuple(fc.constantFrom(...replicaNames), fc.nat(1_000_000), fc.nat(1_000_000)), { maxLength: 5 })
  .map((cells) => new Map(cells.map(([replica, p, n]) => [replica, { p, n }])));

function joined(self: ReplicaId, ...states: PnState[]): PnCounter {
  const counter = new PnCounter(self);
  for (const state of states) counter.join(state);
  return counter;
}

const canonical = (counter: PnCounter): string[] => [...counter.state()].map(([replica, { p, n }]) => `${replica}:${p}:${n}`).sort();

const self = replicaNames[0]!;

describe('PnCounter laws', () => {
  it('join is commutative', () => {
    checkProperty(
      fc.property(arbState, arbState, (x, y) => {
        expect(canonical(joined(self, x, y))).toEqual(canonical(joined(self, y, x)));
      }),
    );
  });

  it('join is associative', () => {
    checkProperty(
      fc.property(arbState, arbState, arbState, (x, y, z) => {
        const left = joined(self, joined(self, x, y).state(), z);
        const right = joined(self, x, joined(self, y, z).state());
        expect(canonical(left)).toEqual(canonical(right));
      }),
    );
  });

  it('join is idempotent', () => {
    checkProperty(
      fc.property(arbState, (x) => {
        expect(canonical(joined(self, x, x))).toEqual(canonical(joined(self, x)));
      }),
    );
  });

  it('joining every delta equals joining the final state, in any order', () => {
    const ops = fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.boolean(), fc.nat(1000)), { maxLength: 60, size: 'max' });
    checkProperty(
      fc.property(ops, fc.infiniteStream(fc.nat()), (list, order) => {
        const replicas = replicaNames.slice(0, 3).map((id) => new PnCounter(id));
        const deltas: PnState[] = [];
        let expected = 0;
        for (const [r, up, amount] of list) {
          const replica = replicas[r]!;
          deltas.push(up ? replica.increment(amount) : replica.decrement(amount));
          expected += up ? amount : -amount;
        }
        // Deliver the deltas shuffled, each possibly twice.
        const shuffled = deltas.flatMap((d) => [d, d]);
        const it = order[Symbol.iterator]();
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = it.next().value! % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const viaDeltas = joined(self, ...shuffled);
        const viaStates = joined(self, ...replicas.map((r) => r.state()));
        expect(canonical(viaDeltas)).toEqual(canonical(viaStates));
        expect(viaDeltas.value()).toBe(expected);
      }),
    );
  });
});
