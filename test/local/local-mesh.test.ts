// Proves `startLocalMesh` brings up a working three-region mesh from one config: three node
// processes and the emulator on free ports, the policy everywhere, a key per tenant. The client
// code streams one completion through each region, each region serves it with an account homed
// there, GetUsage (QUORUM) counts all three, and stop() leaves no process behind.
import { mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientArgs } from '../../src/local/client-args.js';
import { type LocalConfig, parseLocalConfig } from '../../src/local/local-config.js';
import { runClient } from '../../src/local/local-client.js';
import { type LocalMesh, startLocalMesh } from '../../src/local/local-mesh.js';
import { withFreePorts } from '../../src/local/local-ports.js';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { sleep } from '../support/wait.js';

const regionNames = ['us-east', 'eu-west', 'ap-south'];

async function smallConfig(): Promise<LocalConfig> {
  const parsed = parseLocalConfig({
    regions: regionNames.map((name, i) => ({ name, basePort: 1000 + 10 * i })),
    emulator: { port: 999, ttftMs: 0, tokensPerSecond: 0, accounts: regionNames.map((homeRegion, i) => ({ id: `acct-${i}`, homeRegion })) },
    tenants: [{ id: 'demo', tier: 'paid', limits: [{ metric: 'requests', window: 'day', limit: 1000, mode: 'eventual' }] }],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return withFreePorts(parsed.value);
}

let mesh: LocalMesh | undefined;
const stateDir = mkdtempSync(join(tmpdir(), 'carpool-local-'));

beforeAll(async () => {
  const started = await startLocalMesh(await smallConfig(), { stateDir });
  if (!started.ok) throw new Error(started.error);
  mesh = started.value;
}, 45_000);

afterAll(async () => {
  await mesh?.stop();
  rmSync(stateDir, { recursive: true, force: true });
}, 20_000);

function clientArgs(overrides: Partial<ClientArgs>): ClientArgs {
  return {
    region: undefined,
    tenant: 'demo',
    unary: false,
    maxTokens: 16,
    model: 'claude-sonnet-4-6',
    usage: false,
    stateFile: mesh!.stateFile,
    target: undefined,
    apiKey: undefined,
    prompt: undefined,
    help: false,
    ...overrides,
  };
}

async function client(overrides: Partial<ClientArgs>): Promise<{ code: number; out: string; info: string[] }> {
  let out = '';
  const info: string[] = [];
  const code = await runClient(clientArgs(overrides), { out: (text) => (out += text), info: (line) => info.push(line) });
  return { code, out, info };
}

describe('a local mesh of three node processes', () => {
  it('writes a state file only its owner can read', async () => {
    expect((await stat(mesh!.stateFile)).mode & 0o777).toBe(0o600);
    expect(Object.keys(mesh!.apiKeys)).toEqual(['demo']);
  });

  it('streams a completion through each region, served there, and counts all three', async () => {
    for (const region of regionNames) {
      const answer = await client({ region, prompt: `Say hello from ${region}` });
      expect(answer.code, answer.info.join('\n')).toBe(0);
      expect(answer.out.trim().length).toBeGreaterThan(0);
      expect(answer.info.at(-1)).toMatch(new RegExp(`output 16, .*served by ${region};`));
    }
    // Each node holds only its home account's key, so each account served exactly one call.
    const stats = (await (await fetch(`${mesh!.emulator.url}/_emulator/stats`)).json()) as { keys: Record<string, { messages: number }> };
    expect(mesh!.emulator.keys.map((key) => stats.keys[key]?.messages)).toEqual([1, 1, 1]);

    // Eventual counts reach the other regions by gossip within a few intervals; a QUORUM read
    // joins a majority's states, so it sees all three once the deltas have landed.
    const usage = new CarpoolClient({ target: mesh!.regions[1]!.grpc, apiKey: mesh!.apiKeys.demo! });
    try {
      let used: number | undefined;
      for (let attempt = 0; attempt < 50 && used !== 3; attempt++) {
        const answer = await usage.getUsage({ consistency: 'quorum', user: '' });
        used = answer.ok ? answer.value.limits.find((l) => l.metric === 'requests')?.used : undefined;
        if (used !== 3) await sleep(100);
      }
      expect(used).toBe(3);
    } finally {
      usage.close();
    }
    const report = await client({ region: 'ap-south', usage: true });
    expect(report.code).toBe(0);
    expect(report.info.join('\n')).toMatch(/tenant requests per day \(eventual\): used 3 of 1000, remaining 997/);
  }, 20_000);

  it('names the known regions and tenants when asked for others', async () => {
    const region = await client({ region: 'mars', prompt: 'hi' });
    expect(region.code).toBe(2);
    expect(region.info.join('\n')).toMatch(/unknown region "mars"; the local mesh has us-east, eu-west, ap-south/);
    const tenant = await client({ tenant: 'acme', prompt: 'hi' });
    expect(tenant.info.join('\n')).toMatch(/unknown tenant "acme"; the local mesh has demo/);
  });

  it('stops every process', async () => {
    const grpc = mesh!.regions[0]!.grpc;
    await mesh!.stop();
    const after = await client({ target: grpc, apiKey: mesh!.apiKeys.demo!, prompt: 'hi' });
    expect(after.code).toBe(1);
    expect(after.info.join('\n')).toMatch(/UNAVAILABLE/);
  }, 20_000);
});
