// Starts real node processes on loopback for integration tests and benchmarks, with a
// LoopbackProxy on every dialed link so a test can cut and heal any pair. Each process is the
// production node started by test/support/test-node.ts, which adds the test-only counter routes
// (counter writes, admit and settle) on a loopback port of its own; admin requests carry the
// cluster's admin token.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackProxy } from './loopback-proxy.js';
import { sleep } from './wait.js';

const repoRoot = new URL('../../', import.meta.url).pathname;
export const clusterSecret = 'integration-test-mesh-secret';
/** The admin token (role admin, named `admin`) of every cluster node. */
export const clusterAdminToken = 'integration-test-admin-token';

export interface CounterRef {
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly unit: string;
  readonly index: number;
}

export interface ClusterNode {
  readonly id: string;
  readonly meshPort: number;
  readonly adminPort: number;
  /** The test-only counter routes (test/support/counter-routes.ts). */
  readonly testPort: number;
  process: ChildProcess | undefined;
  output: string;
}

/**
 * Ports for the node processes of tests. A port found by binding port 0 and closing it again is
 * free only until the kernel hands it out again, which it does to the next port-0 listener and to
 * the next outgoing connection anywhere on the machine: once, under load, another test took one
 * before the child bound it. So ports come from a range below the kernel's ephemeral range (Linux:
 * 32768-60999, /proc/sys/net/ipv4/ip_local_port_range), which the kernel never hands out; each
 * vitest worker (VITEST_POOL_ID, 1 to maxWorkers) owns its own slice of it, so test files running
 * side by side never share a port; and a port is probed before use, so one held by anything else
 * (a leftover process, another test run on the same machine) is skipped. What is left, a process
 * outside this scheme binding the port between the probe and the child, Cluster.start retries.
 */
const portRangeStart = 20_000;
const portSlicePorts = 1_000;
/** 20,000 + 12 × 1,000 stays below 32,768; a worker beyond the twelfth shares a slice. */
const portSlices = 12;

const portSlice = ((): number => {
  const poolId = Number(process.env.VITEST_POOL_ID);
  // Outside vitest (the benchmarks) the process id spreads concurrent runs over the slices.
  return Number.isSafeInteger(poolId) && poolId >= 1 ? (poolId - 1) % portSlices : process.pid % portSlices;
})();
// A random start, so two test runs on one machine (same pool ids) rarely probe the same ports.
let portCursor = Math.floor(Math.random() * portSlicePorts);

/** The next port of this worker's slice that nothing listens on. */
export async function freePort(): Promise<number> {
  for (let probes = 0; probes < portSlicePorts; probes++) {
    const port = portRangeStart + portSlice * portSlicePorts + (portCursor++ % portSlicePorts);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${portRangeStart + portSlice * portSlicePorts}-${portRangeStart + (portSlice + 1) * portSlicePorts - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** How often Cluster.start tries a whole cluster, each time on fresh ports, before a port taken under it fails the test. */
const clusterStartsMax = 3;

export class Cluster {
  private readonly dir = mkdtempSync(join(tmpdir(), 'carpool-cluster-'));
  /** proxies.get(`${i}-${j}`) sits on the link that node i dials to node j (i < j). */
  private readonly proxies = new Map<string, LoopbackProxy>();

  private constructor(readonly nodes: ClusterNode[]) {}

  /**
   * Starts `size` nodes and, unless `settle` is false, waits until they are all connected. Every
   * member must know every port before any node starts, so a port that another process took in
   * the meantime cannot be swapped for one node alone: the whole cluster starts again on fresh
   * ports (see freePort).
   */
  static async start(size: number, options: { settle?: boolean } = {}): Promise<Cluster> {
    for (let attempt = 1; ; attempt++) {
      const nodes: ClusterNode[] = [];
      for (let i = 0; i < size; i++)
        nodes.push({ id: `n${i}`, meshPort: await freePort(), adminPort: await freePort(), testPort: await freePort(), process: undefined, output: '' });
      const cluster = new Cluster(nodes);
      for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) cluster.proxies.set(`${i}-${j}`, await LoopbackProxy.start(nodes[j]!.meshPort));
      for (let i = 0; i < size; i++) cluster.writeConfig(i);
      const spawned = await Promise.allSettled(nodes.map((_, i) => cluster.spawn(i)));
      const failure = spawned.find((result) => result.status === 'rejected');
      if (failure === undefined) {
        if (options.settle !== false) await cluster.waitConnected();
        return cluster;
      }
      await cluster.stop();
      const addressInUse = nodes.some((node) => node.output.includes('EADDRINUSE'));
      if (!addressInUse || attempt >= clusterStartsMax) throw failure.reason;
    }
  }

  /** Each node sees its dial targets through the proxy of that pair. */
  private writeConfig(i: number): void {
    const members = this.nodes.map((node, j) => {
      const port = j > i ? this.proxies.get(`${i}-${j}`)!.port : node.meshPort;
      return { id: node.id, region: `region-${j}`, url: `ws://127.0.0.1:${port}` };
    });
    const node = this.nodes[i]!;
    const config = {
      node: node.id,
      region: `region-${i}`,
      listen: { host: '127.0.0.1', port: node.meshPort },
      admin: { host: '127.0.0.1', port: node.adminPort },
      members,
      secret: clusterSecret,
      adminToken: clusterAdminToken,
    };
    writeFileSync(this.configPath(i), JSON.stringify(config));
  }

  private configPath(i: number): string {
    return join(this.dir, `n${i}.json`);
  }

  /** Starts node i and resolves once its admin endpoint answers. */
  async spawn(i: number): Promise<void> {
    const node = this.nodes[i]!;
    node.output = '';
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/support/test-node.ts', '--config', this.configPath(i), '--test-port', String(node.testPort)],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    node.process = child;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`node ${node.id} exited: ${node.output}`);
      try {
        await this.status(i);
        if (!node.output.includes('test routes ')) throw new Error('the test routes are not up yet');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`node ${node.id} did not start: ${node.output}`);
        await sleep(100);
      }
    }
  }

  /** SIGKILL: the process dies without saying goodbye, as in a crash. */
  async kill(i: number): Promise<void> {
    const child = this.nodes[i]!.process;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    this.nodes[i]!.process = undefined;
  }

  cut(i: number, j: number): void {
    this.proxy(i, j).cut();
  }

  heal(i: number, j: number): void {
    this.proxy(i, j).heal();
  }

  /** Cuts every link of node i. */
  isolate(i: number): void {
    for (let j = 0; j < this.nodes.length; j++) if (j !== i) this.cut(i, j);
  }

  healAll(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  private proxy(i: number, j: number): LoopbackProxy {
    const proxy = this.proxies.get(i < j ? `${i}-${j}` : `${j}-${i}`);
    if (proxy === undefined) throw new Error(`no link between ${i} and ${j}`);
    return proxy;
  }

  async waitConnected(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(this.nodes.map((_, i) => this.status(i).catch(() => undefined)));
      if (statuses.every((s) => s !== undefined && s.peers.every((p) => p.connected))) return;
      if (Date.now() > deadline) throw new Error(`mesh did not connect: ${JSON.stringify(statuses.map((s) => s?.peers))}`);
      await sleep(100);
    }
  }

  async status(i: number): Promise<NodeStatus> {
    return (await this.request(i, 'GET', '/status')) as NodeStatus;
  }

  /** Writes node i's own counter entry through the test-only route. */
  async increment(i: number, ref: CounterRef, amount: number, refund = 0): Promise<void> {
    await this.testRequest(i, '/counters', { updates: [{ ...ref, amount, refund }] });
  }

  /** A POST to node i's test-only counter routes (`/counters`, `/admission/admit`, `/admission/settle`). */
  async testRequest(i: number, path: string, body: unknown): Promise<unknown> {
    const response = await this.testFetch(i, path, body);
    const json = await response.json();
    if (!response.ok) throw new Error(`POST ${path} → ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** The raw answer of a test-only route, for tests that check refusals. */
  testFetch(i: number, path: string, body: unknown): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.nodes[i]!.testPort}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** The value at node i; with `atLeast`, waits up to `waitMs` for it. */
  async value(i: number, ref: CounterRef, atLeast?: number, waitMs = 10_000): Promise<number> {
    const query = new URLSearchParams({ ...ref, index: String(ref.index) } as Record<string, string>);
    if (atLeast !== undefined) {
      query.set('atLeast', String(atLeast));
      query.set('waitMs', String(waitMs));
    }
    const body = (await this.request(i, 'GET', `/counters?${query.toString()}`)) as { value: number };
    return body.value;
  }

  /** An admin request to node i, with the cluster's admin token. */
  async request(i: number, method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`http://127.0.0.1:${this.nodes[i]!.adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${clusterAdminToken}`, ...(method === 'GET' ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    // The folder holds every node's config with the mesh secret and admin token.
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface NodeStatus {
  readonly node: string;
  readonly replica: string;
  readonly peers: readonly { peer: string; connected: boolean; liveness: string }[];
  readonly mesh: Record<string, unknown> & { authFailures: Record<string, number>; badFrames: Record<string, number> };
  readonly transport: Record<string, number>;
  readonly cpuMicros: { user: number; system: number };
}

export { sleep } from './wait.js';
