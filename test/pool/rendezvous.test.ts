// Proves rendezvous hashing is stable per key and moves few keys when accounts change.
// Picks are stable per key (pinned values); about 1/n of keys move when an account joins and only
// the leaver's keys when one leaves; picks follow account weights; and the lazy pick takes the best
// admitted account while asking only as far as it must.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/core/random.js';
import { rendezvousFirst, rendezvousOrder, rendezvousPick, type RendezvousItem, rendezvousScore, rendezvousUniform } from '../../src/pool/rendezvous.js';
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

  it('keeps its pinned pair hashes and scores: nodes of different releases must agree', () => {
    // Values of the first release; a change here moves every sticky session at an upgrade.
    const pairs = [
      ['session-0', 'acct-0'],
      ['session-1', 'acct-7'],
      ['', 'a'],
      ['x'.repeat(40), 'acct-99'],
    ] as const;
    expect(pairs.map(([key, id]) => rendezvousUniform(stableHash(key), stableHash(id)))).toEqual([
      0.3939420443949087, 0.11699954005228513, 0.8357402513177619, 0.6112676841172098,
    ]);
    expect(pairs.map(([key, id], i) => rendezvousScore(stableHash(key), stableHash(id), 1 + i * 300))).toEqual([
      1.0734779835780255, 140.28806193601955, 3349.3571494478265, 1830.4811609707015,
    ]);
    expect([rendezvousUniform(0, 0), rendezvousUniform(2 ** 53 - 1, 2 ** 53 - 1), rendezvousUniform(2 ** 32, 2 ** 32 - 1)]).toEqual([
      0.05175526858043272, 0.1721711689823871, 0.498586773325894,
    ]);
  });

  it('takes the best admitted item, asking in preference order and no further', () => {
    const random = new SeededRandom(5);
    const scores = new Float64Array(64);
    for (let round = 0; round < 2_000; round++) {
      // Weights from 1 to 1,000 (the policy's range) stress the bound that skips scoring most items.
      const items = Array.from({ length: 1 + random.int(40) }, (_, i) => item(`acct-${i}`, random.int(4) === 0 ? 1 + random.int(1_000) : 1 + random.int(3)));
      const refused = new Set(items.filter(() => random.int(3) === 0).map((x) => x.id));
      const key = keys[round]!;
      const asked: string[] = [];
      const admits = (x: RendezvousItem): boolean => {
        asked.push(x.id);
        return !refused.has(x.id);
      };
      const picked = rendezvousFirst(key, items, items.length, admits, scores);
      const admitted = items.filter((x) => !refused.has(x.id));
      expect(picked).toBe(rendezvousPick(key, admitted));
      const order = rendezvousOrder(key, items).map((x) => x.id);
      expect(asked).toEqual(order.slice(0, picked === undefined ? items.length : order.indexOf(picked.id) + 1));
      expect(rendezvousFirst(key, items, items.length, undefined, scores)).toBe(rendezvousPick(key, items));
    }
  });
});
