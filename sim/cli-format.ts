import type { CliOptions } from './cli-args.js';
import type { Fault, Scenario } from './scenario.js';
import type { ClaimFigures, DurabilityFigures, QuotaFigures, RequestPathFigures, SimResult } from './sim-result.js';

/**
 * What the simulator CLI prints, as pure functions of their arguments: no clock, no console, no
 * simulator. Numbers are formatted by hand rather than with `toLocaleString` so the output is
 * the same on every machine and locale.
 */

/**
 * The command that runs the CLI from the repository root; replay commands start with it. It is
 * the form the simulator's own `SimResult.replay` uses, so the two read alike.
 */
export const cliCommand = 'npm run sim --';

/** `[partition-heal seed 42] 35% simulated 3m30s of 10m` */
export function formatProgress(scenario: string, seed: number, simulatedMs: number, totalMs: number): string {
  const percent = totalMs > 0 ? Math.floor((100 * Math.min(simulatedMs, totalMs)) / totalMs) : 100;
  return `[${scenario} seed ${seed}] ${percent}% simulated ${formatDuration(simulatedMs)} of ${formatDuration(totalMs)}`;
}

/** The result of one run as a two-column table, then its failures and replay command if it failed. */
export function formatSummary(result: SimResult): string {
  const { scenario, stats } = result;
  const rows: [string, string][] = [
    ['scenario', `${scenario.name} (${scenario.regions} regions, ${formatFaultCount(scenario.faults.length)})`],
    ['seed', String(result.seed)],
    ['verdict', result.ok ? 'PASS' : `FAIL (${formatCount(result.failures.length)} failure${result.failures.length === 1 ? '' : 's'})`],
    ['simulated', formatDuration(result.simulatedMs)],
    ['wall time', formatDuration(result.wallMs)],
    ['speed-up', formatSpeedUp(result)],
    ['requests', formatCount(stats.requests)],
    ['frames', `${formatCount(stats.framesDelivered)} delivered (${formatBytes(stats.bytesDelivered)}), ${formatCount(stats.framesDropped)} dropped`],
    ['events', formatCount(stats.events)],
    ...((stats.releasedUnits ?? 0) > 0
      ? [['released', `${formatCount(stats.releasedUnits ?? 0)} tokens that crashed nodes left reserved, by their successors`] as [string, string]]
      : []),
    ['convergence', formatConvergence(result)],
    ...(result.quota === undefined ? [] : [['quota', formatQuota(result.quota)] as [string, string]]),
    ...(result.claims === undefined ? [] : [['request ids', formatClaims(result.claims)] as [string, string]]),
    ...(result.requestPath === undefined ? [] : [['request path', formatRequestPath(result.requestPath)] as [string, string]]),
    ...(result.requestPath === undefined ? [] : [['schedule', formatSchedule(result.requestPath)] as [string, string]]),
    ['disks', formatDurability(result.durability)],
    ['trace hash', result.traceHash],
  ];
  const lines = [formatTable(rows)];
  if (!result.ok) {
    lines.push('failures:');
    for (const failure of result.failures) lines.push(`  ${failureLine(failure)}`);
    lines.push(`replay: ${result.replay}`);
  }
  return lines.join('\n');
}

/** Admission under the scenario's quota: decisions, false rejections, overshoot against the eventual bound. */
export function formatQuota(quota: QuotaFigures): string {
  const ratio = quota.overshootBoundTokens > 0 ? ` (${(quota.overshootTokensMax / quota.overshootBoundTokens).toFixed(2)} of the bound)` : '';
  return (
    `${quota.mode} ${formatCount(quota.tokensPerDay)} tokens/day: ${formatCount(quota.admitted)} admitted, ${formatCount(quota.rejected)} rejected ` +
    `(${formatCount(quota.falseRejections)} falsely), overshoot ${formatCount(quota.overshootTokensMax)} tokens, bound ${formatCount(quota.overshootBoundTokens)}${ratio}`
  );
}

/** Request-id claims: how many were granted, refused and why, and how many ids reached the upstream. */
export function formatClaims(claims: ClaimFigures): string {
  return (
    `${formatCount(claims.claimed)} claimed (${formatCount(claims.retries)} retries): ${formatCount(claims.granted)} granted, ` +
    `${formatCount(claims.heldElsewhere)} held elsewhere, ${formatCount(claims.heldHere)} held here, ${formatCount(claims.noQuorum)} no quorum, ` +
    `${formatCount(claims.shed)} shed; ${formatCount(claims.dispatched)} reached the upstream, ${formatCount(claims.withdrawn)} withdrawn`
  );
}

/** The request path: what was admitted and how it ended, the calls, forwards and tokens. */
export function formatRequestPath(path: RequestPathFigures): string {
  return (
    `${formatCount(path.submitted)} submitted, ${formatCount(path.admitted)} admitted (${formatCount(path.refusedQuota)} over quota, ${formatCount(path.queueFull)} queue full, ${formatCount(path.closed)} closed unserved); ` +
    `${formatCount(path.completed)} completed, ${formatCount(path.failed)} failed; ${formatCount(path.settled)} settled, ${formatCount(path.withdrawn)} withdrawn; ` +
    `${formatCount(path.attempts)} calls (${formatCount(path.retries)} retries, ${formatCount(path.forwards)} forwarded, ${formatCount(path.forwardsRefused)} forwards refused), ` +
    `${formatCount(path.upstreamAccepted)} taken upstream, ${formatCount(path.producedTokens.input + path.producedTokens.output)} tokens produced`
  );
}

/** The tier queues' starts as the schedule books saw them, and what each tier was served. */
export function formatSchedule(path: RequestPathFigures): string {
  const { schedule, tiers } = path;
  const served = (['vip', 'paid', 'free'] as const)
    .map((tier) => `${tier} ${formatCount(tiers.tiers[tier].served)}/${formatCount(tiers.tiers[tier].submitted)}`)
    .join(', ');
  const fairness = schedule.fairnessChecked ? `; fairness spread at most ${formatCount(schedule.fairnessSpreadMax)} weighted tokens` : '';
  return `${formatCount(schedule.starts)} starts, ${formatCount(schedule.escapes)} escapes of a lower tier; served ${served}${fairness}`;
}

/** The nodes' disks: commits, restarts from them, and the requests those restarts caught. */
export function formatDurability(durability: DurabilityFigures): string {
  return (
    `${formatCount(durability.commits)} commits, ${formatCount(durability.restarts)} restart${durability.restarts === 1 ? '' : 's'} from disk; ` +
    `${formatCount(durability.interrupted)} requests interrupted (charged their estimate; ${formatCount(durability.settlementsLost)} of them had settled), ` +
    `${formatCount(durability.undispatched)} admitted but never dispatched` +
    (durability.commitsRefused > 0
      ? `; ${formatCount(durability.commitsRefused)} commits refused, ${formatCount(durability.refusedDiskFailing)} requests refused meanwhile`
      : '')
  );
}

/**
 * One line per swarm run: `seed 42  PASS   38.2×  3 faults: crash, partition/majority, skew`. A
 * failed run adds, indented below, each failure with the checker that fired, so a replayed seed
 * (`--swarm 1 --seed N`) says what broke, not only FAIL.
 */
export function formatSwarmLine(result: SimResult): string {
  const line = swarmLine(result.seed, result.ok ? 'PASS' : 'FAIL', formatSpeedUp(result), result.scenario);
  return result.ok ? line : [line, ...result.failures.map((failure) => `    ${failureLine(failure)}`)].join('\n');
}

/** `convergence at 10m5s: us-east reads 10 tokens, the oracle 12`. */
function failureLine(failure: SimResult['failures'][number]): string {
  return `${failure.checker} at ${formatDuration(failure.atMs)}: ${failure.message}`;
}

/** The line for a swarm run that threw instead of returning a result (an assertion tripped). */
export function formatSwarmCrash(seed: number, scenario: Scenario, message: string): string {
  return `${swarmLine(seed, 'CRASH', '-', scenario)}\n    ${message}`;
}

export interface SwarmRun {
  readonly seed: number;
  readonly ok: boolean;
  readonly replay: string;
}

/** The closing lines of a swarm: the tally, then each failed seed with the command that replays it. */
export function formatSwarmTally(runs: readonly SwarmRun[]): string {
  const failed = runs.filter((run) => !run.ok);
  const passed = runs.length - failed.length;
  if (failed.length === 0) return `swarm: all ${formatCount(runs.length)} runs passed`;
  const lines = [`swarm: ${formatCount(passed)} of ${formatCount(runs.length)} runs passed; failed seeds: ${failed.map((run) => run.seed).join(', ')}`];
  for (const run of failed) lines.push(`  seed ${run.seed}: ${run.replay}`);
  return lines.join('\n');
}

/**
 * The command that replays one swarm run: the same base scenario and overrides, one swarm run
 * from its seed. `randomScenario` is a function of (seed, base) and the run uses the same seed,
 * so this reproduces the run exactly.
 */
export function swarmReplayCommand(options: Pick<CliOptions, 'scenario' | 'regions' | 'durationMs'>, seed: number): string {
  const args = ['--scenario', options.scenario];
  if (options.regions !== undefined) args.push('--regions', String(options.regions));
  if (options.durationMs !== undefined) args.push('--duration', String(options.durationMs));
  args.push('--swarm', '1', '--seed', String(seed));
  return [cliCommand, ...args.map(shellQuote)].join(' ');
}

/**
 * A note when `--regions` or `--duration` changed a scenario's faults (see `withOverrides`), so a
 * run with fewer faults than its file lists does not pass for the full scenario; undefined when
 * nothing changed.
 */
export function formatOverrideNote(before: Scenario, after: Scenario): string | undefined {
  // withOverrides only drops and shortens faults, so one in `after` that matches none in `before`
  // field for field is one it cut short.
  const key = (fault: Fault): string => JSON.stringify(Object.entries(fault).sort(([a], [b]) => (a < b ? -1 : 1)));
  const original = new Set(before.faults.map(key));
  const dropped = before.faults.length - after.faults.length;
  const clipped = after.faults.filter((fault) => !original.has(key(fault))).length;
  if (dropped === 0 && clipped === 0) return undefined;
  const parts = [];
  if (dropped > 0) parts.push(`dropped ${formatFaultCount(dropped)}`);
  if (clipped > 0) parts.push(`cut ${formatFaultCount(clipped)} short`);
  return `note: the --regions/--duration overrides ${parts.join(' and ')} of ${before.name} (${formatFaultCount(before.faults.length)} in the file)`;
}

export interface ScenarioEntry {
  readonly name: string;
  /** The scenario's description, or why its file does not parse. */
  readonly description: string;
}

/** The `--list` output: one scenario per line, the default marked. */
export function formatScenarioList(entries: readonly ScenarioEntry[], defaultName: string): string {
  const width = Math.max(0, ...entries.map((entry) => entry.name.length));
  return entries
    .map((entry) => `${(entry.name === defaultName ? '* ' : '  ') + entry.name.padEnd(width)}  ${entry.description}`)
    .concat(`(* the default)`)
    .join('\n');
}

/**
 * The distinct fault kinds of a scenario, sorted: partitions with their kind (`partition/ring`),
 * crashes with durable state as `crash/durable`.
 */
export function faultKindsOf(faults: readonly Fault[]): string[] {
  const label = (fault: Fault): string => {
    if (fault.kind === 'partition') return `partition/${fault.partition}`;
    if (fault.kind === 'crash' && fault.durable) return 'crash/durable';
    return fault.kind;
  };
  return [...new Set(faults.map(label))].sort();
}

/**
 * A time span for people, truncated rather than rounded so that progress never runs ahead:
 * `850ms`, `12.3s`, `3m30s`, `10m`, `1h5m`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1_000) return `${Math.floor(ms)}ms`;
  if (ms < 60_000) return `${Math.floor(ms / 100) / 10}s`;
  if (ms < 3_600_000) {
    const minutes = Math.floor(ms / 60_000);
    const seconds = Math.floor((ms % 60_000) / 1_000);
    return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
  }
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  return minutes === 0 ? `${hours}h` : `${hours}h${minutes}m`;
}

/** An integer with thousands separators: `1,234,567`. */
export function formatCount(value: number): string {
  const sign = value < 0 ? '-' : '';
  const digits = String(Math.abs(Math.round(value)));
  return sign + digits.replace(/\B(?=(\d{3})+$)/g, ',');
}

/** Simulated time over wall time; a run faster than the wall clock's resolution shows as a bound. */
export function formatSpeedUp(result: Pick<SimResult, 'simulatedMs' | 'wallMs'>): string {
  if (result.wallMs < 1) return `≥${formatCount(result.simulatedMs)}×`;
  const speedUp = result.simulatedMs / result.wallMs;
  return speedUp >= 100 ? `${formatCount(speedUp)}×` : `${speedUp.toFixed(1)}×`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1_000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1_000).toFixed(1)} kB`;
  if (bytes < 1_000_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`;
  return `${(bytes / 1_000_000_000).toFixed(2)} GB`;
}

function formatConvergence(result: SimResult): string {
  if (result.convergence.length === 0) return 'no fault healed';
  return result.convergence
    .map((figure) => `${figure.fault} ${figure.convergedAfterMs === undefined ? 'never converged' : `after ${formatDuration(figure.convergedAfterMs)}`}`)
    .join(', ');
}

function formatFaultCount(count: number): string {
  return count === 0 ? 'no faults' : count === 1 ? '1 fault' : `${formatCount(count)} faults`;
}

function swarmLine(seed: number, verdict: string, speedUp: string, scenario: Scenario): string {
  const kinds = faultKindsOf(scenario.faults);
  const faults = formatFaultCount(scenario.faults.length) + (kinds.length === 0 ? '' : `: ${kinds.join(', ')}`);
  return `seed ${String(seed).padEnd(8)} ${verdict.padEnd(5)} ${speedUp.padStart(9)}  ${faults}`;
}

function formatTable(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

/** Quotes an argument for a POSIX shell unless it is plainly safe. */
function shellQuote(arg: string): string {
  return /^[\w./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
