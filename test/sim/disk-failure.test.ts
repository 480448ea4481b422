// Proves a node whose disk refuses writes sends and admits nothing until the disk takes them again.
// A crash while it refuses loses only what no one saw: every checker passes, and the requests it
// had settled meanwhile are charged their estimates.
import { describe, expect, it } from 'vitest';
import type { Scenario } from '../../sim/scenario.js';
import { runScenario, type SimView } from '../../sim/simulator.js';
import { RefusingStore } from '../support/refusing-store.js';
import { quotaSwarmBase } from '../support/scenarios.js';

describe('a node whose disk refuses writes', () => {
  it('holds its frames and refuses requests while it cannot commit, and restarts from what it had committed', async () => {
    const base = await quotaSwarmBase('durable', 8_000);
    // us-west's disk is full from 2.5 s to 5.5 s, and it restarts from that disk at 4 s.
    const scenario: Scenario = { ...base, name: 'disk-full', faults: [{ kind: 'crash', atMs: 4_000, durationMs: 400, node: 1, durable: true }] };
    let full = false;
    // The checkers run every 50 simulated ms: the one place a test reads the simulated clock.
    const clock = (view: SimView): undefined => {
      full = view.nowMs >= 2_500 && view.nowMs < 5_500;
      return undefined;
    };
    let disk: RefusingStore | undefined;
    const result = runScenario(scenario, 1, {
      checkers: [clock],
      store: (inner, node) => (node === 1 ? (disk = new RefusingStore(inner, () => full)) : inner),
    });

    // No peer ever held what its disk did not (checked at every step), limits held, replicas
    // converged, and every request was charged once with its one usage row.
    expect(result.failures).toEqual([]);
    // The pump tries again once a second, as production's does, and sends nothing meanwhile.
    expect(disk?.refused).toBeGreaterThanOrEqual(3);
    expect(disk?.refused).toBeLessThanOrEqual(4);
    expect(result.durability.commitsRefused).toBe(disk?.refused);
    // The gateway refused work meanwhile, as production's does while `storeFailing`.
    expect(result.durability.refusedDiskFailing).toBeGreaterThan(500);
    // What it settled while its disk was full never reached the disk: the restart charged those
    // requests their estimates, as interrupted.
    expect(result.durability.restarts).toBe(1);
    expect(result.durability.settlementsLost).toBeGreaterThan(20);
  }, 60_000);
});
