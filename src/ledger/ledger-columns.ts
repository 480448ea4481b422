import { assert, isCount } from '../core/assert.js';
import type { LedgerOutcome, LedgerRole, LedgerRow } from './ledger-row.js';

/**
 * A ledger row as SQL values and back, in one column order used by the insert and every select,
 * so the two directions cannot drift apart. Statements run in raw mode (arrays, not objects):
 * for a million rows that is the difference between reading them and building maps of them.
 */
export const ledgerColumns = [
  'request_id',
  'role',
  'tenant',
  'user',
  'api_key_id',
  'account',
  'origin_region',
  'served_region',
  'node',
  'model',
  'stream',
  'input_tokens',
  'output_tokens',
  'cache_write_tokens',
  'cache_read_tokens',
  'weighted_tokens',
  'cost_micros',
  'outcome',
  'status',
  'estimated',
  'client_left',
  'drained',
  'charged_at_ms',
  'settled_at_ms',
  'duration_ms',
] as const;

export const ledgerColumnList = ledgerColumns.join(', ');

export const insertLedgerSql = `INSERT INTO ledger (${ledgerColumnList}) VALUES (${ledgerColumns.map(() => '?').join(', ')})`;

export type SqlValue = string | number | null;

const roles: ReadonlySet<string> = new Set<LedgerRole>(['local', 'origin', 'home']);
const outcomes: ReadonlySet<string> = new Set<LedgerOutcome>(['ok', 'failed', 'interrupted']);

/**
 * The row's values in column order. The row comes from our own gateway, so a field out of its
 * type's range is a programmer error: it fails here, before the transaction commits anything.
 */
export function ledgerValues(row: LedgerRow): SqlValue[] {
  assert(roles.has(row.role) && outcomes.has(row.outcome), 'a ledger row has a known role and outcome');
  assert(
    isCount(row.inputTokens) && isCount(row.outputTokens) && isCount(row.cacheWriteTokens) && isCount(row.cacheReadTokens) && isCount(row.weightedTokens),
    'token counts are counts',
  );
  assert(row.costMicros === null || isCount(row.costMicros), 'a cost is a count of micro-dollars');
  assert(Number.isSafeInteger(row.chargedAtMs) && Number.isSafeInteger(row.settledAtMs) && isCount(row.durationMs), 'times are whole milliseconds');
  return [
    row.requestId,
    row.role,
    row.tenant,
    row.user,
    row.apiKeyId,
    row.account,
    row.originRegion,
    row.servedRegion,
    row.node,
    row.model,
    row.stream ? 1 : 0,
    row.inputTokens,
    row.outputTokens,
    row.cacheWriteTokens,
    row.cacheReadTokens,
    row.weightedTokens,
    row.costMicros,
    row.outcome,
    row.status,
    row.estimated ? 1 : 0,
    row.clientLeft ? 1 : 0,
    row.drained ? 1 : 0,
    row.chargedAtMs,
    row.settledAtMs,
    row.durationMs,
  ];
}

/** A row read in raw mode (`SELECT ${ledgerColumnList}`) back into a LedgerRow. */
export function ledgerRowOf(values: readonly unknown[]): LedgerRow {
  const v = values as readonly SqlValue[];
  return {
    requestId: v[0] as string,
    role: v[1] as LedgerRole,
    tenant: v[2] as string,
    user: v[3] as string | null,
    apiKeyId: v[4] as string | null,
    account: v[5] as string | null,
    originRegion: v[6] as string,
    servedRegion: v[7] as string,
    node: v[8] as string,
    model: v[9] as string,
    stream: v[10] === 1,
    inputTokens: v[11] as number,
    outputTokens: v[12] as number,
    cacheWriteTokens: v[13] as number,
    cacheReadTokens: v[14] as number,
    weightedTokens: v[15] as number,
    costMicros: v[16] as number | null,
    outcome: v[17] as LedgerOutcome,
    status: v[18] as string,
    estimated: v[19] === 1,
    clientLeft: v[20] === 1,
    drained: v[21] === 1,
    chargedAtMs: v[22] as number,
    settledAtMs: v[23] as number,
    durationMs: v[24] as number,
  };
}
