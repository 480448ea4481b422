// The closing table of a WAN chaos run, as `npm run chaos` prints it and a failing test shows it.
import { verdictLines } from './chaos-summary.js';
import type { WanSummary } from './wan-run.js';

export function formatWanSummary(summary: WanSummary): string {
  const { requests, ledger } = summary;
  const lines = [
    `seed ${summary.seed}: ${summary.regions.length} regions (${summary.regions.join(', ')}), ${(summary.durationMs / 1000).toFixed(1)} s`,
    `  requests   ${requests.sent} sent: ${requests.completed} completed, ${requests.refused} refused at admission, ${requests.failed} failed`,
    `  failures   ${summary.failureCodes.map(([code, n]) => `${code} ×${n}`).join(', ') || 'none'}`,
    `  ledger     ${ledger.rows} rows: ${ledger.tenantRows} tenant-side (${ledger.interrupted} interrupted), ${ledger.accountRows} account-side, ${ledger.forwarded} forwarded`,
    `  kills      ${summary.kills} SIGKILL(s), ${summary.restarts} restart(s)`,
    '  faults',
    ...summary.faults.map((fault) => `    ${fault}`),
    '  limits     mode      tenant        limit/min  busiest window  over  bound',
    ...ledger.busiestWindows.map(
      (w) =>
        `             ${(w.tenant.startsWith('strict') ? 'strict' : 'escrow').padEnd(9)} ${w.tenant.padEnd(13)} ${String(w.limit).padStart(9)}  ${String(w.requests).padStart(14)}  ${String(Math.max(0, w.requests - w.limit)).padStart(4)}  0 (never over)`,
    ),
    ...summary.overshoot.map(
      (o) =>
        `             ${'eventual'.padEnd(9)} ${o.tenant.padEnd(13)} ${String(o.limit).padStart(9)}  ${String(o.admitted).padStart(14)}  ${String(o.overshoot).padStart(4)}  ${o.bound.toFixed(1)} = ${describeRates(o.ratePerSecond)} × ${(o.delayMs / 1000).toFixed(2)} s (${o.window})`,
    ),
    '  links      dialer → listener        rtt ms  one-way ms min/max  connections  resets  held chunks  bytes (both ways)',
    ...summary.links
      .filter((l) => l.connections + l.resets > 0)
      .map(
        (l) =>
          `             ${`${l.from} → ${l.to}`.padEnd(24)} ${String(l.rttMs).padStart(6)}  ${`${l.delayMsMin}/${l.delayMsMax}`.padStart(18)}  ${String(l.connections).padStart(11)}  ${String(l.resets).padStart(6)}  ${String(l.heldChunks).padStart(11)}  ${l.bytes}`,
      ),
    ...verdictLines(summary.audit, summary.problems),
  ];
  return lines.join('\n');
}

function describeRates(rates: Readonly<Record<string, number>>): string {
  const total = Object.values(rates).reduce((sum, rate) => sum + rate, 0);
  return `${total.toFixed(1)}/s`;
}
