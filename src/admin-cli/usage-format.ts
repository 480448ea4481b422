import { formatTime, isRecord, list, table, text } from './admin-format.js';

/**
 * The text `carpool usage query` prints for GET /usage/ledger: the node that answered (each node
 * keeps its own rows), the totals, a table of the groups and one of the rows. Missing fields
 * print as `?`, as in ./admin-format.ts.
 */
const totalColumns = ['REQUESTS', 'INPUT', 'OUTPUT', 'CACHE WRITE', 'CACHE READ', 'WEIGHTED', 'COST $'] as const;

function totalCells(totals: unknown): string[] {
  const t = isRecord(totals) ? totals : {};
  const cost = typeof t.costMicros === 'number' ? (t.costMicros / 1e6).toFixed(6) : '?';
  return [text(t.requests), text(t.inputTokens), text(t.outputTokens), text(t.cacheWriteTokens), text(t.cacheReadTokens), text(t.weightedTokens), cost];
}

export function ledgerLines(answer: unknown): string[] {
  if (!isRecord(answer)) return ['?'];
  const range = [
    typeof answer.sinceMs === 'number' ? `from ${formatTime(answer.sinceMs)}` : '',
    typeof answer.untilMs === 'number' ? `until ${formatTime(answer.untilMs)}` : '',
  ]
    .filter((part) => part !== '')
    .join(' ');
  const lines = [`the ${text(answer.side)} side of node ${text(answer.node)}'s ledger${range === '' ? '' : `, ${range}`} (other nodes keep their own rows):`];
  lines.push(...table([[...totalColumns], totalCells(answer.totals)]).map((line) => `  ${line}`));
  if (typeof answer.fromAggregates === 'number' && answer.fromAggregates > 0)
    lines.push(`  (${answer.fromAggregates} of the requests are counted from daily aggregates of rows past the retention age)`);
  const groups = list(answer.groups);
  if (groups.length > 0) {
    const first = groups[0]?.key;
    const fields = Object.keys(isRecord(first) ? first : {});
    lines.push('', 'groups:');
    const rows = groups.map((group) => [...fields.map((field) => (isRecord(group.key) ? text(group.key[field]) || '-' : '?')), ...totalCells(group.totals)]);
    lines.push(...table([[...fields.map((field) => field.toUpperCase()), ...totalColumns], ...rows]).map((line) => `  ${line}`));
    if (answer.groupsTruncated === true) lines.push('  (more groups were left out: narrow the filter or the range)');
  }
  const rows = list(answer.rows);
  if (rows.length > 0) {
    lines.push('', 'rows, newest first:');
    const cells = rows.map((row) => [
      formatTime(row.chargedAtMs),
      text(row.requestId),
      text(row.role),
      text(row.tenant),
      typeof row.user === 'string' ? row.user : '-',
      text(row.model),
      typeof row.account === 'string' ? row.account : '-',
      text(row.inputTokens),
      text(row.outputTokens),
      text(row.weightedTokens),
      `${text(row.outcome)}${row.estimated === true ? ' (estimated)' : ''}`,
    ]);
    lines.push(
      ...table([['CHARGED', 'REQUEST', 'ROLE', 'TENANT', 'USER', 'MODEL', 'ACCOUNT', 'INPUT', 'OUTPUT', 'WEIGHTED', 'OUTCOME'], ...cells]).map(
        (line) => `  ${line}`,
      ),
    );
  }
  return lines;
}
