// Proves the mesh survives a 200-seed swarm of random fault mixes (partitions of every kind,
// crashes with and without state, pauses, skew, strobe, loss and duplication) with no failure.
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { smallScenario } from '../support/scenarios.js';

describe('swarm', () => {
  it('passes 200 random seeds', () => {
    const base = smallScenario([], { regions: 4, durationMs: 3_000, convergenceBudgetMs: 4_000, workload: { tenants: 4, requestsPerSecond: 20, arrivals: 'poisson', burstSize: 5, maxTokens: 1_000 } });
    const failed: string[] = [];
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const scenario = randomScenario(seed, base);
      for (const fault of scenario.faults) kinds.add(fault.kind === 'partition' ? `partition:${fault.partition}` : fault.kind);
      const result = runScenario(scenario, seed);
      if (!result.ok) failed.push(`${result.replay} (${result.failures[0]?.message ?? ''})`);
    }
    expect(failed).toEqual([]);
    expect(kinds.size).toBeGreaterThanOrEqual(9);
  }, 60_000);
});
