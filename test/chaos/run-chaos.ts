// Entry point of `npm run chaos`: the WAN chaos run (wan-run.ts, run-wan-chaos.ts) by default, or
// with `-- crash [--seed N] [--rounds N] [--workers N] [--gap-ms MIN,MAX]` the long crash run
// (chaos-run.ts) with a progress line per kill round and a closing summary with its figures.
// Exit 0 when every rule held, 1 when one broke (the seed is printed to replay its choices), 2
// for a bad command line. Its temporary state directory is removed at the end.
import { parseChaosOptions } from './chaos-options.js';
import { formatSummary } from './chaos-summary.js';
import { type ChaosRunOptions, runChaos } from './chaos-run.js';
import { wanMain } from './run-wan-chaos.js';

const usage = `usage: npm run chaos -- crash [options]
  --seed N          the seed of every random choice (default: from the clock); printed at the start
  --rounds N        kill rounds, each of one random region node (default 12, at least 10 for the
                    issue's figure); round N/2 kills all three at once
  --workers N       concurrent clients (default 8)
  --gap-ms MIN,MAX  load between two kills, in ms (default 2000,6000)`;

function parse(argv: readonly string[]): ChaosRunOptions | string {
  const options = parseChaosOptions(argv, ['--seed', '--rounds', '--workers', '--gap-ms'], usage);
  if (typeof options === 'string') return options;
  const { integer } = options;
  const seed = integer('--seed', Date.now() % 1_000_000, 0, Number.MAX_SAFE_INTEGER);
  const rounds = integer('--rounds', 12, 1, 1_000);
  const workers = integer('--workers', 8, 1, 64);
  const [gapMin, gapMax] = (options.text('--gap-ms') ?? '2000,6000').split(',').map(Number);
  if (seed === undefined || rounds === undefined || workers === undefined)
    return `--seed, --rounds and --workers take whole numbers (rounds 1-1000, workers 1-64)\n${usage}`;
  if (
    gapMin === undefined ||
    gapMax === undefined ||
    !Number.isSafeInteger(gapMin) ||
    !Number.isSafeInteger(gapMax) ||
    gapMin < 100 ||
    gapMax < gapMin ||
    gapMax > 600_000
  ) {
    return `--gap-ms takes MIN,MAX in ms, 100 <= MIN <= MAX <= 600000\n${usage}`;
  }
  return {
    seed,
    rounds,
    meshKillAfterRound: Math.max(1, Math.floor(rounds / 2)),
    workers,
    loadBetweenKillsMs: [gapMin, gapMax],
    // Bounded: far more than the rounds' load needs at this pace.
    requestsMax: 200_000,
    shape: { strictPerMinute: 120, escrowPerMinute: 120, ttftMs: 20, tokensPerSecond: 300 },
    log: (line) => console.log(`[${((Date.now() - startedMs) / 1000).toFixed(1).padStart(6)} s] ${line}`),
  };
}

const startedMs = Date.now();

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] !== 'crash') return wanMain(argv[0] === 'wan' ? argv.slice(1) : argv, startedMs);
  const options = parse(argv.slice(1));
  if (typeof options === 'string') {
    console.error(options);
    return options === usage ? 0 : 2;
  }
  console.log(`chaos: ${options.rounds} kill rounds (the whole mesh at round ${options.meshKillAfterRound}), ${options.workers} clients, seed ${options.seed}`);
  const summary = await runChaos(options);
  console.log(formatSummary(summary));
  if (summary.problems.length > 0 || (summary.audit.exitCode !== 0 && summary.audit.exitCode !== 1)) {
    console.log(`FAILED; replay its choices with: npm run chaos -- crash --seed ${options.seed} --rounds ${options.rounds} --workers ${options.workers}`);
    return 1;
  }
  console.log('passed');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
