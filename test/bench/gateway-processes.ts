// The processes of the gateway benchmark: an emulator (./emulator-process.ts) and a real
// `carpool node` in front of it, each pinned to a core of its own when `taskset` exists, set up
// as test/node/grpc-node-process.test.ts does (a config file, accounts and a tenant over the admin
// HTTP endpoint, an API key minted with the Admin service); plus what /proc says about them.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { adminCall } from '../node/gateway/gateway-harness.js';
import { freePort } from '../support/cluster.js';
import type { EmulatorChildOptions } from './emulator-process.js';

const repoRoot = new URL('../..', import.meta.url).pathname;
const adminToken = 'admin-token-for-the-gateway-bench';
/** Longest a child may take to start listening (tsx compiles the sources first). */
const startTimeoutMs = 30_000;
/** Longest a child may take to exit on SIGTERM before it is killed. */
const stopTimeoutMs = 10_000;

const tenantId = 'bench';

const clockTicksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Pinning needs two cores and taskset (util-linux). */
const hasTaskset = (() => {
  if (availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();

/** Which core each process is pinned to, for the report. */
export function pinning(): string {
  return hasTaskset ? 'node (or the passthrough proxy, in turn) on CPU 0, emulator on CPU 1, load generator unpinned' : 'no taskset: processes unpinned';
}

/**
 * `node args…` on `cpu` when taskset exists (it execs, so the pid is node's). Its standard input
 * is a pipe this process holds open: the emulator, the proxies and the node (through
 * ./node-process.ts) stop when it ends, so a harness killed mid-run (SIGKILL, `timeout`) leaves
 * none of them behind.
 */
function spawnPinned(cpu: number, args: readonly string[], output: 'pipe' | 'inherit'): ChildProcess {
  const stdio: ['pipe', 'pipe', 'pipe' | 'inherit'] = ['pipe', 'pipe', output];
  return hasTaskset
    ? spawn('taskset', ['-c', String(cpu), process.execPath, ...args], { cwd: repoRoot, stdio })
    : spawn(process.execPath, args, { cwd: repoRoot, stdio });
}

/** CPU milliseconds a process has used (user + system), from /proc. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}

/** Resident memory of a process in bytes (VmRSS), from /proc. */
export function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function stop(child: ChildProcess, now = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(now ? 'SIGKILL' : 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, stopTimeoutMs)))]);
  clearTimeout(timer);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export interface EmulatorChild {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly keys: readonly string[];
  stop(): Promise<void>;
}

/**
 * Every answer exactly `outputTokens` long (the natural length pinned), so both paths do the same
 * work; or, with `outputTokensMin`, a natural length drawn from that range per request.
 */
export interface GatewayEmulatorOptions {
  readonly accounts: number;
  readonly outputTokens: number;
  readonly outputTokensMin?: number;
  readonly ttftMs: number;
  readonly tokensPerSecond: number;
  /** Per-minute limits of every account; left out, none a benchmark reaches. */
  readonly limits?: EmulatorChildOptions['limits'];
}

export async function startEmulatorChild(options: GatewayEmulatorOptions): Promise<EmulatorChild> {
  const childOptions: EmulatorChildOptions = {
    accounts: options.accounts,
    outputTokensMin: options.outputTokensMin ?? options.outputTokens,
    outputTokensMax: options.outputTokens,
    ttftMs: options.ttftMs,
    tokensPerSecond: options.tokensPerSecond,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  };
  const child = spawnPinned(1, ['--import', 'tsx', 'test/bench/emulator-process.ts', JSON.stringify(childOptions)], 'inherit');
  try {
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the emulator did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once('exit', (code) => reject(new Error(`the emulator exited with ${code}`)));
    });
    const { url, keys } = JSON.parse(first) as { url: string; keys: string[] };
    return { process: child, pid: child.pid!, url, keys, stop: () => stop(child) };
  } catch (error) {
    await stop(child);
    throw error;
  }
}

export interface PassthroughChild {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** A bare passthrough proxy of test/bench/passthrough-process.ts (`front`: its HTTP or its gRPC one), on the node's core. */
export async function startPassthroughChild(emulator: EmulatorChild, front: 'http' | 'grpc' = 'http'): Promise<PassthroughChild> {
  const child = spawnPinned(
    0,
    ['--import', 'tsx', 'test/bench/passthrough-process.ts', JSON.stringify({ upstream: emulator.url, key: emulator.keys[0], front })],
    'inherit',
  );
  try {
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${front} passthrough proxy did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once('exit', (code) => reject(new Error(`the ${front} passthrough proxy exited with ${code}`)));
    });
    const { port } = JSON.parse(first) as { port: number };
    return { pid: child.pid!, port, stop: () => stop(child) };
  } catch (error) {
    await stop(child);
    throw error;
  }
}

/** The node's Prometheus exposition (its admin endpoint's GET /metrics). */
export async function nodeMetricsText(node: NodeChild): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } });
  return res.text();
}

export interface NodeChildOptions {
  readonly emulator: EmulatorChild;
  /** Per account; the node uses every key of the emulator as one account. */
  readonly accountConcurrencyMax: number;
  readonly tenantConcurrencyMax: number;
  /** vip sheds at three quarters of the queue bound, paid at half (gateway-settings.ts). */
  readonly tier: 'vip' | 'paid';
  /** Write a V8 CPU profile (`--cpu-prof`) into this directory when the node exits. */
  readonly cpuProfileDir?: string | undefined;
  /** Serve the HTTP front door too (`httpPort` of the child). */
  readonly http?: boolean;
  /**
   * The tenants, each with its tier and an API key of its own (`apiKeys`); left out, one tenant
   * `bench` of `tier`. Every tenant gets the same roomy quotas, weights and `tenantConcurrencyMax`.
   */
  readonly tenants?: readonly { readonly id: string; readonly tier: 'vip' | 'paid' | 'free' }[];
  /** The accounts' quota rules in the policy; left out, quotas no run uses up. */
  readonly accountLimits?: readonly object[];
  /** Policy settings set before any request (PATCH /policy/settings), e.g. `{ pool: { strategy } }`. */
  readonly settings?: object;
  /** Give the node a durable store (and so its usage ledger) in its temporary folder, as BENCH_DURABLE=1 does. */
  readonly durable?: boolean;
}

export interface NodeChild {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly grpcPort: number;
  /** The HTTP front door's port; 0 without `http`. */
  readonly httpPort: number;
  /** The admin HTTP endpoint (`GET /pool`, `GET /status`), for diagnostics. */
  readonly adminPort: number;
  readonly apiKey: string;
  /** Every tenant's API key, by tenant id (`apiKey` is the first tenant's). */
  readonly apiKeys: Readonly<Record<string, string>>;
  /** `performance.now()` when the process was spawned: where its CPU profile's clock starts, about. */
  readonly spawnedAtMs: number;
  /** What the node printed, for a failure message. */
  output(): string;
  /** SIGTERM (the node drains, and writes its CPU profile), or with `now` SIGKILL. */
  stop(options?: { readonly now?: boolean }): Promise<void>;
}

/**
 * Rate limits no load of the benchmark meets: a million requests a second per client and per
 * tenant, with a burst of a million (the largest the config accepts). The benchmark measures
 * the request path, not the limiter's refusals; the limiter still runs for every request.
 */
const unlimitedRate = { rate: 1_000_000, periodMs: 1_000, burst: 1_000_000 };
/** Quotas no run of the benchmark uses up, so the quota gate still counts every request. */
const roomyLimits = [
  { metric: 'requests', window: 'day', sliding: false, limit: 1_000_000_000_000, mode: 'eventual' },
  { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000_000_000_000_000, mode: 'eventual' },
];

export async function startNodeChild(options: NodeChildOptions): Promise<NodeChild> {
  const { emulator } = options;
  const [meshPort, adminPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
  const httpPort = options.http === true ? await freePort() : 0;
  const dir = mkdtempSync(join(tmpdir(), 'carpool-gateway-bench-'));
  const accounts = Object.fromEntries(emulator.keys.map((key, i) => [`acct-${i}`, { kind: 'api-key', key }]));
  const config = {
    node: 'bench-1',
    region: 'us-east',
    listen: { host: '127.0.0.1', port: meshPort },
    admin: { host: '127.0.0.1', port: adminPort },
    members: [{ id: 'bench-1', region: 'us-east', url: `ws://127.0.0.1:${meshPort}` }],
    secret: 'gateway-bench-mesh-secret-0123',
    grpc: { host: '127.0.0.1', port: grpcPort },
    ...(httpPort === 0 ? {} : { http: { host: '127.0.0.1', port: httpPort } }),
    adminToken,
    upstream: { baseUrl: emulator.url, accounts },
    rateLimits: { client: unlimitedRate, tenant: unlimitedRate },
    // BENCH_DURABLE=1 gives the node its durable store, to measure what the group commits cost.
    ...(process.env.BENCH_DURABLE === '1' || options.durable === true ? { dataDir: 'data' } : {}),
  };
  const configPath = join(dir, 'node.json');
  writeFileSync(configPath, JSON.stringify(config));
  // BENCH_NODE_ARGS adds Node flags to the node process, for a diagnosis (`--trace-gc`, say).
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
  const profile = [...extra, ...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`])];
  const spawnedAtMs = performance.now();
  // GATEWAY_BENCH_COMPILED=1 runs the tsc build (`npm run build` first) instead of tsx, whose
  // esbuild transform names every inner closure at run time (about a microsecond each).
  const entry = process.env.GATEWAY_BENCH_COMPILED === '1' ? 'dist/cli.js' : 'src/cli.ts';
  if (entry === 'dist/cli.js' && !existsSync(join(repoRoot, 'dist/cli.js')))
    throw new Error('GATEWAY_BENCH_COMPILED=1 needs the build: run npm run build first');
  // Through ./node-process.ts, which stops the node (and removes `dir`) when this harness goes.
  const wrapper = ['--import', 'tsx', 'test/bench/node-process.ts', dir, entry];
  const child = spawnPinned(0, [...profile, ...wrapper, 'node', '--config', configPath, '--status-every', '3600'], 'pipe');
  let output = '';
  const outputMax = 64 * 1024;
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-outputMax);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stopNode = async (options: { readonly now?: boolean } = {}): Promise<void> => {
    await stop(child, options.now === true);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + startTimeoutMs;
    while (!output.includes('grpc ')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the node did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const apiKeys = await putPolicy(options, adminPort, grpcPort, Object.keys(accounts));
    const apiKey = Object.values(apiKeys)[0]!;
    return { process: child, pid: child.pid!, grpcPort, httpPort, adminPort, apiKey, apiKeys, spawnedAtMs, output: () => output, stop: stopNode };
  } catch (error) {
    await stopNode();
    throw error;
  }
}

/** A request to the node's admin HTTP endpoint with the benchmark's admin token; throws unless it answers 200. */
async function adminRequest(adminPort: number, method: 'PUT' | 'PATCH', path: string, body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
}

/** The accounts, the settings and the tenants into the node's policy, and an API key minted per tenant: the keys by tenant. */
async function putPolicy(options: NodeChildOptions, adminPort: number, grpcPort: number, accountIds: readonly string[]): Promise<Record<string, string>> {
  for (const id of accountIds) {
    await adminRequest(adminPort, 'PUT', `/policy/accounts/${id}`, {
      kind: 'api-key',
      homeRegion: 'us-east',
      weight: 1,
      concurrencyMax: options.accountConcurrencyMax,
      limits: options.accountLimits ?? roomyLimits,
    });
  }
  if (options.settings !== undefined) await adminRequest(adminPort, 'PATCH', '/policy/settings', options.settings);
  const apiKeys: Record<string, string> = {};
  for (const { id, tier } of options.tenants ?? [{ id: tenantId, tier: options.tier }]) {
    await adminRequest(adminPort, 'PUT', `/policy/tenants/${id}`, {
      tier,
      // BENCH_IDEMPOTENCY=region spares the tenant's ids the mesh-wide claim, to measure what it costs.
      ...(process.env.BENCH_IDEMPOTENCY === 'region' ? { idempotency: 'region' } : {}),
      requireSignature: false,
      concurrencyMax: options.tenantConcurrencyMax,
      weights: { input: 1000, output: 5000, cacheWrite: 1250, cacheRead: 100 },
      limits: roomyLimits,
    });
    const minted = await adminCall(grpcPort, 'CreateApiKey', { tenant: id }, adminToken);
    if (minted.error !== null) throw new Error(`CreateApiKey for ${id} failed: ${minted.error.message}`);
    apiKeys[id] = (minted.response as { api_key: string }).api_key;
  }
  return apiKeys;
}

/** GET `path` of the node's admin HTTP endpoint with the benchmark's admin token: its status and JSON body. */
export async function nodeAdminGet(node: NodeChild, path: string): Promise<{ readonly status: number; readonly body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
  return { status: res.status, body: await res.json() };
}

/**
 * Where the node holds its calls, from its admin endpoint: account permits held and waited for
 * (GET /pool), and the admission queue (the `gateway` section of GET /status, when it has one).
 */
export async function nodeView(node: NodeChild): Promise<string> {
  const read = async (path: string): Promise<Record<string, unknown> | undefined> => {
    try {
      const res = await fetch(`http://127.0.0.1:${node.adminPort}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
      return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const pool = (await read('/pool'))?.totals as { held?: number; waiting?: number } | undefined;
  const gateway = (await read('/status'))?.gateway as { inFlight?: number; queueDepth?: number } | undefined;
  const parts = [pool === undefined ? 'pool: unknown' : `account permits ${pool.held ?? '?'} held, ${pool.waiting ?? '?'} waited for`];
  if (gateway !== undefined) parts.push(`${gateway.inFlight ?? '?'} handler calls running, ${gateway.queueDepth ?? '?'} in the admission queue`);
  return parts.join('; ');
}
