// One `carpool node` process with a durable store, alone in its mesh, in front of an emulator in
// the test's process: for the tests of what a node does when its store fails (a full file, a
// corrupt or read-only one). The node runs as an operator runs it (`carpool node --config FILE`),
// so its exit code and its message are the operator's; the test writes its config, applies a
// policy (one account, one tenant with eventual limits, a minted key) and talks to it over gRPC,
// HTTP and the admin endpoint.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { carpoolCommand, packageRoot } from '../../src/local/local-child.js';
import { storeFileName } from '../../src/node/run-node.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { freePort } from './cluster.js';
import { sleep } from './wait.js';

export const soloAdminToken = 'solo-node-admin-token-for-tests';
export const soloTenant = 'solo';
const soloSecret = 'solo-node-mesh-secret-for-tests';
/** Longest wait for the node to print its gRPC endpoint (tsx compiles it at start). */
const startTimeoutMs = 30_000;

export interface SoloNodeOptions {
  /** The node config's `store` field. */
  readonly store?: Record<string, unknown>;
  /** Extra arguments before `node` (a wrapper such as `unshare`), with the command to run first. */
  readonly wrap?: readonly string[];
}

export interface SoloExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The folder, ports and emulator of a solo node; the node process itself is started with `start()`. */
export class SoloNode {
  readonly dir = mkdtempSync(join(tmpdir(), 'carpool-solo-'));
  process: ChildProcess | undefined;
  output = '';
  exited: Promise<SoloExit> = Promise.resolve({ code: null, signal: null });
  apiKey = '';

  private constructor(
    readonly emulator: Emulator,
    readonly ports: { readonly mesh: number; readonly admin: number; readonly grpc: number; readonly http: number },
  ) {}

  static async create(): Promise<SoloNode> {
    const emulator = await startEmulator({ accounts: generatedAccounts(1, 3), seed: 3, ttftMs: 0, tokensPerSecond: 0 });
    return new SoloNode(emulator, { mesh: await freePort(), admin: await freePort(), grpc: await freePort(), http: await freePort() });
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get storePath(): string {
    return join(this.dataDir, storeFileName);
  }

  get configPath(): string {
    return join(this.dir, 'node.json');
  }

  get grpcTarget(): string {
    return `127.0.0.1:${this.ports.grpc}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.ports.http}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.ports.admin}`;
  }

  /** Writes the node's config (again, with these options). */
  writeConfig(options: SoloNodeOptions = {}): void {
    const config = {
      node: 'solo-1',
      region: 'solo',
      listen: { host: '127.0.0.1', port: this.ports.mesh },
      admin: { host: '127.0.0.1', port: this.ports.admin },
      members: [{ id: 'solo-1', region: 'solo', url: `ws://127.0.0.1:${this.ports.mesh}` }],
      secret: soloSecret,
      adminToken: soloAdminToken,
      grpc: { host: '127.0.0.1', port: this.ports.grpc },
      http: { host: '127.0.0.1', port: this.ports.http },
      upstream: { baseUrl: this.emulator.url, accounts: { 'acct-solo': { kind: 'api-key', key: this.emulator.keys[0] } } },
      dataDir: 'data',
      ...(options.store === undefined ? {} : { store: options.store }),
    };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  /**
   * Starts `carpool node --config` (wrapped if asked) and resolves once it prints its gRPC
   * endpoint, or with its exit if it stops first.
   */
  async start(options: SoloNodeOptions = {}): Promise<'serving' | SoloExit> {
    const { command, args } = carpoolCommand();
    const argv = [...args, 'node', '--config', this.configPath, '--status-every', '3600'];
    const [file, ...pre] = options.wrap === undefined ? [command, ...argv] : [...options.wrap, command, ...argv];
    this.output = '';
    const child = spawn(file as string, pre, { cwd: packageRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    child.stdout.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (/^\s*grpc\s+\S+/m.test(this.output)) return 'serving';
      if (child.exitCode !== null || child.signalCode !== null) return this.exited;
      if (Date.now() > deadline) throw new Error(`the node did not start within ${startTimeoutMs / 1000} s: ${this.output}`);
      await sleep(50);
    }
  }

  /** The account, the tenant (eventual limits that never bind) and a minted key, at the node's admin endpoint. */
  async applyPolicy(): Promise<void> {
    const rules = ['requests', 'input_tokens', 'output_tokens', 'weighted_tokens'].map((metric) => ({
      metric,
      window: 'day',
      sliding: false,
      limit: 1_000_000_000,
      mode: 'eventual',
    }));
    await this.admin('PUT', '/policy/accounts/acct-solo', { kind: 'api-key', homeRegion: 'solo', weight: 1, concurrencyMax: 32, limits: rules });
    await this.admin('PUT', `/policy/tenants/${soloTenant}`, { tier: 'paid', requireSignature: false, concurrencyMax: 64, limits: rules });
    const minted = (await this.admin('POST', `/policy/tenants/${soloTenant}/keys`, { name: 'test' })) as { apiKey: string };
    this.apiKey = minted.apiKey;
  }

  /** An admin request with the node's token; the JSON answer, or a failure with the status. */
  async admin(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${soloAdminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text}`);
    return JSON.parse(text) as unknown;
  }

  /** A family of the node's /metrics with only the node's own labels (region, node); undefined when absent. */
  async metric(name: string): Promise<number | undefined> {
    const text = await (await fetch(`${this.adminUrl}/metrics`, { headers: { authorization: `Bearer ${soloAdminToken}` } })).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  /** SIGTERM (the operator's stop), up to `graceMs`, then SIGKILL; the exit. */
  async stop(graceMs = 15_000): Promise<SoloExit> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return this.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  async close(): Promise<void> {
    const child = this.process;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await this.exited;
    }
    await this.emulator.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
