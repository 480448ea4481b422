// Proves the policy document round-trips typed tenants, accounts and settings.
// Tenants keep their client-cancel mode (absent reading as drain), accounts their optional VIP
// dedication. The document names the bad field of a refused edit, emits updates only for real
// changes, and refuses bad sync bytes without changing state.
import fc from 'fast-check';
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../src/core/assert.js';
import { type AccountId, asRegionId, asTenantId } from '../../../src/core/ids.js';
import { accountDedicatedTenantsMax, limitsPerSubjectMax, tenantKeysMax } from '../../../src/core/limits.js';
import {
  type Account,
  defaultMeshSettings,
  clientCancelModeOf,
  idempotencyOf,
  defaultTokenWeights,
  type LimitRule,
  PolicyDocument,
  type Tenant,
} from '../../../src/mesh/policy/index.js';
import { policyLocalUpdatesMax } from '../../../src/core/limits.js';
import { checkProperty } from '../../support/property.js';

const hash = (digit: string): string => digit.repeat(64);
const accountId = (text: string): AccountId => text as AccountId;

const acme: Tenant = {
  id: asTenantId('acme'),
  tier: 'paid',
  apiKeys: [
    { hash: hash('a'), name: 'ci', createdAtMs: 1_000 },
    { hash: hash('b'), name: 'laptop', createdAtMs: 2_000, expiresAtMs: 9_000, revokedAtMs: 3_000 },
  ],
  requireSignature: false,
  concurrencyMax: 8,
  weights: defaultTokenWeights,
  limits: [
    { metric: 'requests', window: 'minute', sliding: true, limit: 600, mode: 'eventual' },
    { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 5_000_000, mode: 'escrow' },
    { metric: 'cost', window: 'day30', sliding: false, limit: 100_000, mode: 'strict' },
  ],
  userLimits: [{ metric: 'requests', window: 'hour', sliding: false, limit: 100, mode: 'eventual' }],
  userConcurrencyMax: 2,
};

const account: Account = {
  id: accountId('anthropic-1'),
  kind: 'api-key',
  homeRegion: asRegionId('us-east'),
  weight: 10,
  concurrencyMax: 32,
  limits: [{ metric: 'requests', window: 'minute', sliding: true, limit: 4000, mode: 'eventual' }],
};

/** Passes values the types forbid, as an admin API decoding JSON might. */
const loose = <T>(value: unknown): T => value as T;

function expectInvalid(result: { ok: boolean; error?: unknown }, field: string): void {
  expect(result.ok).toBe(false);
  expect(result.error).toMatchObject({ kind: 'invalid-policy', field });
}

/** Everything a peer could observe of a document. */
function fingerprint(doc: PolicyDocument): unknown {
  return {
    state: [...doc.encodeState()],
    vector: [...doc.stateVector()],
    tenants: [...doc.tenants()],
    accounts: [...doc.accounts()],
    settings: doc.settings(),
  };
}

function updateMessage(update: Uint8Array, type: number = syncProtocol.messageYjsUpdate): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  encoding.writeVarUint8Array(encoder, update);
  return encoding.toUint8Array(encoder);
}

describe('PolicyDocument edits and reads', () => {
  it('round-trips tenants and accounts', () => {
    const doc = new PolicyDocument(1);
    expect(doc.upsertTenant(acme)).toEqual({ ok: true, value: undefined });
    expect(doc.upsertAccount(account).ok).toBe(true);
    expect(doc.tenant(acme.id)).toEqual(acme);
    expect(doc.account(account.id)).toEqual(account);
    expect([...doc.tenants().keys()]).toEqual(['acme']);
    expect([...doc.accounts().keys()]).toEqual(['anthropic-1']);
    expect(doc.invalidEntries()).toEqual([]);
  });

  it('returns snapshots that later edits do not change', () => {
    const doc = new PolicyDocument(1);
    doc.upsertTenant(acme);
    const before = doc.tenants();
    const tenantBefore = doc.tenant(acme.id);
    doc.upsertTenant({ ...acme, tier: 'vip' });
    expect(before.get(acme.id)?.tier).toBe('paid');
    expect(tenantBefore?.tier).toBe('paid');
    expect(doc.tenant(acme.id)?.tier).toBe('vip');
    expect(Object.isFrozen(tenantBefore)).toBe(true);
  });

  it('fills missing token weights with the defaults', () => {
    const doc = new PolicyDocument(1);
    expect(doc.upsertTenant(loose({ ...acme, weights: { output: 3000 } })).ok).toBe(true);
    expect(doc.tenant(acme.id)?.weights).toEqual({ input: 1000, output: 3000, cacheWrite: 1250, cacheRead: 100 });
  });

  const badTenants: [string, unknown, string][] = [
    ['a bad tier', { ...acme, tier: 'gold' }, 'tenants.acme.tier'],
    ['an uppercase hash', { ...acme, apiKeyHashes: [hash('a'), hash('B')] }, 'tenants.acme.apiKeyHashes[1]'],
    ['a short hash', { ...acme, apiKeyHashes: ['abc'] }, 'tenants.acme.apiKeyHashes[0]'],
    ['a duplicate hash', { ...acme, apiKeyHashes: [hash('a'), hash('a')] }, 'tenants.acme.apiKeyHashes[1]'],
    [
      'too many keys',
      { ...acme, apiKeyHashes: Array.from({ length: tenantKeysMax + 1 }, (_, i) => i.toString(16).padStart(64, '0')) },
      'tenants.acme.apiKeyHashes',
    ],
    ['a negative limit', { ...acme, limits: [{ ...acme.limits[0], limit: -1 }] }, 'tenants.acme.limits[0].limit'],
    ['a fractional limit', { ...acme, limits: [{ ...acme.limits[0], limit: 1.5 }] }, 'tenants.acme.limits[0].limit'],
    ['a sec10 window', { ...acme, limits: [...acme.limits.slice(0, 2), { ...acme.limits[2], window: 'sec10' }] }, 'tenants.acme.limits[2].window'],
    ['an unknown window', { ...acme, limits: [{ ...acme.limits[0], window: 'year' }] }, 'tenants.acme.limits[0].window'],
    ['a sliding day', { ...acme, limits: [{ ...acme.limits[0], window: 'day', sliding: true }] }, 'tenants.acme.limits[0].sliding'],
    ['a bad metric', { ...acme, limits: [{ ...acme.limits[0], metric: 'Requests' }] }, 'tenants.acme.limits[0].metric'],
    ['a bad mode', { ...acme, limits: [{ ...acme.limits[0], mode: 'quorum' }] }, 'tenants.acme.limits[0].mode'],
    ['a duplicate limit', { ...acme, limits: [acme.limits[0], { ...acme.limits[0], limit: 1 }] }, 'tenants.acme.limits[1]'],
    [
      'too many limits',
      {
        ...acme,
        limits: Array.from({ length: limitsPerSubjectMax + 1 }, (_, i): LimitRule => ({ ...acme.limits[1]!, metric: `m${i}` })),
      },
      'tenants.acme.limits',
    ],
    ['a negative weight', { ...acme, weights: { ...acme.weights, cacheRead: -5 } }, 'tenants.acme.weights.cacheRead'],
    ['a missing signature flag', { ...acme, requireSignature: undefined }, 'tenants.acme.requireSignature'],
    ['a bad concurrency', { ...acme, concurrencyMax: Number.NaN }, 'tenants.acme.concurrencyMax'],
    ['a bad user concurrency', { ...acme, userConcurrencyMax: -1 }, 'tenants.acme.userConcurrencyMax'],
    ['a bad user limit', { ...acme, userLimits: [{ ...acme.limits[0]!, window: 'year' }] }, 'tenants.acme.userLimits[0].window'],
    ['a sliding escrow limit', { ...acme, limits: [{ ...acme.limits[1]!, window: 'minute', sliding: true }] }, 'tenants.acme.limits[0].mode'],
    ['a spaced id', { ...acme, id: 'ac me' }, 'tenants["ac me"].id'],
    ['an unknown client-cancel mode', { ...acme, onClientCancel: 'hang-up' }, 'tenants.acme.onClientCancel'],
    ['an unknown idempotency scope', { ...acme, idempotency: 'planet' }, 'tenants.acme.idempotency'],
  ];
  it('reads a tenant written before onClientCancel existed as drain, stores abort, and reads drain back as absent', () => {
    const doc = new PolicyDocument(1);
    expect(doc.upsertTenant(acme).ok).toBe(true);
    expect(doc.tenant(acme.id)?.onClientCancel).toBeUndefined();
    expect(clientCancelModeOf(doc.tenant(acme.id)!)).toBe('drain');
    expect(doc.upsertTenant({ ...acme, onClientCancel: 'abort' }).ok).toBe(true);
    expect(doc.tenant(acme.id)?.onClientCancel).toBe('abort');
    // Replicated like any field.
    const peer = new PolicyDocument(2);
    for (const message of doc.takeUpdates()) expect(peer.onSyncMessage(message).ok).toBe(true);
    expect(peer.tenant(acme.id)?.onClientCancel).toBe('abort');
    // Back to drain: the field is removed, not written as 'drain'.
    expect(doc.upsertTenant({ ...acme, onClientCancel: 'drain' }).ok).toBe(true);
    expect(doc.tenant(acme.id)).toEqual(acme);
    expect(clientCancelModeOf(doc.tenant(acme.id)!)).toBe('drain');
  });

  it('reads a tenant written before idempotency existed as mesh, stores region, and reads mesh back as absent', () => {
    const doc = new PolicyDocument(1);
    expect(doc.upsertTenant(acme).ok).toBe(true);
    expect(idempotencyOf(doc.tenant(acme.id)!)).toBe('mesh');
    expect(doc.upsertTenant({ ...acme, idempotency: 'region' }).ok).toBe(true);
    const peer = new PolicyDocument(2);
    for (const message of doc.takeUpdates()) expect(peer.onSyncMessage(message).ok).toBe(true);
    expect(peer.tenant(acme.id)?.idempotency).toBe('region');
    expect(doc.upsertTenant({ ...acme, idempotency: 'mesh' }).ok).toBe(true);
    expect(doc.tenant(acme.id)).toEqual(acme);
  });

  it('reads a tenant written before user limits existed with none, and the tenant cap for users', () => {
    const doc = new PolicyDocument(1);
    const older: Record<string, unknown> = { ...acme };
    delete older.userLimits;
    delete older.userConcurrencyMax;
    expect(doc.upsertTenant(loose(older)).ok).toBe(true);
    expect(doc.tenant(acme.id)).toMatchObject({ userLimits: [], userConcurrencyMax: acme.concurrencyMax });
  });

  for (const [what, tenant, field] of badTenants) {
    it(`refuses a tenant with ${what}, naming ${field}`, () => {
      const doc = new PolicyDocument(1);
      expectInvalid(doc.upsertTenant(loose(tenant)), field);
      expect(doc.tenants().size).toBe(0);
      expect(doc.takeUpdates()).toEqual([]);
    });
  }

  const badAccounts: [string, unknown, string][] = [
    ['weight 0', { ...account, weight: 0 }, 'accounts.anthropic-1.weight'],
    ['weight 1001', { ...account, weight: 1001 }, 'accounts.anthropic-1.weight'],
    ['a bad kind', { ...account, kind: 'cookie' }, 'accounts.anthropic-1.kind'],
    ['a bad home region', { ...account, homeRegion: '' }, 'accounts.anthropic-1.homeRegion'],
    ['a sec10 window', { ...account, limits: [{ ...account.limits[0], window: 'sec10' }] }, 'accounts.anthropic-1.limits[0].window'],
    ['dedicated tenants not in an array', { ...account, dedicatedTenants: 'acme' }, 'accounts.anthropic-1.dedicatedTenants'],
    ['a spaced dedicated tenant', { ...account, dedicatedTenants: ['acme', 'big co'] }, 'accounts.anthropic-1.dedicatedTenants[1]'],
    ['a dedicated tenant that is not a string', { ...account, dedicatedTenants: [7] }, 'accounts.anthropic-1.dedicatedTenants[0]'],
    ['a duplicate dedicated tenant', { ...account, dedicatedTenants: ['acme', 'beta', 'acme'] }, 'accounts.anthropic-1.dedicatedTenants[2]'],
    [
      'too many dedicated tenants',
      { ...account, dedicatedTenants: Array.from({ length: accountDedicatedTenantsMax + 1 }, (_, i) => `t${i}`) },
      'accounts.anthropic-1.dedicatedTenants',
    ],
  ];
  for (const [what, bad, field] of badAccounts) {
    it(`refuses an account with ${what}, naming ${field}`, () => {
      const doc = new PolicyDocument(1);
      expectInvalid(doc.upsertAccount(loose(bad)), field);
      expect(doc.accounts().size).toBe(0);
    });
  }

  it('round-trips an account dedicated to tenants, and reads one written before dedication existed as shared', () => {
    const doc = new PolicyDocument(1);
    const dedicated: Account = { ...account, dedicatedTenants: [asTenantId('acme'), asTenantId('beta')] };
    expect(doc.upsertAccount(dedicated).ok).toBe(true);
    expect(doc.account(account.id)).toEqual(dedicated);
    const older = new PolicyDocument(2);
    expect(older.upsertAccount(account).ok).toBe(true);
    expect(older.account(account.id)).toEqual(account);
    expect(older.account(account.id)).not.toHaveProperty('dedicatedTenants');
    // An empty list means shared, and is stored and read as absent.
    expect(older.upsertAccount({ ...account, dedicatedTenants: [] }).ok).toBe(true);
    expect(older.takeUpdates()).toHaveLength(1);
    expect(older.account(account.id)).not.toHaveProperty('dedicatedTenants');
  });

  it('removes a dedication with a small update that peers apply', () => {
    const a = new PolicyDocument(1);
    const b = new PolicyDocument(2);
    a.upsertAccount({ ...account, dedicatedTenants: [asTenantId('acme')] });
    const full = a.takeUpdates();
    for (const message of full) b.onSyncMessage(message);
    expect(b.account(account.id)?.dedicatedTenants).toEqual(['acme']);
    a.upsertAccount(account);
    const change = a.takeUpdates();
    expect(change).toHaveLength(1);
    expect(change[0]!.length).toBeLessThan(full[0]!.length / 4);
    for (const message of change) b.onSyncMessage(message);
    expect(b.account(account.id)).toEqual(account);
    expect(a.account(account.id)).toEqual(account);
    a.upsertAccount(account);
    expect(a.takeUpdates()).toEqual([]);
  });

  it('keeps an existing tenant when a refused upsert names it', () => {
    const doc = new PolicyDocument(1);
    doc.upsertTenant(acme);
    doc.takeUpdates();
    expectInvalid(doc.upsertTenant(loose({ ...acme, tier: 'gold' })), 'tenants.acme.tier');
    expect(doc.tenant(acme.id)).toEqual(acme);
    expect(doc.takeUpdates()).toEqual([]);
  });

  it('makes no update for an unchanged upsert and a small one for a one-field change', () => {
    const doc = new PolicyDocument(1);
    doc.upsertTenant(acme);
    doc.upsertAccount(account);
    // Writing a default pins it (a later default change must not move it), so it is a change once.
    doc.updateSettings({ ...defaultMeshSettings });
    const full = doc.takeUpdates();
    expect(full).toHaveLength(3);
    doc.upsertTenant({ ...acme, apiKeys: acme.apiKeys.map((record) => ({ ...record })), limits: acme.limits.map((rule) => ({ ...rule })) });
    doc.upsertAccount({ ...account });
    doc.updateSettings({ ...defaultMeshSettings });
    doc.updateSettings({});
    expect(doc.takeUpdates()).toEqual([]);
    doc.upsertTenant({ ...acme, concurrencyMax: 9 });
    const change = doc.takeUpdates();
    expect(change).toHaveLength(1);
    expect(change[0]!.length).toBeLessThan(full[0]!.length / 4);
  });

  it('removes tenants and accounts, reporting whether they were present', () => {
    const doc = new PolicyDocument(1);
    doc.upsertTenant(acme);
    doc.upsertAccount(account);
    expect(doc.removeTenant(acme.id)).toBe(true);
    expect(doc.removeTenant(acme.id)).toBe(false);
    expect(doc.removeAccount(account.id)).toBe(true);
    expect(doc.removeAccount(account.id)).toBe(false);
    expect(doc.tenant(acme.id)).toBeUndefined();
    expect(doc.accounts().size).toBe(0);
    // A tenant removed and written again starts from the new value only.
    doc.upsertTenant({ ...acme, tier: 'free' });
    expect(doc.tenant(acme.id)?.tier).toBe('free');
  });

  it('reads default settings, applies partial updates and refuses out-of-bound values', () => {
    const doc = new PolicyDocument(1);
    expect(doc.settings()).toEqual({ gossipIntervalMs: 50, digestIntervalMs: 1000, heartbeatIntervalMs: 250 });
    expect(doc.updateSettings({ gossipIntervalMs: 100 }).ok).toBe(true);
    expect(doc.settings()).toEqual({ ...defaultMeshSettings, gossipIntervalMs: 100 });
    expectInvalid(doc.updateSettings({ gossipIntervalMs: 9 }), 'settings.gossipIntervalMs');
    expectInvalid(doc.updateSettings({ gossipIntervalMs: 10_001 }), 'settings.gossipIntervalMs');
    expectInvalid(doc.updateSettings({ digestIntervalMs: 99 }), 'settings.digestIntervalMs');
    expectInvalid(doc.updateSettings({ digestIntervalMs: 600_001 }), 'settings.digestIntervalMs');
    expectInvalid(doc.updateSettings({ heartbeatIntervalMs: 60_001 }), 'settings.heartbeatIntervalMs');
    expectInvalid(doc.updateSettings({ heartbeatIntervalMs: 12.5 }), 'settings.heartbeatIntervalMs');
    expectInvalid(doc.updateSettings(loose({ gossipMs: 100 })), 'settings.gossipMs');
    // All or nothing: a bad field keeps the good one from being written.
    expectInvalid(doc.updateSettings({ gossipIntervalMs: 200, heartbeatIntervalMs: 5 }), 'settings.heartbeatIntervalMs');
    expect(doc.settings()).toEqual({ ...defaultMeshSettings, gossipIntervalMs: 100 });
    expect(doc.updateSettings({ gossipIntervalMs: 10, digestIntervalMs: 600_000, heartbeatIntervalMs: 60_000 }).ok).toBe(true);
    expect(doc.settings()).toEqual({ gossipIntervalMs: 10, digestIntervalMs: 600_000, heartbeatIntervalMs: 60_000 });
  });

  it('calls change listeners once per changing call, local or remote, until unsubscribed', () => {
    const a = new PolicyDocument(1);
    const b = new PolicyDocument(2);
    let aChanges = 0;
    let bChanges = 0;
    const stopA = a.onChange(() => aChanges++);
    b.onChange(() => bChanges++);
    a.upsertTenant(acme);
    a.upsertTenant(acme);
    a.updateSettings({ gossipIntervalMs: 60 });
    expect(aChanges).toBe(2);
    for (const message of a.takeUpdates()) expect(b.onSyncMessage(message).ok).toBe(true);
    expect(bChanges).toBe(2);
    stopA();
    a.removeTenant(acme.id);
    expect(aChanges).toBe(2);
  });

  it('bounds the pending local updates by merging them', () => {
    const a = new PolicyDocument(1);
    for (let i = 0; i <= policyLocalUpdatesMax + 50; i++) a.updateSettings({ gossipIntervalMs: 10 + i });
    const messages = a.takeUpdates();
    expect(messages.length).toBeLessThanOrEqual(policyLocalUpdatesMax);
    const b = new PolicyDocument(2);
    for (const message of messages) expect(b.onSyncMessage(message).ok).toBe(true);
    expect(b.settings()).toEqual(a.settings());
    expect(a.takeUpdates()).toEqual([]);
  });

  it('asserts that the client id is a u32', () => {
    expect(() => new PolicyDocument(-1)).toThrow(AssertionError);
    expect(() => new PolicyDocument(2 ** 32)).toThrow(AssertionError);
    expect(() => new PolicyDocument(1.5)).toThrow(AssertionError);
    expect(() => new PolicyDocument(0xffff_ffff)).not.toThrow();
  });
});

describe('PolicyDocument sync', () => {
  it('answers step 1 with a step 2 that brings the peer up to date', () => {
    const a = new PolicyDocument(1);
    const b = new PolicyDocument(2);
    a.upsertTenant(acme);
    a.upsertAccount(account);
    a.updateSettings({ heartbeatIntervalMs: 500 });
    const reply = a.onSyncMessage(b.syncStep1());
    expect(reply.ok).toBe(true);
    if (!reply.ok || reply.value === undefined) throw new Error('expected a step 2 reply');
    expect(reply.value[0]).toBe(syncProtocol.messageYjsSyncStep2);
    expect(b.onSyncMessage(reply.value)).toEqual({ ok: true, value: undefined });
    expect(b.tenants()).toEqual(a.tenants());
    expect(b.accounts()).toEqual(a.accounts());
    expect(b.settings()).toEqual(a.settings());
    // Remote state is not rebroadcast as local edits.
    expect(b.takeUpdates()).toEqual([]);
    // Nothing is missing any more, so a second round carries no structs.
    const again = a.onSyncMessage(b.syncStep1());
    if (!again.ok || again.value === undefined) throw new Error('expected a step 2 reply');
    const before = fingerprint(b);
    expect(b.onSyncMessage(again.value).ok).toBe(true);
    expect(fingerprint(b)).toEqual(before);
  });

  it('merges concurrent edits of different fields of one tenant field by field', () => {
    const a = new PolicyDocument(1);
    const b = new PolicyDocument(2);
    a.upsertTenant(acme);
    for (const message of a.takeUpdates()) b.onSyncMessage(message);
    a.upsertTenant({ ...acme, tier: 'vip' });
    b.upsertTenant({ ...acme, concurrencyMax: 64 });
    for (const message of a.takeUpdates()) b.onSyncMessage(message);
    for (const message of b.takeUpdates()) a.onSyncMessage(message);
    expect(a.tenant(acme.id)).toEqual({ ...acme, tier: 'vip', concurrencyMax: 64 });
    expect(b.tenant(acme.id)).toEqual(a.tenant(acme.id));
  });

  /** A document with some state, and the messages that built it. */
  function populated(): { doc: PolicyDocument; messages: Uint8Array[] } {
    const source = new PolicyDocument(7);
    source.upsertTenant(acme);
    source.upsertAccount(account);
    const messages = source.takeUpdates();
    const doc = new PolicyDocument(3);
    doc.upsertTenant({ ...acme, id: asTenantId('beta'), tier: 'free' });
    doc.takeUpdates();
    return { doc, messages };
  }

  it('refuses truncated messages without changing the document', () => {
    const { doc, messages } = populated();
    const before = fingerprint(doc);
    for (const message of [...messages, doc.syncStep1()]) {
      for (let length = 0; length < message.length; length++) {
        const result = doc.onSyncMessage(message.subarray(0, length));
        expect(result.ok).toBe(false);
        if (!result.ok) expect(result.error.kind).toBe('bad-sync-message');
      }
    }
    expect(fingerprint(doc)).toEqual(before);
  });

  it('refuses unknown types, trailing bytes, foreign roots, foreign content and its own client id', () => {
    const { doc, messages } = populated();
    const before = fingerprint(doc);
    const foreign = new Y.Doc();
    foreign.clientID = 99;
    foreign.getMap('elsewhere').set('x', 1);
    const text = new Y.Doc();
    text.clientID = 98;
    text.getMap('tenants').set('acme', new Y.Text('hello'));
    // Another incarnation writing under this replica's client id: a broken caller guarantee.
    const twin = new PolicyDocument(3);
    twin.upsertTenant(acme);
    twin.upsertTenant({ ...acme, id: asTenantId('gamma') });
    const bad = [
      updateMessage(messages[0]!, 3),
      Uint8Array.of(...messages[0]!, 0),
      updateMessage(Y.encodeStateAsUpdate(foreign)),
      updateMessage(Y.encodeStateAsUpdate(text), syncProtocol.messageYjsSyncStep2),
      updateMessage(twin.encodeState()),
    ];
    for (const message of bad) {
      const result = doc.onSyncMessage(message);
      expect(result.ok).toBe(false);
    }
    expect(fingerprint(doc)).toEqual(before);
  });

  it('never throws on random or mutated messages, and leaves the document unchanged when it refuses one', () => {
    const { messages } = populated();
    const seedMessages = [...messages, new PolicyDocument(5).syncStep1()];
    const mutated = fc
      .tuple(fc.constantFrom(...seedMessages), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([message, flips]) => {
        const copy = message.slice();
        for (const [at, byte] of flips) copy[at % copy.length] = byte;
        return copy;
      });
    const randomBytes = fc.uint8Array({ maxLength: 64 });
    const framedRandom = fc.tuple(fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 64 })).map(([type, payload]) => updateMessage(payload, type));
    checkProperty(
      fc.property(fc.oneof(mutated, randomBytes, framedRandom), (message) => {
        const { doc } = populated();
        const before = fingerprint(doc);
        const result = doc.onSyncMessage(message);
        if (!result.ok) {
          expect(result.error.kind).toBe('bad-sync-message');
          expect(fingerprint(doc)).toEqual(before);
        }
        // Whatever was applied, the document still syncs with a fresh peer.
        const peer = new PolicyDocument(11);
        const reply = doc.onSyncMessage(peer.syncStep1());
        if (!reply.ok || reply.value === undefined) throw new Error('expected a step 2 reply');
        expect(peer.onSyncMessage(reply.value).ok).toBe(true);
        expect(peer.tenants()).toEqual(doc.tenants());
      }),
      300,
    );
  });
});
