import { err, ok, type Result } from '../core/result.js';
import { usageQueryGroupFieldsMax, usageQueryRowsMax } from '../core/limits.js';
import { splitCommandOptions } from '../local/command-options.js';
import { defaultStateFile } from '../local/local-state.js';
import { parseTime } from '../node/admin/usage-query-params.js';
import { parseDurationMs } from './admin-args.js';
import type { TargetArgs } from './admin-target.js';

/**
 * The command line of `carpool usage` (`npm run carpool -- usage …`), parsed without doing
 * anything: a question to one node's usage ledger (GET /usage/ledger) or an export of its rows
 * (GET /usage/export). The node is found as `carpool admin` finds it (src/admin-cli/admin-target.ts).
 */
export const usageUsage = `usage: carpool usage query|export [options]     (npm run carpool -- usage …)

Each node keeps the ledger rows of the requests it settled (it needs a dataDir in its config):
these commands read one node's. For the whole mesh, ask every node (--region R or --url U), or
run carpool audit, which adds them all up.

commands:
  query                         totals, groups (--group-by) and the newest rows (--rows)
  export --since WHEN --format csv|jsonl [--out FILE]
                                every row of the range, oldest first, streamed; to FILE (written
                                whole or not at all) or stdout; a progress line on stderr

filters (both commands):
  --side tenant|account   which side of the books (default tenant): the tenant side holds the
                          requests' charges, the account side the accounts' (a forwarded request
                          has a row on each, at the two regions it passed)
  --tenant T  --user U  --api-key KEY_ID  --model M  --account A
  --since WHEN  --until WHEN
                          WHEN is a time ago (90s, 15m, 12h, 30d), a date (2027-01-31, midnight
                          UTC), a date and time with its offset (2027-01-31T12:00:00Z) or epoch ms

query options:
  --group-by F[,F...]     up to ${usageQueryGroupFieldsMax} of tenant, user, apiKeyId, model, account, day, hour,
                          window:<unit> (sec10, minute, hour, hour5, day, week, day30)
  --rows N                list the newest N rows (0 to ${usageQueryRowsMax}; default 0)
  --json                  print the endpoint's JSON answer

options:
  --url URL  --region R  --token T  --token-file F  --state FILE
                          which node and which admin token, as for carpool admin (a viewer
                          token suffices)
  --help                  this text

Exit codes: 0 done, 1 the node refused or could not be reached or the export broke off,
2 a mistake on the command line.`;

/** A time as given: some time ago (resolved when the command runs) or an instant. */
export type TimeArg = { readonly kind: 'ago'; readonly ms: number } | { readonly kind: 'at'; readonly ms: number };

export interface UsageFilterArgs {
  readonly side: 'tenant' | 'account' | undefined;
  readonly tenant: string | undefined;
  readonly user: string | undefined;
  readonly apiKey: string | undefined;
  readonly model: string | undefined;
  readonly account: string | undefined;
  readonly since: TimeArg | undefined;
  readonly until: TimeArg | undefined;
}

export type UsageCommand =
  | {
      readonly kind: 'query';
      readonly filter: UsageFilterArgs;
      readonly groupBy: string | undefined;
      readonly rows: number | undefined;
      readonly json: boolean;
    }
  | {
      readonly kind: 'export';
      readonly filter: UsageFilterArgs & { readonly since: TimeArg };
      readonly format: 'csv' | 'jsonl';
      readonly out: string | undefined;
    };

export interface UsageArgs extends TargetArgs {
  readonly command: UsageCommand | undefined;
  readonly help: boolean;
}

const targetOptions = ['url', 'region', 'token', 'token-file', 'state'];
const filterOptions = ['side', 'tenant', 'user', 'api-key', 'model', 'account', 'since', 'until'];
const valued = [...targetOptions, ...filterOptions, 'group-by', 'rows', 'format', 'out'];
const commandOptions: Readonly<Record<UsageCommand['kind'], readonly string[]>> = {
  query: ['group-by', 'rows', 'json'],
  export: ['format', 'out'],
};

export function parseUsageArgs(argv: readonly string[]): Result<UsageArgs, string> {
  const parts = splitCommandOptions(argv, { valued, switches: ['json', 'help'] });
  if (!parts.ok) return parts;
  const { words, values, flags } = parts.value;
  const target = parseTargetArgs(values);
  if (!target.ok) return target;
  if (flags.has('help')) return ok({ ...target.value, command: undefined, help: true });
  const [verb, ...rest] = words;
  if (verb !== 'query' && verb !== 'export')
    return err(verb === undefined ? 'give a command: query or export' : `unknown command "${verb}"; the commands are query and export`);
  if (rest.length > 0) return err(`usage ${verb} takes options only, not "${rest[0] ?? ''}"`);
  const allowed = [...targetOptions, ...filterOptions, ...commandOptions[verb]];
  const extra = [...values.keys(), ...flags].find((name) => !allowed.includes(name));
  if (extra !== undefined) return err(`usage ${verb} takes no --${extra}`);
  const filter = parseFilter(values);
  if (!filter.ok) return filter;
  const command = verb === 'query' ? parseQuery(filter.value, values, flags) : parseExport(filter.value, values);
  return command.ok ? ok({ ...target.value, command: command.value, help: false }) : command;
}

/** `--url`, `--region`, the token and the state file, checked as `carpool admin` checks them. */
export function parseTargetArgs(values: ReadonlyMap<string, string>): Result<TargetArgs, string> {
  if (values.has('token') && values.has('token-file')) return err('give --token or --token-file, not both');
  const url = values.get('url');
  if (url !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(url)) return err('--url takes http://host:port');
  if (url !== undefined && values.has('region')) return err('give --url or --region, not both');
  return ok({
    url,
    region: values.get('region'),
    token: values.get('token'),
    tokenFile: values.get('token-file'),
    stateFile: values.get('state') ?? defaultStateFile,
  });
}

function parseQuery(filter: UsageFilterArgs, values: ReadonlyMap<string, string>, flags: ReadonlySet<string>): Result<UsageCommand, string> {
  const rowsText = values.get('rows');
  if (rowsText !== undefined && (!/^\d{1,9}$/.test(rowsText) || Number(rowsText) > usageQueryRowsMax))
    return err(`--rows takes a number from 0 to ${usageQueryRowsMax}`);
  return ok({ kind: 'query', filter, groupBy: values.get('group-by'), rows: rowsText === undefined ? undefined : Number(rowsText), json: flags.has('json') });
}

function parseExport(filter: UsageFilterArgs, values: ReadonlyMap<string, string>): Result<UsageCommand, string> {
  const { since } = filter;
  if (since === undefined) return err('usage export needs --since WHEN: where the export starts (12h, 2027-01-31, ...)');
  const format = values.get('format');
  if (format !== 'csv' && format !== 'jsonl') return err('usage export needs --format csv or --format jsonl');
  const out = values.get('out');
  if (out === '') return err('--out takes a file name');
  return ok({ kind: 'export', filter: { ...filter, since }, format, out });
}

function parseFilter(values: ReadonlyMap<string, string>): Result<UsageFilterArgs, string> {
  const side = values.get('side');
  if (side !== undefined && side !== 'tenant' && side !== 'account') return err('--side takes tenant or account');
  const since = optionalTime(values.get('since'), 'since');
  if (!since.ok) return since;
  const until = optionalTime(values.get('until'), 'until');
  if (!until.ok) return until;
  return ok({
    side,
    tenant: values.get('tenant'),
    user: values.get('user'),
    apiKey: values.get('api-key'),
    model: values.get('model'),
    account: values.get('account'),
    since: since.value,
    until: until.value,
  });
}

function optionalTime(text: string | undefined, name: string): Result<TimeArg | undefined, string> {
  return text === undefined ? ok(undefined) : parseTimeArg(text, name);
}

/** `12h` (that long ago), or a time the ledger's own parser takes (./usage-query-params.ts). */
export function parseTimeArg(text: string, name: string): Result<TimeArg, string> {
  const ago = parseDurationMs(text);
  if (ago !== null) return ok({ kind: 'ago', ms: ago });
  const at = parseTime(text, name);
  if (at.ok) return ok({ kind: 'at', ms: at.value });
  return err(
    `--${name} takes a time ago (90s, 15m, 12h, 30d), a date (2027-01-31), a date and time with its offset (2027-01-31T12:00:00Z) or epoch milliseconds`,
  );
}

export function resolveTime(time: TimeArg, nowMs: number): number {
  return time.kind === 'ago' ? nowMs - time.ms : time.ms;
}

/** The query string of a filter, times resolved against `nowMs`. */
export function filterParams(filter: UsageFilterArgs, nowMs: number): URLSearchParams {
  const params = new URLSearchParams();
  const add = (name: string, value: string | undefined): void => {
    if (value !== undefined) params.set(name, value);
  };
  add('side', filter.side);
  add('tenant', filter.tenant);
  add('user', filter.user);
  add('apiKey', filter.apiKey);
  add('model', filter.model);
  add('account', filter.account);
  add('since', filter.since === undefined ? undefined : String(resolveTime(filter.since, nowMs)));
  add('until', filter.until === undefined ? undefined : String(resolveTime(filter.until, nowMs)));
  return params;
}
