// Proves rendezvous hashing is stable per key, moves only about 1/n of keys when an account joins and only the leaver's keys when one leaves, and follows account weights.
import { describe, expect, it } from 'vitest';
import { rendezvousOrder, rendezvousPick, type RendezvousItem } from '../../src/pool/rendezvous.js';
import { StableHasher, stableHash } from '../../src/pool/stable-hash.js';

const item = (id: string, weight = 1): RendezvousItem => ({ id, idHash: stableHash(id), weight });
const accounts = (n: number): RendezvousItem[] => Array.from({ length: n }, (_, i) => item(`acct-${i}`));
const keys = Array.from({ length: 10_000 }, (_, i) => stableHash(`session-${i}`));

function owners(items: readonly RendezvousItem[]): string[] {
  return keys.map((key) => rendezvousPick(key, items)!.id);
}

describe('stableHash', () => {
  it('is a fixed function of the text, below 2^53, and sensitive to every piece', () => {
    expect(stableHash('acme')).toBe(stableHash('acme'));
    expect(new StableHasher().update('ac').update('me').digest()).toBe(stableHash('acme'));
    expect(Number.isSafeInteger(stableHash('x'.repeat(1000)))).toBe(true);
    expect(new Set(['', 'a', 'b', 'ab', 'ba', 'a\u0000', 'a\u0000\u0000'].map(stableHash)).size).toBe(7);
    // Pinned values: nodes of different releases must agree, or every sticky session would
    // move at an upgrade; a change here must be deliberate.
    expect([stableHash('session-0'), stableHash(''), stableHash('acme')]).toEqual([5694292875597927, 4842861967080459, 2708884940873270]);
  });
});

describe('rendezvous', () => {
  it('gives one key the same account every time, and spreads keys evenly', () => {
    const items = accounts(5);
    const first = owners(items);
    expect(owners([...items].reverse())).toEqual(first);
    const counts = new Map<string, number>();
    for (const owner of first) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    for (const count of counts.values()) expect(Math.abs(count - 2_000)).toBeLessThan(200);
  });

  it('moves only about 1/n of keys to an account that joins, and none elsewhere', () => {
    const before = owners(accounts(10));
    const after = owners(accounts(11));
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      expect(after[i]).toBe('acct-10');
    }
    expect(Math.abs(moved / keys.length - 1 / 11)).toBeLessThan(0.015);
  });

  it('moves exactly the keys of an account that leaves, each to its second choice', () => {
    const items = accounts(8);
    const before = owners(items);
    const without = items.filter((x) => x.id !== 'acct-3');
    const after = owners(without);
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== 'acct-3') expect(after[i]).toBe(before[i]);
      else expect(after[i]).toBe(rendezvousOrder(keys[i]!, items)[1]!.id);
    }
  });

  it('gives accounts shares in proportion to their weights', () => {
    const items = [item('heavy', 3), item('light', 1)];
    const heavy = owners(items).filter((owner) => owner === 'heavy').length;
    expect(Math.abs(heavy / keys.length - 0.75)).toBeLessThan(0.02);
  });

  it('orders accounts consistently with the pick', () => {
    const items = accounts(6);
    for (const key of keys.slice(0, 200)) expect(rendezvousOrder(key, items)[0]).toBe(rendezvousPick(key, items));
  });
});
