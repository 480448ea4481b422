// The figures and the table of the scheduling benchmark (test/bench/scheduling.bench.ts), from
// the records of its arms (test/bench/scheduling-arms.ts): per arm and tier over the measured
// window, served requests/s, p50 and p99 latency of what was served, the share refused and the
// share served degraded; per arm Jain's fairness index, the longest event-loop stalls, and the
// design's published figures beside the measured ones; then each arm's books.
import { percentile, sortedCopy } from './gateway-load.js';
import { finiteRange, perSecondPercentile, sparkline, worstSecond } from './latency-timeline.js';
import { type ArmName, type ArmRun, noAnswer, notSent, refusedByClient } from './scheduling-arms.js';
import { benchTiers, type BenchTier, fairnessWeights, jainIndex } from './scheduling-mix.js';

export const armLabels: Record<ArmName, string> = { direct: 'direct', 'round-robin': 'round-robin pool', dynamic: 'dynamic priority' };

/** The reference design's table (DESIGN.md's source; issue 19): measured on 8 cores. */
export const published: Record<ArmName, { readonly qps: number; readonly p99Ms: number }> = {
  direct: { qps: 1_200, p99Ms: 850 },
  'round-robin': { qps: 9_800, p99Ms: 120 },
  dynamic: { qps: 14_200, p99Ms: 65 },
};

/** The output weights of every benchmark tenant (input 1, output 5, per its policy): tokens for fairness count this way. */
const outputWeight = 5;

export interface TierRow {
  readonly arm: ArmName;
  readonly tier: BenchTier | 'all';
  readonly offeredPerS: number;
  readonly servedPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Of the requests sent, the share not served (any refusal, failure or missing answer). */
  readonly refusedShare: number;
  /** Of the requests served, the share served degraded. */
  readonly degradedShare: number;
}

export interface ArmFigures {
  readonly arm: ArmName;
  readonly rows: readonly TierRow[];
  /** Jain's index over each tenant's weighted tokens served (finished) in the window, divided by its tier's weight. */
  readonly jain: number;
  /** Served requests/s per tenant, in the mix's order. */
  readonly servedPerTenantPerS: readonly number[];
  /** Why requests were not served, by answer: `429`, `503`, `no answer`, `refused by the client`… */
  readonly refusals: ReadonlyMap<string, number>;
  readonly notSent: number;
}

const refusalName = (status: number): string =>
  status === noAnswer ? 'no answer' : status === refusedByClient ? 'over the concurrency limit (refused by the client)' : `HTTP ${status}`;

interface Tally {
  offered: number;
  sent: number;
  /** Of those sent in the window, served (whenever they finished), and of those served degraded. */
  answered: number;
  degraded: number;
  latencies: number[];
  /** Served requests that finished within the window, whenever they were sent: the throughput. */
  finished: number;
}

/**
 * Every figure of one arm over its measured window. Two views of it: the requests *sent* in the
 * window give the latency, refused and degraded figures (a request sent late in the window counts
 * even if it finished after it); the requests *finished* in the window give served/s and the
 * tokens for fairness (a throughput, so a queue still draining after the window does not count).
 */
export function armFigures(arm: ArmRun): ArmFigures {
  const { records, picks, tenants, measuredFrom, setup } = arm;
  const windowStartMs = arm.startedAtMs + (measuredFrom * 1000) / setup.rate;
  const windowEndMs = arm.startedAtMs + (picks.length * 1000) / setup.rate;
  const byTier = new Map<BenchTier | 'all', Tally>();
  for (const tier of ['all', ...benchTiers] as const) byTier.set(tier, { offered: 0, sent: 0, answered: 0, degraded: 0, latencies: [], finished: 0 });
  const tokens = tenants.map(() => 0);
  const served = tenants.map(() => 0);
  const refusals = new Map<string, number>();
  let unsent = 0;
  for (let i = 0; i < picks.length; i++) {
    const tenant = picks[i]!;
    const status = records.status[i]!;
    const tallies = [byTier.get('all')!, byTier.get(tenants[tenant]!.tier)!];
    const finishedAtMs = records.sentAtMs[i]! + records.latencyMs[i]!;
    if (status === 200 && finishedAtMs >= windowStartMs && finishedAtMs < windowEndMs) {
      for (const tally of tallies) tally.finished++;
      served[tenant]!++;
      tokens[tenant]! += records.inputTokens[i]! + records.cacheWriteTokens[i]! + outputWeight * records.outputTokens[i]!;
    }
    if (i < measuredFrom) continue;
    if (status === notSent) unsent++;
    else if (status !== 200) refusals.set(refusalName(status), (refusals.get(refusalName(status)) ?? 0) + 1);
    for (const tally of tallies) {
      tally.offered++;
      if (status === notSent) continue;
      tally.sent++;
      if (status !== 200) continue;
      tally.answered++;
      tally.degraded += records.degraded[i]!;
      tally.latencies.push(records.latencyMs[i]!);
    }
  }
  const windowS = setup.windowS;
  const rows = [...byTier].map(([tier, t]): TierRow => {
    const sorted = sortedCopy(t.latencies);
    return {
      arm: arm.arm,
      tier,
      offeredPerS: t.offered / windowS,
      servedPerS: t.finished / windowS,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      refusedShare: t.sent === 0 ? Number.NaN : (t.sent - t.answered) / t.sent,
      degradedShare: t.answered === 0 ? Number.NaN : t.degraded / t.answered,
    };
  });
  return {
    arm: arm.arm,
    rows,
    jain: jainIndex(tenants.map((t, k) => tokens[k]! / fairnessWeights[t.tier])),
    servedPerTenantPerS: served.map((n) => n / windowS),
    refusals,
    notSent: unsent,
  };
}

const num = (x: number, digits = 1): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : '—');

/** The table of every arm and tier: one line per row. */
export function tierTable(figures: readonly ArmFigures[]): string[] {
  const lines = [
    `  ${'arm'.padEnd(17)} ${'tier'.padEnd(5)} ${'offered/s'.padStart(9)} ${'served/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'refused'.padStart(8)} ${'degraded'.padStart(8)}`,
  ];
  for (const f of figures) {
    for (const row of f.rows) {
      const label = row.tier === 'all' ? armLabels[f.arm] : '';
      lines.push(
        `  ${label.padEnd(17)} ${row.tier.padEnd(5)} ${num(row.offeredPerS).padStart(9)} ${num(row.servedPerS).padStart(9)} ${ms(row.p50Ms).padStart(8)} ${ms(row.p99Ms).padStart(8)} ${pct(row.refusedShare).padStart(8)} ${pct(row.degradedShare).padStart(8)}`,
      );
    }
  }
  return lines;
}

/** Per arm: served requests/s beside the direct arm's (this run) and the design's ratio, p99 beside the published one, fairness, stalls. */
export function comparisonTable(figures: readonly ArmFigures[], runs: readonly ArmRun[]): string[] {
  const direct = figures.find((f) => f.arm === 'direct')?.rows[0]?.servedPerS ?? Number.NaN;
  const lines = [
    `  ${'arm'.padEnd(17)} ${'served/s'.padStart(9)} ${'× direct'.padStart(9)} ${'design: QPS (× direct)'.padStart(23)} ${'p99 ms'.padStart(8)} ${'design p99'.padStart(10)} ${'Jain'.padStart(6)} ${'stall: node / load ms'.padStart(22)}`,
  ];
  for (const f of figures) {
    const all = f.rows[0]!;
    const run = runs.find((r) => r.arm === f.arm)!;
    const design = published[f.arm];
    const designText = `${design.qps.toLocaleString('en-US')} (${(design.qps / published.direct.qps).toFixed(1)}×)`;
    const stalls = `${run.nodeStallMs === undefined ? '—' : ms(run.nodeStallMs)} / ${ms(run.loadStallMs)}`;
    lines.push(
      `  ${armLabels[f.arm].padEnd(17)} ${num(all.servedPerS).padStart(9)} ${`${(all.servedPerS / direct).toFixed(1)}×`.padStart(9)} ${designText.padStart(23)} ${ms(all.p99Ms).padStart(8)} ${`${design.p99Ms}`.padStart(10)} ${num(f.jain, 3).padStart(6)} ${stalls.padStart(22)}`,
    );
  }
  return lines;
}

/** Why requests went unserved, and what each tenant was served, per arm. */
export function detailLines(figures: readonly ArmFigures[], runs: readonly ArmRun[]): string[] {
  const lines: string[] = [];
  for (const f of figures) {
    const run = runs.find((r) => r.arm === f.arm)!;
    const refusals = [...f.refusals].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ×${n.toLocaleString('en-US')}`);
    const cpu =
      run.nodeCpuMs === undefined
        ? ''
        : `; node CPU ${((run.nodeCpuMs * 1000) / Math.max(1, f.rows[0]!.servedPerS * run.setup.windowS)).toFixed(0)} µs per served request`;
    lines.push(
      `  ${armLabels[f.arm]}: not served ${refusals.length === 0 ? 'none' : refusals.join(', ')}${f.notSent === 0 ? '' : `; ${f.notSent} not sent (the client's bound of ${run.setup.outstandingMax} outstanding)`}${cpu}`,
    );
    const perTenant = run.tenants.map((t, k) => `${t.id} ${num(f.servedPerTenantPerS[k]!)}`);
    lines.push(`    served/s per tenant: ${perTenant.join(', ')}`);
  }
  return lines;
}

/**
 * The p99 of each second of each arm's window, of the requests sent in it and served, by the
 * second they finished in: a stall every few seconds shows as a spike there, where a window's p99
 * hides it. One line per arm, on one log scale.
 */
export function timelineLines(runs: readonly ArmRun[]): string[] {
  const series = runs.map((run) => {
    const windowStartMs = run.startedAtMs + (run.measuredFrom * 1000) / run.setup.rate;
    const finishedAtMs: number[] = [];
    const latenciesMs: number[] = [];
    for (let i = run.measuredFrom; i < run.picks.length; i++) {
      if (run.records.status[i] !== 200) continue;
      finishedAtMs.push(run.records.sentAtMs[i]! + run.records.latencyMs[i]! - windowStartMs);
      latenciesMs.push(run.records.latencyMs[i]!);
    }
    return { arm: run.arm, valuesMs: perSecondPercentile(finishedAtMs, latenciesMs, 99) };
  });
  const { low, high } = finiteRange(series.map((s) => s.valuesMs));
  const lines = [`  p99 per second (a character a second from the window's start, log scale from ▁ ${ms(low)} ms to █ ${ms(high)} ms; · nothing finished):`];
  for (const s of series) {
    const worst = worstSecond(s.valuesMs);
    lines.push(
      `    ${armLabels[s.arm].padEnd(17)} ${sparkline(s.valuesMs, low, high)}  ${worst === undefined ? 'no answers' : `worst second ${worst}: ${ms(s.valuesMs[worst]!)} ms`}`,
    );
  }
  return lines;
}
