// The simulator benchmark (`npm run bench -- sim`): how much faster than real time the
// deterministic simulator runs the real mesh code, and how many swarm seeds it gets through.
import { runScenario } from '../../sim/simulator.js';
import type { Scenario } from '../../sim/scenario.js';
import { loadScenario } from '../../sim/scenario-file.js';
import { randomScenario } from '../../sim/swarm.js';
import { defaultSwarmWorkers, runSwarmSeeds } from '../../sim/swarm-pool.js';
import { type BenchContext, report } from './harness.js';

const steady = (durationMs: number): Scenario => ({
  name: 'bench-steady',
  description: '5 regions, 1,000 requests/s in all, 50 ms gossip, no faults',
  regions: 5,
  durationMs,
  convergenceBudgetMs: 10_000,
  gossipIntervalMs: 50,
  workload: { tenants: 20, requestsPerSecond: 200, arrivals: 'poisson', burstSize: 10, maxTokens: 4_096 },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0.01, bytesPerMs: 0 },
  faults: [],
});

export async function simBench(ctx: BenchContext): Promise<void> {
  const minutes = ctx.quick ? 1 : 10;
  console.log(`sim benchmark: 5 regions, 1,000 requests/s, 50 ms gossip, ${minutes} simulated minute(s)…`);
  // Baseline: the same scenario's workload and clock with a quarter of the time, to show scaling.
  const short = runScenario(steady(minutes * 15_000), 1);
  const result = runScenario(steady(minutes * 60_000), 1, {
    progress: (simulated, total) => {
      if (simulated % 60_000 < 1_000) process.stdout.write(`  simulated ${Math.round(simulated / 1000)} s of ${Math.round(total / 1000)} s\r`);
    },
  });
  process.stdout.write('\n');
  const ratio = result.simulatedMs / result.wallMs;
  report(`simulated / wall time (${result.stats.requests} requests, ${result.stats.framesDelivered} frames)`, ratio, '×', '>= 1,000×', ratio >= 1000, {
    baseline: `a quarter as long: ${(short.simulatedMs / short.wallMs).toFixed(0)}×; ${(result.stats.events / (result.wallMs / 1000)).toFixed(0)} events/s`,
  });
  const seeds = ctx.quick ? 4 : 12;
  const base = steady(60_000);
  const start = performance.now();
  let failed = 0;
  for (let seed = 1; seed <= seeds; seed++) if (!runScenario(randomScenario(seed, base), seed).ok) failed++;
  const perMinute = (seeds / (performance.now() - start)) * 60_000;
  report(`swarm of 60 s scenarios with random faults (${seeds} seeds, ${failed} failed)`, perMinute, 'seeds/min', 'reported', true, {
    baseline: `one steady 60 s scenario alone: ${(60_000 / (result.wallMs / minutes)).toFixed(0)} runs/min`,
  });
  for (const name of ['swarm-strict', 'swarm-escrow']) await quotaSwarm(ctx, name);
}

/**
 * The quota swarms as `npm run sim -- --scenario NAME --duration 8000 --swarm N` runs them: seeds
 * per minute on the default worker threads (one per core), beside the same seeds in one thread.
 */
async function quotaSwarm(ctx: BenchContext, name: string): Promise<void> {
  const loaded = await loadScenario(name);
  if (!loaded.ok) throw new Error(`the ${name} scenario does not load`);
  const base = { ...loaded.value, durationMs: 8_000 };
  const seeds = ctx.quick ? 8 : 40;
  const perMinute = async (workers: number): Promise<{ perMinute: number; failed: number }> => {
    let failed = 0;
    const start = performance.now();
    await runSwarmSeeds(base, 1, seeds, workers, (outcome) => {
      if (outcome.kind === 'crash' || !outcome.result.ok) failed++;
    });
    return { perMinute: (seeds / (performance.now() - start)) * 60_000, failed };
  };
  const alone = await perMinute(1);
  const workers = defaultSwarmWorkers();
  const pooled = await perMinute(workers);
  report(
    `${name} swarm, 8 s runs on ${workers} worker(s) (${seeds} seeds, ${pooled.failed} failed)`,
    pooled.perMinute,
    'seeds/min',
    '>= 150 seeds/min',
    pooled.perMinute >= 150,
    {
      baseline: `the same seeds in one thread: ${alone.perMinute.toFixed(0)} seeds/min`,
    },
  );
}
