import type { LedgerRow, UsageTotals } from './ledger-row.js';

/**
 * Questions the usage ledger answers (the Admin service, admin HTTP, `carpool usage`, `carpool
 * audit`). A question looks at one side of the books:
 *
 *   tenant   rows with role `local` or `origin`: what tenants were charged
 *   account  rows with role `local` or `home`: what accounts were charged
 *
 * so that a forwarded request, which has a row on each side, is never summed twice. Filters are
 * exact matches; the time range is half-open `[sinceMs, untilMs)` on `chargedAtMs`. Rows older
 * than the retention age live on only as daily aggregates: totals and day groups include them,
 * row listings do not (`fromAggregates` says how much of the totals came from them).
 */
export type UsageSide = 'tenant' | 'account';

export interface UsageFilter {
  readonly side: UsageSide;
  readonly tenant?: string;
  readonly user?: string;
  readonly apiKeyId?: string;
  readonly model?: string;
  readonly account?: string;
  readonly sinceMs?: number;
  readonly untilMs?: number;
}

/** Group by one or more of these; `window:<unit>` buckets by the counter windows (src/crdt/window.ts), for the audit. */
export type UsageGroupField = 'tenant' | 'user' | 'apiKeyId' | 'model' | 'account' | 'day' | 'hour' | `window:${string}`;

export interface UsageQuery {
  readonly filter: UsageFilter;
  readonly groupBy?: readonly UsageGroupField[];
  /** Rows to list, newest first; 0 lists none. At most `usageQueryRowsMax`. */
  readonly rowsLimit?: number;
}

export interface UsageGroup {
  /** The group's value per field named in `groupBy` (window buckets as `<unit>:<index>`, days as `YYYY-MM-DD`). */
  readonly key: Readonly<Record<string, string>>;
  readonly totals: UsageTotals;
}

export interface UsageAnswer {
  readonly totals: UsageTotals;
  readonly groups: readonly UsageGroup[];
  readonly rows: readonly LedgerRow[];
  /** Of `totals.requests`, those counted from daily aggregates of rows past retention. */
  readonly fromAggregates: number;
  /**
   * More groups matched than `usageQueryGroupsMax`: `groups` holds the first of them (in the order
   * of their keys) and the totals still cover every row. Absent means false.
   */
  readonly groupsTruncated?: boolean;
}

/** The ledger as its readers see it: implemented by the SQLite store, faked in unit tests. */
export interface UsageReader {
  queryUsage(query: UsageQuery): UsageAnswer;
  /** Every live row matching `filter`, oldest first, one at a time (an export streams them). */
  eachRow(filter: UsageFilter, visit: (row: LedgerRow) => void): number;
}
