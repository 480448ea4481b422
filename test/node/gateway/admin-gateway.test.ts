// Proves the Admin service over the running node.
// A key made by CreateApiKey authenticates a completion at once; a missing or wrong admin token is
// refused UNAUTHENTICATED; a viewer token is refused PERMISSION_DENIED on every write method and
// served on every read method; policy edits are validated with errors naming the field; keys are
// listed, rotated and revoked; adjustments and the audit log work over gRPC with the token's name
// as the actor; and GetPolicy never shows whole key digests.
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { asTenantId } from '../../../src/core/ids.js';
import { adminMethodNames } from '../../../src/net/grpc/carpool-proto.js';
import { adminMethodAccess } from '../../../src/node/gateway/admin-gateway.js';
import { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';
import { ledgerRow, MemoryUsageReader } from '../../support/memory-usage-reader.js';
import { adminCall, adminToken, closeAll, completion, fromUtf8, startHarness, utf8, viewerToken } from './gateway-harness.js';

afterEach(closeAll);

describe('the Admin service', () => {
  it('creates an API key that a completion can use at once', async () => {
    const h = await startHarness();
    const tenant = {
      tier: 'free',
      requireSignature: false,
      concurrencyMax: 10,
      limits: [{ metric: 'requests', window: 'day30', sliding: false, limit: 100, mode: 'eventual' }],
    };
    const put = await adminCall(h.port, 'PutTenant', { id: 'newco', json: Buffer.from(JSON.stringify(tenant)) }, adminToken);
    expect(put.error).toBeNull();
    const created = await adminCall(h.port, 'CreateApiKey', { tenant: 'newco' }, adminToken);
    expect(created.error).toBeNull();
    const { api_key: apiKey, key_id: keyId } = created.response as { api_key: string; key_id: string };
    expect(apiKey).toMatch(/^cp_newco_[A-Za-z0-9]{40}$/);
    expect(keyId).toMatch(/^newco:[0-9a-f]{8}$/);
    const client = new CarpoolClient({ target: `127.0.0.1:${h.port}`, apiKey });
    try {
      const done = await client.complete(completion());
      expect(done.ok).toBe(true);
    } finally {
      client.close();
    }
    expect(h.tenantUsed('newco', 'requests')).toBe(1);
    // The policy shows the tenant with a digest prefix only, never the whole digest.
    const policy = await adminCall(h.port, 'GetPolicy', {}, adminToken);
    const text = fromUtf8.decode((policy.response as { json: Uint8Array }).json);
    const view = JSON.parse(text) as { tenants: { id: string; keys: { keyId: string; name: string; state: string }[] }[] };
    const shown = view.tenants.find((t) => t.id === 'newco');
    expect(shown?.keys).toEqual([expect.objectContaining({ keyId, name: 'unnamed', state: 'active' })]);
    const digest = h.runtime.policy.tenant(asTenantId('newco'))?.apiKeys[0]?.hash as string;
    expect(text).not.toContain(digest);
    // A second PutTenant keeps the key.
    const again = await adminCall(h.port, 'PutTenant', { id: 'newco', json: Buffer.from(JSON.stringify({ ...tenant, tier: 'paid' })) }, adminToken);
    expect(again.error).toBeNull();
    expect(h.runtime.policy.tenant(asTenantId('newco'))).toMatchObject({ tier: 'paid', apiKeys: [expect.objectContaining({ hash: digest })] });
  });

  it('refuses a missing or wrong admin token, and a tenant key, with UNAUTHENTICATED', async () => {
    const h = await startHarness();
    for (const token of [undefined, 'not-the-admin-token-at-all', `${adminToken}x`]) {
      const answer = await adminCall(h.port, 'CreateApiKey', { tenant: 'acme' }, token);
      expect([answer.error?.code, answer.error?.details]).toEqual([status.UNAUTHENTICATED, 'missing or unknown admin token']);
    }
    expect(h.gateway.admin?.stats.unauthenticated).toBe(3);
    expect(h.gateway.admin?.stats.keysCreated).toBe(0);
    expect(h.runtime.policy.tenant(asTenantId('acme'))?.apiKeys).toHaveLength(1);
  });

  it('names the field of a bad policy edit, and removes and re-enables by id', async () => {
    const h = await startHarness();
    const badWindow = {
      tier: 'paid',
      requireSignature: false,
      concurrencyMax: 1,
      limits: [{ metric: 'requests', window: 'fortnight', sliding: false, limit: 1, mode: 'eventual' }],
    };
    const refused = await adminCall(h.port, 'PutTenant', { id: 'acme', json: Buffer.from(JSON.stringify(badWindow)) }, adminToken);
    expect(refused.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(refused.error?.details).toContain('tenants.acme.limits[0].window');
    const notJson = await adminCall(h.port, 'PutAccount', { id: 'acct-9', json: utf8.encode('{') }, adminToken);
    expect(notJson.error?.details).toContain('invalid json');
    const otherId = await adminCall(h.port, 'PutAccount', { id: 'acct-9', json: utf8.encode('{"id":"acct-8"}') }, adminToken);
    expect(otherId.error?.details).toContain('accounts.acct-9.id');
    const unknown = await adminCall(h.port, 'CreateApiKey', { tenant: 'nobody' }, adminToken);
    expect([unknown.error?.code, unknown.error?.details]).toEqual([status.NOT_FOUND, 'tenant: no tenant nobody in the policy']);
    expect((await adminCall(h.port, 'RemoveAccount', { id: 'acct-2' }, adminToken)).response).toEqual({ removed: true });
    expect((await adminCall(h.port, 'RemoveAccount', { id: 'acct-2' }, adminToken)).response).toEqual({ removed: false });
    expect((await adminCall(h.port, 'EnableAccount', { account: 'acct-0' }, adminToken)).response).toEqual({ enabled: true });
    expect((await adminCall(h.port, 'EnableAccount', { account: 'acct-2' }, adminToken)).response).toEqual({ enabled: false });
  });

  it('applies the roles to every method: a viewer reads, and every write needs an admin token', async () => {
    const h = await startHarness({ usage: new MemoryUsageReader([ledgerRow({ requestId: 'r1' })]) });
    // Requests that would succeed for an admin, so that only the role decides.
    const requests: Record<string, object> = {
      GetPolicy: {},
      GetPool: {},
      PutTenant: { id: 'acme', json: Buffer.from('{"tier":"free","requireSignature":false,"concurrencyMax":1,"limits":[]}') },
      RemoveTenant: { id: 'acme' },
      PutAccount: { id: 'acct-0', json: Buffer.from('{"kind":"api-key","homeRegion":"us-east","weight":1,"concurrencyMax":1,"limits":[]}') },
      RemoveAccount: { id: 'acct-0' },
      CreateApiKey: { tenant: 'acme', name: 'x' },
      ListApiKeys: { tenant: 'acme' },
      RevokeApiKey: { key_id: 'acme:00000000' },
      RotateApiKey: { key_id: 'acme:00000000' },
      EnableAccount: { account: 'acct-0' },
      AdjustUsage: { scope: 'tenant', subject: 'acme', metric: 'requests', window: 'day30', kind: 'charge', amount: 1, reason: 'role test' },
      GetAudit: {},
      QueryUsage: { tenant: 'acme' },
    };
    expect(Object.keys(requests).sort()).toEqual([...adminMethodNames].sort());
    const before = JSON.stringify(h.runtime.policy.tenant(asTenantId('acme')));
    for (const method of adminMethodNames) {
      const access = adminMethodAccess[(method[0]!.toLowerCase() + method.slice(1)) as keyof typeof adminMethodAccess];
      const answer = await adminCall(h.port, method, requests[method]!, viewerToken);
      if (access === 'write') {
        expect([method, answer.error?.code, answer.error?.details]).toEqual([
          method,
          status.PERMISSION_DENIED,
          'the token grafana has the role viewer; this method needs admin',
        ]);
      } else {
        expect([method, answer.error]).toEqual([method, null]);
      }
    }
    expect(h.gateway.admin?.stats.forbidden).toBe(9);
    expect(JSON.stringify(h.runtime.policy.tenant(asTenantId('acme')))).toBe(before);
    expect(h.runtime.policy.auditEntries().entries).toEqual([]);
  });

  it("answers QueryUsage from the node's ledger with the node named, refuses a bad parameter by its proto name, and says when the node keeps no ledger", async () => {
    const rows = [
      ledgerRow({ requestId: 'r1', tenant: 'acme', model: 'claude-sonnet-4-6', chargedAtMs: 1_000 }),
      ledgerRow({ requestId: 'r2', tenant: 'acme', model: 'claude-haiku-4-5', chargedAtMs: 2_000, inputTokens: 5 }),
      ledgerRow({ requestId: 'r3', tenant: 'acme', role: 'home', chargedAtMs: 3_000 }),
    ];
    const h = await startHarness({ usage: new MemoryUsageReader(rows) });
    const answer = await adminCall(h.port, 'QueryUsage', { tenant: 'acme', group_by: ['model'], rows: 1 }, viewerToken);
    expect(answer.error).toBeNull();
    // The home row is the account's side of a forwarded call: not a tenant charge.
    expect(answer.response).toMatchObject({
      node: 'gw0',
      side: 'tenant',
      totals: { requests: 2, input_tokens: 15 },
      groups_truncated: false,
      from_aggregates: 0,
    });
    expect((answer.response as { groups: { key: Record<string, string> }[] }).groups.map((g) => g.key.model)).toEqual([
      'claude-haiku-4-5',
      'claude-sonnet-4-6',
    ]);
    expect((answer.response as { rows: { request_id: string }[] }).rows.map((r) => r.request_id)).toEqual(['r2']);
    const accountSide = await adminCall(h.port, 'QueryUsage', { side: 'account', since_ms: 1_500 }, viewerToken);
    expect(accountSide.response).toMatchObject({ side: 'account', totals: { requests: 2 } });
    for (const [request, field] of [
      [{ side: 'both' }, 'side'],
      [{ group_by: ['model', 'fortnight'] }, 'group_by'],
      [{ group_by: ['model,tenant'] }, 'group_by'],
      [{ rows: 10_001 }, 'rows'],
      [{ since_ms: 5_000, until_ms: 4_000 }, 'until_ms'],
      [{ api_key_id: 'cp_acme_0123456789abcdef0123456789abcdef' }, 'api_key_id'],
    ] as const) {
      const refused = await adminCall(h.port, 'QueryUsage', request, viewerToken);
      expect([field, refused.error?.code, refused.error?.details.startsWith(`invalid ${field}: `)]).toEqual([field, status.INVALID_ARGUMENT, true]);
    }
    const none = await startHarness();
    const noLedger = await adminCall(none.port, 'QueryUsage', {}, viewerToken);
    expect([noLedger.error?.code, noLedger.error?.details]).toEqual([status.FAILED_PRECONDITION, 'this node keeps no usage ledger (no dataDir)']);
  });

  it('lists, rotates and revokes keys, adjusts usage and shows the audit log with the actor and the reason', async () => {
    const h = await startHarness();
    const created = await adminCall(h.port, 'CreateApiKey', { tenant: 'acme', name: 'ci', reason: 'pipeline' }, adminToken);
    const { key_id: keyId, api_key: firstKey } = created.response as { key_id: string; api_key: string };
    const listed = await adminCall(h.port, 'ListApiKeys', { tenant: 'acme' }, viewerToken);
    expect((listed.response as { keys: { key_id: string; name: string; state: string }[] }).keys.map((k) => [k.name, k.state])).toEqual([
      ['test', 'active'],
      ['ci', 'active'],
    ]);
    const rotated = await adminCall(h.port, 'RotateApiKey', { key_id: keyId, grace_ms: 60_000 }, adminToken);
    expect(rotated.response).toMatchObject({ key: { name: 'ci', state: 'active' }, previous: { key_id: keyId, state: 'revoking' } });
    const revoked = await adminCall(h.port, 'RevokeApiKey', { key_id: keyId, reason: 'rotation done' }, adminToken);
    expect(revoked.response).toMatchObject({ key_id: keyId, state: 'revoked' });
    const client = new CarpoolClient({ target: `127.0.0.1:${h.port}`, apiKey: firstKey });
    try {
      const refused = await client.getUsage({ consistency: 'local', user: '' });
      expect(!refused.ok && refused.error.kind === 'status' && refused.error.codeName).toBe('UNAUTHENTICATED');
    } finally {
      client.close();
    }
    const charged = await adminCall(
      h.port,
      'AdjustUsage',
      { scope: 'tenant', subject: 'acme', metric: 'requests', window: 'day30', kind: 'charge', amount: 3, reason: 'manual' },
      adminToken,
    );
    expect(charged.response).toMatchObject({ kind: 'charge', amount: 3, before: 0, after: 3, node: 'gw0' });
    const overCredit = await adminCall(
      h.port,
      'AdjustUsage',
      { scope: 'tenant', subject: 'acme', metric: 'requests', window: 'day30', kind: 'credit', amount: 4, reason: 'too much' },
      adminToken,
    );
    expect([overCredit.error?.code, overCredit.error?.details]).toEqual([
      status.INVALID_ARGUMENT,
      "invalid amount: a credit may not exceed the counter's current value, 3",
    ]);
    const misspelt = await adminCall(
      h.port,
      'AdjustUsage',
      { scope: 'tenant', subject: 'acme', metric: 'reqs', window: 'day30', kind: 'credit', amount: 1, reason: 'typo' },
      adminToken,
    );
    expect(misspelt.error?.details).toMatch(/^invalid metric: must be a metric of tenant acme's limits/);
    const audit = await adminCall(h.port, 'GetAudit', { limit: 10 }, viewerToken);
    const entries = (audit.response as { entries: { actor: string; action: string; target: string; reason: string; detail_json: Uint8Array }[] }).entries;
    expect(entries.map((e) => [e.actor, e.action, e.target, e.reason])).toEqual([
      ['admin', 'usage.adjust', 'tenant/acme', 'manual'],
      ['admin', 'key.revoke', `key/${keyId}`, 'rotation done'],
      ['admin', 'key.rotate', `key/${keyId}`, ''],
      ['admin', 'key.create', `key/${keyId}`, 'pipeline'],
    ]);
    expect(JSON.parse(fromUtf8.decode(entries[0]!.detail_json))).toMatchObject({ kind: 'charge', amount: 3, before: 0, after: 3 });
  });
});
