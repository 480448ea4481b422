// The simulator benchmark (`npm run bench -- sim`): how much faster than real time the
// deterministic simulator runs the real mesh code, and how many swarm seeds it gets through.
import { runScenario } from '../../sim/simulator.js';
import type { Scenario } from '../../sim/scenario.js';
import { randomScenario } from '../../sim/swarm.js';
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

export function simBench(ctx: BenchContext): void {
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
    baseline: `one steady 60 s scenario alone: ${((60_000 / (result.wallMs / minutes)) ).toFixed(0)} runs/min`,
  });
}
