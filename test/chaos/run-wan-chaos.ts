// `npm run chaos [-- [wan] [--seed N] [--regions 3-5] [--seconds N] [--workers N]]`: the WAN chaos
// run (wan-run.ts) with a progress line per fault and a closing table. Needs root (network
// namespaces); says so and exits 2 otherwise.
import { parseChaosOptions } from './chaos-options.js';
import { netnsUnavailable } from './wan-netns.js';
import { runWanChaos, type WanRunOptions } from './wan-run.js';
import { formatWanSummary } from './wan-summary.js';

const usage = `usage: npm run chaos -- [wan] [options]
  --seed N      the seed of the fault schedule and the load (default: from the clock)
  --regions N   region nodes, each in its own network namespace: 3 to 5 (default 5)
  --seconds N   how long the load and the faults last, 20 to 3600 (default 150)
  --workers N   concurrent clients, 1 to 64 (default 10)
npm run chaos -- crash --help: the crash run on loopback (no root needed)`;

function parse(argv: readonly string[], startedMs: number): WanRunOptions | string {
  const parsed = parseChaosOptions(argv, ['--seed', '--regions', '--seconds', '--workers'], usage);
  if (typeof parsed === 'string') return parsed;
  const { integer } = parsed;
  const seed = integer('--seed', Date.now() % 1_000_000, 0, Number.MAX_SAFE_INTEGER);
  const regions = integer('--regions', 5, 3, 5);
  const secondsTotal = integer('--seconds', 150, 20, 3_600);
  const workers = integer('--workers', 10, 1, 64);
  if (seed === undefined || regions === undefined || secondsTotal === undefined || workers === undefined)
    return `--seed, --regions (3-5), --seconds (20-3600) and --workers (1-64) take whole numbers in range\n${usage}`;
  return {
    seed,
    regions,
    faultsMs: secondsTotal * 1_000,
    partitionMs: [3_000, 8_000],
    workers,
    // Bounded: far more than the load needs at this pace.
    requestsMax: 500_000,
    limits: { strictPerMinute: 60, escrowPerMinute: 60, eventualPerMinute: 60 },
    log: (line) => console.log(`[${((Date.now() - startedMs) / 1000).toFixed(1).padStart(6)} s] ${line}`),
  };
}

export async function wanMain(argv: readonly string[], startedMs: number): Promise<number> {
  const options = parse(argv, startedMs);
  if (typeof options === 'string') {
    console.error(options);
    return options === usage ? 0 : 2;
  }
  const unavailable = await netnsUnavailable();
  if (unavailable !== undefined) {
    console.error(`npm run chaos: ${unavailable}; run it as root, or run the loopback crash run: npm run chaos -- crash`);
    return 2;
  }
  console.log(
    `WAN chaos: ${options.regions} regions in network namespaces, ${options.faultsMs / 1000} s of load and faults, ${options.workers} clients, seed ${options.seed}`,
  );
  const summary = await runWanChaos(options);
  console.log(formatWanSummary(summary));
  if (summary.problems.length > 0 || (summary.audit.exitCode !== 0 && summary.audit.exitCode !== 1)) {
    console.log(`FAILED; replay its faults with: npm run chaos -- --seed ${options.seed} --regions ${options.regions} --seconds ${options.faultsMs / 1000}`);
    return 1;
  }
  console.log('passed');
  return 0;
}
