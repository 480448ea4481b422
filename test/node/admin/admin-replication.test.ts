// Proves what the admin surface promises across nodes.
// Two region nodes run in one process (mesh over WebSockets on loopback). An adjustment made at one
// node, and its audit entry, reach the other; credits made at both nodes at once never take a
// counter below zero (the quorum check undoes the one that would); and a key revoked at one node is
// refused by the other's gRPC endpoint within one gossip interval (50 ms), plus scheduling slack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminPrincipal } from '../../../src/admission/admin-access.js';
import { usedUnder } from '../../../src/admission/quota.js';
import { asNodeId, asRegionId, type NodeId, type RegionId, type TenantId } from '../../../src/core/ids.js';
import { defaultMeshSettings, type LimitRule } from '../../../src/mesh/policy/policy-schema.js';
import { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';
import { AdminService } from '../../../src/node/admin/admin-service.js';
import { RegionGateway } from '../../../src/node/gateway/region-gateway.js';
import { MeshRuntime } from '../../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';
import { freePort } from '../../support/cluster.js';
import { until } from '../../support/wait.js';

const secret = 'admin-replication-test-secret';
const east: RegionId = asRegionId('us-east');
const west: RegionId = asRegionId('eu-west');
const eastNode: NodeId = asNodeId('use-1');
const westNode: NodeId = asNodeId('euw-1');
const operator: AdminPrincipal = { name: 'oncall', role: 'admin' };
const dayRule: LimitRule = { metric: 'requests', window: 'day', sliding: false, limit: 1_000_000, mode: 'eventual' };
/** Scheduling slack on a loaded two-core machine, on top of the gossip interval. */
const slackMs = 200;

interface Node {
  readonly runtime: MeshRuntime;
  readonly service: AdminService;
}

let eastSide: Node;
let westSide: Node;
let westGateway: RegionGateway;

beforeAll(async () => {
  const [eastMesh, westMesh] = [await freePort(), await freePort()];
  const members = [
    { id: eastNode, region: east, url: `ws://127.0.0.1:${eastMesh}` },
    { id: westNode, region: west, url: `ws://127.0.0.1:${westMesh}` },
  ];
  const start = async (node: NodeId, region: RegionId, port: number): Promise<Node> => {
    const runtime = await MeshRuntime.start({
      config: { node, region, listen: { host: '127.0.0.1', port }, admin: undefined, members, secret: { kind: 'inline', value: secret }, tls: undefined },
      secret: new TextEncoder().encode(secret),
    });
    return { runtime, service: new AdminService({ runtime, crypto: nodeAuthCrypto }) };
  };
  eastSide = await start(eastNode, east, eastMesh);
  westSide = await start(westNode, west, westMesh);
  westGateway = await RegionGateway.start({ runtime: westSide.runtime, listen: { host: '127.0.0.1', port: 0 }, targets: new Map() });
  await until(() => eastSide.runtime.node.peerConnected(westNode) && westSide.runtime.node.peerConnected(eastNode), 'the mesh link is up', 10_000);
  const put = eastSide.service.putTenant(operator, 'acme', { tier: 'paid', requireSignature: false, concurrencyMax: 4, limits: [dayRule] }, 'test tenant');
  expect(put.ok).toBe(true);
  await until(() => westSide.runtime.policy.tenant('acme' as TenantId) !== undefined, 'the tenant reaches eu-west', 5_000);
}, 30_000);

afterAll(async () => {
  await westGateway?.stop(1_000);
  for (const side of [eastSide, westSide]) await side?.runtime.stop();
});

const used = (side: Node): number => usedUnder(side.runtime.counter, 'tenant', 'acme', dayRule, Date.now());
const adjustment = (kind: 'charge' | 'credit', amount: number, reason: string): Record<string, unknown> => ({
  scope: 'tenant',
  subject: 'acme',
  metric: 'requests',
  window: 'day',
  kind,
  amount,
  reason,
});

describe('admin writes across nodes', () => {
  it('replicates an adjustment and its audit entry to the other node', async () => {
    const before = used(westSide);
    const charged = await eastSide.service.adjustUsage(operator, adjustment('charge', 40, 'late charge for a batch'));
    expect(charged.ok).toBe(true);
    await until(() => used(westSide) === before + 40, 'the charge reaches eu-west', 5_000);
    const credited = await westSide.service.adjustUsage(operator, adjustment('credit', 15, 'refund for incident 42'));
    expect(credited).toMatchObject({ ok: true, value: { before: before + 40, after: before + 25, node: 'euw-1' } });
    await until(() => used(eastSide) === before + 25, 'the credit reaches us-east', 5_000);
    await until(
      () => eastSide.runtime.policy.auditEntries().entries.some((entry) => entry.reason === 'refund for incident 42'),
      'the audit entry reaches us-east',
      5_000,
    );
    const entry = eastSide.runtime.policy.auditEntries().entries.find((e) => e.reason === 'refund for incident 42');
    expect(entry).toMatchObject({ node: 'euw-1', actor: 'oncall', action: 'usage.adjust', target: 'tenant/acme', detail: { kind: 'credit', amount: 15 } });
  });

  it('never credits below zero, even when both nodes credit the whole value at once', async () => {
    for (let round = 0; round < 5; round++) {
      const start = used(eastSide);
      expect((await eastSide.service.adjustUsage(operator, adjustment('charge', 10, 'setup'))).ok).toBe(true);
      await until(() => used(westSide) === start + 10, 'the charge reaches eu-west', 5_000);
      const whole = start + 10;
      const [a, b] = await Promise.all([
        eastSide.service.adjustUsage(operator, adjustment('credit', whole, 'race east')),
        westSide.service.adjustUsage(operator, adjustment('credit', whole, 'race west')),
      ]);
      // At most one stands; a refused credit names the bound it saw.
      expect([a.ok, b.ok].filter(Boolean).length).toBeLessThanOrEqual(1);
      for (const refused of [a, b].filter((answer) => !answer.ok)) expect(refused).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'amount' } });
      expect(used(eastSide)).toBeGreaterThanOrEqual(0);
      expect(used(westSide)).toBeGreaterThanOrEqual(0);
      // Both refused (each saw the other's decrement) leaves the value whole once the undos
      // replicate; one standing leaves zero.
      const expected = a.ok || b.ok ? 0 : whole;
      await until(() => used(eastSide) === expected && used(westSide) === expected, `both nodes at ${expected}`, 5_000);
    }
  });

  it(`refuses a key revoked at one node at the other within one gossip interval (${defaultMeshSettings.gossipIntervalMs} ms, + ${slackMs} ms slack)`, async () => {
    expect(eastSide.runtime.policy.settings().gossipIntervalMs).toBe(defaultMeshSettings.gossipIntervalMs);
    const created = eastSide.service.createKey(operator, 'acme', { name: 'to-revoke' }, undefined);
    if (!created.ok) throw new Error(JSON.stringify(created.error));
    const client = new CarpoolClient({ target: `127.0.0.1:${westGateway.port}`, apiKey: created.value.apiKey });
    try {
      const works = async (): Promise<boolean> => (await client.getUsage({ consistency: 'local', user: '' })).ok;
      const deadline = Date.now() + 5_000;
      while (!(await works())) if (Date.now() > deadline) throw new Error('the new key never worked at eu-west');
      const revokedAt = Date.now();
      expect(eastSide.service.revokeKey(operator, created.value.key.keyId, 'leaked in a log').ok).toBe(true);
      let refusedAt: number | undefined;
      while (refusedAt === undefined && Date.now() - revokedAt < 5_000) {
        if (!(await works())) refusedAt = Date.now();
      }
      expect(refusedAt).toBeDefined();
      expect((refusedAt as number) - revokedAt).toBeLessThanOrEqual(defaultMeshSettings.gossipIntervalMs + slackMs);
      const answer = await client.getUsage({ consistency: 'local', user: '' });
      expect(!answer.ok && answer.error.kind === 'status' && [answer.error.codeName, answer.error.details]).toEqual([
        'UNAUTHENTICATED',
        'missing or unknown API key',
      ]);
    } finally {
      client.close();
    }
  });
});
