import { err, ok, type Result } from '../core/result.js';
import { splitCommandOptions } from '../local/command-options.js';
import { defaultStateFile } from '../local/local-state.js';

/**
 * The command line of `carpool admin` (`npm run carpool -- admin …`), parsed without doing
 * anything. Every command maps to one route of the admin HTTP endpoint (src/net/admin-http.ts),
 * so what the CLI may do is exactly what its token's role allows there.
 */
export const adminUsage = `usage: carpool admin [options] <command>     (npm run carpool -- admin [options] <command>)

commands (v: a viewer token may run it; a: needs an admin token):
  v status                              the node's peers and counters
  v tenants list                        every tenant: tier, keys, limits
  v tenants get ID                      one tenant as JSON (its keys as metadata)
  a tenants put ID (--file F | JSON)    create or replace a tenant (policy-schema.ts Tenant, no keys)
  a tenants remove ID
  v accounts list
  v accounts get ID
  a accounts put ID (--file F | JSON)   create or replace an account (policy-schema.ts Account)
  a accounts remove ID
  a accounts enable ID                  re-enable an account a 401/402/403 disabled, at this node
  v keys list TENANT                    key id, name, state, created, expiry; never a key
  a keys create TENANT --name N [--expires WHEN]
                                        a new key, printed once
  a keys revoke KEY_ID                  refused mesh-wide within a gossip interval
  a keys rotate KEY_ID [--grace DURATION] [--name N] [--expires WHEN]
                                        a new key; the old one stops now or after the grace
  v usage TENANT [--user U] [--quorum]  the tenant's limits, used and remaining
  a adjust charge|credit --scope tenant|user|account --subject S --metric M --window W
           --amount N --reason R [--index I]
                                        an audited change of one counter; a credit never
                                        exceeds the counter's value
  v pool                                this node's view of the accounts' health
  v audit [--limit N]                   the audit log, newest first

options:
  --url URL          the node's admin endpoint (default: a region of the running local mesh,
                     or CARPOOL_ADMIN_URL)
  --region R         which region of the local mesh (default: the first)
  --token T          the admin token (default: the local mesh's, or --token-file)
  --token-file F     read the token from F (or CARPOOL_ADMIN_TOKEN_FILE)
  --state FILE       the local mesh's state file (default ${defaultStateFile})
  --reason R         why, for the audit log (every write; required by adjust)
  --json             print the endpoint's JSON answer instead of text
  --help             this text

WHEN is a duration from now (90s, 15m, 12h, 30d) or a date (2027-01-31, 2027-01-31T12:00:00Z);
DURATION is a duration. Exit codes: 0 done, 1 the endpoint refused or could not be reached,
2 a mistake on the command line or in the state file.`;

export type AdminCommand =
  | { readonly kind: 'status' }
  | { readonly kind: 'tenants-list' }
  | { readonly kind: 'tenants-get'; readonly id: string }
  | { readonly kind: 'tenants-put'; readonly id: string; readonly json: string | undefined; readonly file: string | undefined }
  | { readonly kind: 'tenants-remove'; readonly id: string }
  | { readonly kind: 'accounts-list' }
  | { readonly kind: 'accounts-get'; readonly id: string }
  | { readonly kind: 'accounts-put'; readonly id: string; readonly json: string | undefined; readonly file: string | undefined }
  | { readonly kind: 'accounts-remove'; readonly id: string }
  | { readonly kind: 'accounts-enable'; readonly id: string }
  | { readonly kind: 'keys-list'; readonly tenant: string }
  | { readonly kind: 'keys-create'; readonly tenant: string; readonly name: string; readonly expires: When | undefined }
  | { readonly kind: 'keys-revoke'; readonly keyId: string }
  | {
      readonly kind: 'keys-rotate';
      readonly keyId: string;
      readonly graceMs: number | undefined;
      readonly name: string | undefined;
      readonly expires: When | undefined;
    }
  | { readonly kind: 'usage'; readonly tenant: string; readonly user: string | undefined; readonly quorum: boolean }
  | { readonly kind: 'adjust'; readonly body: Readonly<Record<string, string | number>> }
  | { readonly kind: 'pool' }
  | { readonly kind: 'audit'; readonly limit: number | undefined };

/** An expiry: a duration from when the command runs, or an instant. */
export type When = { readonly kind: 'in'; readonly ms: number } | { readonly kind: 'at'; readonly ms: number };

export interface AdminArgs {
  readonly command: AdminCommand | undefined;
  readonly url: string | undefined;
  readonly region: string | undefined;
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly stateFile: string;
  readonly reason: string | undefined;
  readonly json: boolean;
  readonly help: boolean;
}

const valued = [
  'url',
  'region',
  'token',
  'token-file',
  'state',
  'reason',
  'file',
  'name',
  'expires',
  'grace',
  'user',
  'limit',
  'scope',
  'subject',
  'metric',
  'window',
  'amount',
  'index',
];
const switches = ['json', 'help', 'quorum'];

/** The options each command takes besides the global ones. */
const commandOptions: Readonly<Record<string, readonly string[]>> = {
  'tenants-put': ['file'],
  'accounts-put': ['file'],
  'keys-create': ['name', 'expires'],
  'keys-rotate': ['grace', 'name', 'expires'],
  usage: ['user', 'quorum'],
  adjust: ['scope', 'subject', 'metric', 'window', 'amount', 'index'],
  audit: ['limit'],
};
const globalOptions = ['url', 'region', 'token', 'token-file', 'state', 'reason', 'json', 'help'];

export function parseAdminArgs(argv: readonly string[]): Result<AdminArgs, string> {
  const parts = splitCommandOptions(argv, { valued, switches });
  if (!parts.ok) return parts;
  const { words, values, flags } = parts.value;
  const help = flags.has('help');
  const command = help ? ok(undefined) : parseCommand(words, values, flags);
  if (!command.ok) return command;
  if (command.value !== undefined) {
    const allowed = [...globalOptions, ...(commandOptions[command.value.kind] ?? [])];
    const extra = [...values.keys(), ...flags].find((name) => !allowed.includes(name));
    if (extra !== undefined) return err(`${words.slice(0, 2).join(' ')} takes no --${extra}`);
  }
  if (values.has('token') && values.has('token-file')) return err('give --token or --token-file, not both');
  const url = values.get('url');
  if (url !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(url)) return err('--url takes http://host:port');
  if (url !== undefined && values.has('region')) return err('give --url or --region, not both');
  return ok({
    command: command.value,
    url,
    region: values.get('region'),
    token: values.get('token'),
    tokenFile: values.get('token-file'),
    stateFile: values.get('state') ?? defaultStateFile,
    reason: values.get('reason'),
    json: flags.has('json'),
    help,
  });
}

function parseCommand(words: readonly string[], values: ReadonlyMap<string, string>, flags: ReadonlySet<string>): Result<AdminCommand, string> {
  const [group, verb, ...rest] = words;
  if (group === undefined) return err('give a command');
  const args = (count: number, names: string): Result<readonly string[], string> =>
    rest.length === count ? ok(rest) : err(`${group} ${verb ?? ''} takes ${count === 0 ? 'no arguments' : names}`.replace(/ +/g, ' '));
  const one = (names: string): Result<string, string> => {
    const given = args(1, names);
    return given.ok ? ok(given.value[0] as string) : given;
  };
  switch (group) {
    case 'status':
    case 'pool':
      return words.length === 1 ? ok({ kind: group }) : err(`${group} takes no arguments`);
    case 'audit': {
      if (words.length !== 1) return err('audit takes no arguments (--limit N)');
      const limit = values.get('limit');
      if (limit !== undefined && !/^[1-9]\d{0,3}$/.test(limit)) return err('--limit takes a number from 1 to 1000');
      return ok({ kind: 'audit', limit: limit === undefined ? undefined : Number(limit) });
    }
    case 'usage': {
      if (verb === undefined || rest.length > 0) return err('usage takes TENANT');
      return ok({ kind: 'usage', tenant: verb, user: values.get('user'), quorum: flags.has('quorum') });
    }
    case 'adjust':
      return parseAdjust(verb, rest, values);
    case 'tenants':
    case 'accounts':
      return parseSubjectCommand(group, verb, rest, values, one, args);
    case 'keys':
      return parseKeysCommand(verb, values, one);
    default:
      return err(`unknown command "${group}"`);
  }
}

function parseSubjectCommand(
  group: 'tenants' | 'accounts',
  verb: string | undefined,
  rest: readonly string[],
  values: ReadonlyMap<string, string>,
  one: (names: string) => Result<string, string>,
  args: (count: number, names: string) => Result<readonly string[], string>,
): Result<AdminCommand, string> {
  if (verb === 'list') {
    const none = args(0, '');
    return none.ok ? ok({ kind: `${group}-list` }) : none;
  }
  if (verb === 'get' || verb === 'remove' || (verb === 'enable' && group === 'accounts')) {
    const id = one('ID');
    return id.ok ? ok({ kind: `${group}-${verb}`, id: id.value } as AdminCommand) : id;
  }
  if (verb === 'put') {
    const [id, json, ...more] = rest;
    const file = values.get('file');
    if (id === undefined || more.length > 0) return err(`${group} put takes ID and either --file FILE or the JSON`);
    if ((json === undefined) === (file === undefined)) return err(`${group} put takes either --file FILE or the JSON, one of them`);
    return ok({ kind: `${group}-put`, id, json, file });
  }
  const verbs = group === 'tenants' ? 'list, get, put, remove' : 'list, get, put, remove, enable';
  return err(`${group} takes one of ${verbs}`);
}

function parseKeysCommand(
  verb: string | undefined,
  values: ReadonlyMap<string, string>,
  one: (names: string) => Result<string, string>,
): Result<AdminCommand, string> {
  const expires = values.get('expires') === undefined ? ok(undefined) : parseWhen(values.get('expires') as string);
  if (!expires.ok) return expires;
  switch (verb) {
    case 'list': {
      const tenant = one('TENANT');
      return tenant.ok ? ok({ kind: 'keys-list', tenant: tenant.value }) : tenant;
    }
    case 'create': {
      const tenant = one('TENANT');
      if (!tenant.ok) return tenant;
      const name = values.get('name');
      if (name === undefined) return err('keys create needs --name N: a label to tell the key from the others');
      return ok({ kind: 'keys-create', tenant: tenant.value, name, expires: expires.value });
    }
    case 'revoke': {
      const keyId = one('KEY_ID');
      return keyId.ok ? ok({ kind: 'keys-revoke', keyId: keyId.value }) : keyId;
    }
    case 'rotate': {
      const keyId = one('KEY_ID');
      if (!keyId.ok) return keyId;
      const graceText = values.get('grace');
      const grace = graceText === undefined ? undefined : parseDurationMs(graceText);
      if (grace === null) return err('--grace takes a duration such as 10m, 12h or 7d');
      return ok({ kind: 'keys-rotate', keyId: keyId.value, graceMs: grace, name: values.get('name'), expires: expires.value });
    }
    default:
      return err('keys takes one of list, create, revoke, rotate');
  }
}

function parseAdjust(verb: string | undefined, rest: readonly string[], values: ReadonlyMap<string, string>): Result<AdminCommand, string> {
  if ((verb !== 'charge' && verb !== 'credit') || rest.length > 0) return err('adjust takes charge or credit, and its options');
  const missing = ['scope', 'subject', 'metric', 'window', 'amount'].filter((name) => !values.has(name));
  if (missing.length > 0) return err(`adjust ${verb} needs ${missing.map((name) => `--${name}`).join(', ')}`);
  if (!values.has('reason')) return err(`adjust ${verb} needs --reason R: the audit log records why`);
  const amount = values.get('amount') as string;
  if (!/^\d{1,15}$/.test(amount)) return err('--amount takes a whole number');
  const index = values.get('index');
  if (index !== undefined && !/^\d{1,15}$/.test(index)) return err('--index takes a whole number');
  const body: Record<string, string | number> = {
    scope: values.get('scope') as string,
    subject: values.get('subject') as string,
    metric: values.get('metric') as string,
    window: values.get('window') as string,
    kind: verb,
    amount: Number(amount),
    ...(index === undefined ? {} : { index: Number(index) }),
  };
  return ok({ kind: 'adjust', body });
}

const durationUnits: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `12h`, `30d`, `500ms`; null when the text is none of those. */
export function parseDurationMs(text: string): number | null {
  const match = /^(\d{1,9})(ms|s|m|min|h|d)$/.exec(text);
  if (match === null) return null;
  return Number(match[1]) * (durationUnits[match[2] as string] as number);
}

/** A duration from now, or a date (`2027-01-31`, `2027-01-31T12:00:00Z`). */
export function parseWhen(text: string): Result<When, string> {
  const duration = parseDurationMs(text);
  if (duration !== null) return ok({ kind: 'in', ms: duration });
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return ok({ kind: 'at', ms });
  }
  return err('--expires takes a duration (90s, 15m, 12h, 30d) or a date (2027-01-31, 2027-01-31T12:00:00Z)');
}
