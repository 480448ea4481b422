// Proves swarm scenarios are a function of their seed and always valid.
// They are varied enough to cover every fault and partition kind.
import { describe, expect, it } from 'vitest';
import type { Scenario } from '../../sim/scenario.js';
import { faultKinds, parseScenario, partitionKinds } from '../../sim/scenario-file.js';
import { randomScenario, swarmDuplicateMax, swarmFaultsMax, swarmJitterMsMax, swarmLossMax } from '../../sim/swarm.js';

const base: Scenario = {
  name: 'base',
  description: 'The base of the swarm tests.',
  regions: 5,
  durationMs: 60_000,
  convergenceBudgetMs: 10_000,
  gossipIntervalMs: 50,
  workload: { tenants: 20, requestsPerSecond: 200, arrivals: 'poisson', burstSize: 1, maxTokens: 4096 },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0, bytesPerMs: 12_500 },
  faults: [{ kind: 'partition', atMs: 1_000, durationMs: 1_000, partition: 'ring' }],
};

const seeds = Array.from({ length: 200 }, (_, i) => i + 1);

describe('randomScenario', () => {
  it('draws the same scenario for the same seed and different ones for different seeds', () => {
    expect(randomScenario(42, base)).toEqual(randomScenario(42, base));
    expect(randomScenario(42, base).name).toBe('swarm-42');
    const distinct = new Set(seeds.slice(0, 50).map((seed) => JSON.stringify(randomScenario(seed, base).faults)));
    expect(distinct.size).toBe(50);
  });

  it('passes parseScenario for 200 seeds, within the swarm bounds', () => {
    for (const seed of seeds) {
      const scenario = randomScenario(seed, base);
      const parsed = parseScenario(scenario);
      expect(parsed.ok ? 'ok' : parsed.error, `seed ${seed}`).toBe('ok');
      expect(scenario.faults.length).toBeGreaterThanOrEqual(1);
      expect(scenario.faults.length).toBeLessThanOrEqual(swarmFaultsMax);
      expect(scenario.network.loss).toBeLessThanOrEqual(swarmLossMax);
      expect(scenario.network.duplicate).toBeLessThanOrEqual(swarmDuplicateMax);
      expect(scenario.network.jitterMs).toBeLessThanOrEqual(swarmJitterMsMax);
      // The base's shape is kept; only faults and the network's randomness are drawn.
      expect({ ...scenario.workload, regions: scenario.regions, bytesPerMs: scenario.network.bytesPerMs }).toEqual({
        ...base.workload,
        regions: base.regions,
        bytesPerMs: base.network.bytesPerMs,
      });
    }
  });

  it('stays valid on a small, short base where some partition kinds cannot be formed', () => {
    const small: Scenario = { ...base, regions: 2, durationMs: 1_000, faults: [] };
    for (const seed of seeds) {
      const parsed = parseScenario(randomScenario(seed, small));
      expect(parsed.ok ? 'ok' : parsed.error, `seed ${seed}`).toBe('ok');
    }
  });

  it('covers every fault kind and partition kind across 200 seeds', () => {
    const scenarios = seeds.map((seed) => randomScenario(seed, base));
    const kinds = new Set(scenarios.flatMap((s) => s.faults.map((f) => f.kind)));
    const partitions = new Set(scenarios.flatMap((s) => s.faults.flatMap((f) => (f.kind === 'partition' ? [f.partition] : []))));
    expect([...kinds].sort()).toEqual([...faultKinds].sort());
    expect([...partitions].sort()).toEqual([...partitionKinds].sort());
    const durable = new Set(scenarios.flatMap((s) => s.faults.flatMap((f) => (f.kind === 'crash' ? [f.durable] : []))));
    expect(durable).toEqual(new Set([true, false]));
  });

  it('draws only the fault kinds the base names in swarmFaults', () => {
    const crashes: Scenario = { ...base, swarmFaults: ['crash'] };
    const kinds = new Set(seeds.flatMap((seed) => randomScenario(seed, crashes).faults.map((f) => f.kind)));
    expect([...kinds]).toEqual(['crash']);
    const durable = new Set(seeds.flatMap((seed) => randomScenario(seed, crashes).faults.flatMap((f) => (f.kind === 'crash' ? [f.durable] : []))));
    expect(durable).toEqual(new Set([true, false]));
    // The base's own list is kept, so the drawn scenario replays from its file.
    expect(randomScenario(1, crashes).swarmFaults).toEqual(['crash']);
  });

  it('varies how many fault kinds a scenario mixes, the point of swarm testing', () => {
    const kindCounts = new Set(seeds.map((seed) => new Set(randomScenario(seed, base).faults.map((f) => f.kind)).size));
    expect(kindCounts.has(1)).toBe(true);
    expect(Math.max(...kindCounts)).toBeGreaterThanOrEqual(4);
    const faultCounts = new Set(seeds.map((seed) => randomScenario(seed, base).faults.length));
    expect([...faultCounts].sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
