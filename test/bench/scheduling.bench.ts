// The scheduling benchmark (`npm run bench -- scheduling`): the reference design's table of three
// ways to serve many tenants from upstream accounts, measured with real processes on this
// machine. Each arm runs the same offered load (the same seeded sequence of 14 tenants' requests,
// open loop, about twice what the pool serves) for the same continuous window against a fresh
// emulator whose 8 accounts each take 4 concurrent calls and 600 requests a minute:
//   direct            one account's key, called by the clients themselves (no node);
//   round-robin pool  a carpool node with the 8 accounts, round-robin, a fifo admission queue;
//   dynamic priority  the node with least-loaded, the dynamic queue (tiers, feedback levels,
//                     virtual token counters) and free requests degraded when the pool is short.
// It prints, per arm and tier, served requests/s, p50/p99 latency, refused and degraded shares;
// per arm Jain's fairness index, the longest event-loop stalls and the design's figures; then
// each arm's books: what the clients were told, the node's ledger and the emulator's counts.
// Full run: 5 s of warm-up and a 60 s window per arm (about 5 minutes); `--quick`: 10 s windows;
// `BENCH_SCHEDULING_SECONDS=N` sets the window (for development; tails want 60 s);
// `SCHEDULING_BENCH_CPU_PROFILE=DIR` profiles the node of each node arm and prints its hottest
// functions and its busy time by component (test/bench/gateway-profile.ts).
import { availableParallelism } from 'node:os';
import { type BenchContext, report } from './harness.js';
import { pinning } from './gateway-processes.js';
import { printProfileSummary } from './gateway-profile.js';
import { type ArmRun, benchPacing, benchPool, freeDegradeRule, runDirect, runNodeArm, type SchedulingSetup } from './scheduling-arms.js';
import { type ArmFigures, armFigures, armLabels, comparisonTable, detailLines, tierTable, timelineLines } from './scheduling-report.js';
import { defaultMixShape, fairnessWeights, tenantMix } from './scheduling-mix.js';
import { machineLoad } from './unary-window.js';

/** About twice what the pool serves (8 accounts × 4 calls ÷ ~0.5 s ≈ 65/s), so every arm runs short. */
export const offeredRate = 125;

export function schedulingSetup(quick: boolean, windowS?: number): SchedulingSetup {
  return {
    rate: offeredRate,
    warmS: quick ? 2 : 5,
    windowS: windowS ?? (quick ? 10 : 60),
    seed: 19,
    // Past the node's longest wait for an account (30 s) and the call, so that the node, not the
    // client, decides when a request waited too long; and room for everything the node may hold
    // meanwhile (125/s × 30 s, twice over), so every request of the schedule is sent.
    clientDeadlineMs: 45_000,
    outstandingMax: 8_192,
  };
}

export interface SchedulingOutcome {
  readonly runs: readonly ArmRun[];
  readonly figures: readonly ArmFigures[];
  /** The books of every arm held. */
  readonly reconciled: boolean;
}

function preamble(setup: SchedulingSetup): string[] {
  const tenants = tenantMix();
  const heavy = tenants.filter((t) => t.heavy);
  const { counts, heavyFactor } = defaultMixShape;
  return [
    `pool: ${benchPool.accounts} emulated accounts, each ${benchPool.concurrencyMax} concurrent calls and ${benchPool.requestsPerMinute.toLocaleString('en-US')} requests/min; ` +
      `answers about 0.5 s (first token after ${benchPacing.ttftMs} ms, ${benchPacing.tokensPerSecond.toLocaleString('en-US')} tokens/s, ${benchPacing.outputTokensMin}–${benchPacing.outputTokensMax} tokens)`,
    `tenants: ${counts.vip} vip, ${counts.paid} paid, ${counts.free} free; heavy (${heavyFactor}× a light tenant's rate): ${heavy.map((t) => t.id).join(', ')}`,
    `offered: ${setup.rate}/s open loop in every arm (seed ${setup.seed}), ${setup.warmS} s of warm-up then one continuous window of ${setup.windowS} s; ` +
      `a client gives up after ${setup.clientDeadlineMs / 1000} s; ${pinning()}`,
    `dynamic priority degrades free requests when the pool is short: max_tokens ${freeDegradeRule.maxTokens}, ${Object.entries(freeDegradeRule.models)
      .map(([from, to]) => `${from} → ${to}`)
      .join(', ')}`,
  ];
}

/** Runs the three arms in turn and prints their table, comparison and books through `log`. */
export async function runScheduling(setup: SchedulingSetup, log: (line: string) => void = console.log): Promise<SchedulingOutcome> {
  for (const line of preamble(setup)) log(line);
  const runs: ArmRun[] = [];
  for (const arm of ['direct', 'round-robin', 'dynamic'] as const) {
    const started = performance.now();
    runs.push(arm === 'direct' ? await runDirect(setup) : await runNodeArm(arm, setup));
    log(`  ${armLabels[arm]}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const figures = runs.map(armFigures);
  log(
    `per tier over the window (served/s: answers that finished in it; p50, p99, refused and degraded: the requests sent in it, latency of those served, refused of those sent, degraded of those served):`,
  );
  for (const line of tierTable(figures)) log(line);
  log(`per arm, beside the direct arm of this run and the design's published figures (8 cores):`);
  for (const line of comparisonTable(figures, runs)) log(line);
  log(
    `  Jain: over each tenant's weighted tokens served in the window (input + 5 × output, its policy weights) divided by its tier's weight ` +
      `(vip ${fairnessWeights.vip}, paid ${fairnessWeights.paid}, free ${fairnessWeights.free}); 1 is an equal weighted share for all ${tenantMix().length} tenants. ` +
      `Light tenants ask for less than a fair share, so even a perfectly fair schedule stays below 1.`,
  );
  log(
    `  What differs from the design's setting: ${availableParallelism()} cores shared with other work (${machineLoad()}), one node process beside the emulator and this ` +
      `load generator, and a pool sized to run out at about 65 requests/s (emulated accounts with real-looking limits and ~0.5 s answers) rather than at the ` +
      `thousands of requests/s of the design's 8 cores: compare the ratios to direct, the tails per tier and the refusals, not the absolute requests/s.`,
  );
  for (const line of detailLines(figures, runs)) log(line);
  for (const line of timelineLines(runs)) log(line);
  for (const run of runs) {
    if (run.profile === undefined) continue;
    log(`  ${armLabels[run.arm]}: the node's CPU profile over the window and the drain (${run.profile.path}):`);
    const served = run.records.status.reduce((n, status, i) => (i >= run.measuredFrom && status === 200 ? n + 1 : n), 0);
    await printProfileSummary(run.profile.path, run.profile.skipMs, 25, served);
  }
  log(`the books, per arm (everything sent, warm-up included, once nothing ran any more):`);
  for (const run of runs) {
    log(`  ${armLabels[run.arm]}: ${run.reconciliation.holds ? 'reconciled' : 'NOT RECONCILED'}`);
    for (const line of run.reconciliation.lines) log(`    ${line}`);
  }
  return { runs, figures, reconciled: runs.every((r) => r.reconciliation.holds) };
}

export async function schedulingBench(ctx: BenchContext): Promise<void> {
  console.log('\n== scheduling ==');
  const given = process.env.BENCH_SCHEDULING_SECONDS;
  const windowS = given === undefined || given === '' ? undefined : Number(given);
  if (windowS !== undefined && !(Number.isInteger(windowS) && windowS >= 1 && windowS <= 600)) throw new Error('BENCH_SCHEDULING_SECONDS takes 1 to 600');
  const outcome = await runScheduling(schedulingSetup(ctx.quick, windowS));
  const failed = outcome.runs.filter((r) => !r.reconciliation.holds).map((r) => armLabels[r.arm]);
  report('scheduling: books reconciled', outcome.runs.length - failed.length, `of ${outcome.runs.length} arms`, 'every arm', failed.length === 0, {
    baseline: failed.length === 0 ? 'clients, node ledger and emulator agree in every arm' : `not reconciled: ${failed.join(', ')}`,
  });
}
