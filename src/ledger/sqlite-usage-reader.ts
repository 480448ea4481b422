import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { usageQueryGroupFieldsMax, usageQueryGroupsMax, usageQueryRowsMax } from '../core/limits.js';
import { ledgerColumnList, ledgerRowOf, type SqlValue } from './ledger-columns.js';
import type { LedgerRow, UsageTotals } from './ledger-row.js';
import type { UsageAnswer, UsageFilter, UsageGroup, UsageGroupField, UsageQuery, UsageReader } from './usage-query.js';
import { aggregateWhere, type GroupColumn, groupColumn, liveWhere, type SqlClause } from './usage-sql.js';

/**
 * Usage queries over one store's database: totals and groups from the live rows and the daily
 * aggregates together, row listings and exports from the live rows alone (usage-query.ts has the
 * rules, usage-sql.ts the SQL). The sums run in SQLite; only groups cross into JavaScript, where
 * those of the two tables are merged (a live day and an aggregated day of the same week are one
 * `window:week` group).
 */
export class SqliteUsageReader implements UsageReader {
  constructor(private readonly db: Database.Database) {}

  queryUsage(query: UsageQuery): UsageAnswer {
    const groupBy = query.groupBy ?? [];
    const rowsLimit = query.rowsLimit ?? 0;
    assert(Number.isInteger(rowsLimit) && rowsLimit >= 0 && rowsLimit <= usageQueryRowsMax, 'rowsLimit is a count within usageQueryRowsMax');
    assert(groupBy.length <= usageQueryGroupFieldsMax, 'groupBy names at most usageQueryGroupFieldsMax fields');
    const live = liveWhere(query.filter);
    const aggregate = aggregateWhere(query.filter);
    const liveTotals = this.totals(`SELECT count(*), ${sums()} FROM ledger WHERE ${live.sql}`, live.params);
    const aggregateTotals = this.totals(`SELECT coalesce(sum(requests), 0), ${sums()} FROM ledger_daily WHERE ${aggregate.sql}`, aggregate.params);
    const { groups, truncated } = groupBy.length === 0 ? { groups: [], truncated: false } : this.groups(groupBy, live, aggregate);
    return {
      totals: addTotals(liveTotals, aggregateTotals),
      groups,
      rows: rowsLimit === 0 ? [] : this.newestRows(live, rowsLimit),
      fromAggregates: aggregateTotals.requests,
      groupsTruncated: truncated,
    };
  }

  /**
   * Streams the rows from SQLite one at a time (memory stays flat however many match). The
   * connection is busy until the last row: `visit` must not use the store, and the whole walk runs
   * on the event loop, so an export of millions of rows holds it for seconds.
   */
  eachRow(filter: UsageFilter, visit: (row: LedgerRow) => void): number {
    const where = liveWhere(filter);
    const statement = this.db.prepare(`SELECT ${ledgerColumnList} FROM ledger WHERE ${where.sql} ORDER BY charged_at_ms, id`).raw();
    let count = 0;
    for (const values of statement.iterate(where.params)) {
      visit(ledgerRowOf(values as unknown[]));
      count++;
    }
    return count;
  }

  private totals(sql: string, params: SqlValue[]): UsageTotals {
    return totalsOf(this.db.prepare(sql).raw().get(params) as SqlValue[], 0);
  }

  private newestRows(live: SqlClause, limit: number): LedgerRow[] {
    const statement = this.db.prepare(`SELECT ${ledgerColumnList} FROM ledger WHERE ${live.sql} ORDER BY charged_at_ms DESC, id DESC LIMIT ?`).raw();
    return (statement.all([...live.params, limit]) as unknown[][]).map(ledgerRowOf);
  }

  /**
   * Groups from both tables, merged by their raw values. The SQL groups come in key order, live
   * rows first; once `usageQueryGroupsMax` distinct groups are held, a further new one is left
   * out and the answer says so.
   */
  private groups(fields: readonly UsageGroupField[], live: SqlClause, aggregate: SqlClause): { groups: UsageGroup[]; truncated: boolean } {
    const columns = fields.map(groupColumn);
    const positions = columns.map((_, i) => i + 1).join(', ');
    const liveSql = `SELECT ${columns.map((c) => c.live).join(', ')}, count(*), ${sums()} FROM ledger WHERE ${live.sql} GROUP BY ${positions} ORDER BY ${positions}`;
    const aggregateSql = `SELECT ${columns.map((c) => c.aggregate).join(', ')}, sum(requests), ${sums()} FROM ledger_daily WHERE ${aggregate.sql} GROUP BY ${positions} ORDER BY ${positions}`;
    const merged = new Map<string, { raws: SqlValue[]; totals: UsageTotals }>();
    let truncated = false;
    const fold = (sql: string, params: SqlValue[], mapRaw: (column: GroupColumn, value: SqlValue) => SqlValue): void => {
      for (const values of this.db.prepare(sql).raw().iterate(params)) {
        const row = values as SqlValue[];
        const raws = columns.map((column, i) => mapRaw(column, row[i]!));
        const id = JSON.stringify(raws);
        const held = merged.get(id);
        const totals = totalsOf(row, columns.length);
        if (held !== undefined) held.totals = addTotals(held.totals, totals);
        else if (merged.size < usageQueryGroupsMax) merged.set(id, { raws, totals });
        else truncated = true;
      }
    };
    fold(liveSql, live.params, (_, value) => value);
    fold(aggregateSql, aggregate.params, (column, value) => column.fromAggregate(value));
    const groups = [...merged.values()].sort((a, b) => compareRaws(a.raws, b.raws));
    return {
      groups: groups.map(({ raws, totals }) => ({ key: Object.fromEntries(fields.map((field, i) => [field, columns[i]!.format(raws[i]!)])), totals })),
      truncated,
    };
  }
}

/** The six sums after a count, in the order `totalsOf` reads them. */
function sums(): string {
  return ['input_tokens', 'output_tokens', 'cache_write_tokens', 'cache_read_tokens', 'weighted_tokens', 'cost_micros']
    .map((column) => `coalesce(sum(${column}), 0)`)
    .join(', ');
}

function totalsOf(row: readonly SqlValue[], at: number): UsageTotals {
  const n = (i: number): number => Number(row[at + i] ?? 0);
  return { requests: n(0), inputTokens: n(1), outputTokens: n(2), cacheWriteTokens: n(3), cacheReadTokens: n(4), weightedTokens: n(5), costMicros: n(6) };
}

export function addTotals(a: UsageTotals, b: UsageTotals): UsageTotals {
  return {
    requests: a.requests + b.requests,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    weightedTokens: a.weightedTokens + b.weightedTokens,
    costMicros: a.costMicros + b.costMicros,
  };
}

/** Numbers in numeric order, strings in code-point order, unresolved (null) values last. */
function compareRaws(a: readonly SqlValue[], b: readonly SqlValue[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x === null) return 1;
    if (y === null) return -1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}
