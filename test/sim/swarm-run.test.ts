// Proves the mesh survives a 50-seed swarm of random fault mixes (partitions of every kind,
// crashes with and without state, pauses, skew, strobe, loss and duplication) with no failure.
// The runs are seeds 1 to 50 of `npm run sim -- --scenario swarm-mesh --swarm N`, which runs the
// long version (`--swarm 2000`) on the same base.
import { describe, expect, it } from 'vitest';
import { swarmReplayCommand } from '../../sim/cli-format.js';
import { loadScenario } from '../../sim/scenario-file.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';

/** Enough seeds to draw every fault and partition kind (the check below); the sim CLI runs more. */
const seeds = 50;

describe('swarm', () => {
  it(`passes ${seeds} random seeds`, async () => {
    const loaded = await loadScenario('swarm-mesh');
    if (!loaded.ok) throw new Error('the swarm-mesh scenario does not load');
    const failed: string[] = [];
    const kinds = new Set<string>();
    for (let seed = 1; seed <= seeds; seed++) {
      const scenario = randomScenario(seed, loaded.value);
      for (const fault of scenario.faults) kinds.add(fault.kind === 'partition' ? `partition:${fault.partition}` : fault.kind);
      const result = runScenario(scenario, seed);
      const replay = swarmReplayCommand({ scenario: 'swarm-mesh', regions: undefined, durationMs: undefined }, seed);
      if (!result.ok) failed.push(`${replay} (${result.failures[0]?.message ?? ''})`);
    }
    expect(failed).toEqual([]);
    expect(kinds.size).toBeGreaterThanOrEqual(9);
  }, 60_000);
});
