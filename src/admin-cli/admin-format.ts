import { formatDurationMs } from '../core/duration-text.js';

/**
 * The text `carpool admin` prints for each answer of the admin endpoint (without `--json`): one
 * line per item, the fields an operator scans for first. The shapes are the endpoint's (see the
 * route list in src/net/admin-http.ts); a field that is missing prints as `?` rather than failing,
 * so a newer node's answer still prints.
 */
type Json = Record<string, unknown>;

export const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
export const list = (value: unknown): Json[] => (Array.isArray(value) ? value.filter(isRecord) : []);
export const text = (value: unknown): string => (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '?');

/** An epoch time as `2027-01-31 12:00:00Z`; `-` for none. */
export function formatTime(ms: unknown): string {
  if (typeof ms !== 'number' || ms <= 0) return '-';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** Rows as aligned columns, two spaces apart; the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

export function tenantsLines(policy: unknown): string[] {
  const tenants = isRecord(policy) ? list(policy.tenants) : [];
  if (tenants.length === 0) return ['no tenants'];
  const rows = tenants.map((tenant) => {
    const keys = list(tenant.keys);
    const working = keys.filter((key) => key.state === 'active' || key.state === 'revoking').length;
    const limits = list(tenant.limits).map(
      (rule) => `${text(rule.metric)} ${text(rule.limit)}/${rule.sliding === true ? 'sliding ' : ''}${text(rule.window)} ${text(rule.mode)}`,
    );
    return [text(tenant.id), text(tenant.tier), `${working}/${keys.length} keys`, limits.join(', ') || 'no limits'];
  });
  return table([['TENANT', 'TIER', 'KEYS', 'LIMITS'], ...rows]);
}

export function accountsLines(policy: unknown): string[] {
  const accounts = isRecord(policy) ? list(policy.accounts) : [];
  if (accounts.length === 0) return ['no accounts'];
  const rows = accounts.map((account) => [
    text(account.id),
    text(account.kind),
    text(account.homeRegion),
    `weight ${text(account.weight)}`,
    `concurrency ${text(account.concurrencyMax)}`,
  ]);
  return table([['ACCOUNT', 'KIND', 'HOME', 'WEIGHT', 'CONCURRENCY'], ...rows]);
}

export function keysLines(keys: unknown): string[] {
  const rows = list(keys);
  if (rows.length === 0) return ['no keys'];
  return table([
    ['KEY ID', 'NAME', 'STATE', 'CREATED', 'EXPIRES', 'REVOKED'],
    ...rows.map((key) => [
      text(key.keyId),
      text(key.name) || '(imported)',
      text(key.state),
      formatTime(key.createdAtMs),
      formatTime(key.expiresAtMs),
      formatTime(key.revokedAtMs),
    ]),
  ]);
}

/** A new key: said once, with the warning that it cannot be shown again. */
export function newKeyLines(answer: unknown, verb: 'created' | 'rotated'): string[] {
  if (!isRecord(answer) || !isRecord(answer.key)) return ['?'];
  const key = answer.key;
  const lines = [`key ${text(key.keyId)} (${text(key.name)}) ${verb}${typeof key.expiresAtMs === 'number' ? `, expires ${formatTime(key.expiresAtMs)}` : ''}`];
  if (isRecord(answer.previous))
    lines.push(
      `key ${text(answer.previous.keyId)} stops working ${answer.previous.state === 'revoked' ? 'now' : `at ${formatTime(answer.previous.revokedAtMs)}`}`,
    );
  lines.push('the key, shown this once (store it now):', text(answer.apiKey));
  return lines;
}

export function usageLines(usage: unknown): string[] {
  if (!isRecord(usage)) return ['?'];
  const user = typeof usage.user === 'string' ? ` and user ${usage.user}` : '';
  const lines = [`usage of tenant ${text(usage.tenant)}${user} (${text(usage.consistency)} read):`];
  const limits = list(usage.limits);
  if (limits.length === 0) lines.push('  no limits');
  for (const row of limits) {
    const resets = typeof row.resetsAtMs === 'number' ? `, resets ${formatTime(row.resetsAtMs)}` : '';
    lines.push(
      `  ${text(row.scope)} ${text(row.metric)} per ${row.sliding === true ? 'sliding ' : ''}${text(row.window)} (${text(row.mode)}): used ${text(row.used)} of ${text(row.limit)}, remaining ${text(row.remaining)}${resets}`,
    );
  }
  return lines;
}

export function adjustmentLines(answer: unknown): string[] {
  if (!isRecord(answer)) return ['?'];
  return [
    `${text(answer.kind)} of ${text(answer.amount)} on ${text(answer.key)}: ${text(answer.before)} → ${text(answer.after)} (at ${text(answer.node)}; recorded in the audit log)`,
  ];
}

export function auditLines(answer: unknown): string[] {
  const entries = isRecord(answer) ? list(answer.entries) : [];
  const lines = entries.map((entry) => {
    const detail = isRecord(entry.detail)
      ? ` ${Object.entries(entry.detail)
          .map(([name, value]) => `${name}=${name.endsWith('AtMs') ? formatTime(value) : text(value)}`)
          .join(' ')}`
      : '';
    const reason = typeof entry.reason === 'string' ? ` — ${entry.reason}` : '';
    return `${formatTime(entry.atMs)}  ${text(entry.node)}  ${text(entry.actor)}  ${text(entry.action)} ${text(entry.target)}${detail}${reason}`;
  });
  if (lines.length === 0) lines.push('the audit log is empty');
  const invalid = isRecord(answer) && Array.isArray(answer.invalid) ? answer.invalid.length : 0;
  if (invalid > 0) lines.push(`(${invalid} entries failed validation: a node of another version wrote them)`);
  return lines;
}

export function poolLines(pool: unknown, nowMs: number): string[] {
  const accounts = isRecord(pool) ? list(pool.accounts) : [];
  if (accounts.length === 0) return ['no accounts in the pool'];
  return table([
    ['ACCOUNT', 'HOME', 'STATE', 'IN FLIGHT', 'QUEUED', 'BACK IN', 'WINDOWS', 'WHY'],
    ...accounts.map((account) => {
      const paused = account.state !== 'healthy' && typeof account.availableAtMs === 'number' && account.availableAtMs > nowMs;
      const back = paused ? formatDurationMs((account.availableAtMs as number) - nowMs) : '-';
      const why = typeof account.disabledReason === 'string' ? account.disabledReason : '-';
      return [
        text(account.id),
        text(account.homeRegion),
        text(account.state),
        `${text(account.inFlight)}/${text(account.concurrencyMax)}`,
        text(account.queued),
        back,
        windowsText(account.windows),
        why,
      ];
    }),
  ]);
}

/** A subscription's windows as `5h 42% 7d 10%`; `-` for an account without them. */
function windowsText(windows: unknown): string {
  const byName = isRecord(windows) && isRecord(windows.windows) ? windows.windows : undefined;
  if (byName === undefined) return '-';
  const parts: string[] = [];
  for (const [name, label] of [
    ['five-hour', '5h'],
    ['seven-day', '7d'],
  ] as const) {
    const window = byName[name];
    if (isRecord(window) && typeof window.utilization === 'number') parts.push(`${label} ${Math.round(window.utilization * 100)}%`);
  }
  return parts.length === 0 ? '-' : parts.join(' ');
}

export function statusLines(status: unknown): string[] {
  if (!isRecord(status)) return ['?'];
  const peers = list(status.peers);
  const up = peers.filter((peer) => peer.connected === true).length;
  const lines = [
    `node ${text(status.node)} (${text(status.region)}), up ${typeof status.uptimeMs === 'number' ? formatDurationMs(status.uptimeMs) : '?'}, peers ${up}/${peers.length} connected`,
  ];
  for (const peer of peers) lines.push(`  ${text(peer.peer)}  ${peer.connected === true ? 'connected' : 'not connected'}  ${text(peer.liveness)}`);
  if (isRecord(status.gateway))
    lines.push(`  gateway: ${text(status.gateway.requests)} requests, ${text(status.gateway.inFlight)} in flight, queue ${text(status.gateway.queueDepth)}`);
  return lines;
}
