// Proves the escrow mode never admits a tenant past its limit over a 200-seed swarm of random fault
// mixes (partitions of every kind, crashes with and without state, pauses, skew, strobe, loss and
// duplication), while the limit binds for most of each run. `npm run sim -- --scenario swarm-escrow
// --swarm 2000` runs the long version.
import { describe, expect, it } from 'vitest';
import { quotaSwarmBase, runQuotaSwarm } from '../support/scenarios.js';

describe('escrow swarm', () => {
  it('passes 200 random seeds with zero overshoot', async () => {
    const { failed, admitted, rejected } = runQuotaSwarm(await quotaSwarmBase('escrow'), 200);
    expect(failed).toEqual([]);
    // The limit must actually bind, or zero overshoot would prove nothing.
    expect(rejected).toBeGreaterThan(admitted / 10);
  }, 120_000);
});
