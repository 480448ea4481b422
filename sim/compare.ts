import { tierQueueQuantumTokens } from '../src/core/limits.js';
import { type Tier, tiers } from '../src/mesh/policy/policy-schema.js';
import { defaultScheduleSettings } from '../src/mesh/policy/schedule-schema.js';
import { err, ok, type Result } from '../src/core/result.js';
import { formatCount, formatDuration } from './cli-format.js';
import type { RequestPathWorkload, Scenario, ScheduleWorkload } from './scenario.js';
import { parseScenario, type ScenarioError } from './scenario-file.js';
import type { CheckFailure } from './sim-result.js';
import { type RunOptions, runScenario } from './simulator.js';

/**
 * The scheduling comparison of the carpool's design, under the simulator: one scenario's
 * overload run three times, on the same seed (so the same arrivals, tenants and sizes), as
 *
 *   direct            one account (the first), no pool: every region calls it, in arrival order
 *                     (fifo queue);
 *   round-robin pool  every account, picked in turn; fifo queue (the plain relay);
 *   dynamic priority  every account, the least loaded first; the dynamic tier queue (tiers with
 *                     the bounded escape, the multi-level feedback queue fed by the replicated
 *                     usage, virtual token counters), with the scenario's schedule knobs.
 *
 * For each it gives served requests per second (completions within the arrivals' window over
 * its length), p50 and p99 latency per tier (submission to answer, simulated ms, of the served
 * requests), the refusal rate per tier (requests that were not served: refused by quota or a
 * full queue, failed for want of an account, or still queued when the arrivals ended), and
 * Jain's fairness index over the weighted tokens served per tenant divided by its tier's
 * weight; beside them the design's published figures (8 cores, real processes), which the
 * simulated ones are not expected to equal: the simulated pool's capacity is the simulated
 * accounts' (their concurrency, per-minute limits and latency), not a node's CPU. Every arm
 * runs every checker of the simulator; an arm that fails one is reported.
 */

export const compareArms = ['direct', 'round-robin', 'dynamic'] as const;
export type CompareArm = (typeof compareArms)[number];

export const armLabels: Readonly<Record<CompareArm, string>> = {
  direct: 'direct',
  'round-robin': 'round-robin pool',
  dynamic: 'dynamic priority',
};

/** The design's table (8 cores): served QPS and p99 latency of each strategy. */
export const publishedFigures: Readonly<Record<CompareArm, { readonly qps: number; readonly p99Ms: number }>> = {
  direct: { qps: 1_200, p99Ms: 850 },
  'round-robin': { qps: 9_800, p99Ms: 120 },
  dynamic: { qps: 14_200, p99Ms: 65 },
};

export interface TierRow {
  readonly submitted: number;
  readonly served: number;
  readonly latencyMsP50: number | undefined;
  readonly latencyMsP99: number | undefined;
  /** Share of the tier's requests not served, 0 to 1; undefined when none was submitted. */
  readonly refusedRate: number | undefined;
}

export interface ArmResult {
  readonly arm: CompareArm;
  readonly scenario: Scenario;
  readonly ok: boolean;
  readonly failures: readonly CheckFailure[];
  readonly submitted: number;
  readonly servedQps: number;
  readonly tiers: Readonly<Record<Tier, TierRow>>;
  readonly jain: number | undefined;
  readonly accounts: number;
  readonly wallMs: number;
}

/** The scenario's schedule knobs, complete (the policy's defaults for a scenario that sets none). */
function scheduleOf(path: RequestPathWorkload): ScheduleWorkload {
  if (path.schedule !== undefined) return path.schedule;
  const { mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute } = defaultScheduleSettings;
  return { mode, levels, escapeEvery, escapeAfterMs, agingMs, levelTokensPerMinute, quantumTokens: tierQueueQuantumTokens, countersBy: 'used' };
}

/** The scenario one arm runs, validated as a scenario file would be. */
export function armScenario(base: Scenario, arm: CompareArm): Result<Scenario, ScenarioError> {
  const path = base.workload.requestPath;
  if (path === undefined) return err({ kind: 'bad-scenario', field: 'workload.requestPath', reason: 'the comparison needs a request-path workload' });
  const schedule = scheduleOf(path);
  // Every arm but the direct one has every account, whatever the scenario chose.
  const pooled: RequestPathWorkload = { ...path };
  delete (pooled as { accountsTotal?: number }).accountsTotal;
  const requestPath: RequestPathWorkload =
    arm === 'dynamic'
      ? { ...pooled, strategy: 'least-loaded', schedule: { ...schedule, mode: 'dynamic' } }
      : { ...pooled, strategy: 'round-robin', schedule: { ...schedule, mode: 'fifo' }, ...(arm === 'direct' ? { accountsTotal: 1 } : {}) };
  const description = `${armLabels[arm]} arm of the scheduling comparison on "${base.name}"`;
  return parseScenario({ ...base, name: `${base.name}-${arm}`, description, workload: { ...base.workload, requestPath } });
}

/** Runs the three arms on `seed`, one after the other, telling `progress` how far each has come. */
export function runComparison(
  base: Scenario,
  seed: number,
  progress?: (arm: CompareArm, index: number, simulatedMs: number, totalMs: number) => void,
): Result<ArmResult[], ScenarioError> {
  const results: ArmResult[] = [];
  for (const [index, arm] of compareArms.entries()) {
    const scenario = armScenario(base, arm);
    if (!scenario.ok) return scenario;
    const options: RunOptions = progress === undefined ? {} : { progress: (simulatedMs, totalMs) => progress(arm, index, simulatedMs, totalMs) };
    const result = runScenario(scenario.value, seed, options);
    const path = result.requestPath;
    if (path === undefined) return err({ kind: 'bad-scenario', field: 'workload.requestPath', reason: 'the run produced no request-path figures' });
    const row = (tier: Tier): TierRow => {
      const figures = path.tiers.tiers[tier];
      return {
        submitted: figures.submitted,
        served: figures.served,
        latencyMsP50: figures.latencyMsP50,
        latencyMsP99: figures.latencyMsP99,
        refusedRate: figures.submitted === 0 ? undefined : figures.refused / figures.submitted,
      };
    };
    const servedInWindow = tiers.reduce((sum, tier) => sum + path.tiers.tiers[tier].servedInWindow, 0);
    const requestPath = scenario.value.workload.requestPath;
    results.push({
      arm,
      scenario: scenario.value,
      ok: result.ok,
      failures: result.failures,
      submitted: path.submitted,
      servedQps: servedInWindow / (scenario.value.durationMs / 1000),
      tiers: { vip: row('vip'), paid: row('paid'), free: row('free') },
      jain: path.tiers.jain,
      accounts: requestPath?.accountsTotal ?? scenario.value.regions * (requestPath?.accountsPerRegion ?? 0),
      wallMs: result.wallMs,
    });
  }
  return ok(results);
}

/** `[compare sched-overload seed 1] round-robin pool (2/3): 45% simulated 18s of 40s` */
export function formatCompareProgress(base: string, seed: number, arm: CompareArm, index: number, simulatedMs: number, totalMs: number): string {
  const percent = totalMs > 0 ? Math.floor((100 * Math.min(simulatedMs, totalMs)) / totalMs) : 100;
  return `[compare ${base} seed ${seed}] ${armLabels[arm]} (${index + 1}/${compareArms.length}): ${percent}% simulated ${formatDuration(simulatedMs)} of ${formatDuration(totalMs)}`;
}

/** The comparison as a Markdown table, with the design's figures beside the simulated ones, then any failed checks. */
export function formatComparison(base: Scenario, seed: number, results: readonly ArmResult[]): string {
  const offered = base.workload.requestsPerSecond * base.regions;
  const lines = [
    `scheduling comparison on ${base.name}, seed ${seed}: ${base.regions} regions, ${formatCount(offered)} requests/s offered for ${formatDuration(base.durationMs)} of simulated time, ${base.workload.tenants} tenants, ${base.faults.length} faults`,
    '',
    '| arm | accounts | served/s | p50 / p99 ms vip | paid | free | refused vip / paid / free | Jain | design: served/s, p99 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const result of results) {
    const latency = (tier: Tier): string => `${ms(result.tiers[tier].latencyMsP50)} / ${ms(result.tiers[tier].latencyMsP99)}`;
    const refused = tiers.map((tier) => percent(result.tiers[tier].refusedRate)).join(' / ');
    const published = publishedFigures[result.arm];
    lines.push(
      `| ${armLabels[result.arm]} | ${result.accounts} | ${formatCount(result.servedQps)} | ${latency('vip')} | ${latency('paid')} | ${latency('free')} | ${refused} | ${result.jain === undefined ? '–' : result.jain.toFixed(3)} | ${formatCount(published.qps)}, ${published.p99Ms} |`,
    );
  }
  lines.push(
    '',
    'Simulated time; the design column is its published table (real processes, 8 cores). Refused: not served (quota, full queue, no account in time, or queued when the arrivals ended). Jain: over weighted tokens served per tenant ÷ tier weight.',
  );
  for (const result of results) {
    if (result.ok) continue;
    lines.push(`${armLabels[result.arm]} FAILED ${result.failures.length} check${result.failures.length === 1 ? '' : 's'}:`);
    for (const failure of result.failures.slice(0, 5)) lines.push(`  ${failure.checker} at ${formatDuration(failure.atMs)}: ${failure.message}`);
  }
  return lines.join('\n');
}

function ms(value: number | undefined): string {
  return value === undefined ? '–' : formatCount(value);
}

function percent(value: number | undefined): string {
  return value === undefined ? '–' : `${(100 * value).toFixed(1)}%`;
}
