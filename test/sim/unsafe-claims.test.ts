// Proves the request-id checker can fail, on claims that consult only their own region.
// Claims that only consult their own region's view (the region-scoped idempotency the mesh had
// before, test/support/local-only-rounds.ts) are caught sending one id to the upstream twice, while
// quorum claims pass the very same run.
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { LocalOnlyRounds } from '../support/local-only-rounds.js';
import { quotaSwarmBase } from '../support/scenarios.js';

describe('the request-id claims checker', () => {
  it('catches region-scoped claims running an id twice, and passes quorum claims on the same run', async () => {
    const seed = 1;
    const scenario = randomScenario(seed, await quotaSwarmBase('claims'));

    const unsafe = runScenario(scenario, seed, { rounds: () => new LocalOnlyRounds() });
    const twice = unsafe.failures.filter((failure) => failure.checker === 'claims');
    expect(twice.length).toBeGreaterThan(0);
    expect(twice[0]?.message).toMatch(/^request id c\d+ reached the upstream twice: from [a-z-]+, then from [a-z-]+$/);

    const safe = runScenario(scenario, seed);
    expect(safe.failures).toEqual([]);
    expect(safe.claims?.dispatched ?? 0).toBeGreaterThan(0);
  }, 60_000);
});
