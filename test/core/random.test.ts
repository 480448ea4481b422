// Proves the seeded PRNG is deterministic per seed, differs across seeds, and stays in range.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/core/random.js';

describe('SeededRandom', () => {
  it('replays the same stream for the same seed', () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom(42);
    const streamA = Array.from({ length: 100 }, () => a.u32());
    const streamB = Array.from({ length: 100 }, () => b.u32());
    expect(streamA).toEqual(streamB);
  });

  it('gives unrelated streams for neighbouring seeds', () => {
    const a = Array.from(
      { length: 16 },
      (
        (r) => () =>
          r.u32()
      )(new SeededRandom(1)),
    );
    const b = Array.from(
      { length: 16 },
      (
        (r) => () =>
          r.u32()
      )(new SeededRandom(2)),
    );
    const same = a.filter((value, i) => value === b[i]).length;
    expect(same).toBe(0);
  });

  it('draws integers in [0, bound) with every value reachable', () => {
    const random = new SeededRandom(7);
    const seen = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const value = random.int(10);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(10);
      seen[value]!++;
    }
    // Each bucket expects 1,000; 800 is more than six standard deviations away.
    for (const count of seen) expect(count).toBeGreaterThan(800);
  });

  it('draws floats in [0, 1)', () => {
    const random = new SeededRandom(9);
    for (let i = 0; i < 1000; i++) {
      const value = random.float();
      expect(value >= 0 && value < 1).toBe(true);
    }
  });

  it('forks deterministically into a different stream', () => {
    const parent = new SeededRandom(5);
    const child = parent.fork();
    const again = new SeededRandom(5).fork();
    expect(child.u32()).toBe(again.u32());
    expect(new SeededRandom(5).u32()).not.toBe(new SeededRandom(5).fork().u32());
  });

  it('rejects bounds it cannot serve', () => {
    expect(() => new SeededRandom(1).int(0)).toThrow();
    expect(() => new SeededRandom(1.5)).toThrow();
  });
});
