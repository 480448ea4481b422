// One crash run: a three-region local mesh (real node processes and the emulator, started and
// supervised by the launcher of `npm start`) under mixed load, region nodes killed with SIGKILL
// at random moments and restarted by the launcher, the whole mesh killed at once, and at the end
// the verdicts: the ledger rows against what the clients saw (chaos-checks.ts), the policy and
// the usage across a restart of every node at once, and `carpool audit` run as a user runs it.
// The short crash test (crash-mesh.test.ts) and `npm run chaos` (run-chaos.ts) both run this.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../src/core/random.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import { carpoolCommand, packageRoot } from '../../src/local/local-child.js';
import { type LocalMesh, startLocalMesh } from '../../src/local/local-mesh.js';
import { dataDirName } from '../../src/local/local-plan.js';
import { storeFileName } from '../../src/node/run-node.js';
import { sleep } from '../support/wait.js';
import { bindingLimits, type ChaosMeshShape, chaosMeshConfig, type ChaosRegion, chaosRegions } from './chaos-config.js';
import { type AuditJsonLine, checkLedger, explainAudit, type LedgerFigures } from './chaos-checks.js';
import { ChaosLoad, type SentRequest } from './chaos-load.js';
import { readLedgerFile } from './ledger-source.js';
import { killAndWait } from './mesh-waits.js';
import { checkWholeMeshRestart } from './whole-mesh-restart.js';

export interface ChaosRunOptions {
  readonly seed: number;
  /** Kills of one random region node, each waited out until the node serves again. */
  readonly rounds: number;
  /** After this round (under load) every node is killed at once; 0: never under load. */
  readonly meshKillAfterRound: number;
  readonly workers: number;
  /** Load between two kills, drawn from [min, max] ms. */
  readonly loadBetweenKillsMs: readonly [number, number];
  readonly requestsMax: number;
  readonly shape: ChaosMeshShape;
  /** A progress line per round and phase. */
  readonly log: (line: string) => void;
}

export interface ChaosSummary {
  readonly seed: number;
  readonly durationMs: number;
  readonly requests: Record<SentRequest['outcome'], number> & { readonly sent: number };
  /** How often each code ended an attempt that did not complete, most frequent first. */
  readonly failureCodes: readonly (readonly [string, number])[];
  readonly ledger: LedgerFigures & { readonly rows: number };
  readonly kills: number;
  /** Restarts the launcher made that came back serving. */
  readonly restarts: number;
  readonly audit: AuditRun;
  /** Every broken rule, as sentences; empty when the run passed. */
  readonly problems: readonly string[];
  /** The longest a killed node took to serve again. */
  readonly slowestRestartMs: number;
}

export interface AuditRun {
  readonly exitCode: number | null;
  /** What the differences were and what explains them (chaos-checks.ts `explainAudit`). */
  readonly note: string;
  /** The output when it was not the JSON report (the audit could not run). */
  readonly output: string;
}

/** Longest a `carpool audit` may take. */
const auditTimeoutMs = 60_000;
/** After the load stops: gossip carries the last charges everywhere (many intervals of 50 ms). */
const quietMs = 1_500;

export async function runChaos(options: ChaosRunOptions): Promise<ChaosSummary> {
  const startedMs = Date.now();
  const random = new SeededRandom(options.seed);
  const stateDir = mkdtempSync(join(tmpdir(), 'carpool-chaos-'));
  const config = await chaosMeshConfig(options.shape);
  // Quick restarts: the test is of the nodes, not of the launcher's backoff (its own tests have that).
  const started = await startLocalMesh(config, { stateDir, restartPolicy: { delayMsInitial: 200, delayMsMax: 1_000, stableMs: 60_000 } });
  if (!started.ok) {
    rmSync(stateDir, { recursive: true, force: true });
    throw new Error(`the chaos mesh did not start: ${started.error}`);
  }
  const mesh = started.value;
  options.log(`mesh up in ${seconds(Date.now() - startedMs)} (state in ${stateDir}); seed ${options.seed}`);
  const load = new ChaosLoad({
    endpoints: mesh.regions.map((region) => ({ region: region.region as ChaosRegion, grpc: region.grpc, http: region.http })),
    apiKeys: mesh.apiKeys,
    seed: options.seed,
    workers: options.workers,
    idPrefix: `chaos-${options.seed}`,
    requestsMax: options.requestsMax,
    callTimeoutMs: 15_000,
  });
  try {
    load.start();
    const kills = await killRounds(mesh, load, random, options);
    await load.stop();
    await sleep(quietMs);
    options.log(`load stopped: ${describeCounts(load)}`);
    const restart = await checkWholeMeshRestart(mesh, { idPrefix: `chaos-${options.seed}-after`, log: options.log });
    const sent = [...load.sent, ...restart.sent];
    const rows = readLedgers(mesh);
    const verdict = checkLedger(sent, rows, bindingLimits(options.shape));
    const audited = await runAudit(mesh, startedMs);
    const cutCalls = await callsCutByDeath(mesh);
    const explained =
      audited.lines === undefined
        ? { problems: [`carpool audit exited ${audited.exitCode} without a report: ${audited.output}`], note: 'no report' }
        : explainAudit(audited.lines, sent, rows, cutCalls);
    const audit: AuditRun = { exitCode: audited.exitCode, note: explained.note, output: audited.lines === undefined ? audited.output : '' };
    options.log(`carpool audit exited ${audit.exitCode}: ${audit.note}`);
    const restarts = chaosRegions.reduce((sum, region) => sum + mesh.restartsOf(region), 0);
    return {
      seed: options.seed,
      durationMs: Date.now() - startedMs,
      requests: { sent: sent.length, ...countsOf(sent) },
      failureCodes: failureCodesOf(sent),
      ledger: { rows: rows.length, ...verdict.figures },
      kills: kills.count,
      restarts,
      audit,
      problems: [...kills.problems, ...restart.problems, ...verdict.problems, ...explained.problems],
      slowestRestartMs: kills.slowestMs,
    };
  } finally {
    await load.stop();
    load.close();
    await mesh.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface KillReport {
  count: number;
  slowestMs: number;
  readonly problems: string[];
}

/** The kill rounds under load: one random node at a time, and once the whole mesh. */
async function killRounds(mesh: LocalMesh, load: ChaosLoad, random: SeededRandom, options: ChaosRunOptions): Promise<KillReport> {
  const report: KillReport = { count: 0, slowestMs: 0, problems: [] };
  const [gapMin, gapMax] = options.loadBetweenKillsMs;
  for (let round = 1; round <= options.rounds; round++) {
    await sleep(gapMin + random.int(gapMax - gapMin + 1));
    const victims: ChaosRegion[] = [chaosRegions[random.int(chaosRegions.length)] as ChaosRegion];
    if (round === options.meshKillAfterRound) victims.splice(0, 1, ...chaosRegions);
    const back = await killAndWait(mesh, victims);
    report.count += victims.length;
    report.slowestMs = Math.max(report.slowestMs, back.tookMs);
    if (back.problem !== undefined) report.problems.push(`round ${round}: ${back.problem}`);
    const what = victims.length === chaosRegions.length ? 'the whole mesh' : victims.join(',');
    options.log(
      `round ${round}/${options.rounds}: killed ${what}; restarted in ${seconds(back.backMs)}, serving again after ${seconds(back.tookMs)}; ${describeCounts(load)}`,
    );
    if (back.problem !== undefined) break;
  }
  return report;
}

export function readLedgers(mesh: LocalMesh): LedgerRow[] {
  return mesh.regions.flatMap((region) => readLedgerFile(join(mesh.stateDir, dataDirName, region.node, storeFileName)));
}

/**
 * `carpool audit --json` as a user runs it against the local mesh: its state file names the nodes
 * and the emulator. The report's lines, or the output when there is no report.
 */
export async function runAudit(mesh: LocalMesh, sinceMs: number): Promise<{ exitCode: number | null; lines: AuditJsonLine[] | undefined; output: string }> {
  const { command, args } = carpoolCommand();
  const child = spawn(command, [...args, 'audit', '--json', '--state', mesh.stateFile, '--since', String(sinceMs - 60_000)], {
    cwd: packageRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), auditTimeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  clearTimeout(timer);
  try {
    const report = JSON.parse(output) as { lines?: AuditJsonLine[] };
    return { exitCode, lines: report.lines, output };
  } catch {
    return { exitCode, lines: undefined, output };
  }
}

/** Upstream answers whose caller closed the connection mid-way: with drain the default, only a node's death does. */
export async function callsCutByDeath(mesh: LocalMesh): Promise<number> {
  const stats = (await (await fetch(`${mesh.emulator.url}/_emulator/stats`)).json()) as { keys: Record<string, { clientClosed: number }> };
  return Object.values(stats.keys).reduce((sum, key) => sum + key.clientClosed, 0);
}

export function countsOf(sent: readonly SentRequest[]): Record<SentRequest['outcome'], number> {
  const counts = { completed: 0, refused: 0, failed: 0, running: 0 };
  for (const request of sent) counts[request.outcome]++;
  return counts;
}

export function failureCodesOf(sent: readonly SentRequest[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const request of sent) for (const code of request.codes) if (code !== 'OK') counts.set(code, (counts.get(code) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

function describeCounts(load: ChaosLoad): string {
  const counts = load.counts();
  return `${load.sent.length} requests so far (${counts.completed} completed, ${counts.refused} refused, ${counts.failed} failed)`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
