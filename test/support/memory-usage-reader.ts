import { assert } from '../../src/core/assert.js';
import { usageQueryGroupsMax } from '../../src/core/limits.js';
import { windowAt, type WindowUnit, windowUnits } from '../../src/crdt/window.js';
import type { LedgerRow, UsageTotals } from '../../src/ledger/ledger-row.js';
import type { UsageAnswer, UsageFilter, UsageGroup, UsageGroupField, UsageQuery, UsageReader } from '../../src/ledger/usage-query.js';

/**
 * The usage ledger over an array of rows, for tests of its readers (admin routes, export, audit):
 * the straightforward reading of src/ledger/usage-query.ts, with nothing rolled up (so
 * `fromAggregates` is always 0).
 *
 *   side     tenant: rows with role local or origin; account: local or home
 *   filters  exact matches; the time range half-open [sinceMs, untilMs) on chargedAtMs
 *   groups   per distinct tuple of the groupBy fields, in the order of their values (numbers as
 *            numbers); a null field groups as ''; `day` as YYYY-MM-DD and `hour` as
 *            YYYY-MM-DDTHH:00Z (UTC), `window:<unit>` as `<unit>:<index>`, as the SQLite store has them;
 *            the first `usageQueryGroupsMax` in key order, `groupsTruncated` when more matched
 *   rows     newest first (by chargedAtMs, then the later added), at most rowsLimit
 *   eachRow  oldest first, in the same order reversed
 */
export class MemoryUsageReader implements UsageReader {
  readonly rows: LedgerRow[] = [];
  /** How many times each method ran, so a test can see how a reader was used. */
  readonly calls = { queryUsage: 0, eachRow: 0 };

  constructor(rows: readonly LedgerRow[] = []) {
    this.add(...rows);
  }

  add(...rows: LedgerRow[]): void {
    this.rows.push(...rows);
  }

  queryUsage(query: UsageQuery): UsageAnswer {
    this.calls.queryUsage++;
    const matching = this.matching(query.filter);
    const groups = new Map<string, { raws: (string | number)[]; rows: LedgerRow[] }>();
    const fields = query.groupBy ?? [];
    if (fields.length > 0) {
      for (const row of matching) {
        const raws = fields.map((field) => rawValue(row, field));
        const id = JSON.stringify(raws);
        let group = groups.get(id);
        if (group === undefined) {
          group = { raws, rows: [] };
          groups.set(id, group);
        }
        group.rows.push(row);
      }
    }
    const ordered: UsageGroup[] = [...groups.values()]
      .sort((a, b) => compareRaws(a.raws, b.raws))
      .map((group) => ({
        key: Object.fromEntries(fields.map((field, i) => [field, formatted(field, group.raws[i] as string | number)])),
        totals: totalsOf(group.rows),
      }));
    const newestFirst = [...matching].reverse();
    return {
      totals: totalsOf(matching),
      groups: ordered.slice(0, usageQueryGroupsMax),
      rows: newestFirst.slice(0, query.rowsLimit ?? 0),
      fromAggregates: 0,
      groupsTruncated: ordered.length > usageQueryGroupsMax,
    };
  }

  eachRow(filter: UsageFilter, visit: (row: LedgerRow) => void): number {
    this.calls.eachRow++;
    const matching = this.matching(filter);
    for (const row of matching) visit(row);
    return matching.length;
  }

  /** The rows of the filter, oldest first; a stable sort keeps the order they were added in within one millisecond. */
  private matching(filter: UsageFilter): LedgerRow[] {
    const roles = filter.side === 'tenant' ? ['local', 'origin'] : ['local', 'home'];
    return this.rows
      .filter(
        (row) =>
          roles.includes(row.role) &&
          (filter.tenant === undefined || row.tenant === filter.tenant) &&
          (filter.user === undefined || row.user === filter.user) &&
          (filter.apiKeyId === undefined || row.apiKeyId === filter.apiKeyId) &&
          (filter.model === undefined || row.model === filter.model) &&
          (filter.account === undefined || row.account === filter.account) &&
          (filter.sinceMs === undefined || row.chargedAtMs >= filter.sinceMs) &&
          (filter.untilMs === undefined || row.chargedAtMs < filter.untilMs),
      )
      .sort((a, b) => a.chargedAtMs - b.chargedAtMs);
  }
}

export function totalsOf(rows: readonly LedgerRow[]): UsageTotals {
  const totals = { requests: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0, weightedTokens: 0, costMicros: 0 };
  for (const row of rows) {
    totals.requests++;
    totals.inputTokens += row.inputTokens;
    totals.outputTokens += row.outputTokens;
    totals.cacheWriteTokens += row.cacheWriteTokens;
    totals.cacheReadTokens += row.cacheReadTokens;
    totals.weightedTokens += row.weightedTokens;
    totals.costMicros += row.costMicros ?? 0;
  }
  return totals;
}

const hourMs = 3_600_000;
const dayMs = 24 * hourMs;

/** A group's value before it is formatted: text, or a number (a day, an hour, a window index) that sorts as one. */
function rawValue(row: LedgerRow, field: UsageGroupField): string | number {
  switch (field) {
    case 'tenant':
      return row.tenant;
    case 'user':
      return row.user ?? '';
    case 'apiKeyId':
      return row.apiKeyId ?? '';
    case 'model':
      return row.model;
    case 'account':
      return row.account ?? '';
    case 'day':
      return Math.floor(row.chargedAtMs / dayMs);
    case 'hour':
      return Math.floor(row.chargedAtMs / hourMs);
    default:
      return windowAt(unitOf(field), row.chargedAtMs).index;
  }
}

function formatted(field: UsageGroupField, raw: string | number): string {
  if (typeof raw === 'string') return raw;
  if (field === 'day') return new Date(raw * dayMs).toISOString().slice(0, 10);
  if (field === 'hour') return `${new Date(raw * hourMs).toISOString().slice(0, 13)}:00Z`;
  return `${unitOf(field)}:${raw}`;
}

function unitOf(field: UsageGroupField): WindowUnit {
  const unit = field.slice('window:'.length) as WindowUnit;
  assert(field.startsWith('window:') && windowUnits.includes(unit), `a group field the query checked: ${field}`);
  return unit;
}

/** Numbers in numeric order, text in code-point order, field by field. */
function compareRaws(a: readonly (string | number)[], b: readonly (string | number)[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as string | number;
    const y = b[i] as string | number;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

/** A ledger row with every field given a plain value; `fields` overrides any of them. */
export function ledgerRow(fields: Partial<LedgerRow> & Pick<LedgerRow, 'requestId'>): LedgerRow {
  return {
    role: 'local',
    tenant: 'acme',
    user: null,
    apiKeyId: null,
    account: 'acct-1',
    originRegion: 'us-east',
    servedRegion: 'us-east',
    node: 'us-east-1',
    model: 'claude-sonnet-4-6',
    stream: false,
    inputTokens: 10,
    outputTokens: 20,
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    weightedTokens: 110,
    costMicros: 330,
    outcome: 'ok',
    status: 'ok',
    estimated: false,
    clientLeft: false,
    drained: false,
    chargedAtMs: 1_767_225_600_000,
    settledAtMs: 1_767_225_600_500,
    durationMs: 500,
    ...fields,
  };
}
