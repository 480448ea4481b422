// Proves `carpool audit` over two real mesh nodes (in this process) and a real emulator.
// Each node has its admin endpoint and its own ledger. Calls made to the emulator are recorded as
// ledger rows where a gateway would write them (a local call at its region, a forwarded one at both
// ends) and charged to the mesh counters. The audit reads every node's rows, the counters at QUORUM
// and the emulator's tally and finds them equal (exit 0), counts a usage adjustment from the audit
// log, reports a row lost from one node's ledger as differences in counters and upstream (exit 1),
// and refuses to run (exit 2) without every member's ledger, on a node that keeps none, or when an
// --admin URL names a node twice.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../src/admission/admin-access.js';
import { parseAuditArgs } from '../../src/admin-cli/audit-args.js';
import { rowAmount } from '../../src/admin-cli/audit-reconcile.js';
import { runAudit } from '../../src/admin-cli/run-audit.js';
import { asNodeId, asRegionId, type NodeId, type RegionId } from '../../src/core/ids.js';
import { windowAt } from '../../src/crdt/window.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { type AdminServer, startAdminHttp } from '../../src/net/admin-http.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { AdminRoutes } from '../../src/node/admin-routes.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { freePort } from '../support/cluster.js';
import { ledgerRow, MemoryUsageReader } from '../support/memory-usage-reader.js';
import { until } from '../support/wait.js';

const token = 'run-audit-viewer-token-01';
const operator = { name: 'ops', role: 'admin' as const };
const secret = 'run-audit-test-mesh-secret';
const tenantRules: LimitRule[] = [
  { metric: 'requests', window: 'day', sliding: false, limit: 1_000, mode: 'eventual' },
  { metric: 'weighted_tokens', window: 'hour', sliding: false, limit: 10_000_000, mode: 'eventual' },
  { metric: 'output_tokens', window: 'minute', sliding: true, limit: 10_000_000, mode: 'eventual' },
];
const accountRules: LimitRule[] = [
  { metric: 'requests', window: 'day', sliding: false, limit: 1_000, mode: 'eventual' },
  { metric: 'input_tokens', window: 'day', sliding: false, limit: 10_000_000, mode: 'eventual' },
  { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 10_000_000, mode: 'eventual' },
];

interface AuditedNode {
  readonly id: NodeId;
  readonly region: RegionId;
  readonly runtime: MeshRuntime;
  readonly ledger: MemoryUsageReader;
  readonly service: AdminService;
  readonly admin: AdminServer;
  readonly url: string;
}

let emulator: Emulator;
let dir: string;
const nodes: AuditedNode[] = [];
let bare: AdminServer;

async function startNodes(): Promise<void> {
  const specs = [
    { id: asNodeId('use-1'), region: asRegionId('us-east'), port: await freePort() },
    { id: asNodeId('euw-1'), region: asRegionId('eu-west'), port: await freePort() },
  ];
  const members = specs.map((spec) => ({ id: spec.id, region: spec.region, url: `ws://127.0.0.1:${spec.port}` }));
  const tokens = new AdminTokens(nodeAuthCrypto, [{ name: 'grafana', role: 'viewer', token }]);
  for (const spec of specs) {
    const runtime = await MeshRuntime.start({
      config: {
        node: spec.id,
        region: spec.region,
        listen: { host: '127.0.0.1', port: spec.port },
        admin: undefined,
        members,
        secret: { kind: 'inline', value: secret },
        tls: undefined,
      },
      secret: new TextEncoder().encode(secret),
    });
    const ledger = new MemoryUsageReader();
    const service = new AdminService({ runtime, crypto: nodeAuthCrypto, usage: ledger });
    const admin = await startAdminHttp({ host: '127.0.0.1', port: 0, handler: new AdminRoutes(runtime, service), tokens });
    nodes.push({ ...spec, runtime, ledger, service, admin, url: `http://127.0.0.1:${admin.port}` });
    // Each node's config holds the key of the account homed in its region, as a deployment's does.
    const index = nodes.length - 1;
    const config = {
      node: spec.id,
      region: spec.region,
      listen: { host: '127.0.0.1', port: spec.port },
      members,
      secret,
      upstream: { baseUrl: emulator.url, accounts: { [`acct-${index}`]: { kind: 'api-key', key: emulator.keys[index] } } },
    };
    writeFileSync(join(dir, `${spec.region}.json`), JSON.stringify(config));
  }
  const east = nodes[0] as AuditedNode;
  expect(east.service.putTenant(operator, 'acme', { tier: 'paid', requireSignature: false, concurrencyMax: 8, limits: tenantRules }, undefined).ok).toBe(true);
  for (const [i, node] of nodes.entries()) {
    expect(
      east.service.putAccount(
        operator,
        `acct-${i}`,
        { kind: 'api-key', homeRegion: node.region, weight: 1, concurrencyMax: 4, limits: accountRules },
        undefined,
      ).ok,
    ).toBe(true);
  }
  await until(
    () => nodes.every((node) => node.runtime.policy.account('acct-1' as never) !== undefined) && east.runtime.node.peerConnected(asNodeId('euw-1')),
    'the mesh and its policy',
    10_000,
  );
  bare = await startAdminHttp({
    host: '127.0.0.1',
    port: 0,
    handler: new AdminRoutes(east.runtime, new AdminService({ runtime: east.runtime, crypto: nodeAuthCrypto })),
    tokens,
  });
}

/** Charges each rule's key of the window containing `atMs`, as the gateway and the pool do. */
function charge(node: AuditedNode, scope: 'tenant' | 'account', subject: string, rules: readonly LimitRule[], row: LedgerRow): void {
  for (const rule of rules) {
    const key = node.runtime.counter.keyFor(scope, subject, rule.metric, windowAt(rule.sliding ? 'sec10' : rule.window, row.chargedAtMs));
    expect(node.runtime.counter.increment(key, rowAmount(row, scope, rule.metric)).ok).toBe(true);
  }
}

/**
 * One completion on `account`, called at the emulator with its key; recorded and charged as the
 * mesh would: at the origin for the tenant, at the home region for the account, one `local` row
 * when they are the same node.
 */
async function complete(requestId: string, origin: AuditedNode, account: number): Promise<void> {
  const response = await fetch(`${emulator.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': emulator.keys[account] as string, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 24, messages: [{ role: 'user', content: `Audit me, ${requestId}` }] }),
  });
  expect(response.status).toBe(200);
  const { usage } = (await response.json()) as {
    usage: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number };
  };
  const home = nodes[account] as AuditedNode;
  const fields = {
    requestId,
    tenant: 'acme',
    account: `acct-${account}`,
    originRegion: origin.region,
    servedRegion: home.region,
    inputTokens: usage.input_tokens,
    outputTokens: usage.output_tokens,
    cacheWriteTokens: usage.cache_creation_input_tokens,
    cacheReadTokens: usage.cache_read_input_tokens,
    weightedTokens: usage.input_tokens + 5 * usage.output_tokens,
    chargedAtMs: Date.now(),
  };
  if (home === origin) {
    const row = ledgerRow({ ...fields, role: 'local', node: origin.id });
    origin.ledger.add(row);
    charge(origin, 'tenant', 'acme', tenantRules, row);
    charge(origin, 'account', row.account as string, accountRules, row);
    return;
  }
  const originRow = ledgerRow({ ...fields, role: 'origin', node: origin.id });
  const homeRow = ledgerRow({ ...fields, role: 'home', node: home.id });
  origin.ledger.add(originRow);
  home.ledger.add(homeRow);
  charge(origin, 'tenant', 'acme', tenantRules, originRow);
  charge(home, 'account', homeRow.account as string, accountRules, homeRow);
}

async function audit(
  extra: readonly string[] = [],
  admins: readonly string[] = nodes.map((node) => node.url),
): Promise<{ code: number; out: string; err: string }> {
  const argv = [
    ...admins.flatMap((url) => ['--admin', url]),
    '--token',
    token,
    '--emulator',
    emulator.url,
    ...nodes.flatMap((node) => ['--node-config', join(dir, `${node.region}.json`)]),
    ...extra,
  ];
  const parsed = parseAuditArgs(argv);
  if (!parsed.ok) throw new Error(parsed.error);
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAudit(parsed.value, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: {},
    nowMs: () => Date.now(),
    sleep: () => new Promise((resolve) => setTimeout(resolve, 50)),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  emulator = await startEmulator({ accounts: generatedAccounts(2, 15), seed: 15 });
  dir = mkdtempSync(join(tmpdir(), 'carpool-audit-'));
  await startNodes();
  const [east, west] = nodes as [AuditedNode, AuditedNode];
  await complete('local-1', east, 0);
  await complete('local-2', west, 1);
  await complete('forwarded-1', east, 1);
  await complete('forwarded-2', west, 0);
  await complete('local-3', east, 0);
}, 30_000);

afterAll(async () => {
  await bare?.close();
  for (const node of nodes) {
    await node.admin.close();
    await node.runtime.stop();
  }
  await emulator?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('carpool audit', () => {
  it('finds the ledgers of every node, the counters and the emulator in agreement', async () => {
    const run = await audit();
    expect([run.code, run.err]).toEqual([0, '']);
    expect(run.out).toContain('ledger: 2 node(s) (use-1, euw-1), 5 tenant-side and 5 account-side rows');
    expect(run.out).toContain('upstream: the emulator at');
    expect(run.out).toMatch(/tenant acme +day:\d+ +requests +5 +0 +0 +5 +- +0 +ok/);
    expect(run.out).toMatch(/account acct-1 +range +requests +2 +0 +0 +- +2 +0 +ok/);
    expect(run.out.split('\n').at(-1)).toBe('result: ledger, counters and upstream agree');
  });

  it("counts a usage adjustment from the audit log on the counters' side", async () => {
    const east = nodes[0] as AuditedNode;
    const adjusted = await east.service.adjustUsage(operator, {
      scope: 'tenant',
      subject: 'acme',
      metric: 'requests',
      window: 'day',
      kind: 'charge',
      amount: 2,
      reason: 'goodwill, for the audit test',
    });
    expect(adjusted.ok).toBe(true);
    const run = await audit(['--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.out) as {
      differences: number;
      lines: { subject: string; metric: string; window: string; ledger: number; adjustments: number; counters: number }[];
    };
    // The audit spans the last day, so just after midnight it also lists yesterday's (empty) window: today's is the one charged.
    const today = `day:${Math.floor(Date.now() / 86_400_000)}`;
    expect(report.lines.find((line) => line.subject === 'tenant acme' && line.metric === 'requests' && line.window === today)).toMatchObject({
      ledger: 5,
      adjustments: 2,
      counters: 7,
    });
  });

  it("reports a row lost from one node's ledger, in the counters and at the upstream", async () => {
    const west = nodes[1] as AuditedNode;
    const lost = west.ledger.rows.findIndex((row) => row.requestId === 'forwarded-1');
    const [row] = west.ledger.rows.splice(lost, 1);
    try {
      const run = await audit();
      expect(run.code).toBe(1);
      const differing = run.out.split('\n').filter((line) => line.endsWith('DIFFERS'));
      expect(differing.length).toBeGreaterThanOrEqual(4);
      expect(differing.every((line) => line.startsWith('account acct-1'))).toBe(true);
      expect(differing.some((line) => /range +requests +1 +0 +0 +- +2 +1 +DIFFERS/.test(line))).toBe(true);
      expect(run.out.split('\n').at(-1)).toBe(`result: ${differing.length} difference(s)`);
    } finally {
      west.ledger.rows.splice(lost, 0, row as LedgerRow);
    }
  });

  it("refuses to run without every member's ledger, on a node without one, and with a node named twice", async () => {
    const [east, west] = nodes as [AuditedNode, AuditedNode];
    const one = await audit([], [east.url]);
    expect([one.code, one.err]).toEqual([2, expect.stringContaining("the mesh's member(s) euw-1 were not read")]);
    const none = await audit([], [west.url, `http://127.0.0.1:${bare.port}`]);
    expect([none.code, none.err]).toEqual([2, expect.stringContaining('this node keeps no usage ledger (no dataDir)')]);
    const twice = await audit([], [east.url, west.url, `http://localhost:${east.admin.port}`]);
    expect([twice.code, twice.err]).toEqual([2, expect.stringContaining('is node use-1 again')]);
  });
});
