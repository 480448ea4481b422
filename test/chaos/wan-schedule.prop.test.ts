// Laws of the WAN fault schedule: bounded, one partition at a time, every kind, replayable.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { feasibleKinds, planWanFaults, type WanFault, type WanScheduleShape } from './wan-schedule.js';

const shapes = fc.record({
  seed: fc.integer({ min: 0, max: 1_000_000 }),
  regions: fc.integer({ min: 3, max: 5 }),
  faultsMs: fc.integer({ min: 5_000, max: 400_000 }),
  shortest: fc.integer({ min: 500, max: 5_000 }),
  extra: fc.integer({ min: 0, max: 5_000 }),
});

function shapeOf(input: { regions: number; faultsMs: number; shortest: number; extra: number }): WanScheduleShape {
  return { regions: input.regions, faultsStartMs: 1_000, faultsEndMs: input.faultsMs, partitionMs: [input.shortest, input.shortest + input.extra] };
}

const partitions = (faults: readonly WanFault[]): Extract<WanFault, { kind: 'partition' }>[] =>
  faults.filter((fault): fault is Extract<WanFault, { kind: 'partition' }> => fault.kind === 'partition');

describe('the WAN fault schedule', () => {
  it('keeps every fault inside the fault phase, in time order, on nodes that exist', () => {
    fc.assert(
      fc.property(shapes, (input) => {
        const shape = shapeOf(input);
        const faults = planWanFaults(input.seed, shape);
        for (const [i, fault] of faults.entries()) {
          expect(fault.atMs).toBeGreaterThanOrEqual(shape.faultsStartMs);
          expect(fault.atMs).toBeLessThan(shape.faultsEndMs);
          expect(fault.node).toBeGreaterThanOrEqual(0);
          expect(fault.node).toBeLessThan(shape.regions);
          if (i > 0) expect(fault.atMs).toBeGreaterThanOrEqual((faults[i - 1] as WanFault).atMs);
        }
        for (const partition of partitions(faults)) expect(partition.atMs + partition.durationMs).toBeLessThanOrEqual(shape.faultsEndMs);
      }),
    );
  });

  it('never overlaps two partitions, and lasts each within its bounds', () => {
    fc.assert(
      fc.property(shapes, (input) => {
        const shape = shapeOf(input);
        const list = partitions(planWanFaults(input.seed, shape));
        for (const [i, partition] of list.entries()) {
          expect(partition.durationMs).toBeGreaterThanOrEqual(shape.partitionMs[0]);
          expect(partition.durationMs).toBeLessThanOrEqual(shape.partitionMs[1]);
          const next = list[i + 1];
          if (next !== undefined) expect(next.atMs).toBeGreaterThanOrEqual(partition.atMs + partition.durationMs);
        }
      }),
    );
  });

  it('given room, cuts in every feasible kind, silent and loud, and kills a node inside a partition', () => {
    fc.assert(
      fc.property(shapes, (input) => {
        const shape = { ...shapeOf(input), faultsEndMs: 1_000 + 12 * 2 * (input.shortest + input.extra) };
        const faults = planWanFaults(input.seed, shape);
        const list = partitions(faults);
        expect(new Set(list.map((p) => p.partition))).toEqual(new Set(feasibleKinds(shape.regions)));
        expect(new Set(list.map((p) => p.cut))).toEqual(new Set(['hold', 'reset']));
        for (const p of list) if (p.partition === 'one-way') expect(p.cut).toBe('hold');
        const kills = faults.filter((fault) => fault.kind === 'kill');
        const inside = kills.some((kill) => list.some((p) => kill.atMs >= p.atMs && kill.atMs < p.atMs + p.durationMs && kill.node === p.node));
        expect(inside).toBe(true);
      }),
    );
  });

  it('is a function of the seed and the shape', () => {
    fc.assert(
      fc.property(shapes, (input) => {
        expect(planWanFaults(input.seed, shapeOf(input))).toEqual(planWanFaults(input.seed, shapeOf(input)));
      }),
    );
  });
});
