// Small simulator scenarios for tests: three regions, seconds of traffic, quick to run.
import { swarmReplayCommand } from '../../sim/cli-format.js';
import type { Fault, Scenario } from '../../sim/scenario.js';
import { loadScenario, withOverrides } from '../../sim/scenario-file.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';

export const smallScenario = (faults: Fault[], overrides: Partial<Scenario> = {}): Scenario => ({
  name: 'test',
  description: 'a small scenario for tests',
  regions: 3,
  durationMs: 8_000,
  convergenceBudgetMs: 5_000,
  gossipIntervalMs: 50,
  workload: { tenants: 5, requestsPerSecond: 50, arrivals: 'poisson', burstSize: 5, maxTokens: 2_000 },
  network: { jitterMs: 5, loss: 0.05, duplicate: 0.05, bytesPerMs: 0 },
  faults,
  ...overrides,
});

/**
 * The shipped `swarm-strict`, `swarm-escrow`, `swarm-claims` or `swarm-durable` base, shortened
 * to `durationMs`: what the admission swarms in `npm test` draw their fault mixes on.
 */
export async function quotaSwarmBase(mode: 'strict' | 'escrow' | 'claims' | 'durable', durationMs = 5_000): Promise<Scenario> {
  const loaded = await loadScenario(`swarm-${mode}`);
  if (!loaded.ok) throw new Error(`the swarm-${mode} scenario does not load`);
  const base = withOverrides(loaded.value, { durationMs });
  if (!base.ok) throw new Error(`swarm-${mode} shortened to ${durationMs} ms is invalid`);
  return base.value;
}

/**
 * Runs swarm seeds 1 to `seeds` on `base` (a `quotaSwarmBase`): the failures (with the command
 * that replays each) and the quota decisions. They are the first runs of
 * `npm run sim -- --scenario swarm-<mode> --duration 5000 --swarm N`.
 */
export function runQuotaSwarm(base: Scenario, seeds: number): { failed: string[]; admitted: number; rejected: number } {
  const failed: string[] = [];
  let admitted = 0;
  let rejected = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const result = runScenario(randomScenario(seed, base), seed);
    const replay = swarmReplayCommand({ scenario: base.name, regions: undefined, durationMs: base.durationMs }, seed);
    if (!result.ok) failed.push(`seed ${seed}: ${result.failures[0]?.checker}: ${result.failures[0]?.message} (replay: ${replay})`);
    admitted += result.quota?.admitted ?? 0;
    rejected += result.quota?.rejected ?? 0;
  }
  return { failed, admitted, rejected };
}
