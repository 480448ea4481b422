// Proves, over fault schedules drawn by fast-check, that the mesh converges to the oracle after
// every fault heals and that no replica ever holds counts that were never made.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Fault } from '../../sim/scenario.js';
import { runScenario } from '../../sim/simulator.js';
import { checkProperty } from '../support/property.js';
import { smallScenario } from '../support/scenarios.js';

const regions = 4;
const durationMs = 6_000;

const arbWindow = fc
  .integer({ min: 0, max: durationMs - 200 })
  .chain((atMs) => fc.record({ atMs: fc.constant(atMs), durationMs: fc.integer({ min: 100, max: durationMs - atMs }) }));
const arbNode = fc.nat(regions - 1);

const arbFault: fc.Arbitrary<Fault> = fc.oneof(
  fc
    .tuple(arbWindow, fc.constantFrom('isolate' as const, 'majority' as const, 'ring' as const, 'bridge' as const, 'one-way' as const), arbNode)
    .map(([w, partition, node]) => ({ kind: 'partition' as const, ...w, partition, node })),
  fc.tuple(arbWindow, arbNode, fc.boolean()).map(([w, node, durable]) => ({ kind: 'crash' as const, ...w, node, durable })),
  fc.tuple(arbWindow, arbNode).map(([w, node]) => ({ kind: 'pause' as const, ...w, node })),
  fc.tuple(arbWindow, arbNode, fc.integer({ min: -60_000, max: 60_000 })).map(([w, node, skewMs]) => ({ kind: 'skew' as const, ...w, node, skewMs })),
  fc
    .tuple(arbWindow, arbNode, fc.integer({ min: 1, max: 30_000 }), fc.integer({ min: 10, max: 2_000 }))
    .map(([w, node, skewMs, periodMs]) => ({ kind: 'strobe' as const, ...w, node, skewMs, periodMs })),
);

describe('simulated mesh under drawn fault schedules', () => {
  it('converges after heal and never invents counts', () => {
    checkProperty(
      fc.property(fc.array(arbFault, { maxLength: 6, size: 'max' }), fc.nat(), fc.constantFrom(0, 0.1, 0.3), (faults, seed, loss) => {
        const scenario = smallScenario(faults, { regions, durationMs, network: { jitterMs: 10, loss, duplicate: loss / 2, bytesPerMs: 0 } });
        const result = runScenario(scenario, seed);
        expect(result.failures, result.replay).toEqual([]);
      }),
      25,
    );
  });
});
