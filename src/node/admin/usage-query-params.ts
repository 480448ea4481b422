import { isValidId } from '../../core/ids.js';
import { usageQueryGroupFieldsMax, usageQueryRowsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { windowUnits } from '../../crdt/window.js';
import type { UsageFilter, UsageGroupField, UsageQuery } from '../../ledger/usage-query.js';

/**
 * A usage question as an operator writes it (GET /usage/ledger and /usage/export, QueryUsage),
 * checked value by value before the ledger is asked anything. Every problem names its parameter.
 *
 *   side      tenant (default) or account: which side of the books (src/ledger/usage-query.ts)
 *   tenant, user, apiKey, model, account
 *             exact matches; `apiKey` is a key id (`<tenant>:<8 hex>`, what `carpool admin keys
 *             list` shows), never the key itself, which is refused so it does not end up in logs
 *   since, until
 *             the half-open range [since, until) of the time a request was charged at: epoch
 *             milliseconds, a date (`2027-01-31`, midnight UTC) or a date and time with its offset
 *             (`2027-01-31T12:00:00Z`, `...+02:00`); a time without an offset is refused, since
 *             its meaning would depend on the node's time zone
 *   groupBy   up to `usageQueryGroupFieldsMax` of tenant, user, apiKeyId, model, account, day, hour,
 *             window:<unit> (the counter windows, src/crdt/window.ts), comma-separated
 *   rows      ledger rows to list, newest first: 0 (default) to `usageQueryRowsMax`
 *
 * An export takes the filter and `format` (csv or jsonl), needs `since`, and fixes `until` to
 * the time of the request when it is left out, so that a long export has an end.
 */
export interface UsageParamProblem {
  readonly field: string;
  readonly reason: string;
}

/** The parameters as given; a number is already a number when the caller's protocol has types. */
export interface UsageParams {
  readonly side?: string | undefined;
  readonly tenant?: string | undefined;
  readonly user?: string | undefined;
  readonly apiKey?: string | undefined;
  readonly model?: string | undefined;
  readonly account?: string | undefined;
  readonly since?: string | number | undefined;
  readonly until?: string | number | undefined;
  readonly groupBy?: string | undefined;
  readonly rows?: string | number | undefined;
  readonly format?: string | undefined;
}

export type UsageParamName = keyof UsageParams;

/** How each parameter is called where it came from: the query's own names by default. */
export type UsageParamNames = Readonly<Record<UsageParamName, string>>;

export const usageQueryParamNames: UsageParamNames = Object.freeze({
  side: 'side',
  tenant: 'tenant',
  user: 'user',
  apiKey: 'apiKey',
  model: 'model',
  account: 'account',
  since: 'since',
  until: 'until',
  groupBy: 'groupBy',
  rows: 'rows',
  format: 'format',
});

export type ExportFormat = 'csv' | 'jsonl';

export interface UsageExportRequest {
  readonly filter: UsageFilter & { readonly sinceMs: number; readonly untilMs: number };
  readonly format: ExportFormat;
}

const queryParams: readonly UsageParamName[] = ['side', 'tenant', 'user', 'apiKey', 'model', 'account', 'since', 'until', 'groupBy', 'rows'];
const exportParams: readonly UsageParamName[] = ['side', 'tenant', 'user', 'apiKey', 'model', 'account', 'since', 'until', 'format'];
const groupFields: readonly string[] = ['tenant', 'user', 'apiKeyId', 'model', 'account', 'day', 'hour', ...windowUnits.map((unit) => `window:${unit}`)];
/** The largest time Date accepts: 8.64e15 ms, some 275,000 years. */
const timeMsMax = 8_640_000_000_000_000;

/** The params of a query string; a parameter given twice or one this question does not take is refused. */
export function usageParamsOf(query: URLSearchParams, kind: 'query' | 'export'): Result<UsageParams, UsageParamProblem> {
  const allowed = kind === 'query' ? queryParams : exportParams;
  const params: Record<string, string> = {};
  for (const [name, value] of query) {
    if (!(allowed as readonly string[]).includes(name))
      return problem(name.slice(0, 64), `unknown parameter; ${kind === 'query' ? 'a usage query' : 'an export'} takes ${allowed.join(', ')}`);
    if (params[name] !== undefined) return problem(name, 'is given twice');
    params[name] = value;
  }
  return ok(params);
}

export function parseUsageQuery(params: UsageParams, names: UsageParamNames = usageQueryParamNames): Result<UsageQuery, UsageParamProblem> {
  const filter = parseUsageFilter(params, names);
  if (!filter.ok) return filter;
  const groupBy = parseGroupBy(params.groupBy, names.groupBy);
  if (!groupBy.ok) return groupBy;
  const rows = params.rows === undefined || params.rows === '' ? ok(0) : count(params.rows, names.rows, usageQueryRowsMax);
  if (!rows.ok) return rows;
  return ok({ filter: filter.value, ...(groupBy.value.length === 0 ? {} : { groupBy: groupBy.value }), rowsLimit: rows.value });
}

export function parseUsageExport(
  params: UsageParams,
  nowMs: number,
  names: UsageParamNames = usageQueryParamNames,
): Result<UsageExportRequest, UsageParamProblem> {
  const filter = parseUsageFilter(params, names);
  if (!filter.ok) return filter;
  const { sinceMs, untilMs = nowMs } = filter.value;
  if (sinceMs === undefined) return problem(names.since, 'is required for an export: where it starts');
  if (untilMs <= sinceMs) return problem(names.until, `must be after since${params.until === undefined ? ' (it defaults to now)' : ''}`);
  const format = params.format;
  if (format !== 'csv' && format !== 'jsonl') return problem(names.format, 'must be csv or jsonl');
  return ok({ filter: { ...filter.value, sinceMs, untilMs }, format });
}

export function parseUsageFilter(params: UsageParams, names: UsageParamNames = usageQueryParamNames): Result<UsageFilter, UsageParamProblem> {
  const side = params.side === undefined || params.side === '' ? 'tenant' : params.side;
  if (side !== 'tenant' && side !== 'account') return problem(names.side, 'must be tenant or account');
  const filter: { -readonly [K in keyof UsageFilter]: UsageFilter[K] } = { side };
  for (const [param, field] of [
    ['tenant', 'tenant'],
    ['user', 'user'],
    ['apiKey', 'apiKeyId'],
    ['model', 'model'],
    ['account', 'account'],
  ] as const) {
    const value = params[param];
    if (value === undefined || value === '') continue;
    if (!isValidId(value)) return problem(names[param], 'must be 1 to 64 printable ASCII characters without spaces');
    if (param === 'apiKey' && value.startsWith('cp_'))
      return problem(names.apiKey, 'takes a key id (<tenant>:<8 hex>, as keys list shows it), never the key itself');
    filter[field] = value;
  }
  const since = params.since === undefined || params.since === '' ? ok(undefined) : parseTime(params.since, names.since);
  if (!since.ok) return since;
  const until = params.until === undefined || params.until === '' ? ok(undefined) : parseTime(params.until, names.until);
  if (!until.ok) return until;
  if (since.value !== undefined) filter.sinceMs = since.value;
  if (until.value !== undefined) filter.untilMs = until.value;
  if (since.value !== undefined && until.value !== undefined && until.value <= since.value) return problem(names.until, 'must be after since');
  return ok(filter);
}

const isoPattern = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/** Epoch milliseconds, or ISO-8601 as the file comment says; a problem naming `field` otherwise. */
export function parseTime(value: string | number, field: string): Result<number, UsageParamProblem> {
  const refused = problem(field, 'must be epoch milliseconds, a date (2027-01-31) or a date and time with its offset (2027-01-31T12:00:00Z)');
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 && value <= timeMsMax ? ok(value) : refused;
  if (/^\d{1,16}$/.test(value)) return Number(value) <= timeMsMax ? ok(Number(value)) : refused;
  const match = isoPattern.exec(value);
  if (match === null) return refused;
  const [year, month, day, hours = 0, minutes = 0, seconds = 0] = match.slice(1).map((part) => (part === undefined ? undefined : Number(part))) as number[];
  // Date.parse rolls 2027-02-31 over into March and takes 24:00; both are refused here.
  const date = new Date(Date.UTC(year as number, (month as number) - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== (month as number) - 1 || date.getUTCDate() !== day) return refused;
  if (hours > 23 || minutes > 59 || seconds > 59) return refused;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && ms >= 0 ? ok(ms) : refused;
}

function parseGroupBy(value: string | undefined, name: string): Result<UsageGroupField[], UsageParamProblem> {
  if (value === undefined || value === '') return ok([]);
  const fields = value.split(',');
  if (fields.length > usageQueryGroupFieldsMax) return problem(name, `takes at most ${usageQueryGroupFieldsMax} fields`);
  for (const field of fields) {
    if (!groupFields.includes(field)) return problem(name, `${JSON.stringify(field.slice(0, 64))} is none of ${groupFields.join(', ')}`);
  }
  if (new Set(fields).size !== fields.length) return problem(name, 'names a field twice');
  return ok(fields as UsageGroupField[]);
}

function count(value: string | number, field: string, max: number): Result<number, UsageParamProblem> {
  const number = typeof value === 'number' ? value : /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  return Number.isSafeInteger(number) && number >= 0 && number <= max ? ok(number) : problem(field, `must be a whole number from 0 to ${max}`);
}

function problem(field: string, reason: string): Result<never, UsageParamProblem> {
  return err({ field, reason });
}
