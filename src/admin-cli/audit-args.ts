import { err, ok, type Result } from '../core/result.js';
import { splitCommandOptions } from '../local/command-options.js';
import { defaultStateFile } from '../local/local-state.js';
import { parseTimeArg, type TimeArg } from './usage-args.js';

/**
 * The command line of `carpool audit` (`npm run carpool -- audit …`), parsed without doing
 * anything. What the audit does is in ./run-audit.ts and ./audit-reconcile.ts.
 */
export const auditUsage = `usage: carpool audit [options]     (npm run carpool -- audit …)

Reconciles, per tenant and account and per counter window of their limits, three accounts of the
same usage, and prints them side by side:
  ledger    the usage-ledger rows of every node of the mesh, added up (each node keeps the rows
            of the requests it settled: every node needs a dataDir)
  counters  the mesh's counters, read at QUORUM, less the usage adjustments in the audit log
  upstream  what the upstream itself counted per account, when it is the emulator
Exit codes: 0 all agree, 1 a difference, 2 the audit could not run (the command line, or a node
or the emulator could not be read).

options:
  --admin URL         a node's admin endpoint; give one per node of the mesh. Default: every
                      region of the running local mesh (npm start), with its emulator
  --token T, --token-file F
                      the admin token (a viewer token suffices); default: the local mesh's
  --state FILE        the local mesh's state file (default ${defaultStateFile})
  --since WHEN        check the windows that overlap [since, until), each read whole
                      (default 1h: the last hour's windows)
  --until WHEN        (default now)
  --emulator URL      also compare with the emulator's own tally (GET /_emulator/stats), which
                      counts from its start (or its last reset): it must have served this mesh
                      only, and within the range read
  --node-config FILE  a node's config, for the account keys it holds (upstream.accounts): how the
                      audit tells which emulator key is which account; once per node
  --json              the report as JSON
  --help              this text

WHEN is a time ago (90s, 15m, 12h, 30d), a date (2027-01-31), a date and time with its offset
(2027-01-31T12:00:00Z) or epoch milliseconds. Run it on a quiet mesh: a request still running
holds a reservation in the counters and has no ledger row yet.`;

export interface AuditArgs {
  /** Admin endpoints, one per node; empty: the local mesh's. */
  readonly admins: readonly string[];
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly stateFile: string;
  readonly since: TimeArg;
  readonly until: TimeArg | undefined;
  readonly emulator: string | undefined;
  readonly nodeConfigs: readonly string[];
  readonly json: boolean;
  readonly help: boolean;
}

/** The last hour's windows, when no --since is given. */
const defaultSince: TimeArg = { kind: 'ago', ms: 3_600_000 };

const urlPattern = /^https?:\/\/[^\s/]+\/?$/;

export function parseAuditArgs(argv: readonly string[]): Result<AuditArgs, string> {
  const parts = splitCommandOptions(argv, {
    valued: ['token', 'token-file', 'state', 'since', 'until', 'emulator'],
    switches: ['json', 'help'],
    repeated: ['admin', 'node-config'],
  });
  if (!parts.ok) return parts;
  const { words, values, flags, lists } = parts.value;
  if (words.length > 0) return err(`audit takes options only, not "${words[0] ?? ''}"`);
  if (values.has('token') && values.has('token-file')) return err('give --token or --token-file, not both');
  const admins = lists.get('admin') ?? [];
  const bad = admins.find((url) => !urlPattern.test(url));
  if (bad !== undefined) return err(`--admin takes http://host:port, not "${bad}"`);
  if (new Set(admins.map((url) => url.replace(/\/$/, ''))).size !== admins.length)
    return err("an --admin URL is given twice: each node's rows would be counted twice");
  const emulator = values.get('emulator');
  if (emulator !== undefined && !urlPattern.test(emulator)) return err('--emulator takes http://host:port');
  const nodeConfigs = lists.get('node-config') ?? [];
  if (nodeConfigs.length > 0 && emulator === undefined && admins.length > 0)
    return err('--node-config tells which emulator key is which account: it goes with --emulator');
  const since = values.has('since') ? parseTimeArg(values.get('since') as string, 'since') : ok(defaultSince);
  if (!since.ok) return since;
  const until = values.has('until') ? parseTimeArg(values.get('until') as string, 'until') : ok(undefined);
  if (!until.ok) return until;
  return ok({
    admins: admins.map((url) => url.replace(/\/$/, '')),
    token: values.get('token'),
    tokenFile: values.get('token-file'),
    stateFile: values.get('state') ?? defaultStateFile,
    since: since.value,
    until: until.value,
    emulator: emulator?.replace(/\/$/, ''),
    nodeConfigs,
    json: flags.has('json'),
    help: flags.has('help'),
  });
}
