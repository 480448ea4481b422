// Three region nodes as real processes (`carpool node --config`), each holding the credential of
// the one subscription (OAuth) account homed in its region, in front of an emulator run in this
// process (so a test can exhaust a window, revoke a refresh token and read per-account figures).
// The policy and a tenant key are set through the admin HTTP endpoint, as an operator would.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asTenantId } from '../../src/core/ids.js';
import { carpoolCommand } from '../../src/local/local-child.js';
import { mintApiKey } from '../../src/node/gateway/api-key-mint.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import type { EmulatorAccount } from '../../src/upstream/emulator/emulator-config.js';
import { defaultAccountLimits } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { freePort } from './cluster.js';
import { untilAsync } from './wait.js';

export const meshRegions = ['us-east', 'eu-west', 'ap-south'] as const;
export type MeshRegion = (typeof meshRegions)[number];
const adminToken = 'subscription-mesh-admin-token';
const secret = 'subscription-mesh-secret-of-enough-bytes';
export const tenant = 'team';

export interface MeshAccount {
  readonly id: string;
  readonly homeRegion: MeshRegion;
  /** The emulator's configured key: its first access token, and the key of its stats. */
  readonly key: string;
}

export interface RegionProcess {
  readonly region: MeshRegion;
  readonly node: string;
  readonly admin: string;
  readonly http: string;
  child: ChildProcess | undefined;
  output: string;
}

export interface SubscriptionMeshOptions {
  /** Accounts, each homed in one region; all OAuth. */
  readonly accounts: readonly { readonly id: string; readonly homeRegion: MeshRegion }[];
  /** How the node holds each credential: a static access token, or a renewable login. */
  readonly credential: (account: MeshAccount, dir: string, emulator: Emulator) => Record<string, unknown>;
  /** Extra `upstream` fields of every node config (the OAuth settings). */
  readonly upstream?: (emulator: Emulator) => Record<string, unknown>;
  /** The emulator's account entries beyond key and kind. */
  readonly emulatorAccount?: (account: MeshAccount) => Partial<EmulatorAccount>;
}

export interface SubscriptionMesh {
  readonly dir: string;
  readonly emulator: Emulator;
  readonly accounts: readonly MeshAccount[];
  readonly regions: readonly RegionProcess[];
  readonly apiKey: string;
  region(name: MeshRegion): RegionProcess;
  admin(region: MeshRegion, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** GET /pool's account entries at a region. */
  pool(region: MeshRegion): Promise<Record<string, unknown>[]>;
  /** Input and output tokens the tenant was charged, over every node's ledger. */
  charged(): Promise<{ readonly requests: number; readonly input: number; readonly output: number }>;
  /** Input and output tokens the emulator counted, over every account. */
  counted(): { readonly input: number; readonly output: number };
  stop(): Promise<void>;
}

export async function startSubscriptionMesh(options: SubscriptionMeshOptions): Promise<SubscriptionMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'carpool-subscriptions-'));
  const accounts: MeshAccount[] = options.accounts.map((account, i) => ({ ...account, key: `sk-ant-oat01-mesh-${i}-${account.id}` }));
  const emulator = await startEmulator({
    accounts: accounts.map((account) => ({ key: account.key, kind: 'oauth', limits: defaultAccountLimits, faults: [], ...options.emulatorAccount?.(account) })),
    outputTokensMin: 4,
    outputTokensMax: 12,
  });
  const ports = new Map<MeshRegion, { mesh: number; admin: number; grpc: number; http: number }>();
  for (const region of meshRegions) ports.set(region, { mesh: await freePort(), admin: await freePort(), grpc: await freePort(), http: await freePort() });
  const nodeOf = (region: MeshRegion): string => `${region}-1`;
  const regions: RegionProcess[] = meshRegions.map((region) => {
    const port = ports.get(region)!;
    return { region, node: nodeOf(region), admin: `http://127.0.0.1:${port.admin}`, http: `http://127.0.0.1:${port.http}`, child: undefined, output: '' };
  });
  for (const process of regions) {
    const port = ports.get(process.region)!;
    const own = Object.fromEntries(accounts.filter((a) => a.homeRegion === process.region).map((a) => [a.id, options.credential(a, dir, emulator)]));
    const config = {
      node: process.node,
      region: process.region,
      listen: { host: '127.0.0.1', port: port.mesh },
      admin: { host: '127.0.0.1', port: port.admin },
      members: meshRegions.map((member) => ({
        id: nodeOf(member),
        region: member,
        url: `ws://127.0.0.1:${ports.get(member)!.mesh}`,
        grpc: `127.0.0.1:${ports.get(member)!.grpc}`,
      })),
      secret,
      grpc: { host: '127.0.0.1', port: port.grpc },
      http: { host: '127.0.0.1', port: port.http },
      adminToken,
      upstream: { baseUrl: emulator.url, accounts: own, ...options.upstream?.(emulator) },
      dataDir: `data-${process.region}`,
      // Every client here is one IP and one user: the per-client limit is not what is tested.
      rateLimits: { client: { rate: 60_000, periodMs: 60_000, burst: 1_000 }, tenant: { rate: 120_000, periodMs: 60_000, burst: 2_000 } },
    };
    writeFileSync(join(dir, `${process.region}.json`), JSON.stringify(config), { mode: 0o600 });
  }
  const { command, args } = carpoolCommand();
  for (const process of regions) {
    const child = spawn(command, [...args, 'node', '--config', join(dir, `${process.region}.json`), '--status-every', '3600'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    process.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (process.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (process.output += chunk.toString()));
  }

  const admin = async (region: MeshRegion, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    const base = regions.find((r) => r.region === region)!.admin;
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text.length === 0 ? undefined : (JSON.parse(text) as unknown) };
  };
  const pool = async (region: MeshRegion): Promise<Record<string, unknown>[]> => {
    const answer = await admin(region, 'GET', '/pool');
    return (answer.body as { accounts?: Record<string, unknown>[] }).accounts ?? [];
  };
  const stop = async (): Promise<void> => {
    await Promise.all(
      regions.map(
        (process) =>
          new Promise<void>((resolve) => {
            const child = process.child;
            if (child === undefined || child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
          }),
      ),
    );
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // Every node up and linked to both others.
    await untilAsync(
      async () => {
        for (const process of regions) {
          if (process.child?.exitCode !== null) throw new Error(`${process.region} exited:\n${process.output}`);
          const status = await admin(process.region, 'GET', '/status').catch(() => undefined);
          const peers = (status?.body as { peers?: { connected: boolean }[] } | undefined)?.peers;
          if (peers === undefined || peers.filter((peer) => peer.connected).length < meshRegions.length - 1) return false;
        }
        return true;
      },
      'the three nodes linked',
      60_000,
      200,
    );
    for (const account of accounts) {
      const put = await admin('us-east', 'PUT', `/policy/accounts/${account.id}`, {
        kind: 'oauth',
        homeRegion: account.homeRegion,
        weight: 1,
        concurrencyMax: 8,
        limits: [],
      });
      if (put.status !== 200) throw new Error(`PUT account ${account.id}: ${put.status} ${JSON.stringify(put.body)}`);
    }
    const put = await admin('us-east', 'PUT', `/policy/tenants/${tenant}`, { tier: 'paid', requireSignature: false, concurrencyMax: 64, limits: [] });
    if (put.status !== 200) throw new Error(`PUT tenant: ${put.status} ${JSON.stringify(put.body)}`);
    const { apiKey } = mintApiKey(nodeAuthCrypto, asTenantId(tenant));
    const key = await admin('us-east', 'POST', `/policy/tenants/${tenant}/keys`, { name: 'test', apiKey });
    if (key.status !== 200 && key.status !== 201) throw new Error(`register key: ${key.status} ${JSON.stringify(key.body)}`);
    await untilAsync(
      async () => {
        for (const process of regions) {
          const policy = (await admin(process.region, 'GET', '/policy')).body as { accounts?: unknown[]; tenants?: { id: string; keys?: unknown[] }[] };
          if ((policy.accounts?.length ?? 0) < accounts.length) return false;
          if ((policy.tenants?.find((t) => t.id === tenant)?.keys?.length ?? 0) < 1) return false;
        }
        return true;
      },
      'the policy in every region',
      20_000,
      100,
    );
    const charged = async (): Promise<{ requests: number; input: number; output: number }> => {
      const sum = { requests: 0, input: 0, output: 0 };
      for (const region of meshRegions) {
        const answer = await admin(region, 'GET', `/usage/ledger?tenant=${tenant}&side=tenant&rows=0`);
        const totals = (answer.body as { totals: { requests: number; inputTokens: number; outputTokens: number } }).totals;
        sum.requests += totals.requests;
        sum.input += totals.inputTokens;
        sum.output += totals.outputTokens;
      }
      return sum;
    };
    const counted = (): { input: number; output: number } => {
      let input = 0;
      let output = 0;
      for (const stats of Object.values(emulator.stats().keys)) {
        input += stats.inputTokens;
        output += stats.outputTokens;
      }
      return { input, output };
    };
    return { dir, emulator, accounts, regions, apiKey, region: (name) => regions.find((r) => r.region === name)!, admin, pool, charged, counted, stop };
  } catch (error) {
    const outputs = regions.map((r) => `--- ${r.region}\n${r.output}`).join('\n');
    await stop();
    throw new Error(`${(error as Error).message}\n${outputs}`);
  }
}
