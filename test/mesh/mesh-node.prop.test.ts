// Proves mesh nodes converge to the true counter sums after any seeded schedule of increments,
// frame loss, duplication, interleaving and link cuts, once the links heal.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/core/random.js';
import { checkProperty } from '../support/property.js';
import { keyPool } from '../support/counters.js';
import { makeNode, members, MemoryNetwork } from '../support/mesh-network.js';

type Step =
  { kind: 'inc'; node: number; key: number; amount: number; refund: number } | { kind: 'wait'; ms: number } | { kind: 'cut' | 'heal'; a: number; b: number };

const arbStep = (n: number): fc.Arbitrary<Step> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('inc' as const),
        node: fc.nat(n - 1),
        key: fc.nat(keyPool.length - 1),
        amount: fc.integer({ min: 1, max: 5000 }),
        refund: fc.nat(5000),
      }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 10, max: 400 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('cut' as const, 'heal' as const), a: fc.nat(n - 1), b: fc.nat(n - 1) }) },
  );

describe('MeshNode convergence', () => {
  it('converges to the true sums after lossy, duplicating, partitioned gossip heals', () => {
    const arbRun = fc
      .record({
        n: fc.integer({ min: 2, max: 5 }),
        seed: fc.nat(),
        loss: fc.constantFrom(0, 0.1, 0.5),
        duplicate: fc.constantFrom(0, 0.2),
      })
      .chain((cfg) => fc.tuple(fc.constant(cfg), fc.array(arbStep(cfg.n), { maxLength: 80, size: 'max' })));
    checkProperty(
      fc.property(arbRun, ([cfg, steps]) => {
        const random = new SeededRandom(cfg.seed);
        const all = members(cfg.n);
        const nodes = all.map((m) => makeNode(m.id, all, random));
        const network = new MemoryNetwork(nodes, random, { loss: cfg.loss, duplicate: cfg.duplicate, latencyMsMax: 30 });
        const truth = new Map<string, number>();
        network.run(100);
        for (const step of steps) {
          if (step.kind === 'inc') {
            const key = keyPool[step.key]!;
            const counter = nodes[step.node]!.counter;
            const refund = Math.min(step.refund, step.amount);
            expect(counter.increment(key, step.amount).ok).toBe(true);
            expect(counter.decrement(key, refund).ok).toBe(true);
            truth.set(key.id, (truth.get(key.id) ?? 0) + step.amount - refund);
            network.step(5);
          } else if (step.kind === 'wait') network.run(step.ms);
          else if (step.kind === 'cut') network.cut(step.a, step.b);
          else network.heal(step.a, step.b);
        }
        // Liveness phase: faults off, links back, two digest intervals.
        network.faults.loss = 0;
        network.faults.duplicate = 0;
        network.healAll();
        network.run(2_500);
        for (const key of keyPool) {
          const expected = truth.get(key.id) ?? 0;
          for (const node of nodes) expect(node.counter.value(key), `${node.self} ${key.id}`).toBe(expected);
        }
        for (const node of nodes) {
          expect(node.stats.authFailures.size).toBe(0);
          expect(node.stats.badFrames.size).toBe(0);
        }
      }),
      60,
    );
  });
});
