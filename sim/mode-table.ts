import { consistencyModes, type ConsistencyMode } from '../src/mesh/policy/policy-schema.js';
import type { Fault, PartitionKind, Scenario } from './scenario.js';
import { partitionKinds } from './scenario-file.js';
import type { SimResult } from './sim-result.js';
import { runScenario } from './simulator.js';

/**
 * The operator's guide to choosing a consistency mode: every mode under every partition kind,
 * on the realistic five-region RTT matrix, with the figures that decide the choice: how far the
 * quota was overshot, how many requests were refused although the true total had room (false
 * rejections), how many were refused for want of a quorum, and the admission latency.
 *
 * Each cell runs the same workload (`tableScenario`) under a few seeds: 20 tenants on five
 * regions, 200 requests/s per region, every tenant limited to 2,000,000 weighted tokens a day
 * (the busiest tenants reach it within the run), and the partition from 10 s to 25 s of a 30 s
 * run. `npm run sim -- --table` prints the table that README.md shows.
 *
 * One more row per mode, `bridge-from-start`, starts the mesh inside a bridge partition (from 0 s
 * to 25 s): every node starts without state and must recover before it serves strict reads, and
 * an edge node reaches the other half only through the bridge. Strict admits there because a
 * recovering node counts a peer it cannot reach once a synced peer relayed that peer's whole
 * state (src/mesh/quorum.ts, "Recovery through a relay"); before that rule the edges never
 * recovered and strict admitted nothing anywhere until the heal (issue 17).
 */
export type TablePartition = PartitionKind | 'none' | 'bridge-from-start';
export const tablePartitions: readonly TablePartition[] = ['none', ...partitionKinds, 'bridge-from-start'];

export const tableSeedsDefault = 3;
const tableLimitTokens = 2_000_000;

export interface TableCell {
  readonly mode: ConsistencyMode;
  readonly partition: TablePartition;
  readonly runs: number;
  readonly failedRuns: number;
  readonly requests: number;
  readonly admitted: number;
  readonly falseRejections: number;
  readonly noQuorum: number;
  /** Largest overshoot of any tenant in any run, tokens; and its eventual bound. */
  readonly overshootTokensMax: number;
  readonly overshootBoundTokens: number;
  /** Mean over runs of each run's median, and the largest 99th percentile of any run. */
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
}

export function tableScenario(mode: ConsistencyMode, partition: TablePartition, durationMs = 30_000): Scenario {
  const faultAtMs = Math.round(durationMs / 3);
  const faultMs = Math.round(durationMs / 2);
  const fault: Fault | undefined =
    partition === 'none'
      ? undefined
      : partition === 'bridge-from-start'
        ? { kind: 'partition', atMs: 0, durationMs: faultAtMs + faultMs, partition: 'bridge', node: 0 }
        : { kind: 'partition', atMs: faultAtMs, durationMs: faultMs, partition, node: 0 };
  return {
    name: `table-${mode}-${partition}`,
    description: `Mode table cell: ${mode} limits, ${fault?.kind !== 'partition' ? 'no partition' : `a ${fault.partition} partition from ${fault.atMs / 1000} s for ${fault.durationMs / 1000} s`}.`,
    regions: 5,
    durationMs,
    convergenceBudgetMs: 10_000,
    gossipIntervalMs: 50,
    workload: {
      tenants: 20,
      requestsPerSecond: 200,
      arrivals: 'poisson',
      burstSize: 1,
      maxTokens: 4096,
      quota: { mode, tokensPerDay: tableLimitTokens },
    },
    network: { jitterMs: 5, loss: 0.01, duplicate: 0.005, bytesPerMs: 12_500 },
    faults: fault === undefined ? [] : [fault],
  };
}

/** Runs every cell; `progress` hears of each finished run. */
export function modeTable(seeds: readonly number[], durationMs?: number, progress?: (cell: string, seed: number, result: SimResult) => void): TableCell[] {
  const cells: TableCell[] = [];
  for (const mode of consistencyModes) {
    for (const partition of tablePartitions) {
      const results = seeds.map((seed) => {
        const result = runScenario(tableScenario(mode, partition, durationMs), seed);
        progress?.(`${mode}/${partition}`, seed, result);
        return result;
      });
      cells.push(aggregate(mode, partition, results));
    }
  }
  return cells;
}

function aggregate(mode: ConsistencyMode, partition: TablePartition, results: readonly SimResult[]): TableCell {
  let requests = 0;
  let admitted = 0;
  let falseRejections = 0;
  let noQuorum = 0;
  let overshootTokensMax = 0;
  let overshootBoundTokens = 0;
  let p50Sum = 0;
  let latencyMsP99 = 0;
  for (const result of results) {
    const quota = result.quota;
    if (quota === undefined) continue;
    requests += quota.admitted + quota.rejected;
    admitted += quota.admitted;
    falseRejections += quota.falseRejections;
    noQuorum += quota.noQuorum;
    if (quota.overshootTokensMax >= overshootTokensMax) {
      overshootTokensMax = quota.overshootTokensMax;
      overshootBoundTokens = quota.overshootBoundTokens;
    }
    p50Sum += quota.latencyMsP50;
    latencyMsP99 = Math.max(latencyMsP99, quota.latencyMsP99);
  }
  return {
    mode,
    partition,
    runs: results.length,
    failedRuns: results.filter((r) => !r.ok).length,
    requests,
    admitted,
    falseRejections,
    noQuorum,
    overshootTokensMax,
    overshootBoundTokens,
    latencyMsP50: results.length === 0 ? 0 : Math.round(p50Sum / results.length),
    latencyMsP99,
  };
}

/** The table as Markdown, with a line on how it was made. */
export function formatModeTable(cells: readonly TableCell[], seeds: readonly number[], durationMs: number): string {
  const percent = (part: number, whole: number): string => (whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)}%`);
  const lines = [
    `Per mode and partition kind: 5 regions, 20 tenants, 200 requests/s per region, ${(tableLimitTokens / 1e6).toFixed(0)}M weighted tokens/day per tenant, ` +
      `${durationMs / 1000} s runs, partition over the middle half (bridge-from-start: a bridge from the start to the same end, every node recovering at its start), seeds ${seeds.join(', ')}. Overshoot is the worst tenant's admitted total over its limit ` +
      `(eventual: against its bound Σ admit rate × propagation delay); false rejections were refused while the true total had room; no-quorum refusals ` +
      `are counted apart. Latency is from arrival to decision, simulated.`,
    '',
    '| mode | partition | admitted | overshoot (tokens) | false rejections | no quorum | latency p50 | latency p99 | runs failed |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const cell of cells) {
    const bound =
      cell.mode === 'eventual' && cell.overshootBoundTokens > 0 ? ` (${(cell.overshootTokensMax / cell.overshootBoundTokens).toFixed(1)}× bound)` : '';
    lines.push(
      `| ${cell.mode} | ${cell.partition} | ${percent(cell.admitted, cell.requests)} | ${cell.overshootTokensMax.toLocaleString('en-US')}${bound} | ` +
        `${percent(cell.falseRejections, cell.requests)} | ${percent(cell.noQuorum, cell.requests)} | ${cell.latencyMsP50} ms | ${cell.latencyMsP99} ms | ${cell.failedRuns}/${cell.runs} |`,
    );
  }
  return lines.join('\n');
}
