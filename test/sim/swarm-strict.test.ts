// Proves the strict mode never admits a tenant past its limit over a 50-seed swarm of random fault
// mixes (partitions of every kind, crashes with and without state, pauses, skew, strobe, loss and
// duplication), while the limit binds for most of each run. The runs are seeds 1 to 30 of
// `npm run sim -- --scenario swarm-strict --duration 5000 --swarm N`; `--swarm 2000` (without
// `--duration`, so 8 s runs) is the long version.
import { describe, expect, it } from 'vitest';
import { quotaSwarmBase, runQuotaSwarm } from '../support/scenarios.js';

/** About 8 s on one core of the 2-core CI machine; the sim CLI runs the thousands. */
const seeds = 30;

describe('strict swarm', () => {
  it(`passes ${seeds} random seeds with zero overshoot`, async () => {
    const { failed, admitted, rejected } = runQuotaSwarm(await quotaSwarmBase('strict'), seeds);
    expect(failed).toEqual([]);
    // The limit must actually bind, or zero overshoot would prove nothing.
    expect(rejected).toBeGreaterThan(admitted / 10);
  }, 120_000);
});
