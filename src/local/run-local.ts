import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { defaultLocalConfig, type LocalConfig, parseLocalConfigText } from './local-config.js';
import { type LocalMesh, startLocalMesh } from './local-mesh.js';
import { defaultStateFile } from './local-state.js';
import { type RegionSample, sampleOf, StatusSchedule, unreachableSample } from './region-status.js';
import { formatChildEvent } from './supervised-child.js';

/**
 * `carpool local` (`npm start`): validates the configuration (a file, or the embedded default),
 * starts the local mesh (reusing the previous run's keys unless `fresh`), prints its endpoints and
 * a client command per region, then keeps it running until SIGINT, SIGTERM or SIGHUP, and stops
 * every child. A child that dies is restarted by the mesh (src/local/supervised-child.ts); this
 * prints one line when it dies and one when it is back.
 *
 * Status lines (src/local/region-status.ts): every region is read once a second, and a region's
 * line is printed when something a reader acts on changes (answering or not, a restart, its
 * peers, its queue starting or emptying), plus every region's line every `statusEveryMs`
 * (`--status-every SECONDS`, 30 by default; 0 prints on change only), so the endpoint block
 * stays on screen. Exit codes: 0 after a requested stop, 1 when the mesh could not start, 2 for a
 * bad configuration.
 */
export interface RunLocalOptions {
  readonly configPath: string | undefined;
  readonly stateDir: string | undefined;
  /** Every region's status line this often; 0: only when something changes. */
  readonly statusEveryMs: number;
  /** Mint a new secret, token and keys instead of reusing the previous run's. */
  readonly fresh: boolean;
  readonly print: (line: string) => void;
  readonly printError: (line: string) => void;
}

/** The default of `--status-every`, in seconds. */
export const defaultStatusEverySeconds = 30;
/** How often the regions are read to notice a change; printing is decided by `StatusSchedule`. */
const statusPollMs = 1_000;
/** Longest wait for one status read; a slower node shows as not answering for that round. */
const statusReadTimeoutMs = 1_500;

export async function runLocal(options: RunLocalOptions): Promise<number> {
  const { print, printError } = options;
  const loaded = await loadConfig(options.configPath);
  if (typeof loaded === 'string') {
    printError(loaded);
    return 2;
  }
  const config = loaded;
  print(
    options.configPath === undefined
      ? 'carpool local: the embedded default configuration (npm start -- --config FILE for your own; deploy/local/carpool.local.json is a commented copy)'
      : `carpool local: configuration ${options.configPath}`,
  );

  const interrupt = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let stopRequested: (signal: NodeJS.Signals) => void = () => {};
  const requested = new Promise<NodeJS.Signals>((resolve) => (stopRequested = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupt.abort();
    stopRequested(signal);
  };
  for (const signal of signals) process.on(signal, onSignal);
  try {
    const startedAtMs = Date.now();
    const started = await startLocalMesh(config, {
      print,
      signal: interrupt.signal,
      fresh: options.fresh,
      onChildEvent: (event) => print(`[${clock()}] ${formatChildEvent(event, displayPath)}`),
      ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }),
    });
    if (!started.ok) {
      printError(`carpool local: ${started.error}`);
      return interrupt.signal.aborted ? 0 : 1;
    }
    const mesh = started.value;
    printEndpoints(mesh, config, Date.now() - startedAtMs, options.statusEveryMs, print);
    const status = new StatusPrinter(mesh, options.statusEveryMs, print);
    void status.printOnce();
    const timer = setInterval(() => void status.printOnce(), statusPollMs);
    const signal = await requested;
    clearInterval(timer);
    print(`\n${signal}: stopping the nodes and the emulator…`);
    await mesh.stop();
    print(`stopped; logs and state are in ${displayPath(mesh.stateDir)} (npm start again reuses the keys; --fresh mints new ones)`);
    return 0;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

async function loadConfig(path: string | undefined): Promise<LocalConfig | string> {
  if (path === undefined) return defaultLocalConfig();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return `carpool local: cannot read the config file ${path}: ${(error as Error).message}`;
  }
  const parsed = parseLocalConfigText(text, path);
  return parsed.ok ? parsed.value : `carpool local: ${parsed.error}`;
}

function printEndpoints(mesh: LocalMesh, config: LocalConfig, tookMs: number, statusEveryMs: number, print: (line: string) => void): void {
  const width = Math.max(...mesh.regions.map((r) => r.region.length));
  const tenants = Object.keys(mesh.apiKeys);
  print('');
  print(
    `local mesh up in ${(tookMs / 1000).toFixed(1)} s: ${mesh.regions.length} regions, ${config.emulator.accounts.length} accounts, ${tenants.length} tenants`,
  );
  for (const region of mesh.regions) {
    const homed = config.emulator.accounts.filter((a) => a.homeRegion === region.region).map((a) => a.id);
    print(
      `  ${region.region.padEnd(width)}  http ${region.http}  grpc ${region.grpc}  admin ${region.admin}  metrics ${region.metrics}  accounts ${homed.join(',') || '(none)'}`,
    );
  }
  print(`  ${'emulator'.padEnd(width)}  ${mesh.emulator.url}  (stats: ${mesh.emulator.url}/_emulator/stats)`);
  const reused =
    mesh.reusedKeys.length === 0
      ? 'all newly minted'
      : `${mesh.reusedKeys.length === tenants.length ? 'all' : mesh.reusedKeys.join(', ')} from the previous run`;
  print(`  tenants: ${tenants.join(', ')}; API keys (${reused}) and the admin token are in ${displayPath(mesh.stateFile)} (mode 0600)`);
  print('');
  const tenant = tenants.includes('demo') ? 'demo' : (tenants[0] ?? 'demo');
  const stateFlag = displayPath(mesh.stateFile) === defaultStateFile ? '' : ` --state ${displayPath(mesh.stateFile)}`;
  // The key is read from the state file by the line itself, so it is never printed.
  const statePath = displayPath(mesh.stateFile);
  const keyOf = `$(node -p "require('${statePath.startsWith('/') ? statePath : `./${statePath}`}').apiKeys['${tenant}']")`;
  print(`use it from Claude Code or the Anthropic SDKs (tenant ${tenant}'s key; any region serves it, one line per region):`);
  for (const region of mesh.regions) print(`  ANTHROPIC_BASE_URL=${region.http} ANTHROPIC_AUTH_TOKEN=${keyOf} claude`);
  print('');
  print('or the gRPC client, in another terminal (one command per region):');
  for (const region of mesh.regions) print(`  npm run client -- --region ${region.region} --tenant ${tenant}${stateFlag} "Say hello from ${region.region}"`);
  print(`  npm run client -- --tenant ${tenant} --usage${stateFlag}`);
  const every = statusEveryMs > 0 ? `, every region's every ${statusEveryMs / 1000} s` : '';
  print(`Status lines: a region's when it changes (peers, restart, queue)${every} (--status-every SECONDS, 0: on change only).`);
  print('A process that dies is restarted; the others keep serving.');
  print('Ctrl-C stops everything; npm start again keeps the keys (npm start -- --fresh mints new ones).');
  print('');
}

/** A path relative to the current directory when it lies below it. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length > 0 && !rel.startsWith('..') ? rel : path;
}

/** The time of day for a printed line, `10:10:15`. */
function clock(): string {
  return new Date().toTimeString().slice(0, 8);
}

/** Reads every region's status at each poll and prints the lines `StatusSchedule` decides on. */
class StatusPrinter {
  private readonly schedule: StatusSchedule;
  private busy = false;

  constructor(
    private readonly mesh: LocalMesh,
    everyMs: number,
    private readonly print: (line: string) => void,
  ) {
    this.schedule = new StatusSchedule(
      mesh.regions.map((region) => region.region),
      everyMs,
    );
  }

  async printOnce(): Promise<void> {
    // A round that outlasts the interval is not overlapped by the next one.
    if (this.busy) return;
    this.busy = true;
    try {
      const samples = await Promise.all(this.mesh.regions.map((region) => readSample(region.admin, this.mesh.adminToken)));
      for (const line of this.schedule.lines(Date.now(), samples)) this.print(`[${clock()}] ${line}`);
    } finally {
      this.busy = false;
    }
  }
}

/** GET /status, with the mesh's admin token (every admin route needs one). */
async function readSample(admin: string, adminToken: string): Promise<RegionSample> {
  try {
    const response = await fetch(`${admin}/status`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(statusReadTimeoutMs) });
    const body: unknown = await response.json();
    return response.status === 200 ? sampleOf(body, Date.now()) : unreachableSample(Date.now());
  } catch {
    return unreachableSample(Date.now());
  }
}
