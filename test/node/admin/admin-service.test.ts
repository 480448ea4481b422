// Proves the admin service of one node: its audit log, its key lifecycle and its adjustments.
// Every write (tenant and account put/remove, settings (the pool and shedding ones included), key
// create/revoke/rotate, account enable, usage adjustment) lands in the audit log with the caller's
// token name, the node, the time and the reason, and never a key or digest; refused writes change
// nothing and are not recorded; the key lifecycle (create, list, revoke, rotate with grace, expiry)
// decides what the request authenticator accepts; and an adjustment validates every field and never
// credits a counter below zero.
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminPrincipal } from '../../../src/admission/admin-access.js';
import { RequestAuthenticator } from '../../../src/admission/request-auth.js';
import { usedUnder } from '../../../src/admission/quota.js';
import { asNodeId, asRegionId } from '../../../src/core/ids.js';
import { apiKeyRotationGraceMsMax, tenantKeysMax } from '../../../src/core/limits.js';
import { windowAt } from '../../../src/crdt/window.js';
import type { LimitRule } from '../../../src/mesh/policy/policy-schema.js';
import { AdminService } from '../../../src/node/admin/admin-service.js';
import { MeshRuntime } from '../../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';

const node = asNodeId('svc-1');
const region = asRegionId('us-east');
const admin: AdminPrincipal = { name: 'oncall', role: 'admin' };
const dayRule: LimitRule = { metric: 'requests', window: 'day', sliding: false, limit: 1_000, mode: 'eventual' };
const tenantFields = { tier: 'paid', requireSignature: false, concurrencyMax: 4, limits: [dayRule], userLimits: [{ ...dayRule, limit: 10 }] };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Setup {
  readonly runtime: MeshRuntime;
  readonly service: AdminService;
  /** The service's clock; tests move it. */
  readonly clock: { nowMs: number };
  readonly auth: RequestAuthenticator;
  /** Whether `apiKey` authenticates at the clock's time. */
  readonly works: (apiKey: string) => boolean;
}

async function setup(): Promise<Setup> {
  const secret = 'admin-service-test-secret';
  const runtime = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      members: [{ id: node, region, url: 'ws://127.0.0.1:1' }],
      secret: { kind: 'inline', value: secret },
      tls: undefined,
    },
    secret: new TextEncoder().encode(secret),
  });
  cleanups.push(() => runtime.stop());
  const clock = { nowMs: Date.now() };
  const service = new AdminService({ runtime, crypto: nodeAuthCrypto, nowMs: () => clock.nowMs });
  const auth = new RequestAuthenticator(nodeAuthCrypto, (id) => runtime.policy.tenant(id));
  const works = (apiKey: string): boolean =>
    auth.authenticate({ method: 'POST', path: '/carpool.v1.Carpool/Complete', body: new Uint8Array(0), apiKey }, clock.nowMs).ok;
  return { runtime, service, clock, auth, works };
}

function ok<T>(result: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!result.ok) throw new Error(JSON.stringify(result.error));
  return result.value;
}

describe('the audit log of admin writes', () => {
  it('records every kind of write with who, where, when and why, and no secret', async () => {
    const { runtime, service, clock } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, 'new customer'));
    ok(service.putAccount(admin, 'acct-1', { kind: 'api-key', homeRegion: 'us-east', weight: 1, concurrencyMax: 2, limits: [dayRule] }, undefined));
    ok(service.updateSettings(admin, { gossipIntervalMs: 40 }, 'faster gossip'));
    const created = ok(service.createKey(admin, 'acme', { name: 'ci' }, 'for the pipeline'));
    const rotated = ok(service.rotateKey(admin, created.key.keyId, { graceMs: 60_000 }, 'scheduled rotation'));
    ok(service.revokeKey(admin, rotated.key.keyId, 'leaked'));
    ok(
      await service.adjustUsage(admin, {
        scope: 'tenant',
        subject: 'acme',
        metric: 'requests',
        window: 'day',
        kind: 'charge',
        amount: 3,
        reason: 'manual charge',
      }),
    );
    runtime.pool.update(runtime.policy.accounts().values());
    expect(ok(service.enableAccount(admin, 'acct-1', 'key fixed')).enabled).toBe(true);
    expect(ok(service.removeAccount(admin, 'acct-1', undefined)).removed).toBe(true);
    expect(ok(service.removeTenant(admin, 'acme', 'churned')).removed).toBe(true);

    const { entries, invalid } = ok(service.audit());
    expect(invalid).toEqual([]);
    expect(entries.map((entry) => entry.action).reverse()).toEqual([
      'tenant.put',
      'account.put',
      'settings.update',
      'key.create',
      'key.rotate',
      'key.revoke',
      'usage.adjust',
      'account.enable',
      'account.remove',
      'tenant.remove',
    ]);
    for (const entry of entries) expect(entry).toMatchObject({ actor: 'oncall', node: 'svc-1', atMs: clock.nowMs });
    expect(entries.find((entry) => entry.action === 'key.create')).toMatchObject({
      target: `key/${created.key.keyId}`,
      reason: 'for the pipeline',
      detail: { name: 'ci' },
    });
    expect(entries.find((entry) => entry.action === 'key.rotate')).toMatchObject({
      target: `key/${created.key.keyId}`,
      detail: { newKeyId: rotated.key.keyId, graceMs: 60_000 },
    });
    expect(entries.find((entry) => entry.action === 'settings.update')).toMatchObject({ reason: 'faster gossip', detail: { gossipIntervalMs: 40 } });
    expect(entries.find((entry) => entry.action === 'account.put')).not.toHaveProperty('reason');
    // No key, no digest: keys show by key id only.
    const text = JSON.stringify(entries);
    expect(text).not.toContain(created.apiKey);
    expect(text).not.toContain(rotated.apiKey);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
  });

  it('accepts the pool and shedding settings, shows them in effect, and audits them flat', async () => {
    const { runtime, service } = await setup();
    const shed = { vip: { depthMax: 300, waitMsMax: 30_000 }, paid: { depthMax: 200, waitMsMax: 20_000 }, free: { depthMax: 100, waitMsMax: 10_000 } };
    const patch = {
      pool: { strategy: 'least-loaded', regionStrategy: { 'eu-west': 'weighted' }, health: { rateLimitCooldownMs: 30_000, circuitFailuresMax: 5 } },
      shed,
    };
    const view = ok(service.updateSettings(admin, patch, 'tune the pool'));
    expect(view).toMatchObject({
      gossipIntervalMs: 50,
      pool: {
        strategy: 'least-loaded',
        sticky: true,
        regionStrategy: { 'eu-west': 'weighted' },
        health: { rateLimitCooldownMs: 30_000, circuitFailuresMax: 5, rateLimitCooldownMsMax: 6 * 3_600_000 },
      },
      shed,
    });
    expect(runtime.policy.poolSettings().strategy).toBe('least-loaded');
    expect(runtime.policy.shedSettings()).toEqual(shed);
    expect(service.policy()).toMatchObject({ settings: { pool: { strategy: 'least-loaded' }, shed } });
    // Refused updates name the bad field, change nothing and are not recorded.
    expect(service.updateSettings(admin, { pool: { strategy: 'random' } }, undefined)).toMatchObject({
      ok: false,
      error: { kind: 'invalid', field: 'settings.pool.strategy' },
    });
    expect(service.updateSettings(admin, { pool: { health: { rateLimitCooldownMsMax: 20_000 } } }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'settings.pool.health.rateLimitCooldownMsMax' },
    });
    expect(service.updateSettings(admin, { shed: { free: { depthMax: 250 } } }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'settings.shed.free.depthMax' },
    });
    ok(service.updateSettings(admin, { pool: { strategy: null, regionStrategy: { 'eu-west': null } }, shed: null }, 'back to defaults'));
    expect(runtime.policy.poolSettings()).toMatchObject({ strategy: 'round-robin', regionStrategy: {} });
    expect(runtime.policy.shedSettings()).toBeUndefined();

    const { entries, invalid } = ok(service.audit());
    expect(invalid).toEqual([]);
    expect(entries.map((entry) => entry.reason)).toEqual(['back to defaults', 'tune the pool']);
    expect(entries[1]?.detail).toEqual({
      poolStrategy: 'least-loaded',
      regionStrategy: 'eu-west=weighted',
      rateLimitCooldownMs: 30_000,
      circuitFailuresMax: 5,
      shed: 'vip.depthMax=300 vip.waitMsMax=30000 paid.depthMax=200 paid.waitMsMax=20000 free.depthMax=100 free.waitMsMax=10000',
    });
    expect(entries[0]?.detail).toEqual({ poolStrategy: 'default', regionStrategy: 'eu-west=default', shed: 'default' });
  });

  it('records nothing for a refused write or one that changes nothing', async () => {
    const { service } = await setup();
    expect(service.putTenant(admin, 'acme', { ...tenantFields, tier: 'gold' }, undefined)).toMatchObject({
      ok: false,
      error: { kind: 'invalid', field: 'tenants.acme.tier' },
    });
    expect(service.putTenant(admin, 'acme', { ...tenantFields, concurencyMax: 4 }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'tenants.acme.concurencyMax' },
    });
    expect(service.putTenant(admin, 'acme', { ...tenantFields, apiKeyHashes: ['a'.repeat(64)] }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'tenants.acme.apiKeyHashes' },
    });
    expect(service.putTenant(admin, 'acme', { ...tenantFields, id: 'other' }, undefined)).toMatchObject({ ok: false, error: { field: 'tenants.acme.id' } });
    expect(service.putTenant(admin, 'acme', tenantFields, 'x'.repeat(513))).toMatchObject({ ok: false, error: { field: 'reason' } });
    expect(
      service.putAccount(admin, 'acct-1', { kind: 'api-key', homeRegion: 'us-east', weight: 1, concurrencyMax: 2, limits: [], owner: 'me' }, undefined),
    ).toMatchObject({ ok: false, error: { field: 'accounts.acct-1.owner' } });
    expect(service.updateSettings(admin, { gossipIntervalMillis: 40 }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'settings.gossipIntervalMillis' },
    });
    expect(service.createKey(admin, 'nobody', { name: 'ci' }, undefined)).toMatchObject({ ok: false, error: { kind: 'not-found', field: 'tenant' } });
    expect(ok(service.removeTenant(admin, 'nobody', undefined)).removed).toBe(false);
    expect(ok(service.enableAccount(admin, 'acct-9', undefined)).enabled).toBe(false);
    expect(ok(service.audit()).entries).toEqual([]);
  });
});

describe('tenant writes', () => {
  it("take every field an operator may write, other merged branches' included, and keep the keys", async () => {
    const { runtime, service } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const key = ok(service.createKey(admin, 'acme', { name: 'ci' }, undefined));
    ok(service.putTenant(admin, 'acme', { ...tenantFields, onClientCancel: 'abort', idempotency: 'region' }, 'per-region ids'));
    expect(runtime.policy.tenants().get('acme' as never)).toMatchObject({
      onClientCancel: 'abort',
      idempotency: 'region',
      apiKeys: [expect.objectContaining({ name: 'ci' })],
    });
    expect(ok(service.keys('acme')).map((view) => view.keyId)).toEqual([key.key.keyId]);
    expect(service.putTenant(admin, 'acme', { ...tenantFields, idempotency: 'planet' }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'tenants.acme.idempotency' },
    });
  });
});

describe('the key lifecycle', () => {
  it('creates a named key that works at once, lists it without secrets, and revokes it', async () => {
    const { service, works } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const created = ok(service.createKey(admin, 'acme', { name: 'laptop' }, undefined));
    expect(created.apiKey).toMatch(/^cp_acme_[A-Za-z0-9]{40}$/);
    expect(works(created.apiKey)).toBe(true);
    const listed = ok(service.keys('acme'));
    expect(listed).toEqual([{ keyId: created.key.keyId, name: 'laptop', createdAtMs: created.key.createdAtMs, state: 'active' }]);
    expect(ok(service.revokeKey(admin, created.key.keyId, undefined)).state).toBe('revoked');
    expect(works(created.apiKey)).toBe(false);
    expect(ok(service.keys('acme'))[0]?.state).toBe('revoked');
    expect(service.revokeKey(admin, created.key.keyId, undefined)).toMatchObject({
      ok: false,
      error: { field: 'keyId', reason: 'names a key that is revoked already' },
    });
    expect(service.revokeKey(admin, 'acme:00000000', undefined)).toMatchObject({ ok: false, error: { kind: 'not-found', field: 'keyId' } });
    expect(service.revokeKey(admin, 'acme', undefined)).toMatchObject({ ok: false, error: { kind: 'invalid', field: 'keyId' } });
  });

  it('rotates a key: the new one works at once, the old one until the grace ends', async () => {
    const { service, clock, works } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const first = ok(service.createKey(admin, 'acme', { name: 'ci' }, undefined));
    const rotated = ok(service.rotateKey(admin, first.key.keyId, { graceMs: 60_000 }, undefined));
    expect(rotated.key.name).toBe('ci');
    expect(rotated.previous).toMatchObject({ keyId: first.key.keyId, state: 'revoking', revokedAtMs: clock.nowMs + 60_000 });
    expect([works(first.apiKey), works(rotated.apiKey)]).toEqual([true, true]);
    clock.nowMs += 60_000;
    expect([works(first.apiKey), works(rotated.apiKey)]).toEqual([false, true]);
    // Without a grace the old key stops at once; a revoked key cannot be rotated.
    const again = ok(service.rotateKey(admin, rotated.key.keyId, { name: 'ci-2' }, undefined));
    expect([works(rotated.apiKey), works(again.apiKey)]).toEqual([false, true]);
    expect(service.rotateKey(admin, rotated.key.keyId, {}, undefined)).toMatchObject({ ok: false, error: { field: 'keyId' } });
    expect(service.rotateKey(admin, again.key.keyId, { graceMs: apiKeyRotationGraceMsMax + 1 }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'graceMs' },
    });
  });

  it('lets a key expire, and checks expiries and names', async () => {
    const { service, clock, works } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const created = ok(service.createKey(admin, 'acme', { name: 'trial', expiresAtMs: clock.nowMs + 5_000 }, undefined));
    expect(works(created.apiKey)).toBe(true);
    clock.nowMs += 5_000;
    expect(works(created.apiKey)).toBe(false);
    expect(ok(service.keys('acme'))[0]?.state).toBe('expired');
    expect(service.createKey(admin, 'acme', { name: 'late', expiresAtMs: clock.nowMs }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'expiresAtMs' },
    });
    expect(service.createKey(admin, 'acme', { name: 'far', expiresAtMs: clock.nowMs + 6 * 366 * 86_400_000 }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'expiresAtMs' },
    });
    expect(service.createKey(admin, 'acme', { name: '' }, undefined)).toMatchObject({ ok: false, error: { field: 'name' } });
    expect(service.createKey(admin, 'acme', { name: 42 }, undefined)).toMatchObject({ ok: false, error: { field: 'name' } });
  });

  it('registers an existing key instead of minting one, once, and only for its own tenant', async () => {
    const { service, works } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const existing = `cp_acme_${'Kept'.repeat(10)}`;
    expect(works(existing)).toBe(false);
    const imported = ok(service.createKey(admin, 'acme', { name: 'kept', apiKey: existing }, 'from the previous start'));
    expect(imported.apiKey).toBe(existing);
    expect(works(existing)).toBe(true);
    expect(service.createKey(admin, 'acme', { name: 'again', apiKey: existing }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'apiKey', reason: "is one of the tenant's keys already" },
    });
    expect(service.createKey(admin, 'acme', { name: 'other', apiKey: `cp_globex_${'K'.repeat(40)}` }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'apiKey' },
    });
    expect(service.createKey(admin, 'acme', { name: 'bad', apiKey: 'sk-not-a-carpool-key' }, undefined)).toMatchObject({
      ok: false,
      error: { field: 'apiKey' },
    });
    const entry = ok(service.audit()).entries.find((e) => e.action === 'key.create');
    expect(entry).toMatchObject({ reason: 'from the previous start', detail: { name: 'kept', imported: true } });
    expect(JSON.stringify(ok(service.audit()))).not.toContain(existing);
  });

  it(`keeps at most ${tenantKeysMax} working keys, and makes room among the records by dropping the oldest inactive one`, async () => {
    const { service } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const made = Array.from({ length: tenantKeysMax }, (_, i) => ok(service.createKey(admin, 'acme', { name: `k${i}` }, undefined)));
    expect(service.createKey(admin, 'acme', { name: 'one-too-many' }, undefined)).toMatchObject({ ok: false, error: { field: 'tenant' } });
    ok(service.revokeKey(admin, made[0]!.key.keyId, undefined));
    ok(service.createKey(admin, 'acme', { name: 'replacement' }, undefined));
    expect(ok(service.keys('acme'))).toHaveLength(tenantKeysMax + 1);
  });
});

describe('usage adjustments', () => {
  const today = (): number => windowAt('day', Date.now()).index;
  const adjust = (fields: Record<string, unknown>): Record<string, unknown> => ({
    scope: 'tenant',
    subject: 'acme',
    metric: 'requests',
    window: 'day',
    kind: 'charge',
    amount: 5,
    reason: 'test',
    ...fields,
  });

  it('charges and credits the key of a limit, with before and after, and never credits below zero', async () => {
    const { runtime, service } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    expect(ok(await service.adjustUsage(admin, adjust({})))).toEqual({
      key: `tenant/acme/requests/day:${today()}`,
      kind: 'charge',
      amount: 5,
      before: 0,
      after: 5,
      node: 'svc-1',
    });
    const refused = await service.adjustUsage(admin, adjust({ kind: 'credit', amount: 6 }));
    expect(refused).toEqual({ ok: false, error: { kind: 'invalid', field: 'amount', reason: "a credit may not exceed the counter's current value, 5" } });
    expect(ok(await service.adjustUsage(admin, adjust({ kind: 'credit', amount: 5 }))).after).toBe(0);
    expect(usedUnder(runtime.counter, 'tenant', 'acme', dayRule, Date.now())).toBe(0);
    // A user's key, under the tenant's user limits.
    expect(ok(await service.adjustUsage(admin, adjust({ scope: 'user', subject: 'acme:u1', amount: 2 }))).key).toBe(`user/acme:u1/requests/day:${today()}`);
    expect(ok(service.audit()).entries.filter((entry) => entry.action === 'usage.adjust')).toHaveLength(3);
  });

  it.each([
    [{ scope: 'region' }, 'scope'],
    [{ subject: 'nobody' }, 'subject'],
    [{ scope: 'user', subject: 'acme' }, 'subject'],
    [{ scope: 'account', subject: 'acct-none' }, 'subject'],
    [{ metric: 'request' }, 'metric'],
    [{ metric: 'weighted_tokens' }, 'metric'],
    [{ window: 'hour' }, 'window'],
    [{ window: 'fortnight' }, 'window'],
    [{ index: -1 }, 'index'],
    [{ index: 1e12 }, 'index'],
    [{ kind: 'refund' }, 'kind'],
    [{ amount: 0 }, 'amount'],
    [{ amount: 1.5 }, 'amount'],
    [{ amount: '5' }, 'amount'],
    [{ reason: undefined }, 'reason'],
    [{ reason: '  ' }, 'reason'],
    [{ refund: 3 }, 'refund'],
  ])('refuses %j, naming %s, and counts nothing', async (fields, field) => {
    const { runtime, service } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    const answer = await service.adjustUsage(admin, adjust(fields));
    expect(answer).toMatchObject({ ok: false, error: { kind: 'invalid', field } });
    expect(runtime.counter.size).toBe(0);
    expect(ok(service.audit()).entries.map((entry) => entry.action)).toEqual(['tenant.put']);
  });

  it('adjusts a sliding limit in its 10-second sub-buckets', async () => {
    const { service } = await setup();
    ok(service.putTenant(admin, 'acme', { ...tenantFields, limits: [{ ...dayRule, window: 'minute', sliding: true }] }, undefined));
    expect(ok(await service.adjustUsage(admin, adjust({ window: 'sec10' }))).key).toMatch(/^tenant\/acme\/requests\/sec10:\d+$/);
    expect(await service.adjustUsage(admin, adjust({ window: 'minute' }))).toMatchObject({
      ok: false,
      error: { field: 'window', reason: expect.stringContaining('sec10') as string },
    });
  });

  it('answers no-quorum for a credit when the mesh cannot form one, and leaves the counter as it was', async () => {
    const { runtime, service } = await setup();
    ok(service.putTenant(admin, 'acme', tenantFields, undefined));
    ok(await service.adjustUsage(admin, adjust({})));
    const lonely = new AdminService({
      runtime: {
        ...runtime,
        config: runtime.config,
        policy: runtime.policy,
        pool: runtime.pool,
        counter: runtime.counter,
        round: () => Promise.resolve({ ok: false, reason: 'no-quorum' }),
      },
      crypto: nodeAuthCrypto,
    });
    expect(await lonely.adjustUsage(admin, adjust({ kind: 'credit', amount: 2 }))).toMatchObject({ ok: false, error: { kind: 'no-quorum' } });
    expect(usedUnder(runtime.counter, 'tenant', 'acme', dayRule, Date.now())).toBe(5);
    expect(ok(service.audit()).entries.filter((entry) => entry.action === 'usage.adjust')).toHaveLength(1);
  });
});
