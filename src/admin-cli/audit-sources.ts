import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { adminCounterReadKeysMax, auditEntriesMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { LedgerRow } from '../ledger/ledger-row.js';
import { resolveUpstreamTargets } from '../node/gateway/upstream-targets.js';
import { parseNodeConfig } from '../node/node-config.js';
import { secretOf } from '../upstream/upstream-request.js';
import type { AuditPlan, AuditScope, AuditSubject, LedgerTally, UpstreamTotals } from './audit-reconcile.js';
import { adminRequestTimeoutMs } from './run-admin.js';
import { causeOf, refusalOf } from './run-usage.js';

/**
 * Where `carpool audit` reads its three accounts from, each through one HTTP request (or a few):
 * the policy and the audit log of the first node, every node's ledger rows (its export, one per
 * side), the counters at QUORUM (GET /counters/read), the emulator's tally, and the account keys
 * out of node configs. Each failure is a message saying which source and why.
 */
export interface AuditNode {
  /** `http://host:port` of its admin endpoint. */
  readonly url: string;
  /** How the output names it until the node has said its name. */
  readonly label: string;
}

async function getJson(url: string, token: string | undefined): Promise<Result<unknown, string>> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(adminRequestTimeoutMs),
    });
  } catch (error) {
    return err(`cannot reach ${new URL(url).host}: ${causeOf(error)}`);
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Printed as it is below.
  }
  return response.status === 200 ? ok(body) : err(`GET ${new URL(url).pathname} at ${new URL(url).host}: ${refusalOf(response.status, body)}`);
}

const record = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
const array = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** The tenants and accounts of the policy, with their limits. */
export async function readSubjects(node: AuditNode, token: string): Promise<Result<AuditSubject[], string>> {
  const policy = await getJson(`${node.url}/policy`, token);
  if (!policy.ok) return policy;
  const { tenants, accounts } = record(policy.value);
  const subjects: AuditSubject[] = [];
  for (const [scope, list] of [
    ['tenant', tenants],
    ['account', accounts],
  ] as const) {
    for (const entry of array(list)) {
      const { id, limits } = record(entry);
      if (typeof id !== 'string') continue;
      subjects.push({ scope, id, limits: array(limits).map(record) as unknown as AuditSubject['limits'] });
    }
  }
  return ok(subjects);
}

/** The audit log's entries, and whether it is full (older adjustments may then be gone from it). */
export async function readAuditLog(node: AuditNode, token: string): Promise<Result<{ readonly entries: unknown[]; readonly full: boolean }, string>> {
  const log = await getJson(`${node.url}/audit?limit=${auditEntriesMax}`, token);
  if (!log.ok) return log;
  const entries = array(record(log.value).entries);
  return ok({ entries, full: entries.length >= auditEntriesMax });
}

/** The members of the mesh as the node knows them: itself and its configured peers. */
export async function readMembers(node: AuditNode, token: string): Promise<Result<string[], string>> {
  const status = await getJson(`${node.url}/status`, token);
  if (!status.ok) return status;
  const { node: self, peers } = record(status.value);
  return ok([String(self), ...array(peers).map((peer) => String(record(peer).peer))]);
}

/**
 * One side of a node's ledger over the plan's range, row by row into `tally`; the node's name.
 * Refused when part of the range lives only in daily aggregates (rows past retention), which no
 * export can list.
 */
export async function readLedgerSide(node: AuditNode, token: string, plan: AuditPlan, side: AuditScope, tally: LedgerTally): Promise<Result<string, string>> {
  const range = `since=${plan.fetchSinceMs}&until=${plan.fetchUntilMs}&side=${side}`;
  const totals = await getJson(`${node.url}/usage/ledger?${range}`, token);
  if (!totals.ok) return totals;
  const { fromAggregates, node: name } = record(totals.value);
  if (typeof fromAggregates === 'number' && fromAggregates > 0) {
    return err(
      `${String(name)}: ${fromAggregates} requests of the range read are kept only as daily aggregates (past the retention age); audit a more recent range`,
    );
  }
  let response: Response;
  try {
    response = await fetch(`${node.url}/usage/export?${range}&format=jsonl`, { headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    return err(`cannot reach ${node.label}: ${causeOf(error)}`);
  }
  if (response.status !== 200 || response.body === null)
    return err(`GET /usage/export at ${node.label}: ${refusalOf(response.status, await response.text().catch(() => ''))}`);
  const decoder = new TextDecoder();
  let rest = '';
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) tally.add(JSON.parse(line) as LedgerRow, side);
    }
  } catch (error) {
    return err(`the ledger export of ${node.label} broke off: ${causeOf(error)}`);
  }
  if (rest.trim() !== '') return err(`the ledger export of ${node.label} ended inside a row`);
  return ok(response.headers.get('carpool-node') ?? String(name));
}

/** The plan's keys read at QUORUM at `node`, a hundred per request. */
export async function readCounters(node: AuditNode, token: string, plan: AuditPlan): Promise<Result<Map<string, number>, string>> {
  const values = new Map<string, number>();
  for (let at = 0; at < plan.cells.length; at += adminCounterReadKeysMax) {
    const keys = plan.cells.slice(at, at + adminCounterReadKeysMax).map((cell) => `key=${encodeURIComponent(cell.key)}`);
    const read = await getJson(`${node.url}/counters/read?consistency=quorum&${keys.join('&')}`, token);
    if (!read.ok) return read;
    for (const entry of array(record(read.value).counters)) {
      const { key, value } = record(entry);
      if (typeof key === 'string' && typeof value === 'number') values.set(key, value);
    }
  }
  return ok(values);
}

/** Which account each emulator key is, from the `upstream.accounts` of node configs that call `emulatorUrl`. */
export async function readAccountKeys(files: readonly string[], emulatorUrl: string, env: NodeJS.ProcessEnv): Promise<Result<Map<string, string>, string>> {
  const keys = new Map<string, string>();
  for (const file of files) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      return err(`cannot read the node config ${file}: ${(error as Error).message}`);
    }
    const config = parseNodeConfig(raw, env);
    if (!config.ok) return err(`${file}: field ${config.error.field}: ${config.error.reason}`);
    const targets = await resolveUpstreamTargets(config.value.upstream, { baseDir: dirname(resolve(file)), env });
    if (!targets.ok) return err(`${file}: field ${targets.error.field}: ${targets.error.reason}`);
    for (const [account, target] of targets.value) if (sameBase(target.baseUrl, emulatorUrl)) keys.set(account, secretOf(target.credential));
  }
  return ok(keys);
}

function sameBase(a: string, b: string): boolean {
  const normal = (url: string): string => url.replace(/\/+$/, '').toLowerCase();
  return normal(a) === normal(b);
}

export interface UpstreamTally {
  readonly byAccount: Map<string, UpstreamTotals>;
  /** Keys with usage that no account holds, by a label that shows only the key's start. */
  readonly unclaimed: Map<string, UpstreamTotals>;
}

/** The emulator's tally per key (GET /_emulator/stats), as the audit's upstream totals per account. */
export async function readEmulator(url: string, accountKeys: ReadonlyMap<string, string>): Promise<Result<UpstreamTally, string>> {
  const stats = await getJson(`${url}/_emulator/stats`, undefined);
  if (!stats.ok) return err(`the emulator: ${stats.error}`);
  const accountOf = new Map([...accountKeys].map(([account, key]) => [key, account]));
  const byAccount = new Map<string, UpstreamTotals>();
  const unclaimed = new Map<string, UpstreamTotals>();
  for (const [key, row] of Object.entries(record(record(stats.value).keys))) {
    const r = record(row);
    const count = (name: string): number => (typeof r[name] === 'number' ? r[name] : 0);
    // `messages` are the answers that began a message: the calls that reached a model.
    const totals = {
      requests: count('messages'),
      input_tokens: count('inputTokens') + count('cacheCreationInputTokens'),
      output_tokens: count('outputTokens'),
      cache_read_tokens: count('cacheReadInputTokens'),
    };
    const account = accountOf.get(key);
    if (account !== undefined) byAccount.set(account, totals);
    else if (Object.values(totals).some((value) => value > 0)) unclaimed.set(`${key.slice(0, 12)}…${key.slice(-4)}`, totals);
  }
  return ok({ byAccount, unclaimed });
}
