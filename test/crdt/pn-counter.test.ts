// Proves the PN-counter's mutations return the owner's entry as a delta.
// Joins keep per-replica maxima.
import { describe, expect, it } from 'vitest';
import { asReplicaId } from '../../src/core/ids.js';
import { replicasMax } from '../../src/core/limits.js';
import { PnCounter } from '../../src/crdt/pn-counter.js';

const a = asReplicaId('a');
const b = asReplicaId('b');

describe('PnCounter', () => {
  it('counts increments minus decrements and returns the own entry as delta', () => {
    const counter = new PnCounter(a);
    expect([...counter.increment(10)]).toEqual([[a, { p: 10, n: 0 }]]);
    const delta = counter.decrement(3);
    expect([...delta]).toEqual([[a, { p: 10, n: 3 }]]);
    expect(counter.value()).toBe(7);
  });

  it('joins by per-replica maximum, so re-delivered and stale deltas change nothing', () => {
    const left = new PnCounter(a);
    const right = new PnCounter(b);
    const first = left.increment(5);
    const second = left.increment(2);
    right.decrement(4);
    right.join(second);
    right.join(first);
    right.join(second);
    expect(right.value()).toBe(7 - 4);
    expect(right.contributions().get(a)).toEqual({ p: 7, n: 0 });
  });

  it('drops entries past replicasMax and says how many', () => {
    const counter = new PnCounter(a);
    const many = new Map(Array.from({ length: replicasMax + 3 }, (_, i) => [asReplicaId(`r${i}`), { p: 1, n: 0 }]));
    expect(counter.join(many)).toBe(3);
    expect(counter.contributions().size).toBe(replicasMax);
  });

  it('refuses negative and fractional amounts as programmer errors', () => {
    const counter = new PnCounter(a);
    expect(() => counter.increment(-1)).toThrow();
    expect(() => counter.decrement(0.5)).toThrow();
  });
});
