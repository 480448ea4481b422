import { assert } from '../../core/assert.js';
import { usageExportSliceRowsMax } from '../../core/limits.js';
import type { LedgerRow } from '../../ledger/ledger-row.js';
import type { UsageFilter, UsageReader } from '../../ledger/usage-query.js';
import type { ExportFormat } from './usage-query-params.js';

/**
 * An export of ledger rows (GET /usage/export, `carpool usage export`): the rows of a filter and
 * a closed time range, oldest first, as CSV or JSON lines, written as they are read so that an
 * export of millions of rows never sits in memory.
 *
 * Reading in slices. The ledger hands rows to a visitor it calls for each (`UsageReader.eachRow`)
 * and cannot be paused halfway, so the range is read in time slices of at most
 * `usageExportSliceRowsMax` live rows: a slice's rows are counted first (a totals query, which
 * the store answers from its index), a slice holding more is narrowed, and the next slice starts
 * at twice the span that last fitted. Each slice is written out, and the client has taken it,
 * before the next is read. Slices end at whole milliseconds, so no row is read twice or missed
 * (ranges are half-open), and the output stays in time order. A millisecond holding more rows
 * than the bound is read whole, since it cannot be split.
 *
 * What an export is: the rows settled by the time each slice was read. A request charged in the
 * range but still running when its slice was read is not in it (its row does not exist yet); rows
 * past the retention age live on only in daily aggregates, which an export cannot list.
 *
 * Formats. CSV (RFC 4180): a header line of the column names, then a line per row, lines ending
 * in CRLF, a field quoted when it holds a comma, a quote, CR or LF (and its quotes doubled); a
 * null is an empty field, booleans are `true`/`false`. Values are written as they are: a
 * spreadsheet that reads a cell starting with `=` as a formula must be told to import text.
 * JSONL: one JSON object per line (the row as src/ledger/ledger-row.ts defines it), LF-ended.
 */
export const exportColumns = [
  'requestId',
  'role',
  'tenant',
  'user',
  'apiKeyId',
  'account',
  'originRegion',
  'servedRegion',
  'node',
  'model',
  'stream',
  'inputTokens',
  'outputTokens',
  'cacheWriteTokens',
  'cacheReadTokens',
  'weightedTokens',
  'costMicros',
  'outcome',
  'status',
  'estimated',
  'clientLeft',
  'drained',
  'chargedAtMs',
  'settledAtMs',
  'durationMs',
] as const satisfies readonly (keyof LedgerRow)[];

export const exportContentTypes: Readonly<Record<ExportFormat, string>> = {
  csv: 'text/csv; charset=utf-8; header=present',
  jsonl: 'application/x-ndjson; charset=utf-8',
};

export function csvHeader(): string {
  return `${exportColumns.join(',')}\r\n`;
}

export function csvLine(row: LedgerRow): string {
  return `${exportColumns.map((column) => csvField(row[column])).join(',')}\r\n`;
}

export function jsonLine(row: LedgerRow): string {
  return `${JSON.stringify(row)}\n`;
}

const needsQuotes = /[",\r\n]/;

function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  const text = String(value);
  return needsQuotes.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The rows of `filter` in [sinceMs, untilMs), oldest first, one slice at a time (see the file
 * comment). Each call to `next()` reads one slice.
 */
export function* ledgerSlices(
  reader: UsageReader,
  filter: UsageFilter & { readonly sinceMs: number; readonly untilMs: number },
  sliceRowsMax: number = usageExportSliceRowsMax,
): Generator<LedgerRow[], void, undefined> {
  assert(sliceRowsMax >= 1, 'a slice holds a row');
  let cursor = filter.sinceMs;
  let spanMs = filter.untilMs - filter.sinceMs;
  while (cursor < filter.untilMs) {
    let end = Math.min(filter.untilMs, cursor + spanMs);
    let live: number;
    for (;;) {
      const answer = reader.queryUsage({ filter: { ...filter, sinceMs: cursor, untilMs: end }, rowsLimit: 0 });
      live = answer.totals.requests - answer.fromAggregates;
      if (live <= sliceRowsMax || end - cursor <= 1) break;
      // Narrowed in proportion to the overshoot, at least halved: a burst inside the span may
      // still not fit the guess.
      const span = end - cursor;
      end = cursor + Math.max(1, Math.min(Math.floor(span / 2), Math.floor((span * sliceRowsMax) / live)));
    }
    if (live > 0) {
      const rows: LedgerRow[] = [];
      reader.eachRow({ ...filter, sinceMs: cursor, untilMs: end }, (row) => rows.push(row));
      if (rows.length > 0) yield rows;
    }
    spanMs = Math.max(1, (end - cursor) * 2);
    cursor = end;
  }
}

/**
 * Writes the export through `write`, which resolves once the client has room for more (and
 * rejects once it has gone); returns the rows written.
 */
export async function writeExport(
  reader: UsageReader,
  filter: UsageFilter & { readonly sinceMs: number; readonly untilMs: number },
  format: ExportFormat,
  write: (chunk: string) => Promise<void>,
  sliceRowsMax: number = usageExportSliceRowsMax,
): Promise<number> {
  if (format === 'csv') await write(csvHeader());
  const line = format === 'csv' ? csvLine : jsonLine;
  let rows = 0;
  for (const slice of ledgerSlices(reader, filter, sliceRowsMax)) {
    let chunk = '';
    for (const row of slice) chunk += line(row);
    rows += slice.length;
    await write(chunk);
  }
  return rows;
}
