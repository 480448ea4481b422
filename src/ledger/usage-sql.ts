import { assert } from '../core/assert.js';
import { windowAt, windowLengthMs, windowOffsetMs, windowUnits, type WindowUnit } from '../crdt/window.js';
import type { SqlValue } from './ledger-columns.js';
import type { UsageFilter, UsageGroupField } from './usage-query.js';

/**
 * The SQL behind usage queries: a filter as WHERE clauses over live rows (`ledger`) and over
 * daily aggregates (`ledger_daily`), and each group field as an expression over both.
 *
 * Time. Live rows are in a range when their `charged_at_ms` is. An aggregate stands for whole
 * days, so it counts as charged at the start of its day: it is in `[sinceMs, untilMs)` when its
 * day starts there. Adjacent ranges thus still add up (no day is counted in two of them), and a
 * range whose bounds are whole UTC days gives the same totals before and after a roll-up.
 *
 * Windows. `window:<unit>` buckets use the grid of src/crdt/window.ts (its lengths and offsets,
 * with a floor division that is also right before 1970), so ledger groups line up with counter
 * windows exactly. An aggregate can be placed in a window only when the unit's windows are whole
 * days on a day grid (day, week, day30); for shorter units, and for `hour`, an aggregate's value
 * is `rolledUpGroupValue`.
 */
export const dayMs = 86_400_000;
const hourMs = 3_600_000;

/** The group value of a field that a daily aggregate cannot resolve (an hour, a 10-second window). */
export const rolledUpGroupValue = 'rolled-up';

export interface SqlClause {
  readonly sql: string;
  readonly params: SqlValue[];
}

const sideRoles = { tenant: "('local', 'origin')", account: "('local', 'home')" } as const;

/** The filter's WHERE clause over live ledger rows. */
export function liveWhere(filter: UsageFilter): SqlClause {
  const { parts, params } = dimensionParts(filter);
  if (filter.sinceMs !== undefined) {
    parts.push('charged_at_ms >= ?');
    params.push(filter.sinceMs);
  }
  if (filter.untilMs !== undefined) {
    parts.push('charged_at_ms < ?');
    params.push(filter.untilMs);
  }
  return { sql: parts.join(' AND '), params };
}

/** The filter's WHERE clause over daily aggregates (days whose start is in the range). */
export function aggregateWhere(filter: UsageFilter): SqlClause {
  const { parts, params } = dimensionParts(filter);
  if (filter.sinceMs !== undefined) {
    parts.push('day >= ?');
    params.push(Math.ceil(filter.sinceMs / dayMs));
  }
  if (filter.untilMs !== undefined) {
    parts.push('day < ?');
    params.push(Math.ceil(filter.untilMs / dayMs));
  }
  return { sql: parts.join(' AND '), params };
}

function dimensionParts(filter: UsageFilter): { parts: string[]; params: SqlValue[] } {
  assert(filter.side in sideRoles, 'a usage side is tenant or account');
  const parts = [`role IN ${sideRoles[filter.side]}`];
  const params: SqlValue[] = [];
  const exact: readonly [string | undefined, string][] = [
    [filter.tenant, 'tenant'],
    [filter.user, 'user'],
    [filter.apiKeyId, 'api_key_id'],
    [filter.model, 'model'],
    [filter.account, 'account'],
  ];
  for (const [value, column] of exact) {
    if (value === undefined) continue;
    assert(value !== '', 'a filter value names something');
    parts.push(`${column} = ?`);
    params.push(value);
  }
  return { parts, params };
}

/** How one group field reads from each table and prints its value. */
export interface GroupColumn {
  readonly live: string;
  readonly aggregate: string;
  /** The raw value an aggregate's column gives, mapped into the live value's space (null: unresolvable). */
  readonly fromAggregate: (value: SqlValue) => SqlValue;
  readonly format: (value: SqlValue) => string;
}

const text = (value: SqlValue): string => (value === null ? rolledUpGroupValue : String(value));
const same = (value: SqlValue): SqlValue => value;

/** Floor division of an integer SQL expression by a positive integer, right for negative values too. */
export function sqlFloorDiv(expression: string, divisor: number): string {
  return `((${expression}) - ((((${expression}) % ${divisor}) + ${divisor}) % ${divisor})) / ${divisor}`;
}

export function groupColumn(field: UsageGroupField): GroupColumn {
  switch (field) {
    case 'tenant':
      return { live: 'tenant', aggregate: 'tenant', fromAggregate: same, format: text };
    case 'model':
      return { live: 'model', aggregate: 'model', fromAggregate: same, format: text };
    case 'user':
      return { live: "coalesce(user, '')", aggregate: 'user', fromAggregate: same, format: text };
    case 'apiKeyId':
      return { live: "coalesce(api_key_id, '')", aggregate: 'api_key_id', fromAggregate: same, format: text };
    case 'account':
      return { live: "coalesce(account, '')", aggregate: 'account', fromAggregate: same, format: text };
    case 'day':
      return {
        live: sqlFloorDiv('charged_at_ms', dayMs),
        aggregate: 'day',
        fromAggregate: same,
        format: (v) => (v === null ? rolledUpGroupValue : isoDay(v as number)),
      };
    case 'hour':
      return {
        live: sqlFloorDiv('charged_at_ms', hourMs),
        aggregate: 'NULL',
        fromAggregate: same,
        format: (v) => (v === null ? rolledUpGroupValue : isoHour(v as number)),
      };
    default:
      return windowColumn(windowUnitOf(field));
  }
}

function windowColumn(unit: WindowUnit): GroupColumn {
  const offsetMs = windowOffsetMs[unit];
  const lengthMs = windowLengthMs[unit];
  const dayAligned = lengthMs % dayMs === 0 && offsetMs % dayMs === 0;
  return {
    live: sqlFloorDiv(`charged_at_ms - ${offsetMs}`, lengthMs),
    aggregate: dayAligned ? 'day' : 'NULL',
    fromAggregate: (day) => (day === null ? null : windowAt(unit, (day as number) * dayMs).index),
    format: (v) => (v === null ? rolledUpGroupValue : `${unit}:${v as number}`),
  };
}

/** Whether a string from a request names a group field; callers check input with this before asking. */
export function isUsageGroupField(field: string): field is UsageGroupField {
  if (['tenant', 'user', 'apiKeyId', 'model', 'account', 'day', 'hour'].includes(field)) return true;
  return field.startsWith('window:') && (windowUnits as readonly string[]).includes(field.slice('window:'.length));
}

function windowUnitOf(field: string): WindowUnit {
  assert(isUsageGroupField(field) && field.startsWith('window:'), `unknown usage group field ${field}`);
  return field.slice('window:'.length) as WindowUnit;
}

function isoDay(day: number): string {
  return new Date(day * dayMs).toISOString().slice(0, 10);
}

function isoHour(hour: number): string {
  return `${new Date(hour * hourMs).toISOString().slice(0, 13)}:00Z`;
}
