// Proves the OAuth credential lifecycle in a real `carpool node` process, against a loopback fake
// token endpoint in front of the emulator (test/support/fake-oauth-upstream.ts): the node
// refreshes before expiry; many calls that meet an expired token cause one refresh and all
// succeed (401 "expired" → refresh → retry); the rotated refresh token survives a restart through
// the store; SIGHUP takes a new credential from the file; invalid_grant disables the account with
// its reason in GET /pool and the alert metric; PUT /pool/accounts/{id}/credential brings it back;
// no token ever appears in the node's output, its metrics, its audit log or its answers. Every
// completion is reconciled with what the emulator counted.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { freePort } from '../support/cluster.js';
import { FakeOAuthUpstream, type IssuedCredential } from '../support/fake-oauth-upstream.js';
import { sleep } from '../support/wait.js';
import { adminCall } from './gateway/gateway-harness.js';

const adminToken = 'admin-token-for-the-oauth-process-test';
const utf8 = new TextEncoder();
const repoRoot = new URL('../..', import.meta.url).pathname;
/** Access tokens live 4 s and are refreshed 1 s before: a refresh about every 3 s. */
const lifetimeMs = 4_000;

let emulator: Emulator;
let fake: FakeOAuthUpstream;
let dir: string;
let node: ChildProcess;
let output = '';
let grpcPort = 0;
let adminPort = 0;
let apiKey = '';
let completed = 0;
let requestNumber = 0;

function writeCredential(credential: IssuedCredential): void {
  // Claude Code's file as it is, scopes and all, with the owner-only mode the node requires.
  writeFileSync(join(dir, 'sub-1.json'), JSON.stringify({ claudeAiOauth: { ...credential, scopes: ['user:inference'], subscriptionType: 'max' } }), {
    mode: 0o600,
  });
}

async function startNodeProcess(): Promise<void> {
  output = '';
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
}

async function stopNodeProcess(): Promise<void> {
  const exited = new Promise<number | null>((resolve) => node.once('exit', (code) => resolve(code)));
  node.kill('SIGTERM');
  expect(await exited).toBe(0);
}

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, text: await res.text() };
}

async function complete(count: number): Promise<boolean[]> {
  const client = new CarpoolClient({ target: `127.0.0.1:${grpcPort}`, apiKey });
  try {
    const answers = await Promise.all(
      Array.from({ length: count }, () =>
        client.complete({
          requestId: `oauth-${++requestNumber}`,
          requestJson: utf8.encode(JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 8, messages: [{ role: 'user', content: 'Say hello' }] })),
          anthropicVersion: '',
          anthropicBeta: '',
          user: '',
        }),
      ),
    );
    const oks = answers.map((answer) => answer.ok);
    completed += oks.filter(Boolean).length;
    return oks;
  } finally {
    client.close();
  }
}

async function waitFor(condition: () => boolean | Promise<boolean>, withinMs: number, what: string): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; node output:\n${output}`);
    await sleep(50);
  }
}

/** The tenant's requests as the node counted them, against the emulator's tally. */
async function reconcile(): Promise<void> {
  const client = new CarpoolClient({ target: `127.0.0.1:${grpcPort}`, apiKey });
  try {
    const usage = await client.getUsage({ consistency: 'local', user: '' });
    expect(usage.ok && usage.value.limits.find((limit) => limit.metric === 'requests')?.used).toBe(completed);
    expect(emulator.stats().requests).toBe(completed);
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  const accounts = generatedAccounts(1, 16);
  emulator = await startEmulator({ accounts });
  fake = await FakeOAuthUpstream.start(emulator.url, emulator.keys[0] as string, lifetimeMs);
  [grpcPort, adminPort] = [await freePort(), await freePort()];
  const meshPort = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'carpool-oauth-node-'));
  writeCredential(fake.issue());
  const config = {
    node: 'solo-1',
    region: 'us-east',
    listen: { host: '127.0.0.1', port: meshPort },
    admin: { host: '127.0.0.1', port: adminPort },
    members: [{ id: 'solo-1', region: 'us-east', url: `ws://127.0.0.1:${meshPort}` }],
    secret: 'oauth-process-test-mesh-secret',
    grpc: { host: '127.0.0.1', port: grpcPort },
    adminToken,
    dataDir: 'data',
    upstream: {
      baseUrl: fake.url,
      accounts: { 'sub-1': { kind: 'oauth', credentialsFile: 'sub-1.json' } },
      oauth: { tokenUrl: `${fake.url}/v1/oauth/token`, refreshLeadMs: 1_000 },
    },
  };
  writeFileSync(join(dir, 'node.json'), JSON.stringify(config));
  await startNodeProcess();
  expect((await admin('PUT', '/policy/accounts/sub-1', { kind: 'oauth', homeRegion: 'us-east', weight: 1, concurrencyMax: 16, limits: [] })).status).toBe(200);
  const tenant = {
    tier: 'paid',
    requireSignature: false,
    concurrencyMax: 32,
    weights: { input: 1000, output: 5000, cacheWrite: 1250, cacheRead: 100 },
    limits: [{ metric: 'requests', window: 'day', sliding: false, limit: 10_000, mode: 'eventual' }],
  };
  expect((await admin('PUT', '/policy/tenants/demo', tenant)).status).toBe(200);
  const minted = await adminCall(grpcPort, 'CreateApiKey', { tenant: 'demo' }, adminToken);
  expect(minted.error).toBeNull();
  apiKey = (minted.response as { api_key: string }).api_key;
}, 40_000);

afterAll(async () => {
  if (node !== undefined && node.exitCode === null) node.kill('SIGKILL');
  await fake?.close();
  await emulator?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('carpool node with a renewable OAuth account', () => {
  it('refreshes before expiry while calls keep succeeding', async () => {
    expect(await complete(2)).toEqual([true, true]);
    await waitFor(() => fake.refreshes.length >= 2, 10_000, 'two scheduled refreshes');
    expect(fake.refreshes.every((refresh) => refresh.outcome === 'ok' && refresh.beforeExpiry)).toBe(true);
    expect(await complete(2)).toEqual([true, true]);
    await reconcile();
  }, 30_000);

  it('renews once for many calls that meet an expired token, and every call succeeds', async () => {
    // Right after a scheduled refresh, so the next one is seconds away.
    const seen = fake.refreshes.length;
    await waitFor(() => fake.refreshes.length > seen, 10_000, 'a scheduled refresh');
    const before = fake.refreshes.length;
    fake.expireNow();
    expect(await complete(12)).toEqual(Array.from({ length: 12 }, () => true));
    expect(fake.refreshes.length - before).toBe(1);
    await reconcile();
  }, 30_000);

  it('keeps the rotated refresh token across a restart (the file still holds the first, now void)', async () => {
    const refreshed = fake.refreshes.length;
    await stopNodeProcess();
    await startNodeProcess();
    await waitFor(() => fake.refreshes.length > refreshed, 10_000, 'a refresh after the restart');
    expect(fake.refreshes.slice(refreshed).every((refresh) => refresh.outcome === 'ok')).toBe(true);
    expect(await complete(2)).toEqual([true, true]);
    await reconcile();
  }, 40_000);

  it('takes a new credential from the file on SIGHUP', async () => {
    const fresh = fake.issue();
    writeCredential(fresh);
    node.kill('SIGHUP');
    await waitFor(() => output.includes('SIGHUP: credentials re-read: 1 new or changed (sub-1)'), 5_000, 'the reload');
    const sent = fake.bearers.length;
    expect(await complete(1)).toEqual([true]);
    // The call went out with the new access token (or one renewed from its refresh token).
    const chainStart = fake.issuedTokens.indexOf(fresh.accessToken);
    expect(fake.issuedTokens.indexOf(fake.bearers[sent] as string)).toBeGreaterThanOrEqual(chainStart);
    await reconcile();
  }, 20_000);

  it('disables the account on invalid_grant with its reason and the alert metric, and an admin PUT brings it back', async () => {
    fake.refuseAll = true;
    await waitFor(async () => (await admin('GET', '/pool')).text.includes('refresh refused: invalid_grant'), 10_000, 'the account disabled');
    const pool = JSON.parse((await admin('GET', '/pool')).text) as { accounts?: { id: string; state: string; disabledReason?: string }[] };
    const account = (pool.accounts ?? []).find((entry) => entry.id === 'sub-1');
    expect(account).toMatchObject({ state: 'disabled', disabledReason: 'credential: refresh refused: invalid_grant' });
    const metrics = (await admin('GET', '/metrics')).text;
    expect(metrics).toMatch(/carpool_accounts_credential_refused\S* 1/);
    expect(metrics).toMatch(/carpool_account_credential_refreshes_total\{[^}]*account="sub-1"[^}]*outcome="refused"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/carpool_account_credential_refreshes_total\{[^}]*outcome="ok"[^}]*\} [1-9]/);

    fake.refuseAll = false;
    const fresh = fake.issue();
    const put = await admin('PUT', '/pool/accounts/sub-1/credential', { kind: 'oauth', ...fresh, reason: 'new login after invalid_grant' });
    expect(put.status).toBe(200);
    expect(JSON.parse(put.text)).toEqual({ account: 'sub-1', kind: 'oauth', kept: 'store', reenabled: true, expiresAtMs: fresh.expiresAt });
    expect(await complete(2)).toEqual([true, true]);
    await reconcile();
  }, 30_000);

  it('never shows a token in its output, metrics, audit log, pool or status', async () => {
    const texts = [
      output,
      (await admin('GET', '/metrics')).text,
      (await admin('GET', '/audit')).text,
      (await admin('GET', '/pool')).text,
      (await admin('GET', '/status')).text,
    ];
    expect(texts[2]).toContain('account.credential');
    for (const token of fake.issuedTokens) for (const text of texts) expect(text.includes(token)).toBe(false);
    // A refused admin body names the field, not the value.
    const refused = await admin('PUT', '/pool/accounts/sub-1/credential', {
      kind: 'oauth',
      accessToken: fake.issuedTokens[0],
      refreshToken: 'has space',
      expiresAt: 1,
    });
    expect(refused.status).toBe(400);
    expect(refused.text).not.toContain(fake.issuedTokens[0] as string);
    await stopNodeProcess();
  }, 30_000);
});
