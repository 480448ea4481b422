// Proves the key lifecycle and the admin surface end to end through the `carpool admin` command.
// Two real region node processes (mesh, gRPC, authenticated admin HTTP) run in front of the
// emulator; accounts, a tenant and keys are made with the CLI. A key created at one region works at
// the other, a rotated-out key works until revoked, a revoked key and an expired key are refused at
// the other region, a viewer token cannot write (exit 1, HTTP 403), a mistake on the command line
// exits 2, an over-credit is refused naming the bound, and the audit log, read at the other region,
// names the actor and the reasons. What the tenant was charged matches what the emulator counted.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdminArgs } from '../../src/admin-cli/admin-args.js';
import { runAdmin } from '../../src/admin-cli/run-admin.js';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';

const repoRoot = new URL('../..', import.meta.url).pathname;
const adminToken = 'cli-test-admin-token-0123456';
const viewerToken = 'cli-test-viewer-token-0123456';
const utf8 = new TextEncoder();

interface NodeProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly grpc: string;
  readonly admin: string;
  output: string;
}

let emulator: Emulator;
let dir: string;
const nodes: NodeProcess[] = [];

interface CliOptions {
  readonly token?: 'admin' | 'viewer';
  readonly at?: number;
  /** Run the `carpool` process itself (about a second each, for tsx); by default the same command runs in this process. */
  readonly spawn?: boolean;
}

/** `carpool admin` as a user runs it; resolves with its exit code and output. */
async function cli(args: readonly string[], options: CliOptions = {}): Promise<{ code: number | null; out: string; err: string }> {
  const node = nodes[options.at ?? 0] as NodeProcess;
  const tokenFile = join(dir, options.token === 'viewer' ? 'viewer.token' : 'admin.token');
  const argv = ['--url', node.admin, '--token-file', tokenFile, ...args];
  if (options.spawn !== true) {
    // The command's own parser and runner, as src/cli.ts calls them.
    const parsed = parseAdminArgs(argv);
    if (!parsed.ok) return { code: 2, out: '', err: parsed.error };
    const out: string[] = [];
    const err: string[] = [];
    const code = await runAdmin(parsed.value, { out: (line) => out.push(line), err: (line) => err.push(line), env: {}, nowMs: () => Date.now() });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'admin', ...argv], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

async function cliOk(args: readonly string[], options: CliOptions = {}): Promise<string> {
  const result = await cli(args, options);
  if (result.code !== 0) throw new Error(`carpool admin ${args.join(' ')} exited ${result.code}: ${result.err}`);
  return result.out;
}

/** A new key as `keys create` and `keys rotate` print it: the last line. */
const printedKey = (out: string): string => out.trim().split('\n').at(-1) as string;

function complete(client: CarpoolClient, id: string): ReturnType<CarpoolClient['complete']> {
  const body = { model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'Share a ride?' }] };
  return client.complete({ requestId: id, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' });
}

/** Whether `apiKey` authenticates at region `at`: a GetUsage, which costs nothing. */
async function works(apiKey: string, at: number): Promise<boolean> {
  const client = new CarpoolClient({ target: (nodes[at] as NodeProcess).grpc, apiKey });
  try {
    const answer = await client.getUsage({ consistency: 'local', user: '' });
    if (!answer.ok && !(answer.error.kind === 'status' && answer.error.codeName === 'UNAUTHENTICATED')) throw new Error(JSON.stringify(answer.error));
    return answer.ok;
  } finally {
    client.close();
  }
}

async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  emulator = await startEmulator({ accounts: generatedAccounts(2, 9), seed: 9 });
  dir = mkdtempSync(join(tmpdir(), 'carpool-admin-cli-'));
  writeFileSync(join(dir, 'admin.token'), `${adminToken}\n`);
  writeFileSync(join(dir, 'viewer.token'), `${viewerToken}\n`);
  const regions = ['us-east', 'eu-west'];
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
      secret: 'admin-cli-test-mesh-secret',
      grpc: { host: '127.0.0.1', port: port.grpc },
      adminTokenFile: 'admin.token',
      adminTokens: [{ name: 'grafana', role: 'viewer', tokenFile: 'viewer.token' }],
      // Each region holds its own account's key, as a deployment does.
      upstream: { baseUrl: emulator.url, accounts: { [`acct-${i}`]: { kind: 'api-key', key: emulator.keys[i] } } },
    };
    writeFileSync(join(dir, `${region}.json`), JSON.stringify(config));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'node', '--config', join(dir, `${region}.json`), '--status-every', '3600'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node: NodeProcess = { name: region, child, grpc: `127.0.0.1:${port.grpc}`, admin: `http://127.0.0.1:${port.admin}`, output: '' };
    child.stdout.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (node.output += chunk.toString()));
    nodes.push(node);
  }
  const deadline = Date.now() + 30_000;
  for (const node of nodes) {
    while (!node.output.includes('grpc ')) {
      if (node.child.exitCode !== null || Date.now() > deadline) throw new Error(`${node.name} did not start: ${node.output}`);
      await sleep(100);
    }
  }
  await eventually(async () => (await cli(['status'])).out.includes('peers 1/1 connected'), 'the mesh link', 15_000);
}, 60_000);

afterAll(async () => {
  for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGKILL');
  await emulator?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('carpool admin against running nodes', () => {
  it('manages accounts, a tenant and the life of its keys across regions, with every write in the audit log', async () => {
    for (const [i, region] of ['us-east', 'eu-west'].entries()) {
      writeFileSync(join(dir, `acct-${i}.json`), JSON.stringify({ kind: 'api-key', homeRegion: region, weight: 1, concurrencyMax: 4, limits: [] }));
      await cliOk(['accounts', 'put', `acct-${i}`, '--file', join(dir, `acct-${i}.json`)]);
    }
    writeFileSync(
      join(dir, 'demo.json'),
      JSON.stringify({
        tier: 'paid',
        requireSignature: false,
        concurrencyMax: 10,
        limits: [{ metric: 'requests', window: 'day', sliding: false, limit: 1000, mode: 'eventual' }],
      }),
    );
    expect(await cliOk(['tenants', 'put', 'demo', '--file', join(dir, 'demo.json'), '--reason', 'first customer'])).toContain('tenant demo stored');
    const ci = printedKey(await cliOk(['keys', 'create', 'demo', '--name', 'ci', '--reason', 'pipeline'], { spawn: true }));
    const trial = printedKey(await cliOk(['keys', 'create', 'demo', '--name', 'trial', '--expires', '4s']));
    const trialCreatedAt = Date.now();
    expect([ci, trial]).toEqual([expect.stringMatching(/^cp_demo_[A-Za-z0-9]{40}$/), expect.stringMatching(/^cp_demo_[A-Za-z0-9]{40}$/)]);

    // Made at us-east, working at eu-west once the policy arrives.
    await eventually(() => works(ci, 1), 'the ci key to work at eu-west');
    expect(await works(trial, 1)).toBe(true);
    const west = new CarpoolClient({ target: (nodes[1] as NodeProcess).grpc, apiKey: ci });
    try {
      const answer = await complete(west, 'cli-e2e-1');
      expect(answer.ok && answer.value.servedRegion).toBe('eu-west');
    } finally {
      west.close();
    }

    const listed = JSON.parse(await cliOk(['keys', 'list', 'demo', '--json'], { token: 'viewer', at: 1 })) as { keyId: string; name: string; state: string }[];
    expect(listed.map((key) => [key.name, key.state])).toEqual([
      ['ci', 'active'],
      ['trial', 'active'],
    ]);
    const listedText = JSON.stringify(listed);
    expect(listedText).not.toContain(ci);
    expect(listedText).not.toMatch(/[0-9a-f]{64}/);
    const ciId = listed[0]!.keyId;

    const rotatedOut = await cliOk(['keys', 'rotate', ciId, '--grace', '10m', '--reason', 'scheduled']);
    const ci2 = printedKey(rotatedOut);
    expect(rotatedOut).toContain(`key ${ciId} stops working at `);
    await eventually(() => works(ci2, 1), 'the rotated key to work at eu-west');
    expect(await works(ci, 1)).toBe(true);

    expect(await cliOk(['keys', 'revoke', ciId, '--reason', 'leaked in a log'], { spawn: true })).toContain('revoked');
    await eventually(async () => !(await works(ci, 1)), 'the revoked key to be refused at eu-west', 2_000);
    expect(await works(ci2, 1)).toBe(true);
    await sleep(Math.max(0, trialCreatedAt + 4_500 - Date.now()));
    expect(await works(trial, 1)).toBe(false);
    const states = (JSON.parse(await cliOk(['keys', 'list', 'demo', '--json'], { at: 1 })) as { state: string }[]).map((key) => key.state);
    expect(states).toEqual(['revoked', 'expired', 'active']);

    // What the tenant was charged is what the emulator counted.
    const usage = JSON.parse(await cliOk(['usage', 'demo', '--quorum', '--json'], { token: 'viewer', at: 1 })) as { limits: { used: number }[] };
    const upstream = Object.values(emulator.stats().keys).reduce((sum, row) => sum + row.messages, 0);
    expect(upstream).toBe(1);
    expect(usage.limits[0]?.used).toBe(upstream);

    const audit = JSON.parse(await cliOk(['audit', '--json'], { token: 'viewer', at: 1 })) as {
      entries: { node: string; actor: string; action: string; reason?: string }[];
    };
    expect(audit.entries.map((entry) => [entry.node, entry.actor, entry.action, entry.reason]).reverse()).toEqual([
      ['us-east-1', 'admin', 'account.put', undefined],
      ['us-east-1', 'admin', 'account.put', undefined],
      ['us-east-1', 'admin', 'tenant.put', 'first customer'],
      ['us-east-1', 'admin', 'key.create', 'pipeline'],
      ['us-east-1', 'admin', 'key.create', undefined],
      ['us-east-1', 'admin', 'key.rotate', 'scheduled'],
      ['us-east-1', 'admin', 'key.revoke', 'leaked in a log'],
    ]);
  }, 60_000);

  it('refuses a viewer write with 403, a mistake on the command line with exit 2, and an over-credit naming the bound', async () => {
    const denied = await cli(['tenants', 'remove', 'demo'], { token: 'viewer', spawn: true });
    expect([denied.code, denied.err]).toEqual([1, expect.stringContaining('HTTP 403: the token grafana has the role viewer; DELETE needs admin')]);
    const usage = await cli(['keys', 'create', 'demo'], { spawn: true });
    expect([usage.code, usage.err]).toEqual([2, expect.stringContaining('keys create needs --name N')]);
    const adjust = ['adjust', 'credit', '--scope', 'tenant', '--subject', 'demo', '--metric', 'requests', '--window', 'day'];
    const over = await cli([...adjust, '--amount', '1000', '--reason', 'too generous']);
    expect([over.code, over.err]).toEqual([1, expect.stringContaining("HTTP 400: amount: a credit may not exceed the counter's current value, 1")]);
    const typo = await cli([...adjust.slice(0, 7), 'requets', '--window', 'day', '--amount', '1', '--reason', 'typo']);
    expect([typo.code, typo.err]).toEqual([1, expect.stringContaining("HTTP 400: metric: must be a metric of tenant demo's limits: requests")]);
    expect(await cliOk([...adjust, '--amount', '1', '--reason', 'refund for a failed request'], { at: 1 })).toContain(
      'credit of 1 on tenant/demo/requests/day:',
    );
    // Made at eu-west, read at us-east once the policy document carried it over.
    type Entries = { node: string; action: string; reason: string; detail: Record<string, unknown> }[];
    const newest = async (): Promise<Entries> => (JSON.parse(await cliOk(['audit', '--limit', '1', '--json'])) as { entries: Entries }).entries;
    await eventually(async () => (await newest())[0]?.action === 'usage.adjust', "the adjustment in us-east's audit log");
    const entries = await newest();
    expect(entries).toEqual([
      expect.objectContaining({
        node: 'eu-west-1',
        action: 'usage.adjust',
        reason: 'refund for a failed request',
        detail: expect.objectContaining({ kind: 'credit', amount: 1, before: 1, after: 0 }) as unknown,
      }),
    ]);
  }, 30_000);
});
