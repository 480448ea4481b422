import { formatDurationMs } from '../core/duration-text.js';
import { windowExpiryHorizonMs } from '../core/limits.js';
import { formatTime, table } from './admin-format.js';
import { type AuditLine, type AuditPlan, type AuditReport, auditExpiryMarginMs, type Verdict } from './audit-reconcile.js';

/**
 * The text `carpool audit` prints: where it read from, the table of every key with usage on any
 * side (ledger, counters, upstream side by side), what the columns mean, and the result.
 */
export interface AuditContext {
  readonly nodes: readonly string[];
  readonly countersAt: string;
  /** The emulator's URL and how many accounts' keys are known; undefined without an upstream. */
  readonly upstream: { readonly url: string; readonly accounts: number } | undefined;
  readonly rows: { readonly tenant: number; readonly account: number };
  readonly auditLogFull: boolean;
  /** Counter reads made before the counters settled (gossip still arriving). */
  readonly counterReads: number;
}

const verdictText: Readonly<Record<Verdict, string>> = {
  agrees: 'ok',
  'within-estimate': 'ok (estimate)',
  interrupted: 'ok (interrupted)',
  differs: 'DIFFERS',
  unchecked: 'unchecked',
};

const cell = (value: number | undefined): string => (value === undefined ? '-' : String(value));

/** A line worth printing: something on some side, or a verdict other than agreement. */
function shown(line: AuditLine): boolean {
  return line.verdict !== 'agrees' || (line.ledger ?? 0) !== 0 || (line.counters ?? 0) !== 0 || (line.upstream ?? 0) !== 0 || line.adjustments !== 0;
}

export function auditLines(plan: AuditPlan, report: AuditReport, context: AuditContext): string[] {
  const lines = [
    `ledger: ${context.nodes.length} node(s) (${context.nodes.join(', ')}), ${context.rows.tenant} tenant-side and ${context.rows.account} account-side rows from ${formatTime(plan.fetchSinceMs)} to ${formatTime(plan.fetchUntilMs)}`,
    `counters: read at QUORUM at ${context.countersAt}${context.counterReads > 1 ? ` (read ${context.counterReads} times while gossip settled)` : ''}`,
    `upstream: ${context.upstream === undefined ? 'not compared (give --emulator)' : `the emulator at ${context.upstream.url}, ${context.upstream.accounts} account key(s) known`}`,
    `windows: every counter window of the limits that overlaps ${formatTime(plan.sinceMs)} to ${formatTime(plan.untilMs)}`,
    '',
  ];
  const printed = report.lines.filter(shown);
  if (printed.length === 0) lines.push(`no usage in ${report.lines.length} keys checked`);
  else {
    lines.push(
      ...table([
        ['SUBJECT', 'WINDOW', 'METRIC', 'LEDGER', 'ESTIMATED', 'ADJUSTED', 'COUNTERS', 'UPSTREAM', 'DIFF', ''],
        ...printed.map((line) => [
          line.subject,
          line.window,
          line.metric,
          cell(line.ledger),
          String(line.estimated),
          String(line.adjustments),
          cell(line.counters),
          cell(line.upstream),
          String(line.diff),
          verdictText[line.verdict],
        ]),
      ]),
    );
    if (printed.length < report.lines.length) lines.push(`(${report.lines.length - printed.length} keys checked with no usage anywhere are not shown)`);
  }
  lines.push('', ...notes(plan, report, context));
  lines.push(report.differences === 0 ? 'result: ledger, counters and upstream agree' : `result: ${report.differences} difference(s)`);
  return lines;
}

function notes(plan: AuditPlan, report: AuditReport, context: AuditContext): string[] {
  const notes = [
    'COUNTERS must equal LEDGER + ADJUSTED (usage adjustments in the audit log); DIFF is COUNTERS - LEDGER - ADJUSTED.',
    'UPSTREAM (window "range": the emulator has no windows) is compared with the account\'s rows over the whole range read;',
    '  DIFF is UPSTREAM - LEDGER. ESTIMATED is the part of LEDGER that rows charged as an estimate (a stream its client',
    '  aborted): the upstream may fall short of the ledger by up to that much.',
    'A call a node died running (an interrupted row) counts toward strict and escrow limits only (its eventual keys were released),',
    '  and no node learnt its account or usage: the upstream may exceed the ledger by one request per interrupted call (ok (interrupted)).',
  ];
  if (plan.expired > 0)
    notes.push(
      `${plan.expired} keys of windows the counters have expired (ended over ${formatDurationMs(windowExpiryHorizonMs - auditExpiryMarginMs)} ago) were not compared.`,
    );
  if (plan.uncounted.length > 0) notes.push(`limits on metrics the gateway does not charge, so nothing to compare: ${plan.uncounted.join('; ')}.`);
  if (report.lines.some((line) => line.verdict === 'unchecked' && line.window === 'range'))
    notes.push('an account marked unchecked has rows but no known emulator key: give the --node-config of the node that holds it.');
  const interrupted = report.lines.filter((line) => line.verdict === 'interrupted');
  if (interrupted.length > 0)
    notes.push(
      `${interrupted.length} upstream line(s) are above the ledger by what calls interrupted by a node's death used: their usage is known only to the upstream.`,
    );
  if (context.auditLogFull) notes.push('the audit log is full: adjustments older than its oldest entry are not known, and would show as differences.');
  return notes;
}
