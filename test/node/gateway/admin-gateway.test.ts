// Proves the Admin service over the running node: a key made by CreateApiKey authenticates a completion at once, a missing or wrong admin token is refused UNAUTHENTICATED, policy edits are validated with errors naming the field, and GetPolicy never shows whole key digests.
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { asTenantId } from '../../../src/core/ids.js';
import { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';
import { adminCall, adminToken, closeAll, completion, fromUtf8, startHarness, utf8 } from './gateway-harness.js';

afterEach(closeAll);

describe('the Admin service', () => {
  it('creates an API key that a completion can use at once', async () => {
    const h = await startHarness();
    const tenant = { tier: 'free', requireSignature: false, concurrencyMax: 10, limits: [{ metric: 'requests', window: 'day30', sliding: false, limit: 100, mode: 'eventual' }] };
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
      expect(answer.error?.code).toBe(status.UNAUTHENTICATED);
    }
    expect(h.gateway.admin?.stats.unauthenticated).toBe(3);
    expect(h.gateway.admin?.stats.keysCreated).toBe(0);
    expect(h.runtime.policy.tenant(asTenantId('acme'))?.apiKeys).toHaveLength(1);
  });

  it('names the field of a bad policy edit, and removes and re-enables by id', async () => {
    const h = await startHarness();
    const badWindow = { tier: 'paid', requireSignature: false, concurrencyMax: 1, limits: [{ metric: 'requests', window: 'fortnight', sliding: false, limit: 1, mode: 'eventual' }] };
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
});
