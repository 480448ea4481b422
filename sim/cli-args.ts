import { err, ok, type Result } from '../src/core/result.js';
import { durationMsMax, durationMsMin, regionsMax, regionsMin } from './scenario-file.js';
import { swarmWorkersMax } from './swarm-pool.js';

/**
 * The command line of the simulator (`tsx sim/cli.ts`), parsed without touching the simulator so
 * that it can be tested on its own. Every error message names the flag it is about; the CLI
 * prints it and exits with status 2.
 */

export const defaultScenario = 'partition-heal';
export const defaultSeed = 1;
/** Runs in one swarm: at a few seconds a run this is already days of wall time. */
export const swarmRunsMax = 100_000;

export const usage = `usage: tsx sim/cli.ts [options]
       tsx sim/cli.ts compare SCENARIO [--seed N] [--duration D] [--regions N] [--quiet]

Runs the mesh under the deterministic partition simulator and checks that every replica
converges to the oracle's value once the faults heal.

compare SCENARIO runs a request-path scenario (for example sched-overload) three times on one
seed, as direct (one account), round-robin pool (fifo queue) and dynamic priority (dynamic
queue, least-loaded accounts), and prints served requests/s, p50/p99 latency and refusals per
tier and Jain's fairness index for each, beside the design's published figures.

options:
  --scenario NAME|PATH  a scenario from sim/scenarios (see --list) or a .json file
                        (default ${defaultScenario})
  --regions N           run with N regions (${regionsMin} to ${regionsMax}); faults on missing nodes are dropped
  --seed N              seed of the run, or of the first swarm run (default ${defaultSeed})
  --duration D          length of the safety phase: 90s, 10m, 1h or milliseconds;
                        faults past it are clipped or dropped
  --swarm N             run N random scenarios built on the chosen one, with seeds
                        S, S+1, ... where S is --seed; each run uses its scenario's seed
  --workers N           run the swarm's seeds on N worker threads (1 to ${swarmWorkersMax}; default: one
                        per core; 1 runs them in this thread); the output is the same
  --report FILE.html    write an HTML report of the runs
  --table               run every consistency mode under every partition kind (3 seeds from
                        --seed each; --duration sets the run length) and print the
                        Markdown table of overshoot, false rejections and latency
  --list                list the scenarios with what each shows
  --quiet               no progress lines (a swarm prints only failing runs)
  --help                this text

exit status: 0 every run passed, 1 a run failed, 2 bad options or scenario`;

export interface CliOptions {
  readonly scenario: string;
  readonly regions: number | undefined;
  readonly seed: number;
  readonly durationMs: number | undefined;
  /** Number of swarm runs, or undefined for one run of the scenario itself. */
  readonly swarm: number | undefined;
  /** Worker threads for a swarm, or undefined for one per core. */
  readonly workers: number | undefined;
  readonly report: string | undefined;
  readonly list: boolean;
  readonly table: boolean;
  readonly quiet: boolean;
  readonly help: boolean;
}

const valueFlags = ['scenario', 'regions', 'seed', 'duration', 'swarm', 'workers', 'report'] as const;
const switchFlags = ['list', 'table', 'quiet', 'help'] as const;
type ValueFlag = (typeof valueFlags)[number];
type SwitchFlag = (typeof switchFlags)[number];

/** `compare SCENARIO` and the flags that go with it. */
export interface CompareCliOptions {
  readonly scenario: string;
  readonly seed: number;
  readonly durationMs: number | undefined;
  readonly regions: number | undefined;
  readonly quiet: boolean;
}

/** Parses what follows `compare`: one scenario, and only the flags that shape a run. */
export function parseCompareArgs(argv: readonly string[]): Result<CompareCliOptions, string> {
  const scenarios = argv.filter((arg, i) => !arg.startsWith('-') && (i === 0 || !isValueFlag(argv[i - 1] as string)));
  if (scenarios.length !== 1) return err(`compare takes one scenario (for example "compare sched-overload"), not ${scenarios.length}`);
  const scenario = scenarios[0] as string;
  const flags = argv.filter((arg) => arg !== scenario);
  const parsed = parseArgs(flags);
  if (!parsed.ok) return parsed;
  const options = parsed.value;
  const stray = (['swarm', 'workers', 'report', 'list', 'table', 'help'] as const).find((flag) =>
    typeof options[flag] === 'boolean' ? options[flag] : options[flag] !== undefined,
  );
  if (stray !== undefined || flags.some((flag) => flag === '--scenario' || flag.startsWith('--scenario=')))
    return err(`compare takes --seed, --duration, --regions and --quiet, not --${stray ?? 'scenario'}`);
  return ok({ scenario, seed: options.seed, durationMs: options.durationMs, regions: options.regions, quiet: options.quiet });
}

function isValueFlag(arg: string): boolean {
  return arg.startsWith('--') && !arg.includes('=') && (valueFlags as readonly string[]).includes(arg.slice(2));
}

/** Parses `process.argv.slice(2)`. Accepts `--flag value` and `--flag=value`. */
export function parseArgs(argv: readonly string[]): Result<CliOptions, string> {
  const values = new Map<ValueFlag, string>();
  const switches = new Set<SwitchFlag>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h') {
      switches.add('help');
      continue;
    }
    if (!arg.startsWith('--')) return err(`unexpected argument "${arg}" (flags start with --; see --help)`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if ((switchFlags as readonly string[]).includes(name)) {
      if (eq !== -1) return err(`--${name} takes no value`);
      switches.add(name as SwitchFlag);
      continue;
    }
    if (!(valueFlags as readonly string[]).includes(name)) return err(`unknown flag --${name} (see --help)`);
    const flag = name as ValueFlag;
    if (values.has(flag)) return err(`--${flag} is given twice`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      // A following flag is a forgotten value, not the value itself; negative numbers are refused
      // by every numeric flag anyway.
      if (value?.startsWith('--') === true) value = undefined;
      else i++;
    }
    if (value === undefined || value === '') return err(`--${flag} needs a value`);
    values.set(flag, value);
  }

  const scenario = values.get('scenario') ?? defaultScenario;
  const regions = integerFlag(values, 'regions', regionsMin, regionsMax);
  if (!regions.ok) return regions;
  const seed = integerFlag(values, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (!seed.ok) return seed;
  const swarm = integerFlag(values, 'swarm', 1, swarmRunsMax);
  if (!swarm.ok) return swarm;
  const workers = integerFlag(values, 'workers', 1, swarmWorkersMax);
  if (!workers.ok) return workers;
  // Written as a difference: near 2^53 the sum seed + swarm would round and pass the check.
  if (seed.value !== undefined && swarm.value !== undefined && swarm.value - 1 > Number.MAX_SAFE_INTEGER - seed.value) {
    return err(`--seed ${seed.value} leaves no room for ${swarm.value} swarm seeds below 2^53`);
  }
  let durationMs: number | undefined;
  const durationText = values.get('duration');
  if (durationText !== undefined) {
    durationMs = parseDuration(durationText);
    if (durationMs === undefined || durationMs < durationMsMin || durationMs > durationMsMax) {
      return err(`--duration takes a time from 1s to 24h such as 90s, 10m, 1h or 60000 (milliseconds), not "${durationText}"`);
    }
  }
  const report = values.get('report');
  if (report !== undefined && !/\.html?$/i.test(report)) return err(`--report takes a file name ending in .html, not "${report}"`);
  return ok({
    scenario,
    regions: regions.value,
    seed: seed.value ?? defaultSeed,
    durationMs,
    swarm: swarm.value,
    workers: workers.value,
    report,
    list: switches.has('list'),
    table: switches.has('table'),
    quiet: switches.has('quiet'),
    help: switches.has('help'),
  });
}

const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds from `90s`, `10m`, `1.5h`, `250ms` or a bare number of milliseconds; undefined for
 * anything else, including a time that is not a whole number of milliseconds.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) return undefined;
  const value = Number(match[1]) * unitMs[match[2] ?? 'ms']!;
  const whole = Math.round(value);
  // Decimal fractions are inexact in binary (1.1 × 1000 = 1100.0000000000002), so compare loosely.
  if (Math.abs(value - whole) > 1e-6 || !Number.isSafeInteger(whole)) return undefined;
  return whole;
}

function integerFlag(values: ReadonlyMap<ValueFlag, string>, flag: ValueFlag, min: number, max: number): Result<number | undefined, string> {
  const text = values.get(flag);
  if (text === undefined) return ok(undefined);
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) return err(`--${flag} takes an integer from ${min} to ${max}, not "${text}"`);
  return ok(value);
}
