import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { defaultLocalConfig, type LocalConfig, parseLocalConfigText } from './local-config.js';
import { describeFailure, type LocalMesh, startLocalMesh } from './local-mesh.js';
import { defaultStateFile } from './local-state.js';
import { formatRegionStatus, type RegionSample, sampleOf, unreachableSample } from './region-status.js';

/**
 * `carpool local` (`npm start`): validates the configuration (a file, or the embedded default),
 * starts the local mesh, prints its endpoints and how to try it, then a status line per region
 * every `statusEveryMs` until SIGINT, SIGTERM or SIGHUP, and stops every child. Exit codes: 0
 * after a requested stop, 1 when the mesh could not start or a child died, 2 for a bad
 * configuration.
 */
export interface RunLocalOptions {
  readonly configPath: string | undefined;
  readonly stateDir: string | undefined;
  readonly statusEveryMs: number;
  readonly print: (line: string) => void;
  readonly printError: (line: string) => void;
}

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
    const started = await startLocalMesh(config, { print, signal: interrupt.signal, ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }) });
    if (!started.ok) {
      printError(`carpool local: ${started.error}`);
      return interrupt.signal.aborted ? 0 : 1;
    }
    const mesh = started.value;
    printEndpoints(mesh, config, Date.now() - startedAtMs, print);
    const status = new StatusPrinter(mesh, print);
    const timer = setInterval(() => void status.printOnce(), options.statusEveryMs);
    const outcome = await Promise.race([requested.then((signal) => ({ kind: 'signal' as const, signal })), mesh.failed.then((failure) => ({ kind: 'failed' as const, failure }))]);
    clearInterval(timer);
    if (outcome.kind === 'failed') printError(`carpool local: ${describeFailure(outcome.failure)}\nstopping the other processes…`);
    else print(`\n${outcome.signal}: stopping the nodes and the emulator…`);
    await mesh.stop();
    print(`stopped; logs and state are in ${displayPath(mesh.stateDir)}`);
    return outcome.kind === 'failed' ? 1 : 0;
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

function printEndpoints(mesh: LocalMesh, config: LocalConfig, tookMs: number, print: (line: string) => void): void {
  const width = Math.max(...mesh.regions.map((r) => r.region.length));
  print('');
  print(`local mesh up in ${(tookMs / 1000).toFixed(1)} s: ${mesh.regions.length} regions, ${config.emulator.accounts.length} accounts, ${Object.keys(mesh.apiKeys).length} tenants`);
  for (const region of mesh.regions) {
    const homed = config.emulator.accounts.filter((a) => a.homeRegion === region.region).map((a) => a.id);
    print(`  ${region.region.padEnd(width)}  grpc ${region.grpc}  admin ${region.admin}  metrics ${region.metrics}  accounts ${homed.join(',') || '(none)'}`);
  }
  print(`  ${'emulator'.padEnd(width)}  ${mesh.emulator.url}  (stats: ${mesh.emulator.url}/_emulator/stats)`);
  print(`  tenants: ${Object.keys(mesh.apiKeys).join(', ')}; API keys and the admin token are in ${displayPath(mesh.stateFile)} (mode 0600)`);
  print('');
  const first = mesh.regions[0];
  const tenant = Object.keys(mesh.apiKeys).includes('demo') ? 'demo' : (Object.keys(mesh.apiKeys)[0] ?? 'demo');
  const stateFlag = displayPath(mesh.stateFile) === defaultStateFile ? '' : ` --state ${displayPath(mesh.stateFile)}`;
  print(`try:  npm run client -- --region ${first?.region ?? 'us-east'} --tenant ${tenant}${stateFlag} "Say hello"`);
  print(`      npm run client -- --tenant ${tenant} --usage${stateFlag}`);
  print('Ctrl-C stops everything.');
  print('');
}

/** A path relative to the current directory when it lies below it. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length > 0 && !rel.startsWith('..') ? rel : path;
}

/** Reads every region's status and prints one line each, keeping the previous samples for rates. */
class StatusPrinter {
  private readonly previous = new Map<string, RegionSample>();
  private readonly width: number;
  private busy = false;

  constructor(
    private readonly mesh: LocalMesh,
    private readonly print: (line: string) => void,
  ) {
    this.width = Math.max(...mesh.regions.map((r) => r.region.length));
  }

  async printOnce(): Promise<void> {
    // A round that outlasts the interval is not overlapped by the next one.
    if (this.busy) return;
    this.busy = true;
    try {
      const samples = await Promise.all(this.mesh.regions.map((region) => readSample(region.admin, this.mesh.adminToken)));
      const time = new Date().toTimeString().slice(0, 8);
      for (const [i, region] of this.mesh.regions.entries()) {
        const sample = samples[i] as RegionSample;
        this.print(`[${time}] ${formatRegionStatus(region.region, this.width, this.previous.get(region.region), sample)}`);
        if (sample.reachable) this.previous.set(region.region, sample);
      }
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
