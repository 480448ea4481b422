import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { asRegionId } from '../core/ids.js';
import { err, ok, type Result } from '../core/result.js';
import { nodeConfigFileName } from '../local/local-plan.js';
import { isProcessAlive, readLocalState } from '../local/local-state.js';
import { type AuditArgs, auditUsage } from './audit-args.js';
import { auditLines } from './audit-format.js';
import { adjustmentsOf, type AuditPlan, type AuditReport, LedgerTally, planAudit, reconcile } from './audit-reconcile.js';
import {
  type AuditNode,
  readAccountKeys,
  readAuditLog,
  readCounters,
  readEmulator,
  readLedgerSide,
  readMembers,
  readSubjects,
  type UpstreamTally,
} from './audit-sources.js';
import { resolveTime } from './usage-args.js';

/**
 * `carpool audit`: reads the policy and the audit log at the first node, every node's ledger
 * rows (both sides), the counters at QUORUM and, with an emulator, its tally; reconciles them
 * (./audit-reconcile.ts) and prints the table (./audit-format.ts) or the JSON.
 *
 * Every member of the mesh must be read: a member whose ledger is missing would make its
 * requests look like counters without rows, so the audit refuses to run without it (the first
 * node names the members). Counters are read once more, up to `auditCounterReadsMax` times a
 * second apart, while they differ from the ledger: a QUORUM read joins what a majority holds,
 * and the last charges of a third node may still be on their way by gossip.
 *
 * Exit codes: 0 all agree; 1 a difference; 2 the audit could not run (the command line, or a
 * source that could not be read).
 */
export interface AuditIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly nowMs: () => number;
  /** Waits between counter reads; a timer by default. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Counter reads while they still differ from the ledger. */
export const auditCounterReadsMax = 3;
/** Between two counter reads: a few gossip intervals. */
export const auditCounterReadGapMs = 1_000;

interface Sources {
  readonly nodes: readonly AuditNode[];
  readonly token: string;
  readonly emulator: string | undefined;
  readonly nodeConfigs: readonly string[];
}

export async function runAudit(args: AuditArgs, io: AuditIo): Promise<number> {
  if (args.help) {
    io.out(auditUsage);
    return 0;
  }
  const failed = (message: string): number => {
    io.err(`carpool audit: ${message}`);
    return 2;
  };
  const sources = await sourcesOf(args, io.env);
  if (!sources.ok) return failed(sources.error);
  const { nodes, token } = sources.value;
  const first = nodes[0] as AuditNode;
  const subjects = await readSubjects(first, token);
  if (!subjects.ok) return failed(subjects.error);
  const nowMs = io.nowMs();
  const untilMs = args.until === undefined ? nowMs : resolveTime(args.until, nowMs);
  const plan = planAudit(subjects.value, { sinceMs: resolveTime(args.since, nowMs), untilMs }, nowMs);
  if (!plan.ok) return failed(plan.error);
  const log = await readAuditLog(first, token);
  if (!log.ok) return failed(log.error);
  const upstreamKeys =
    sources.value.emulator === undefined ? ok(new Map<string, string>()) : await readAccountKeys(sources.value.nodeConfigs, sources.value.emulator, io.env);
  if (!upstreamKeys.ok) return failed(upstreamKeys.error);
  const tally = new LedgerTally(plan.value, upstreamKeys.value.keys());
  const names = await readLedgers(nodes, token, plan.value, tally);
  if (!names.ok) return failed(names.error);
  const adjustments = adjustmentsOf(log.value.entries);
  let report: AuditReport | undefined;
  let reads = 0;
  while (report === undefined || (report.differences > 0 && reads < auditCounterReadsMax)) {
    if (reads > 0) await (io.sleep ?? sleep)(auditCounterReadGapMs);
    reads++;
    const counters = await readCounters(first, token, plan.value);
    if (!counters.ok) return failed(counters.error);
    const upstream = await upstreamOf(sources.value.emulator, upstreamKeys.value);
    if (!upstream.ok) return failed(upstream.error);
    report = reconcile({
      plan: plan.value,
      tally,
      counters: counters.value,
      adjustments,
      upstream: upstream.value?.byAccount,
      unclaimedUpstream: upstream.value?.unclaimed,
    });
  }
  const context = {
    nodes: names.value,
    countersAt: names.value[0] ?? first.label,
    upstream: sources.value.emulator === undefined ? undefined : { url: sources.value.emulator, accounts: upstreamKeys.value.size },
    rows: tally.rows,
    auditLogFull: log.value.full,
    counterReads: reads,
  };
  if (args.json)
    io.out(
      JSON.stringify({ ...context, plan: { ...plan.value, cells: plan.value.cells.length }, differences: report.differences, lines: report.lines }, null, 2),
    );
  else for (const line of auditLines(plan.value, report, context)) io.out(line);
  return report.differences === 0 ? 0 : 1;
}

async function upstreamOf(emulator: string | undefined, keys: ReadonlyMap<string, string>): Promise<Result<UpstreamTally | undefined, string>> {
  return emulator === undefined ? ok(undefined) : readEmulator(emulator, keys);
}

/** Both sides of every node's ledger into `tally`; the nodes' names, checked against the mesh's members. */
async function readLedgers(nodes: readonly AuditNode[], token: string, plan: AuditPlan, tally: LedgerTally): Promise<Result<string[], string>> {
  const members = await readMembers(nodes[0] as AuditNode, token);
  if (!members.ok) return members;
  const names: string[] = [];
  for (const node of nodes) {
    let name: string | undefined;
    for (const side of ['tenant', 'account'] as const) {
      const read = await readLedgerSide(node, token, plan, side, tally);
      if (!read.ok) return read;
      name = read.value;
    }
    if (name !== undefined && names.includes(name)) return err(`${node.url} is node ${name} again: its rows would be counted twice`);
    names.push(name ?? node.label);
  }
  const missing = members.value.filter((member) => !names.includes(member));
  if (missing.length > 0)
    return err(`the mesh's member(s) ${missing.join(', ')} were not read: give an --admin URL for every node (each keeps the rows of the requests it settled)`);
  return ok(names);
}

/** The nodes, token, emulator and node configs: as given, or the running local mesh's. */
async function sourcesOf(args: AuditArgs, env: NodeJS.ProcessEnv): Promise<Result<Sources, string>> {
  let token = args.token;
  const tokenFile = args.tokenFile ?? (token === undefined ? env.CARPOOL_ADMIN_TOKEN_FILE : undefined);
  if (token === undefined && tokenFile !== undefined) {
    try {
      token = (await readFile(tokenFile, 'utf8')).trim();
    } catch (error) {
      return err(`cannot read the token file ${tokenFile}: ${(error as Error).message}`);
    }
  }
  if (args.admins.length > 0 && token !== undefined) {
    return ok({ nodes: args.admins.map((url) => ({ url, label: url })), token, emulator: args.emulator, nodeConfigs: args.nodeConfigs });
  }
  const state = await readLocalState(args.stateFile);
  if (!state.ok)
    return err(
      args.admins.length > 0 ? `--admin needs --token or --token-file (${state.error})` : `${state.error}; or give --admin for every node and --token-file`,
    );
  if (args.admins.length > 0)
    return ok({
      nodes: args.admins.map((url) => ({ url, label: url })),
      token: token ?? state.value.adminToken,
      emulator: args.emulator,
      nodeConfigs: args.nodeConfigs,
    });
  if (!isProcessAlive(state.value.pid))
    return err(`the local mesh that wrote ${args.stateFile} (pid ${state.value.pid}) is not running: start it with npm start, or give --admin`);
  const regions = state.value.regions;
  // The launcher writes each region's node config beside its state file.
  const nodeConfigs =
    args.nodeConfigs.length > 0
      ? args.nodeConfigs
      : regions.map((region) => join(dirname(args.stateFile), nodeConfigFileName({ name: asRegionId(region.region) })));
  return ok({
    nodes: regions.map((region) => ({ url: region.admin, label: region.region })),
    token: token ?? state.value.adminToken,
    emulator: args.emulator ?? state.value.emulator,
    nodeConfigs,
  });
}
