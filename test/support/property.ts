// Shared settings for the property tests: how many runs, and how to replay a failure.
import fc from 'fast-check';

/**
 * Runs a property with fast-check. On failure fast-check's report names the seed and the
 * shrunk counterexample path; the thrown error adds the command that replays exactly that run:
 *   FC_SEED=<seed> FC_PATH=<path> npx vitest run <file>
 * FC_RUNS raises the run count for a longer soak without editing tests.
 */
export function checkProperty<Ts>(property: fc.IProperty<Ts>, runs = 100): void {
  const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
  const path = process.env.FC_PATH;
  const numRuns = process.env.FC_RUNS === undefined ? runs : Number(process.env.FC_RUNS);
  const details: fc.RunDetails<Ts> = fc.check(property, {
    numRuns,
    ...(seed === undefined ? {} : { seed }),
    ...(path === undefined ? {} : { path }),
  });
  if (details.failed) {
    const replay = `FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ''} npx vitest run`;
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\ncause: ${cause}\nreplay: ${replay} <this test file>`);
  }
}
