// The simulator benchmark (`npm run bench -- sim`): how much faster than real time the
// deterministic simulator runs the real mesh code, and how many swarm seeds it gets through.
import { runScenario } from '../../sim/simulator.js';
import type { Scenario } from '../../sim/scenario.js';
import { loadScenario } from '../../sim/scenario-file.js';
import { randomScenario } from '../../sim/swarm.js';
import { defaultSwarmWorkers, runSwarmSeeds } from '../../sim/swarm-pool.js';
import { type BenchContext, report } from './harness.js';

/** 5 regions, 1,000 requests/s in all; with `requestPath`, every arrival goes through the whole request path. */
const steady = (durationMs: number, requestPath: boolean): Scenario => ({
  name: 'bench-steady',
  description: '5 regions, 1,000 requests/s in all, 50 ms gossip, no faults',
  regions: 5,
  durationMs,
  convergenceBudgetMs: 10_000,
  gossipIntervalMs: 50,
  workload: {
    tenants: 20,
    requestsPerSecond: 200,
    arrivals: 'poisson',
    burstSize: 10,
    // Short answers (a quarter second or so at the simulated accounts' speed), so 1,000 calls a
    // second fit in the slots instead of queueing for minutes.
    maxTokens: requestPath ? 256 : 4_096,
    ...(requestPath ? { requestPath: { accountsPerRegion: 8, concurrencyMax: 32, inputTokensMax: 2_000, accountWaitMs: 2_000, slotsPerRegion: 256 } } : {}),
  },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0.01, bytesPerMs: 0 },
  faults: [],
});

export async function simBench(ctx: BenchContext): Promise<void> {
  const minutes = ctx.quick ? 1 : 10;
  console.log(`sim benchmark: 5 regions, 1,000 requests/s, 50 ms gossip, ${minutes} simulated minute(s), with and without the request path…`);
  const progress = (simulated: number, total: number): void => {
    if (simulated % 60_000 < 1_000) process.stdout.write(`  simulated ${Math.round(simulated / 1000)} s of ${Math.round(total / 1000)} s\r`);
  };
  // Baseline: the same arrivals admitted and settled by the quota path alone (no pool, no upstream).
  const plain = runScenario(steady(minutes * 60_000, false), 1, { progress });
  const result = runScenario(steady(minutes * 60_000, true), 1, { progress });
  process.stdout.write('\n');
  const ratio = result.simulatedMs / result.wallMs;
  const path = result.requestPath;
  report(
    `simulated / wall time, full request path (${result.stats.requests} requests, ${path?.completed ?? 0} completed, ${result.stats.framesDelivered} frames, ${result.ok ? 'all checkers passed' : `${result.failures.length} failures`})`,
    ratio,
    '×',
    '>= 100×',
    ratio >= 100,
    {
      baseline: `the quota path alone: ${(plain.simulatedMs / plain.wallMs).toFixed(1)}×; ${(result.stats.events / (result.wallMs / 1000)).toFixed(0)} events/s with the path`,
    },
  );
  const seeds = ctx.quick ? 4 : 12;
  const base = steady(60_000, false);
  const start = performance.now();
  let failed = 0;
  for (let seed = 1; seed <= seeds; seed++) if (!runScenario(randomScenario(seed, base), seed).ok) failed++;
  const perMinute = (seeds / (performance.now() - start)) * 60_000;
  report(`swarm of 60 s scenarios with random faults (${seeds} seeds, ${failed} failed)`, perMinute, 'seeds/min', 'reported', true, {
    baseline: `one steady 60 s scenario alone: ${(60_000 / (plain.wallMs / minutes)).toFixed(0)} runs/min`,
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
  // Enough seeds that starting the workers (each loads the simulator once) is not most of the time.
  const seeds = ctx.quick ? 30 : 100;
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
