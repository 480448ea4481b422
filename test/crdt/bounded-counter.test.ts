// Proves the escrow counter spends only local rights and moves rights by transfer.
// It merges rows by maximum.
import { describe, expect, it } from 'vitest';
import { asReplicaId } from '../../src/core/ids.js';
import { BoundedCounter } from '../../src/crdt/bounded-counter.js';

const a = asReplicaId('a');
const b = asReplicaId('b');

describe('BoundedCounter', () => {
  it('lets a replica decrement only what its rights cover, with a typed error otherwise', () => {
    const counter = new BoundedCounter(a);
    counter.increment(10);
    expect(counter.decrement(4).ok).toBe(true);
    expect(counter.decrement(7)).toEqual({ ok: false, error: { kind: 'insufficient-rights', requested: 7, available: 6 } });
    expect(counter.value()).toBe(6);
    expect(counter.localRights()).toBe(6);
  });

  it('moves rights by transfer; the receiver can spend them once it sees the donor row', () => {
    const donor = new BoundedCounter(a);
    const receiver = new BoundedCounter(b);
    donor.increment(10);
    const transfer = donor.transfer(b, 6);
    expect(transfer.ok).toBe(true);
    expect(donor.localRights()).toBe(4);
    expect(receiver.decrement(1).ok).toBe(false);
    if (transfer.ok) receiver.join(transfer.value);
    expect(receiver.localRights()).toBe(6);
    expect(receiver.decrement(6).ok).toBe(true);
    expect(receiver.decrement(1).ok).toBe(false);
    // The donor learns of the spending and sees the value fall; its own rights are untouched.
    donor.join(receiver.state());
    expect(donor.value()).toBe(4);
    expect(donor.localRights()).toBe(4);
  });

  it('refuses a transfer larger than its rights and leaves the state unchanged', () => {
    const counter = new BoundedCounter(a);
    counter.increment(3);
    const before = counter.state();
    expect(counter.transfer(b, 4)).toEqual({ ok: false, error: { kind: 'insufficient-rights', requested: 4, available: 3 } });
    expect(counter.state()).toEqual(before);
  });

  it('treats a transfer to itself as a programmer error', () => {
    expect(() => new BoundedCounter(a).transfer(a, 1)).toThrow();
  });

  it('ignores stale rows when joining', () => {
    const owner = new BoundedCounter(a);
    const stale = owner.increment(5);
    owner.increment(5);
    const view = new BoundedCounter(b);
    view.join(owner.state());
    view.join(stale);
    expect(view.value()).toBe(10);
    expect(view.localRights(a)).toBe(10);
  });
});
