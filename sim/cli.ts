#!/usr/bin/env node
// The simulator's command line: `tsx sim/cli.ts [options]` (`--help` lists them). Parsing and
// formatting live in cli-args.ts and cli-format.ts, which are tested; this file only does the
// I/O: read scenarios, run them, print, write the report, and set the exit status.
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { type CliOptions, type CompareCliOptions, defaultScenario, parseArgs, parseCompareArgs, usage } from './cli-args.js';
import {
  formatOverrideNote,
  formatProgress,
  formatScenarioList,
  formatSummary,
  formatSwarmCrash,
  formatSwarmLine,
  formatSwarmTally,
  type ScenarioEntry,
  type SwarmRun,
  swarmReplayCommand,
} from './cli-format.js';
import { formatCompareProgress, formatComparison, runComparison } from './compare.js';
import { formatModeTable, modeTable, tableSeedsDefault } from './mode-table.js';
import { renderReport } from './report/index.js';
import type { Scenario } from './scenario.js';
import { describeScenarioError, listScenarios, loadScenario, withOverrides } from './scenario-file.js';
import type { SimResult } from './sim-result.js';
import { runScenario } from './simulator.js';
import { defaultSwarmWorkers, runSwarmSeeds } from './swarm-pool.js';

/** Progress lines are printed at most this often (wall time), however often the simulator reports. */
const progressEveryMs = 1_000;

const exitPassed = 0;
const exitFailed = 1;
const exitUsage = 2;

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'compare') return runCompare(argv.slice(1));
  const parsed = parseArgs(argv);
  if (!parsed.ok) {
    console.error(`sim: ${parsed.error}`);
    return exitUsage;
  }
  const options = parsed.value;
  if (options.help) {
    console.log(usage);
    return exitPassed;
  }
  if (options.list) {
    console.log(formatScenarioList(await scenarioEntries(), defaultScenario));
    return exitPassed;
  }
  if (options.table) return runTable(options);

  const loaded = await loadScenario(options.scenario);
  if (!loaded.ok) {
    const known = (await listScenarios()).join(', ');
    console.error(`sim: --scenario ${options.scenario}: ${describeScenarioError(loaded.error)}\n(shipped scenarios: ${known})`);
    return exitUsage;
  }
  const overrides = {
    ...(options.regions === undefined ? {} : { regions: options.regions }),
    ...(options.durationMs === undefined ? {} : { durationMs: options.durationMs }),
  };
  const scenario = withOverrides(loaded.value, overrides);
  if (!scenario.ok) {
    // parseArgs has checked both flags against the same bounds, so this is a scenario the
    // overrides made invalid; name the flags as the likeliest cause.
    console.error(`sim: --regions/--duration: ${describeScenarioError(scenario.error)}`);
    return exitUsage;
  }
  const note = formatOverrideNote(loaded.value, scenario.value);
  if (note !== undefined) console.log(note);

  const results = options.swarm === undefined ? runOne(scenario.value, options) : await runSwarm(scenario.value, options, options.swarm);
  if (options.report !== undefined) {
    const title =
      options.swarm === undefined
        ? `${scenario.value.name}, seed ${options.seed}`
        : `swarm of ${options.swarm} on ${scenario.value.name}, seeds from ${options.seed}`;
    await writeFile(options.report, renderReport(results.completed, { title, generatedAt: new Date().toISOString() }));
    console.log(`report: ${options.report}`);
  }
  return results.allPassed ? exitPassed : exitFailed;
}

interface Runs {
  readonly completed: SimResult[];
  readonly allPassed: boolean;
}

function runOne(scenario: Scenario, options: CliOptions): Runs {
  const result = runScenario(scenario, options.seed, options.quiet ? {} : { progress: throttledProgress(scenario.name, options.seed) });
  console.log(formatSummary(result));
  return { completed: [result], allPassed: result.ok };
}

async function runSwarm(base: Scenario, options: CliOptions, count: number): Promise<Runs> {
  const completed: SimResult[] = [];
  const runs: SwarmRun[] = [];
  // Seeds run on worker threads; outcomes come back in seed order, so the lines below are the
  // same whatever the worker count.
  await runSwarmSeeds(base, options.seed, count, options.workers ?? defaultSwarmWorkers(), (outcome) => {
    // The scenario's own `replay` names `swarm-<seed>`, which is no file; replaying a swarm run
    // means drawing it again from the same base and seed.
    const replay = swarmReplayCommand(options, outcome.seed);
    if (outcome.kind === 'result') {
      completed.push(outcome.result);
      runs.push({ seed: outcome.seed, ok: outcome.result.ok, replay });
      if (!options.quiet || !outcome.result.ok) console.log(formatSwarmLine(outcome.result));
    } else {
      // A thrown assertion is a finding like any failed check: record it and keep swarming, so
      // one bad seed does not hide the rest of the tally.
      runs.push({ seed: outcome.seed, ok: false, replay });
      console.log(formatSwarmCrash(outcome.seed, outcome.scenario, outcome.error));
    }
  });
  console.log(formatSwarmTally(runs));
  return { completed, allPassed: runs.every((run) => run.ok) };
}

/** The mode × partition table of README.md; fails if any run failed a check. */
function runTable(options: CliOptions): number {
  const seeds = Array.from({ length: tableSeedsDefault }, (_, i) => options.seed + i);
  const durationMs = options.durationMs ?? 30_000;
  const cells = modeTable(seeds, durationMs, (cell, seed, result) => {
    if (!options.quiet || !result.ok)
      console.log(
        `table: ${cell} seed ${seed} ${result.ok ? 'passed' : `FAILED: ${result.failures[0]?.message ?? ''}`} in ${(result.wallMs / 1000).toFixed(1)} s`,
      );
  });
  console.log(`\n${formatModeTable(cells, seeds, durationMs)}`);
  return cells.every((cell) => cell.failedRuns === 0) ? exitPassed : exitFailed;
}

/** `compare SCENARIO`: the three arms of the scheduling comparison and their table; fails if any arm failed a check. */
async function runCompare(argv: readonly string[]): Promise<number> {
  const parsed = parseCompareArgs(argv);
  if (!parsed.ok) {
    console.error(`sim: ${parsed.error}`);
    return exitUsage;
  }
  const options: CompareCliOptions = parsed.value;
  const loaded = await loadScenario(options.scenario);
  if (!loaded.ok) {
    console.error(`sim: compare ${options.scenario}: ${describeScenarioError(loaded.error)}`);
    return exitUsage;
  }
  const scenario = withOverrides(loaded.value, {
    ...(options.regions === undefined ? {} : { regions: options.regions }),
    ...(options.durationMs === undefined ? {} : { durationMs: options.durationMs }),
  });
  if (!scenario.ok) {
    console.error(`sim: --regions/--duration: ${describeScenarioError(scenario.error)}`);
    return exitUsage;
  }
  let printedAtMs = performance.now();
  const progress = options.quiet
    ? undefined
    : (arm: Parameters<typeof formatCompareProgress>[2], index: number, simulatedMs: number, totalMs: number): void => {
        const nowMs = performance.now();
        if (nowMs - printedAtMs < progressEveryMs) return;
        printedAtMs = nowMs;
        console.log(formatCompareProgress(scenario.value.name, options.seed, arm, index, simulatedMs, totalMs));
      };
  const results = runComparison(scenario.value, options.seed, progress);
  if (!results.ok) {
    console.error(`sim: compare ${options.scenario}: ${describeScenarioError(results.error)}`);
    return exitUsage;
  }
  console.log(formatComparison(scenario.value, options.seed, results.value));
  return results.value.every((result) => result.ok) ? exitPassed : exitFailed;
}

/** A progress callback that prints at most once per `progressEveryMs` of wall time. */
function throttledProgress(name: string, seed: number): (simulatedMs: number, totalMs: number) => void {
  let printedAtMs = performance.now();
  return (simulatedMs, totalMs) => {
    const nowMs = performance.now();
    if (nowMs - printedAtMs < progressEveryMs) return;
    printedAtMs = nowMs;
    console.log(formatProgress(name, seed, simulatedMs, totalMs));
  };
}

async function scenarioEntries(): Promise<ScenarioEntry[]> {
  const entries: ScenarioEntry[] = [];
  for (const name of await listScenarios()) {
    const loaded = await loadScenario(name);
    entries.push({ name, description: loaded.ok ? loaded.value.description : `(does not load: ${describeScenarioError(loaded.error)})` });
  }
  return entries;
}

process.exitCode = await main(process.argv.slice(2));
