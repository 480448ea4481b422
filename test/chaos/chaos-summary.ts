// The closing report of a crash run, as `npm run chaos` prints it and a failing test shows it.
import type { AuditRun, ChaosSummary } from './chaos-run.js';

export function formatSummary(summary: ChaosSummary): string {
  const { requests, ledger } = summary;
  const lines = [
    `seed ${summary.seed}: ${(summary.durationMs / 1000).toFixed(1)} s`,
    `  requests   ${requests.sent} sent: ${requests.completed} completed, ${requests.refused} refused at admission, ${requests.failed} failed`,
    `  failures   ${summary.failureCodes.map(([code, n]) => `${code} ×${n}`).join(', ') || 'none'}`,
    `  ledger     ${ledger.rows} rows: ${ledger.tenantRows} tenant-side (${ledger.interrupted} interrupted), ${ledger.accountRows} account-side, ${ledger.forwarded} forwarded`,
    ...ledger.busiestWindows.map((w) => `  limit      ${w.tenant}: at most ${w.requests} of ${w.limit} requests in one window (${w.window})`),
    `  kills      ${summary.kills} SIGKILL(s), ${summary.restarts} restart(s), the slowest back serving in ${(summary.slowestRestartMs / 1000).toFixed(1)} s`,
    ...verdictLines(summary.audit, summary.problems),
  ];
  return lines.join('\n');
}

/** The closing lines of a chaos summary: the audit's result, the verdict, and the audit's output when it gave no report. */
export function verdictLines(audit: AuditRun, problems: readonly string[]): string[] {
  const lines = [
    `  audit      carpool audit exited ${audit.exitCode}: ${audit.note}`,
    problems.length === 0 ? '  verdict    no rule broken' : `  verdict    ${problems.length} problem(s):\n${problems.map((p) => `    - ${p}`).join('\n')}`,
  ];
  if (audit.output !== '') lines.push('  audit output:', ...audit.output.split('\n').map((line) => `    ${line}`));
  return lines;
}
