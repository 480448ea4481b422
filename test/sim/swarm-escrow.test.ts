// Proves the escrow mode never admits a tenant past its limit over a 200-seed swarm of random fault
// mixes (partitions of every kind, crashes with and without state, pauses, skew, strobe, loss and
// duplication), while the limit binds for most of each run. `npm run sim -- --scenario swarm-escrow
// --swarm 2000` runs the long version.
import { describe, expect, it } from 'vitest';
import { loadScenario, withOverrides } from '../../sim/scenario-file.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';

describe('escrow swarm', () => {
  it('passes 200 random seeds with zero overshoot', async () => {
    const loaded = await loadScenario('swarm-escrow');
    if (!loaded.ok) throw new Error('the swarm-escrow scenario does not load');
    const base = withOverrides(loaded.value, { durationMs: 5_000 });
    if (!base.ok) throw new Error('the shortened scenario is invalid');
    const failed: string[] = [];
    let admitted = 0;
    let rejected = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const result = runScenario(randomScenario(seed, base.value), seed);
      if (!result.ok) failed.push(`seed ${seed}: ${result.failures[0]?.checker}: ${result.failures[0]?.message}`);
      admitted += result.quota?.admitted ?? 0;
      rejected += result.quota?.rejected ?? 0;
    }
    expect(failed).toEqual([]);
    // The limit must actually bind, or zero overshoot would prove nothing.
    expect(rejected).toBeGreaterThan(admitted / 10);
  }, 120_000);
});
