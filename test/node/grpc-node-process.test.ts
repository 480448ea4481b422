// Proves `carpool node` wires its gRPC endpoint from the config file: a real node process serves
// a completion through the emulator with a key minted by its Admin service, counts it once in
// GetUsage, answers a retried request id from what it kept (no second upstream call, nothing
// charged), and exits cleanly on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { freePort } from '../support/cluster.js';
import { sleep } from '../support/wait.js';
import { adminCall } from './gateway/gateway-harness.js';

const adminToken = 'admin-token-for-the-process-test';
const utf8 = new TextEncoder();
const repoRoot = new URL('../..', import.meta.url).pathname;

let emulator: Emulator;
let node: ChildProcess;
let output = '';
let grpcPort = 0;
let adminPort = 0;

async function http(method: string, path: string, body: unknown): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** The node's config folder: removed after the tests. */
let dir = '';

beforeAll(async () => {
  emulator = await startEmulator({ accounts: generatedAccounts(1, 3) });
  const [meshPort, admin, grpc] = [await freePort(), await freePort(), await freePort()];
  adminPort = admin;
  grpcPort = grpc;
  dir = mkdtempSync(join(tmpdir(), 'carpool-grpc-node-'));
  const config = {
    node: 'solo-1',
    region: 'us-east',
    listen: { host: '127.0.0.1', port: meshPort },
    admin: { host: '127.0.0.1', port: adminPort },
    members: [{ id: 'solo-1', region: 'us-east', url: `ws://127.0.0.1:${meshPort}` }],
    secret: 'process-test-mesh-secret-0123',
    grpc: { host: '127.0.0.1', port: grpcPort },
    adminToken,
    upstream: { baseUrl: emulator.url, accounts: { 'acct-1': { kind: 'api-key', key: emulator.keys[0] } } },
  };
  writeFileSync(join(dir, 'node.json'), JSON.stringify(config));
  node = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'node', '--config', join(dir, 'node.json'), '--status-every', '3600'], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  node.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  node.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!output.includes('grpc ')) {
    if (node.exitCode !== null || Date.now() > deadline) throw new Error(`the node did not start: ${output}`);
    await sleep(100);
  }
  expect(await http('PUT', '/policy/accounts/acct-1', { kind: 'api-key', homeRegion: 'us-east', weight: 1, concurrencyMax: 4, limits: [] })).toBe(200);
  const tenant = {
    tier: 'paid',
    requireSignature: false,
    concurrencyMax: 10,
    weights: { input: 1000, output: 5000, cacheWrite: 1250, cacheRead: 100 },
    limits: [{ metric: 'requests', window: 'day', sliding: false, limit: 100, mode: 'eventual' }],
  };
  expect(await http('PUT', '/policy/tenants/demo', tenant)).toBe(200);
}, 30_000);

afterAll(async () => {
  if (node.exitCode === null) {
    const exited = new Promise((resolve) => node.once('exit', resolve));
    node.kill('SIGKILL');
    await exited;
  }
  await emulator.close();
  // The folder holds the node's config, mesh secret and admin token.
  rmSync(dir, { recursive: true, force: true });
});

describe('carpool node with a gRPC endpoint', () => {
  it('serves a completion with a minted key, counts it once, and answers the id again from what it kept', async () => {
    const minted = await adminCall(grpcPort, 'CreateApiKey', { tenant: 'demo' }, adminToken);
    expect(minted.error).toBeNull();
    const apiKey = (minted.response as { api_key: string }).api_key;
    const client = new CarpoolClient({ target: `127.0.0.1:${grpcPort}`, apiKey });
    try {
      const request = {
        requestId: 'process-1',
        requestJson: utf8.encode(JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 24, messages: [{ role: 'user', content: 'Say hello' }] })),
        anthropicVersion: '',
        anthropicBeta: '',
        user: '',
      };
      const answer = await client.complete(request);
      expect(answer.ok && answer.value.usage.outputTokens).toBe(24);
      expect(answer.ok && answer.value.servedRegion).toBe('us-east');
      expect(emulator.stats().requests).toBe(1);

      const usage = await client.getUsage({ consistency: 'local', user: '' });
      expect(usage.ok && usage.value.limits.find((l) => l.metric === 'requests')?.used).toBe(1);

      // The same id again: the kept answer, with no second upstream call and nothing charged.
      const again = await client.complete(request);
      expect(again.ok && again.value).toEqual(answer.ok && answer.value);
      expect(emulator.stats().requests).toBe(1);
      const after = await client.getUsage({ consistency: 'local', user: '' });
      expect(after.ok && after.value.limits.find((l) => l.metric === 'requests')?.used).toBe(1);
    } finally {
      client.close();
    }
  }, 20_000);

  it('stops on SIGTERM with exit code 0', async () => {
    const exited = new Promise<number | null>((resolve) => node.once('exit', (code) => resolve(code)));
    node.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 15_000);
});
