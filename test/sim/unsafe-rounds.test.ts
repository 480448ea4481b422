// Proves the strict-mode checker can fail: the unsafe single-round protocol (apply-and-read in one
// round trip, test/support/unsafe-rounds.ts) is caught admitting a tenant past its limit, while
// the two-phase protocol passes the very same run.
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { quotaSwarmBase } from '../support/scenarios.js';
import { SingleRoundApplyAndRead } from '../support/unsafe-rounds.js';

/**
 * A seed on which the single round overshoots, found by swarming it over the first 500 seeds of
 * the 5 s `swarm-strict` base (1 of 500 overshot): three concurrent batches each saw only one
 * other. The unsafe protocol is rarely caught because every write also reaches the coordinator
 * itself within a round trip; it takes uneven delays (here a jittery, lossy network) to break it.
 */
const overshootingSeed = 471;

describe('the strict quota checker', () => {
  it('catches the single-round protocol overshooting, and passes the two-phase one on the same run', async () => {
    const scenario = randomScenario(overshootingSeed, await quotaSwarmBase('strict'));

    const unsafe = runScenario(scenario, overshootingSeed, { rounds: (parts) => new SingleRoundApplyAndRead(parts) });
    const overshoots = unsafe.failures.filter((failure) => failure.checker === 'quota');
    expect(overshoots.length).toBeGreaterThan(0);
    expect(unsafe.quota?.overshootTokensMax ?? 0).toBeGreaterThan(0);

    const safe = runScenario(scenario, overshootingSeed);
    expect(safe.failures).toEqual([]);
    expect(safe.quota?.overshootTokensMax).toBe(0);
  }, 60_000);
});
