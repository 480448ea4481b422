// The books of one scheduling benchmark arm, closed once nothing runs any more: what the clients
// were told they used (the usage of every 200), what the node's ledger charged (the tenant side,
// per tenant, and the account side, per account) and what the emulator counted per key. The
// direct arm has no node: its clients' sum must equal the emulator's count on the one key.
import type { EmulatorChild, NodeChild } from './gateway-processes.js';
import { nodeAdminGet } from './gateway-processes.js';
import type { MixTenant } from './scheduling-mix.js';

export interface TokenSums {
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheWriteTokens: number;
  readonly cacheReadTokens: number;
}

export interface Reconciliation {
  /** Every check held. */
  readonly holds: boolean;
  /** What was compared, and every difference (a few per check). */
  readonly lines: readonly string[];
}

/** The clients' side: per tenant (in the mix's order), and the requests that got no answer. */
export interface ClientSideSums {
  readonly byTenant: readonly TokenSums[];
  readonly unanswered: number;
}

const fields = ['requests', 'inputTokens', 'outputTokens', 'cacheWriteTokens', 'cacheReadTokens'] as const;
const zero: TokenSums = Object.freeze({ requests: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0 });
/** Differences listed per check; the rest are counted. */
const differencesShownMax = 5;
/** How long the books wait for the last calls to end. */
const settleTimeoutMs = 30_000;

function add(a: TokenSums, b: TokenSums): TokenSums {
  return {
    requests: a.requests + b.requests,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
  };
}

const same = (a: TokenSums, b: TokenSums): boolean => fields.every((f) => a[f] === b[f]);
const atMost = (a: TokenSums, b: TokenSums): boolean => fields.every((f) => a[f] <= b[f]);

export function sumsText(s: TokenSums): string {
  const cache = s.cacheWriteTokens + s.cacheReadTokens === 0 ? '' : `, cache ${s.cacheWriteTokens} written / ${s.cacheReadTokens} read`;
  return `${s.requests.toLocaleString('en-US')} requests, ${s.inputTokens.toLocaleString('en-US')} input + ${s.outputTokens.toLocaleString('en-US')} output tokens${cache}`;
}

interface KeyRow {
  readonly messages: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheCreationInputTokens: number;
  readonly cacheReadInputTokens: number;
}

interface EmulatorBooks {
  readonly byKey: ReadonlyMap<string, TokenSums>;
  readonly responsesInFlight: number;
}

async function emulatorBooks(emulator: EmulatorChild): Promise<EmulatorBooks> {
  const stats = (await (await fetch(`${emulator.url}/_emulator/stats`)).json()) as { responsesInFlight: number; keys: Record<string, KeyRow> };
  const byKey = new Map<string, TokenSums>();
  for (const [key, row] of Object.entries(stats.keys)) {
    byKey.set(key, {
      requests: row.messages,
      inputTokens: row.inputTokens,
      outputTokens: row.outputTokens,
      cacheWriteTokens: row.cacheCreationInputTokens,
      cacheReadTokens: row.cacheReadInputTokens,
    });
  }
  return { byKey, responsesInFlight: stats.responsesInFlight };
}

/** The emulator's books once it answers nothing more (bounded wait). */
async function settledEmulatorBooks(emulator: EmulatorChild): Promise<EmulatorBooks> {
  const deadline = performance.now() + settleTimeoutMs;
  let books = await emulatorBooks(emulator);
  // Bounded by the deadline: one look every 100 ms.
  while (books.responsesInFlight > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    books = await emulatorBooks(emulator);
  }
  return books;
}

/** The clients' sum against the emulator's count on the one key the direct arm used (every other key must show nothing). */
export async function reconcileDirect(emulator: EmulatorChild, key: string, client: ClientSideSums): Promise<Reconciliation> {
  const books = await settledEmulatorBooks(emulator);
  const told = client.byTenant.reduce(add, zero);
  const counted = books.byKey.get(key) ?? zero;
  const elsewhere = [...books.byKey].filter(([k, s]) => k !== key && !same(s, zero)).length;
  // A request the client gave up on may still have been answered (and counted) upstream.
  const holds = (client.unanswered === 0 ? same(told, counted) : atMost(told, counted)) && elsewhere === 0 && books.responsesInFlight === 0;
  const lines = [
    `clients were told ${sumsText(told)}; the emulator counted ${sumsText(counted)} on the account's key` +
      (client.unanswered === 0 ? '' : ` (${client.unanswered} request(s) got no answer: the count may exceed what the clients saw)`),
  ];
  if (elsewhere > 0) lines.push(`${elsewhere} other key(s) of the emulator counted calls the direct arm never made`);
  if (books.responsesInFlight > 0) lines.push(`the emulator still ran ${books.responsesInFlight} answer(s) after ${settleTimeoutMs / 1000} s`);
  return { holds, lines };
}

/** Waits (bounded) until the node runs no call and holds or waits for no permit: every request it took is settled. */
export async function waitNodeSettled(node: NodeChild, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  // Bounded by the deadline: one look every 100 ms.
  while (performance.now() < deadline) {
    const status = (await nodeAdminGet(node, '/status')).body as { gateway?: { inFlight?: number } };
    const pool = (await nodeAdminGet(node, '/pool')).body as { totals?: { held?: number; waiting?: number } };
    if (status.gateway?.inFlight === 0 && pool.totals?.held === 0 && pool.totals.waiting === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

interface LedgerTotals {
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheWriteTokens: number;
  readonly cacheReadTokens: number;
}

interface LedgerView {
  readonly totals: LedgerTotals;
  readonly groups: readonly { readonly key: Readonly<Record<string, string>>; readonly totals: LedgerTotals }[];
  readonly groupsTruncated: boolean;
}

const sumsOf = (t: LedgerTotals): TokenSums => ({
  requests: t.requests,
  inputTokens: t.inputTokens,
  outputTokens: t.outputTokens,
  cacheWriteTokens: t.cacheWriteTokens,
  cacheReadTokens: t.cacheReadTokens,
});

async function ledger(node: NodeChild, query: string): Promise<LedgerView> {
  const { status, body } = await nodeAdminGet(node, `/usage/ledger?${query}`);
  if (status !== 200) throw new Error(`GET /usage/ledger?${query} answered ${status}: ${JSON.stringify(body)}`);
  return body as LedgerView;
}

/** One check's verdict line and its differences. */
function check(lines: string[], title: string, differences: readonly string[]): boolean {
  lines.push(`${title}: ${differences.length === 0 ? 'equal' : `${differences.length} difference(s)`}`);
  for (const d of differences.slice(0, differencesShownMax)) lines.push(`    ${d}`);
  if (differences.length > differencesShownMax) lines.push(`    … and ${differences.length - differencesShownMax} more`);
  return differences.length === 0;
}

/**
 * Three checks, once the node is settled: the tenant side of its ledger equals the account side
 * (every charge made once on each side); each account's rows equal what the emulator counted on
 * its key (`acct-i` is the emulator's key i); and each tenant was charged what its clients were
 * told, or more when some requests got no answer (a call drained after its client left is charged).
 */
export async function reconcileNode(node: NodeChild, emulator: EmulatorChild, tenants: readonly MixTenant[], client: ClientSideSums): Promise<Reconciliation> {
  const settled = await waitNodeSettled(node, settleTimeoutMs);
  const books = await settledEmulatorBooks(emulator);
  const tenantSide = await ledger(node, 'groupBy=tenant');
  const accountSide = await ledger(node, 'side=account&groupBy=account');
  const lines: string[] = [];
  if (!settled) lines.push(`the node still ran calls or held permits after ${settleTimeoutMs / 1000} s`);
  let holds = settled && !tenantSide.groupsTruncated && !accountSide.groupsTruncated;
  const charged = sumsOf(tenantSide.totals);
  const upstream = [...books.byKey.values()].reduce(add, zero);
  lines.push(`tenants charged ${sumsText(charged)}; accounts charged ${sumsText(sumsOf(accountSide.totals))}; the emulator counted ${sumsText(upstream)}`);
  holds = check(lines, 'tenant side = account side', same(charged, sumsOf(accountSide.totals)) ? [] : ['the totals above differ']) && holds;
  const accountDifferences: string[] = [];
  emulator.keys.forEach((key, i) => {
    const row = accountSide.groups.find((g) => g.key.account === `acct-${i}`);
    const rows = row === undefined ? zero : sumsOf(row.totals);
    const counted = books.byKey.get(key) ?? zero;
    if (!same(rows, counted)) accountDifferences.push(`acct-${i}: charged ${sumsText(rows)}, the emulator counted ${sumsText(counted)}`);
  });
  holds = check(lines, 'each account = the emulator on its key', accountDifferences) && holds;
  const tenantDifferences: string[] = [];
  tenants.forEach((tenant, i) => {
    const row = tenantSide.groups.find((g) => g.key.tenant === tenant.id);
    const rows = row === undefined ? zero : sumsOf(row.totals);
    const told = client.byTenant[i] ?? zero;
    const fine = client.unanswered === 0 ? same(told, rows) : atMost(told, rows);
    if (!fine) tenantDifferences.push(`${tenant.id}: charged ${sumsText(rows)}, its clients were told ${sumsText(told)}`);
  });
  const relation = client.unanswered === 0 ? '=' : `≥ (${client.unanswered} request(s) got no answer)`;
  holds = check(lines, `each tenant charged ${relation} what its clients were told`, tenantDifferences) && holds;
  return { holds, lines };
}
