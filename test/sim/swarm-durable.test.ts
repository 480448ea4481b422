// Proves the recovery rules of durable nodes with the real cores over a 40-seed crash swarm.
// The swarm crashes nodes with and without state (slow disks, lossy networks): escrow limits hold,
// replicas converge, each admitted request is charged exactly once and has its one usage row. The
// runs are seeds 1 to 25 of `npm run sim -- --scenario swarm-durable --duration 5000 --swarm N`.
import { describe, expect, it } from 'vitest';
import { swarmReplayCommand } from '../../sim/cli-format.js';
import type { DurabilityFigures } from '../../sim/sim-result.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { quotaSwarmBase } from '../support/scenarios.js';

/** About 5 s on one core of the 2-core CI machine; `--swarm 2000` is the long version. */
const seeds = 25;

describe('durability swarm', () => {
  it(`passes ${seeds} random seeds of crashes with and without state`, async () => {
    const base = await quotaSwarmBase('durable');
    const failed: string[] = [];
    const totals: { -readonly [K in keyof DurabilityFigures]: number } = {
      commits: 0,
      commitsRefused: 0,
      restarts: 0,
      interrupted: 0,
      settlementsLost: 0,
      undispatched: 0,
      refusedDiskFailing: 0,
    };
    let amnesia = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const scenario = randomScenario(seed, base);
      amnesia += scenario.faults.filter((fault) => fault.kind === 'crash' && !fault.durable).length;
      const result = runScenario(scenario, seed);
      if (!result.ok)
        failed.push(
          `seed ${seed}: ${result.failures[0]?.checker}: ${result.failures[0]?.message} (replay: ${swarmReplayCommand({ scenario: base.name, regions: undefined, durationMs: base.durationMs }, seed)})`,
        );
      for (const name of Object.keys(totals) as (keyof DurabilityFigures)[]) totals[name] += result.durability[name];
    }
    expect(failed).toEqual([]);
    // The runs must reach every path of the recovery rules, or passing proves little: restarts
    // from disk and from nothing, requests interrupted while running, settlements and admissions
    // the crash caught before their commit. Seeds 1 to 25 reach 43, 32, 3,967, 8 and 14.
    expect(totals.restarts).toBeGreaterThan(25);
    expect(amnesia).toBeGreaterThan(20);
    expect(totals.interrupted).toBeGreaterThan(2_000);
    expect(totals.settlementsLost).toBeGreaterThan(3);
    expect(totals.undispatched).toBeGreaterThan(7);
  }, 120_000);
});
