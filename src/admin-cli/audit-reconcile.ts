import { weightedTokens } from '../admission/estimate.js';
import { auditCounterKeysMax, policyAccountsMax, windowExpiryHorizonMs } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { formatWindow, windowAt, windowEndMs, windowStartMs, type WindowUnit } from '../crdt/window.js';
import type { LedgerRow } from '../ledger/ledger-row.js';
import { defaultTokenWeights, type LimitWindowUnit } from '../mesh/policy/policy-schema.js';
import { formatKeyText } from '../node/admin/counter-key-text.js';

/**
 * The arithmetic of `carpool audit`, without I/O: what to compare, the ledger rows summed into
 * the counters' keys, and the verdict on each key. ./run-audit.ts fetches the inputs.
 *
 * Three sources, and what each must equal:
 *
 *   ledger     every node's rows (each node keeps those of the requests it settled), one side
 *              of the books per scope: tenant keys sum the tenant side (rows with role `local`
 *              or `origin`), account keys the account side (`local` or `home`), so a forwarded
 *              request, which has a row at each end, is counted once on each side;
 *   counters   the mesh's PN-counters read at QUORUM: for every key, counters = ledger + the
 *              usage adjustments the audit log records on it (a charge adds, a credit takes);
 *   upstream   what the upstream itself counted per account, when it tells (the emulator's
 *              `GET /_emulator/stats`): it has no windows, so it is compared with the account's
 *              rows over the whole range the audit read.
 *
 * Keys and windows. Only limited metrics are counted (a tenant's or account's limit rules), each
 * in its rule's window unit (`sec10` for a sliding rule): those keys are what the audit checks,
 * for every window that overlaps the asked range, read whole (so the ledger is read from the
 * start of the first window to the end of the last). A window that ended more than the counters'
 * expiry horizon ago is gone from the counters: its keys are counted as expired and not compared.
 * The metrics the gateway charges (src/admission/request-amounts.ts, src/pool/account-usage.ts):
 *
 *   requests         1 per row
 *   input_tokens     input + cache write
 *   output_tokens
 *   weighted_tokens  the row's own weighted tokens (under the tenant's weights) on the tenant
 *                    side; on the account side the four kinds under the default weights, per row
 *                    and rounded up, as accounts are charged
 *
 * A limit on any other metric (`cost`) is not charged by the gateway, so it has no counter to
 * compare: such limits are listed as not counted.
 *
 * Estimates. A row with `estimated` (a stream its client aborted; a request a node died running,
 * charged its reservation) holds what the node charged, not what the upstream reported, so the
 * upstream may differ from the ledger by up to those rows' amounts: it agrees when
 * ledger − estimated ≤ upstream ≤ ledger. Counters were charged the same estimate, so the
 * counter comparison stays exact.
 *
 * Interrupted requests. A node that died running a request ends it at its restart as a successor
 * would (src/admission/quota-gate.ts, "Durability"): the keys of the tenant's eventual limits are
 * released, those of its strict and escrow limits keep the estimate, and the row (outcome
 * `interrupted`, src/ledger/request-context.ts) holds that estimate. So an interrupted row counts
 * only on keys a strict or escrow limit counts on. It names no account (the node died before the
 * call's usage was known, and accounts are charged when a call ends), so the upstream may count
 * such calls above the account's rows.
 */
export type AuditScope = 'tenant' | 'account';

/** The metrics the gateway charges to counters, tenant and account alike. */
export const countedMetrics = ['requests', 'input_tokens', 'output_tokens', 'weighted_tokens'] as const;

/** What the upstream's tally is compared on: the counted token kinds, requests, and cache reads. */
export const upstreamMetrics = ['requests', 'input_tokens', 'output_tokens', 'cache_read_tokens'] as const;
export type UpstreamMetric = (typeof upstreamMetrics)[number];
export type UpstreamTotals = Readonly<Record<UpstreamMetric, number>>;

/**
 * Keys are read this long before the counters would expire them, so that no key expires
 * between the plan and the read (the read takes a few round trips per hundred keys).
 */
export const auditExpiryMarginMs = 60_000;

export interface AuditLimit {
  readonly metric: string;
  readonly window: LimitWindowUnit;
  readonly sliding: boolean;
  /** The limit's consistency mode, as the policy has it; decides how interrupted rows count (above). */
  readonly mode?: string;
}

/** A tenant or an account of the policy, with its limits. */
export interface AuditSubject {
  readonly scope: AuditScope;
  readonly id: string;
  readonly limits: readonly AuditLimit[];
}

export interface AuditCell {
  /** `<scope>/<subject>/<metric>/<unit>:<index>`, as GET /counters/read takes it. */
  readonly key: string;
  readonly scope: AuditScope;
  readonly subject: string;
  readonly metric: string;
  readonly unit: WindowUnit;
  readonly index: number;
  /** A strict or escrow limit counts on the key, so it kept the estimates of interrupted requests. */
  readonly keepsInterrupted: boolean;
}

export interface AuditPlan {
  /** The range asked: every window overlapping it is checked. */
  readonly sinceMs: number;
  readonly untilMs: number;
  /** The range read from the ledgers: the checked windows whole. */
  readonly fetchSinceMs: number;
  readonly fetchUntilMs: number;
  /** The keys compared, at most `auditCounterKeysMax`. */
  readonly cells: readonly AuditCell[];
  /** Keys of windows gone from the counters (past the expiry horizon), not compared. */
  readonly expired: number;
  /** Limits on metrics the gateway does not charge, as `tenant acme: cost per day`. */
  readonly uncounted: readonly string[];
}

export interface PlanOptions {
  readonly horizonMs?: number;
  readonly keysMax?: number;
}

/** The keys to compare for `subjects` over [sinceMs, untilMs) at `nowMs`; a message when there are too many. */
export function planAudit(
  subjects: readonly AuditSubject[],
  range: { readonly sinceMs: number; readonly untilMs: number },
  nowMs: number,
  options: PlanOptions = {},
): Result<AuditPlan, string> {
  const horizonMs = options.horizonMs ?? windowExpiryHorizonMs;
  const keysMax = options.keysMax ?? auditCounterKeysMax;
  const { sinceMs, untilMs } = range;
  if (untilMs <= sinceMs) return err('the range is empty: --until must be after --since');
  const cells: AuditCell[] = [];
  const uncounted: string[] = [];
  let expired = 0;
  let fetchSinceMs = sinceMs;
  let fetchUntilMs = untilMs;
  for (const subject of subjects) {
    const seen = new Set<string>();
    for (const limit of subject.limits) {
      if (!(countedMetrics as readonly string[]).includes(limit.metric)) {
        uncounted.push(`${subject.scope} ${subject.id}: ${limit.metric} per ${limit.sliding ? 'sliding ' : ''}${limit.window}`);
        continue;
      }
      const unit: WindowUnit = limit.sliding ? 'sec10' : limit.window;
      if (seen.has(`${limit.metric}/${unit}`)) continue;
      seen.add(`${limit.metric}/${unit}`);
      const first = windowAt(unit, sinceMs).index;
      const last = windowAt(unit, untilMs - 1).index;
      for (let index = first; index <= last; index++) {
        const window = { unit, index };
        if (windowEndMs(window) + horizonMs - auditExpiryMarginMs <= nowMs) {
          expired++;
          continue;
        }
        if (cells.length >= keysMax)
          return err(
            `the range holds more than ${keysMax} counter keys to read (sliding limits count in 10-second windows): narrow it with --since and --until`,
          );
        fetchSinceMs = Math.min(fetchSinceMs, windowStartMs(window));
        fetchUntilMs = Math.max(fetchUntilMs, windowEndMs(window));
        const keepsInterrupted = subject.limits.some(
          (other) => other.metric === limit.metric && (other.sliding ? 'sec10' : other.window) === unit && keepsEstimates(other),
        );
        cells.push({
          key: formatKeyText({ scope: subject.scope, subject: subject.id, metric: limit.metric, window }),
          scope: subject.scope,
          subject: subject.id,
          metric: limit.metric,
          unit,
          index,
          keepsInterrupted,
        });
      }
    }
  }
  return ok({ sinceMs, untilMs, fetchSinceMs, fetchUntilMs, cells, expired, uncounted });
}

/** Strict and escrow limits keep an interrupted request's estimate; eventual ones release it. */
function keepsEstimates(limit: AuditLimit): boolean {
  return limit.mode === 'strict' || limit.mode === 'escrow';
}

/** What one side of a row adds to a counter metric; see the file comment. */
export function rowAmount(row: LedgerRow, scope: AuditScope, metric: string): number {
  switch (metric) {
    case 'requests':
      return 1;
    case 'input_tokens':
      return row.inputTokens + row.cacheWriteTokens;
    case 'output_tokens':
      return row.outputTokens;
    case 'weighted_tokens':
      return scope === 'tenant'
        ? row.weightedTokens
        : weightedTokens(
            { input: row.inputTokens, output: row.outputTokens, cacheWrite: row.cacheWriteTokens, cacheRead: row.cacheReadTokens },
            defaultTokenWeights,
          );
    default:
      return 0;
  }
}

function upstreamAmount(row: LedgerRow, metric: UpstreamMetric): number {
  return metric === 'cache_read_tokens' ? row.cacheReadTokens : rowAmount(row, 'account', metric);
}

interface Sum {
  amount: number;
  estimated: number;
}

/**
 * Ledger rows summed into the plan's keys as they stream in from the nodes, and into upstream
 * totals for the accounts whose upstream tally is known. Memory: one sum per planned key and per
 * such account, whatever the number of rows.
 */
export class LedgerTally {
  /** Rows added per side. */
  readonly rows = { tenant: 0, account: 0 };
  private readonly sums = new Map<string, Sum>();
  private readonly rules = new Map<string, { readonly metric: string; readonly unit: WindowUnit; readonly keepsInterrupted: boolean }[]>();
  private readonly upstream = new Map<string, Record<UpstreamMetric, Sum>>();
  /** Accounts seen on the account side, at most `policyAccountsMax` (the policy holds no more). */
  private readonly seen = new Set<string>();
  /**
   * Tenant-side rows of calls interrupted by a node's death. No node learnt their account or
   * usage, so the upstream may count up to one request per such call more than the account-side
   * rows; `upstreamLines` marks what they explain `interrupted`.
   */
  interrupted = 0;

  constructor(plan: AuditPlan, upstreamAccounts: Iterable<string> = []) {
    for (const cell of plan.cells) {
      this.sums.set(cell.key, { amount: 0, estimated: 0 });
      const subject = `${cell.scope}/${cell.subject}`;
      const rules = this.rules.get(subject) ?? [];
      if (!rules.some((rule) => rule.metric === cell.metric && rule.unit === cell.unit))
        rules.push({ metric: cell.metric, unit: cell.unit, keepsInterrupted: cell.keepsInterrupted });
      this.rules.set(subject, rules);
    }
    for (const account of upstreamAccounts) {
      this.upstream.set(account, Object.fromEntries(upstreamMetrics.map((metric) => [metric, { amount: 0, estimated: 0 }])) as Record<UpstreamMetric, Sum>);
    }
  }

  /** A row of `side`'s export; a row of the other side's roles is a caller's mistake and ignored. */
  add(row: LedgerRow, side: AuditScope): void {
    const onSide = side === 'tenant' ? row.role !== 'home' : row.role !== 'origin';
    if (!onSide) return;
    this.rows[side]++;
    if (side === 'tenant' && row.outcome === 'interrupted') this.interrupted++;
    const subject = side === 'tenant' ? row.tenant : row.account;
    if (subject === null) return;
    if (side === 'account' && this.seen.size < policyAccountsMax) this.seen.add(subject);
    for (const rule of this.rules.get(`${side}/${subject}`) ?? []) {
      // The restart released an interrupted request's charge on eventual keys (see the file comment).
      if (row.outcome === 'interrupted' && !rule.keepsInterrupted) continue;
      const key = formatKeyText({ scope: side, subject, metric: rule.metric, window: windowAt(rule.unit, row.chargedAtMs) });
      const sum = this.sums.get(key);
      if (sum === undefined) continue;
      const amount = rowAmount(row, side, rule.metric);
      sum.amount += amount;
      if (row.estimated) sum.estimated += amount;
    }
    const totals = side === 'account' ? this.upstream.get(subject) : undefined;
    if (totals === undefined) return;
    for (const metric of upstreamMetrics) {
      const amount = upstreamAmount(row, metric);
      totals[metric].amount += amount;
      if (row.estimated) totals[metric].estimated += amount;
    }
  }

  sum(key: string): Readonly<Sum> {
    return this.sums.get(key) ?? { amount: 0, estimated: 0 };
  }

  upstreamSum(account: string, metric: UpstreamMetric): Readonly<Sum> | undefined {
    return this.upstream.get(account)?.[metric];
  }

  /** The accounts that account-side rows named. */
  accounts(): ReadonlySet<string> {
    return this.seen;
  }
}

/**
 * The usage adjustments of an audit log (GET /audit's `entries`), summed per counter key: what
 * operators charged (+) and credited (−) by hand, which the counters hold and the ledger does not.
 * Entries of other actions, and malformed ones, are skipped.
 */
export function adjustmentsOf(entries: readonly unknown[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const entry of entries) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { action, target, detail } = entry as { action?: unknown; target?: unknown; detail?: unknown };
    if (action !== 'usage.adjust' || typeof target !== 'string' || typeof detail !== 'object' || detail === null) continue;
    const { metric, window, kind, amount } = detail as Record<string, unknown>;
    if (typeof metric !== 'string' || typeof window !== 'string' || typeof amount !== 'number' || (kind !== 'charge' && kind !== 'credit')) continue;
    const key = `${target}/${metric}/${window}`;
    sums.set(key, (sums.get(key) ?? 0) + (kind === 'charge' ? amount : -amount));
  }
  return sums;
}

export type Verdict = 'agrees' | 'within-estimate' | 'interrupted' | 'differs' | 'unchecked';

export interface AuditLine {
  /** `tenant acme`, `account acct-1`, or `upstream key <prefix>…` for a key no account holds. */
  readonly subject: string;
  /** `<unit>:<index>`, or `range` for the upstream comparison. */
  readonly window: string;
  readonly metric: string;
  readonly ledger: number | undefined;
  /** Of `ledger`, what estimated rows charged. */
  readonly estimated: number;
  /** Usage adjustments on the key, net. */
  readonly adjustments: number;
  readonly counters: number | undefined;
  readonly upstream: number | undefined;
  /** counters − (ledger + adjustments), or upstream − ledger. */
  readonly diff: number;
  readonly verdict: Verdict;
}

export interface ReconcileInput {
  readonly plan: AuditPlan;
  readonly tally: LedgerTally;
  /** Every planned key's value, read at QUORUM. */
  readonly counters: ReadonlyMap<string, number>;
  readonly adjustments: ReadonlyMap<string, number>;
  /** Per account, what the upstream counted; undefined when no upstream was asked. */
  readonly upstream?: ReadonlyMap<string, UpstreamTotals> | undefined;
  /** Upstream keys with usage that no account of the mesh holds, by a printable label. */
  readonly unclaimedUpstream?: ReadonlyMap<string, UpstreamTotals> | undefined;
}

export interface AuditReport {
  readonly lines: readonly AuditLine[];
  /** Lines whose verdict is `differs`. */
  readonly differences: number;
}

export function reconcile(input: ReconcileInput): AuditReport {
  const lines: AuditLine[] = [];
  for (const cell of input.plan.cells) {
    const { amount, estimated } = input.tally.sum(cell.key);
    const adjustments = input.adjustments.get(cell.key) ?? 0;
    const counters = input.counters.get(cell.key);
    const diff = counters === undefined ? 0 : counters - (amount + adjustments);
    const verdict: Verdict = counters === undefined ? 'unchecked' : diff === 0 ? 'agrees' : 'differs';
    lines.push({
      subject: `${cell.scope} ${cell.subject}`,
      window: formatWindow(cell),
      metric: cell.metric,
      ledger: amount,
      estimated,
      adjustments,
      counters,
      upstream: undefined,
      diff,
      verdict,
    });
  }
  if (input.upstream !== undefined) lines.push(...upstreamLines(input.tally, input.upstream, input.unclaimedUpstream ?? new Map()));
  return { lines, differences: lines.filter((line) => line.verdict === 'differs').length };
}

function upstreamLines(tally: LedgerTally, upstream: ReadonlyMap<string, UpstreamTotals>, unclaimed: ReadonlyMap<string, UpstreamTotals>): AuditLine[] {
  const lines: AuditLine[] = [];
  const accounts = [...new Set([...upstream.keys(), ...tally.accounts()])].sort();
  // Upstream requests above the ledger that interrupted calls may explain, over all accounts:
  // one each; tokens only on an account whose request count they explain.
  let unexplained = tally.interrupted;
  for (const account of accounts) {
    const counted = upstream.get(account);
    const requests = tally.upstreamSum(account, 'requests');
    const extraRequests = counted === undefined || requests === undefined ? 0 : counted.requests - requests.amount;
    const explained = extraRequests > 0 && extraRequests <= unexplained;
    if (explained) unexplained -= extraRequests;
    for (const metric of upstreamMetrics) {
      const sum = tally.upstreamSum(account, metric);
      const line = { subject: `account ${account}`, window: 'range', metric, adjustments: 0, counters: undefined };
      if (counted === undefined || sum === undefined) {
        // No key known for the account: its upstream tally cannot be told apart from another's.
        lines.push({ ...line, ledger: sum?.amount, estimated: sum?.estimated ?? 0, upstream: undefined, diff: 0, verdict: 'unchecked' });
        continue;
      }
      const value = counted[metric];
      const diff = value - sum.amount;
      const verdict: Verdict =
        diff === 0 ? 'agrees' : diff < 0 && -diff <= sum.estimated ? 'within-estimate' : diff > 0 && explained ? 'interrupted' : 'differs';
      lines.push({ ...line, ledger: sum.amount, estimated: sum.estimated, upstream: value, diff, verdict });
    }
  }
  for (const [label, counted] of unclaimed) {
    for (const metric of upstreamMetrics) {
      const value = counted[metric];
      lines.push({
        subject: `upstream key ${label}`,
        window: 'range',
        metric,
        ledger: undefined,
        estimated: 0,
        adjustments: 0,
        counters: undefined,
        upstream: value,
        diff: value,
        verdict: value === 0 ? 'agrees' : 'differs',
      });
    }
  }
  return lines;
}
