// Proves no request id reaches the upstream twice over a swarm of random fault mixes.
// The mixes hold partitions of every kind, crashes with and without state, pauses, skew, strobe,
// loss and duplication, while a third of the arrivals retry a recent id at whichever region they
// reach. The runs are seeds 1 to 20 of `npm run sim -- --scenario swarm-claims --duration 5000
// --swarm N`; `--swarm 2000` is the long version.
import { describe, expect, it } from 'vitest';
import { swarmReplayCommand } from '../../sim/cli-format.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { quotaSwarmBase } from '../support/scenarios.js';

/** About 10 s on one core of the 2-core CI machine; the sim CLI runs the thousands. */
const seeds = 20;

describe('request-id claims swarm', () => {
  it(`passes ${seeds} random seeds without an id reaching the upstream twice`, async () => {
    const base = await quotaSwarmBase('claims');
    const failed: string[] = [];
    const totals = { granted: 0, heldElsewhere: 0, dispatched: 0, withdrawn: 0, retries: 0 };
    for (let seed = 1; seed <= seeds; seed++) {
      const result = runScenario(randomScenario(seed, base), seed);
      if (!result.ok)
        failed.push(
          `seed ${seed}: ${result.failures[0]?.checker}: ${result.failures[0]?.message} (replay: ${swarmReplayCommand({ scenario: base.name, regions: undefined, durationMs: base.durationMs }, seed)})`,
        );
      for (const name of Object.keys(totals) as (keyof typeof totals)[]) totals[name] += result.claims?.[name] ?? 0;
    }
    expect(failed).toEqual([]);
    // The runs must exercise what the checker guards: retries refused for a claim held
    // elsewhere, ids that reached the upstream, and claims given back and claimed again.
    expect(totals.retries).toBeGreaterThan(1_000);
    expect(totals.heldElsewhere).toBeGreaterThan(500);
    expect(totals.dispatched).toBeGreaterThan(5_000);
    expect(totals.withdrawn).toBeGreaterThan(500);
  }, 120_000);
});
