// Proves the selection strategies' distributions, and picks limited by an admission predicate.
// Round robin cycles exactly, smooth weighted round robin keeps shares and interleaves, least
// loaded takes the idle account and splits ties fairly, and a session key overrides them all. A
// pick with an admission predicate asks only as far as it must and picks as `pick` over the
// admitted would.
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { rendezvousPick } from '../../src/pool/rendezvous.js';
import { stableHash } from '../../src/pool/stable-hash.js';
import { type Candidate, Selector } from '../../src/pool/strategies.js';

function candidate(id: string, parts: Partial<Omit<Candidate, 'id' | 'idHash'>> = {}): Candidate {
  return { id: id as AccountId, idHash: stableHash(id), weight: 1, concurrencyMax: 10, inFlight: 0, queued: 0, headroom: 10, ...parts };
}

function tally(picks: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const pick of picks) counts.set(pick, (counts.get(pick) ?? 0) + 1);
  return counts;
}

describe('Selector', () => {
  it('round robin cycles through the candidates in id order, exactly', () => {
    const selector = new Selector('round-robin', new SeededRandom(1));
    const candidates = [candidate('c'), candidate('a'), candidate('b')];
    const picks = Array.from({ length: 9 }, () => selector.pick(candidates, undefined).id);
    expect(picks).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('round robin carries on from its position when the candidates change', () => {
    const selector = new Selector('round-robin', new SeededRandom(1));
    const all = ['a', 'b', 'c', 'd'].map((id) => candidate(id));
    expect(selector.pick(all, undefined).id).toBe('a');
    expect(selector.pick(all, undefined).id).toBe('b');
    // c is busy: the next one after b that qualifies is d, then around to a.
    const withoutC = all.filter((x) => x.id !== 'c');
    expect(selector.pick(withoutC, undefined).id).toBe('d');
    expect(selector.pick(withoutC, undefined).id).toBe('a');
  });

  it('weighted interleaves picks smoothly and keeps exact shares over 10,000 picks', () => {
    const selector = new Selector('weighted', new SeededRandom(1));
    const small = [candidate('a', { weight: 5 }), candidate('b', { weight: 1 }), candidate('c', { weight: 1 })];
    expect(Array.from({ length: 7 }, () => selector.pick(small, undefined).id).join('')).toBe('aabacaa');

    const weighted = new Selector('weighted', new SeededRandom(1));
    const candidates = [candidate('x', { weight: 50 }), candidate('y', { weight: 30 }), candidate('z', { weight: 15 }), candidate('w', { weight: 5 })];
    const counts = tally(Array.from({ length: 10_000 }, () => weighted.pick(candidates, undefined).id));
    const shares = { x: 0.5, y: 0.3, z: 0.15, w: 0.05 };
    for (const [id, share] of Object.entries(shares)) expect(Math.abs((counts.get(id) ?? 0) / 10_000 - share)).toBeLessThan(0.005);
  });

  it('least loaded takes the account with the lowest load relative to its cap', () => {
    const selector = new Selector('least-loaded', new SeededRandom(1));
    const candidates = [
      candidate('busy', { inFlight: 5, concurrencyMax: 10 }),
      candidate('idle', { inFlight: 0, concurrencyMax: 2 }),
      candidate('big', { inFlight: 3, concurrencyMax: 100 }),
    ];
    expect(selector.pick(candidates, undefined).id).toBe('idle');
    const noIdle = candidates.filter((x) => x.id !== 'idle');
    expect(selector.pick(noIdle, undefined).id).toBe('big');
    // Queued requests count as load too.
    expect(
      selector.pick([candidate('p', { inFlight: 1, queued: 3, concurrencyMax: 4 }), candidate('q', { inFlight: 3, concurrencyMax: 4 })], undefined).id,
    ).toBe('q');
  });

  it('least loaded splits ties evenly at random, and the same seed makes the same choices', () => {
    const candidates = ['a', 'b', 'c'].map((id) => candidate(id));
    const run = (seed: number): string[] => {
      const selector = new Selector('least-loaded', new SeededRandom(seed));
      return Array.from({ length: 9_000 }, () => selector.pick(candidates, undefined).id);
    };
    const picks = run(42);
    expect(run(42)).toEqual(picks);
    for (const count of tally(picks).values()) expect(Math.abs(count - 3_000)).toBeLessThan(200);
  });

  it('with a session key, picks the rendezvous winner whatever the base strategy', () => {
    const candidates = ['a', 'b', 'c', 'd'].map((id) => candidate(id, { inFlight: id === 'a' ? 9 : 0 }));
    for (const base of ['round-robin', 'weighted', 'least-loaded'] as const) {
      const selector = new Selector(base, new SeededRandom(3));
      for (let i = 0; i < 50; i++) {
        const keyHash = stableHash(`session-${i}`);
        expect(selector.pick(candidates, keyHash)).toBe(rendezvousPick(keyHash, candidates));
      }
    }
  });

  it('with a predicate, picks as over the admitted alone and asks only as far as the strategy must', () => {
    const random = new SeededRandom(11);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const [base, sticky] of [
      ['round-robin', false],
      ['weighted', false],
      ['least-loaded', true],
    ] as const) {
      const lazy = new Selector(base, new SeededRandom(3));
      const plain = new Selector(base, new SeededRandom(3));
      for (let round = 0; round < 500; round++) {
        const candidates = ids.map((id) => candidate(id, { weight: 1 + random.int(4), inFlight: random.int(3) }));
        const refused = new Set(ids.filter(() => random.int(3) === 0));
        const keyHash = sticky ? stableHash(`session-${round}`) : undefined;
        let asked = 0;
        const admits = (c: Candidate): boolean => {
          asked++;
          return !refused.has(c.id);
        };
        const admitted = candidates.filter((c) => !refused.has(c.id));
        const picked = lazy.pickAdmitted(candidates, candidates.length, keyHash, admits);
        expect(picked?.id).toBe(admitted.length === 0 ? undefined : plain.pick(admitted, keyHash).id);
        // Weighted credits every candidate, so it asks about each once; the others stop at the first yes.
        if (base === 'weighted') expect(asked).toBe(candidates.length);
        else expect(asked).toBeLessThanOrEqual(refused.size + 1);
      }
    }
  });

  it('least loaded with a predicate draws uniformly among the admitted least loaded, asking about as few as it can', () => {
    const selector = new Selector('least-loaded', new SeededRandom(8));
    const candidates = [candidate('x', { inFlight: 1 }), candidate('a'), candidate('b'), candidate('c'), candidate('d')];
    const counts = new Map<string, number>();
    let asked = 0;
    for (let i = 0; i < 9_000; i++) {
      const picked = selector.pickAdmitted(candidates, candidates.length, undefined, (c) => {
        asked++;
        return c.id !== 'b';
      });
      counts.set(picked!.id, (counts.get(picked!.id) ?? 0) + 1);
    }
    expect(counts.has('b') || counts.has('x')).toBe(false);
    for (const id of ['a', 'c', 'd']) expect(Math.abs((counts.get(id) ?? 0) - 3_000)).toBeLessThan(200);
    // One question per pick, plus one more whenever the draw fell on b (a quarter of the time).
    expect(Math.abs(asked / 9_000 - 1.25)).toBeLessThan(0.03);
    // Every least loaded account refused: the next load's.
    expect(selector.pickAdmitted(candidates, candidates.length, undefined, (c) => c.id === 'x')?.id).toBe('x');
    expect(selector.pickAdmitted(candidates, candidates.length, undefined, () => false)).toBeUndefined();
  });
});
