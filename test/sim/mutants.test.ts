// Proves each mutant of the catalogue (test/support/mutants) is caught by its swarm.
// The real code passes the same seeds; MUTANT_SEEDS=100 runs the full budget.
import { describe, expect, it } from 'vitest';
import { loadScenario, withOverrides } from '../../sim/scenario-file.js';
import type { Scenario } from '../../sim/scenario.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';
import { type Mutant, mutants, type MutantSwarm } from '../support/mutants/index.js';

/**
 * Without MUTANT_SEEDS, `npm test` replays each mutant's witness (the first seed of its swarm
 * that catches it, recorded in the catalogue) and the real code on that seed: a few seconds in
 * all. With MUTANT_SEEDS=N, every mutant runs seeds 1 to N until one catches it, and the real
 * code must pass seeds 1 to N of every swarm the mutants use: the acceptance budget is 100.
 */
const fullBudget = process.env.MUTANT_SEEDS === undefined ? undefined : Number(process.env.MUTANT_SEEDS);

/** A mutant's swarm base, shortened as the catalogue says. */
async function base(swarm: MutantSwarm, durationMs: number | undefined): Promise<Scenario> {
  const read = await loadScenario(swarm);
  if (!read.ok) throw new Error(`the ${swarm} scenario does not load`);
  if (durationMs === undefined) return read.value;
  const shortened = withOverrides(read.value, { durationMs });
  if (!shortened.ok) throw new Error(`${swarm} shortened to ${durationMs} ms is invalid`);
  return shortened.value;
}

/** The failures on `seed` of `swarm` under `mutant` (the real code when undefined), as "checker: message". */
async function run(swarm: MutantSwarm, durationMs: number | undefined, seed: number, mutant: Mutant | undefined): Promise<string[]> {
  const scenario = randomScenario(seed, await base(swarm, durationMs));
  const result = runScenario(scenario, seed, mutant?.options(scenario) ?? {});
  return result.failures.map((failure) => `${failure.checker}: ${failure.message}`);
}

const caughtBy = (mutant: Mutant, failures: readonly string[]): boolean =>
  failures.some((failure) => mutant.caughtBy.some((checker) => failure.startsWith(`${checker}: `)));

describe('the mutant catalogue', () => {
  it('holds the seven mutants of the audit and more, each with a swarm', () => {
    expect(mutants.length).toBeGreaterThanOrEqual(7);
    expect(new Set(mutants.map((mutant) => mutant.name)).size).toBe(mutants.length);
  });

  for (const mutant of mutants) {
    if (fullBudget === undefined) {
      const witness = mutant.witness;
      it.skipIf(witness === undefined)(
        `catches ${mutant.name} on ${mutant.swarm} seed ${witness ?? '(none yet)'}, which the real code passes`,
        async () => {
          const seed = witness as number;
          const failures = await run(mutant.swarm, mutant.durationMs, seed, mutant);
          expect(caughtBy(mutant, failures), failures.join('\n') || 'no failure').toBe(true);
          expect(await run(mutant.swarm, mutant.durationMs, seed, undefined)).toEqual([]);
        },
        60_000,
      );
    } else {
      it(`catches ${mutant.name} within ${fullBudget} seeds of ${mutant.swarm}`, async () => {
        let caught: number | undefined;
        for (let seed = 1; seed <= fullBudget && caught === undefined; seed++)
          if (caughtBy(mutant, await run(mutant.swarm, mutant.durationMs, seed, mutant))) caught = seed;
        expect(caught, `${mutant.name} survived ${fullBudget} seeds`).toBeDefined();
      }, 3_600_000);
    }
  }

  it.runIf(fullBudget !== undefined)(
    `passes seeds 1 to ${fullBudget ?? 0} of every swarm with the real code`,
    async () => {
      const failed: string[] = [];
      const swarms = new Map(mutants.map((mutant) => [`${mutant.swarm}/${mutant.durationMs ?? ''}`, mutant]));
      for (const { swarm, durationMs } of swarms.values()) {
        for (let seed = 1; seed <= (fullBudget ?? 0); seed++) {
          const failures = await run(swarm, durationMs, seed, undefined);
          if (failures.length > 0) failed.push(`${swarm} seed ${seed}: ${failures[0] ?? ''}`);
        }
      }
      expect(failed).toEqual([]);
    },
    3_600_000,
  );
});
