// Proves the usage ledger's readers end to end, with real node processes.
// Two regions (each with a dataDir and an authenticated admin endpoint; eu-west holds both
// accounts' keys) in front of the emulator serve unary and streamed completions from both regions,
// those taken at us-east forwarded to eu-west. Then `carpool usage query` names each node's rows on
// each side, `carpool usage export` (its own process) writes one CSV row per request the node
// settled, and `carpool audit` (its own process) reads both ledgers, the counters at QUORUM and the
// emulator's tally and finds them equal, exit 0. Without one region's admin URL it refuses to run,
// exit 2.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';

const repoRoot = new URL('../..', import.meta.url).pathname;
const adminToken = 'audit-e2e-admin-token-0123456';
const viewerToken = 'audit-e2e-viewer-token-0123456';
const regions = ['us-east', 'eu-west'] as const;
const utf8 = new TextEncoder();

interface NodeProcess {
  readonly region: string;
  readonly child: ChildProcess;
  readonly grpc: string;
  readonly admin: string;
  readonly config: string;
  output: string;
}

let emulator: Emulator;
let dir: string;
const nodes: NodeProcess[] = [];

/** A `carpool` command in its own process; resolves with its exit code and output. */
function carpool(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

async function admin(node: NodeProcess, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${node.admin}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer: unknown = await response.json();
  if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const limits = (metrics: Record<string, string>): unknown[] =>
  Object.entries(metrics).map(([metric, window]) => ({ metric, window, sliding: window === 'minute', limit: 1_000_000_000, mode: 'eventual' }));

beforeAll(async () => {
  emulator = await startEmulator({ accounts: generatedAccounts(2, 21), seed: 21 });
  dir = mkdtempSync(join(tmpdir(), 'carpool-audit-e2e-'));
  writeFileSync(join(dir, 'admin.token'), `${adminToken}\n`);
  writeFileSync(join(dir, 'viewer.token'), `${viewerToken}\n`);
  const ports = await Promise.all(regions.map(async () => ({ mesh: await freePort(), admin: await freePort(), grpc: await freePort() })));
  const members = regions.map((region, i) => ({ id: `${region}-1`, region, url: `ws://127.0.0.1:${ports[i]!.mesh}`, grpc: `127.0.0.1:${ports[i]!.grpc}` }));
  for (const [i, region] of regions.entries()) {
    const port = ports[i]!;
    const config = {
      node: `${region}-1`,
      region,
      listen: { host: '127.0.0.1', port: port.mesh },
      admin: { host: '127.0.0.1', port: port.admin },
      members,
      secret: 'audit-e2e-test-mesh-secret',
      grpc: { host: '127.0.0.1', port: port.grpc },
      adminTokenFile: 'admin.token',
      adminTokens: [{ name: 'grafana', role: 'viewer', tokenFile: 'viewer.token' }],
      dataDir: `data-${region}`,
      // Both accounts are homed in eu-west, which alone holds their keys: every call taken at
      // us-east is forwarded there, so the ledgers hold local, origin and home rows.
      upstream: {
        baseUrl: emulator.url,
        accounts: region === 'eu-west' ? { 'acct-0': { kind: 'api-key', key: emulator.keys[0] }, 'acct-1': { kind: 'api-key', key: emulator.keys[1] } } : {},
      },
    };
    const file = join(dir, `${region}.json`);
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'node', '--config', file, '--status-every', '3600'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node: NodeProcess = { region, child, grpc: `127.0.0.1:${port.grpc}`, admin: `http://127.0.0.1:${port.admin}`, config: file, output: '' };
    child.stdout.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    nodes.push(node);
  }
  const deadline = Date.now() + 40_000;
  for (const node of nodes) {
    while (!node.output.includes('grpc ')) {
      if (node.child.exitCode !== null || Date.now() > deadline) throw new Error(`${node.region} did not start: ${node.output}`);
      await sleep(100);
    }
  }
}, 60_000);

afterAll(async () => {
  for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGKILL');
  await emulator?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('the usage ledger read end to end', () => {
  it('answers queries and exports per node, and the audit finds ledgers, counters and the emulator equal', async () => {
    const [east, west] = nodes as [NodeProcess, NodeProcess];
    for (const account of ['acct-0', 'acct-1']) {
      await admin(east, 'PUT', `/policy/accounts/${account}`, {
        kind: 'api-key',
        homeRegion: 'eu-west',
        weight: 1,
        concurrencyMax: 4,
        limits: limits({ requests: 'day', input_tokens: 'day', weighted_tokens: 'hour' }),
      });
    }
    await admin(east, 'PUT', '/policy/tenants/acme', {
      tier: 'paid',
      requireSignature: false,
      concurrencyMax: 16,
      limits: limits({ requests: 'day', weighted_tokens: 'hour', output_tokens: 'minute' }),
    });
    const { apiKey } = (await admin(east, 'POST', '/policy/tenants/acme/keys', { name: 'e2e' })) as { apiKey: string };
    await eventually(async () => ((await admin(west, 'GET', '/pool')) as { accounts: unknown[] }).accounts.length === 2, 'the policy at eu-west');

    // Unary and streamed completions from both regions; those taken at us-east run at eu-west.
    let sent = 0;
    for (const node of nodes) {
      const client = new CarpoolClient({ target: node.grpc, apiKey });
      try {
        await eventually(async () => (await client.getUsage({ consistency: 'local', user: '' })).ok, `the key at ${node.region}`);
        for (let i = 0; i < 4; i++) {
          const request = {
            requestId: `${node.region}-${i}`,
            requestJson: utf8.encode(
              JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 32, messages: [{ role: 'user', content: `Carpool audit ${i}` }] }),
            ),
            anthropicVersion: '',
            anthropicBeta: '',
            user: i % 2 === 0 ? 'ann' : '',
          };
          if (i % 2 === 0) {
            const answer = await client.complete(request);
            if (!answer.ok) throw new Error(JSON.stringify(answer.error));
          } else {
            const items = [];
            for await (const item of client.streamComplete(request)) items.push(item);
            expect(items.at(-1)?.kind).toBe('summary');
          }
          sent++;
        }
      } finally {
        client.close();
      }
    }
    expect(Object.values(emulator.stats().keys).reduce((sum, row) => sum + row.messages, 0)).toBe(sent);

    // Each node answers for the rows it settled; the two add up to every request, on each side.
    const tenantSide = await Promise.all(
      nodes.map(
        async (node) =>
          ((await admin(node, 'GET', '/usage/ledger?tenant=acme&groupBy=user')) as { node: string; totals: { requests: number } }).totals.requests,
      ),
    );
    const accountSide = await Promise.all(
      nodes.map(async (node) => ((await admin(node, 'GET', '/usage/ledger?side=account&groupBy=account')) as { totals: { requests: number } }).totals.requests),
    );
    expect([tenantSide, accountSide]).toEqual([
      [4, 4],
      [0, sent],
    ]);

    const csv = join(dir, 'us-east.csv');
    const exported = await carpool([
      'usage',
      'export',
      '--url',
      east.admin,
      '--token-file',
      join(dir, 'viewer.token'),
      '--since',
      '1h',
      '--format',
      'csv',
      '--out',
      csv,
    ]);
    expect([exported.code, exported.err.trim().split('\n').at(-1)]).toEqual([0, `carpool usage: exported 4 rows (0.0 MB) from us-east-1 to ${csv}`]);
    const lines = readFileSync(csv, 'utf8').trimEnd().split('\r\n');
    expect(
      lines
        .slice(1)
        .map((line) => line.split(',')[0])
        .sort(),
    ).toEqual(['us-east-0', 'us-east-1', 'us-east-2', 'us-east-3']);
    // They ran at eu-west: their rows here are the tenant's side only.
    expect(lines.slice(1).map((line) => line.split(',')[1])).toEqual(['origin', 'origin', 'origin', 'origin']);

    const audit = await carpool([
      'audit',
      ...nodes.flatMap((node) => ['--admin', node.admin]),
      '--token-file',
      join(dir, 'viewer.token'),
      '--since',
      '10m',
      '--emulator',
      emulator.url,
      ...nodes.flatMap((node) => ['--node-config', node.config]),
    ]);
    expect([audit.code, audit.err]).toEqual([0, '']);
    expect(audit.out).toContain(`ledger: 2 node(s) (us-east-1, eu-west-1), ${sent} tenant-side and ${sent} account-side rows`);
    expect(audit.out).toMatch(new RegExp(`tenant acme +day:\\d+ +requests +${sent} +0 +0 +${sent} +- +0 +ok`));
    expect(audit.out.trimEnd().split('\n').at(-1)).toBe('result: ledger, counters and upstream agree');
  }, 90_000);

  it('refuses to audit without every region', async () => {
    const audit = await carpool(['audit', '--admin', (nodes[0] as NodeProcess).admin, '--token-file', join(dir, 'viewer.token')]);
    expect([audit.code, audit.err]).toEqual([2, expect.stringContaining("the mesh's member(s) eu-west-1 were not read")]);
  }, 30_000);
});
