#!/usr/bin/env node
// The `carpool` command. Subcommands are added as the parts they drive land.
import { checkHealth } from './net/grpc/health-probe.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminUsage, parseAdminArgs } from './admin-cli/admin-args.js';
import { auditUsage, parseAuditArgs } from './admin-cli/audit-args.js';
import { runAdmin } from './admin-cli/run-admin.js';
import { runAudit } from './admin-cli/run-audit.js';
import { runUsage } from './admin-cli/run-usage.js';
import { parseUsageArgs, usageUsage } from './admin-cli/usage-args.js';
import { clientUsage, parseClientArgs } from './local/client-args.js';
import { runClient } from './local/local-client.js';
import { defaultStatusEverySeconds, runLocal } from './local/run-local.js';
import { runCounterDemo } from './node/counter-demo.js';
import { runNode } from './node/run-node.js';
import { runEmulator } from './upstream/emulator/run-emulator.js';

const usage = `usage: carpool <command> [options]

commands:
  local [--config FILE] [--state-dir DIR] [--status-every SECONDS] [--fresh]
      a local three-region mesh (\`npm start\`): the emulator and one node process per region,
      policy applied and a key per tenant; prints the endpoints and a client command per region,
      restarts a process that dies (with backoff), and runs until Ctrl-C (the config format is
      documented in src/local/local-config.ts; without --config the embedded default, the same
      as deploy/local/carpool.local.json). The mesh secret, admin token and API keys are kept in
      the state directory (default .carpool/local) and reused by the next start; --fresh mints
      new ones. A region's status line is printed when it changes (peers, restart, queue) and
      every region's every --status-every seconds (default 30; 0: only on change)
  client [--region R] [--tenant T] [--unary] [--max-tokens N] [--model M] [--usage]
         [--state FILE] [--target HOST:PORT --api-key KEY] "prompt"
      one completion through a region of the running local mesh, streamed (\`npm run client\`);
      --usage also prints the tenant's limits (\`carpool client --help\` for details)
  admin [--url URL --token-file F] [--region R] [--json] <command>
      the admin surface of a node (tenants, accounts, keys, usage, adjust, pool, audit), by
      default of the running local mesh; \`carpool admin --help\` lists the commands
  usage query|export [--since WHEN] [--tenant T] [--side tenant|account] [--format csv|jsonl] [--out FILE]
      one node's usage ledger (it needs a dataDir): totals and groups, or every row of a range
      streamed as CSV or JSON lines; \`carpool usage --help\` for the filters
  audit [--admin URL ...] [--since WHEN] [--emulator URL --node-config FILE ...]
      reconciles, per tenant, account and counter window, the ledger rows of every node, the mesh
      counters read at QUORUM and the emulator's own tally; exit 1 on any difference, 2 when it
      cannot run; by default the running local mesh (\`carpool audit --help\`)
  demo [--seed N] [--ticks N] [--loss P] [--fast]
      three regions count tokens and gossip deltas through the wire codec over lossy links,
      then reconcile with one digest exchange, all in one process
  node --config FILE [--status-every SECONDS]
      run one mesh node: WebSocket mesh endpoint, optional authenticated admin HTTP endpoint
      (the config format is documented in src/node/node-config.ts and README.md)
  health [--target HOST:PORT] [--service NAME] [--timeout-ms N]
      one grpc.health.v1 check of a node's gRPC endpoint (default 127.0.0.1:9401, the overall
      status): prints the status and exits 0 on SERVING, 1 otherwise; what a container
      HEALTHCHECK and a Kubernetes probe run
  emulate --accounts COUNT|FILE [--port N] [--host H] [--ttft-ms N] [--tokens-per-second N] [--seed N]
      run an Anthropic Messages API emulator until SIGINT/SIGTERM; prints its URL and keys
      (the accounts file format is documented in src/upstream/emulator/emulator-config.ts)
  help
      this text (also what \`carpool\` without a command prints)`;

interface Flags {
  readonly [name: string]: string | true;
}

function parseFlags(args: readonly string[]): Flags | string {
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--')) return `unexpected argument "${arg}"`;
    const name = arg.slice(2);
    const next = args[i + 1];
    if (next === undefined || next.startsWith('--')) flags[name] = true;
    else {
      flags[name] = next;
      i++;
    }
  }
  return flags;
}

function numberFlag(flags: Flags, name: string, fallback: number, min: number, max: number): number | string {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw === true || !Number.isFinite(value) || value < min || value > max) return `--${name} takes a number from ${min} to ${max}`;
  return value;
}

/** The command's flags, or undefined after saying why not: a malformed list, or an option the command does not take. */
function knownFlags(command: string, args: readonly string[], allowed: readonly string[]): Flags | undefined {
  const flags = parseFlags(args);
  if (typeof flags === 'string') {
    console.error(`carpool ${command}: ${flags}\n\n${usage}`);
    return undefined;
  }
  const unknown = Object.keys(flags).find((name) => !allowed.includes(name));
  if (unknown !== undefined) {
    console.error(`carpool ${command}: unknown option --${unknown}\n\n${usage}`);
    return undefined;
  }
  return flags;
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  // Without a command, the usage: starting four processes is too much for a bare `carpool`.
  if (command === undefined) {
    console.log(usage);
    return 2;
  }
  if (command === 'help' || command === '--help') {
    console.log(usage);
    return 0;
  }
  if (command === 'local') return localCommand(rest);
  if (command === 'client') return clientCommand(rest);
  if (command === 'admin') return adminCommand(rest);
  if (command === 'usage') return usageCommand(rest);
  if (command === 'audit') return auditCommand(rest);
  if (command === 'node') return nodeCommand(rest);
  if (command === 'emulate') return emulateCommand(rest);
  if (command === 'health') return healthCommand(rest);
  if (command !== 'demo') {
    console.error(`carpool: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  const flags = knownFlags('demo', rest, ['seed', 'ticks', 'loss', 'fast']);
  if (flags === undefined) return 2;
  const seed = numberFlag(flags, 'seed', 42, 0, Number.MAX_SAFE_INTEGER);
  const ticks = numberFlag(flags, 'ticks', 60, 1, 100_000);
  const loss = numberFlag(flags, 'loss', 0.2, 0, 0.99);
  for (const value of [seed, ticks, loss]) {
    if (typeof value === 'string') {
      console.error(`carpool demo: ${value}`);
      return 2;
    }
  }
  const converged = await runCounterDemo(
    {
      seed: Math.floor(seed as number),
      ticks: Math.floor(ticks as number),
      loss: loss as number,
      tickMs: flags.fast === true ? 0 : 50,
      print: (line) => console.log(line),
    },
    (ms) => sleep(ms),
  );
  return converged ? 0 : 1;
}

async function localCommand(args: readonly string[]): Promise<number> {
  const flags = parseFlags(args);
  if (typeof flags === 'string') {
    console.error(`carpool local: ${flags}\n\n${usage}`);
    return 2;
  }
  if (flags.help !== undefined) {
    console.log(usage);
    return 0;
  }
  for (const name of Object.keys(flags)) {
    if (!['config', 'state-dir', 'status-every', 'fresh'].includes(name)) {
      console.error(`carpool local: unknown option --${name}\n\n${usage}`);
      return 2;
    }
  }
  const { config, 'state-dir': stateDir, fresh } = flags;
  if (config === true || stateDir === true) {
    console.error(`carpool local: --${config === true ? 'config FILE' : 'state-dir DIR'} needs a value`);
    return 2;
  }
  if (fresh !== undefined && fresh !== true) {
    console.error(`carpool local: --fresh takes no value (got "${fresh}")`);
    return 2;
  }
  const statusEvery = numberFlag(flags, 'status-every', defaultStatusEverySeconds, 0, 3600);
  if (typeof statusEvery === 'string') {
    console.error(`carpool local: ${statusEvery}`);
    return 2;
  }
  return runLocal({
    configPath: config,
    stateDir,
    statusEveryMs: statusEvery * 1000,
    fresh: fresh === true,
    print: (line) => console.log(line),
    printError: (line) => console.error(line),
  });
}

async function clientCommand(args: readonly string[]): Promise<number> {
  const parsed = parseClientArgs(args);
  if (!parsed.ok) {
    console.error(`carpool client: ${parsed.error}\n\n${clientUsage}`);
    return 2;
  }
  if (parsed.value.help) {
    console.log(clientUsage);
    return 0;
  }
  // Ctrl-C cancels the call (the server stops the upstream stream and settles what was used).
  const cancel = new AbortController();
  const onSigint = (): void => cancel.abort();
  process.on('SIGINT', onSigint);
  try {
    return await runClient(parsed.value, {
      out: (text) => process.stdout.write(text),
      info: (line) => console.error(line),
      signal: cancel.signal,
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function adminCommand(args: readonly string[]): Promise<number> {
  const parsed = parseAdminArgs(args);
  if (!parsed.ok) {
    console.error(`carpool admin: ${parsed.error}\n\n${adminUsage}`);
    return 2;
  }
  return runAdmin(parsed.value, { out: (line) => console.log(line), err: (line) => console.error(line), env: process.env, nowMs: () => Date.now() });
}

async function usageCommand(args: readonly string[]): Promise<number> {
  const parsed = parseUsageArgs(args);
  if (!parsed.ok) {
    console.error(`carpool usage: ${parsed.error}\n\n${usageUsage}`);
    return 2;
  }
  return runUsage(parsed.value, {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    stdout: process.stdout,
    env: process.env,
    nowMs: () => Date.now(),
  });
}

async function auditCommand(args: readonly string[]): Promise<number> {
  const parsed = parseAuditArgs(args);
  if (!parsed.ok) {
    console.error(`carpool audit: ${parsed.error}\n\n${auditUsage}`);
    return 2;
  }
  return runAudit(parsed.value, { out: (line) => console.log(line), err: (line) => console.error(line), env: process.env, nowMs: () => Date.now() });
}

async function nodeCommand(args: readonly string[]): Promise<number> {
  const flags = knownFlags('node', args, ['config', 'status-every']);
  if (flags === undefined) return 2;
  const configPath = flags.config;
  if (typeof configPath !== 'string') {
    console.error('carpool node: --config FILE is required');
    return 2;
  }
  const statusEvery = numberFlag(flags, 'status-every', 10, 1, 3600);
  if (typeof statusEvery === 'string') {
    console.error(`carpool node: ${statusEvery}`);
    return 2;
  }
  return runNode({ configPath, statusEveryMs: statusEvery * 1000, print: (line) => console.log(line) });
}

async function emulateCommand(args: readonly string[]): Promise<number> {
  const flags = knownFlags('emulate', args, ['accounts', 'port', 'host', 'ttft-ms', 'tokens-per-second', 'seed']);
  if (flags === undefined) return 2;
  const accounts = flags.accounts;
  if (typeof accounts !== 'string') {
    console.error(`carpool emulate: --accounts COUNT|FILE is required\n\n${usage}`);
    return 2;
  }
  const host = flags.host ?? '127.0.0.1';
  if (typeof host !== 'string') {
    console.error(`carpool emulate: --host takes a host name or address\n\n${usage}`);
    return 2;
  }
  const port = numberFlag(flags, 'port', 0, 0, 65_535);
  const ttftMs = numberFlag(flags, 'ttft-ms', 0, 0, 600_000);
  const tokensPerSecond = numberFlag(flags, 'tokens-per-second', 0, 0, 1_000_000);
  const seed = numberFlag(flags, 'seed', 0, 0, Number.MAX_SAFE_INTEGER);
  for (const value of [port, ttftMs, tokensPerSecond, seed]) {
    if (typeof value === 'string') {
      console.error(`carpool emulate: ${value}\n\n${usage}`);
      return 2;
    }
  }
  // A number is a count of generated accounts; anything else names an accounts file.
  const count = /^\d+$/.test(accounts) ? Number(accounts) : undefined;
  return runEmulator({
    host,
    port: Math.floor(port as number),
    accounts: count ?? accounts,
    ttftMs: ttftMs as number,
    tokensPerSecond: tokensPerSecond as number,
    seed: Math.floor(seed as number),
    print: (line) => console.log(line),
    printError: (line) => console.error(line),
  });
}

/** `carpool health`: exit 0 when the node's gRPC endpoint answers SERVING, 1 otherwise, 2 on bad flags. */
async function healthCommand(args: readonly string[]): Promise<number> {
  const flags = knownFlags('health', args, ['target', 'service', 'timeout-ms']);
  if (flags === undefined) return 2;
  const target = flags.target ?? '127.0.0.1:9401';
  const service = flags.service ?? '';
  const timeoutMs = flags['timeout-ms'] === undefined ? 2_000 : Number(flags['timeout-ms']);
  if (typeof target !== 'string' || typeof service !== 'string' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 60_000) {
    console.error('carpool health: --target HOST:PORT, --service NAME and --timeout-ms 1 to 60000 take a value');
    return 2;
  }
  const answer = await checkHealth(target, service, timeoutMs);
  console.log(answer);
  return answer === 'SERVING' ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
