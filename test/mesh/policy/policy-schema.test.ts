// Proves a tenant's API keys as records, beside the digests that documents held before them.
// Validation names the bad field; documents of the schema before records (digests in apiKeyHashes)
// still read and authenticate; a record wins over a digest an older peer lists again; and the
// digests of keys not revoked are still written for such peers.
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import { apiKeyHashHex, formatApiKey } from '../../../src/admission/api-key.js';
import { RequestAuthenticator } from '../../../src/admission/request-auth.js';
import { asTenantId } from '../../../src/core/ids.js';
import { tenantKeyRecordsMax } from '../../../src/core/limits.js';
import { PolicyDocument } from '../../../src/mesh/policy/policy-document.js';
import { apiKeyState, defaultTokenWeights, legacyKeyHashes, type Tenant, validateTenant } from '../../../src/mesh/policy/policy-schema.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';

const acmeId = asTenantId('acme');
const key = formatApiKey(acmeId, 'K'.repeat(40));
const hash = apiKeyHashHex(nodeAuthCrypto, key);
const other = 'b'.repeat(64);
const nowMs = 1_800_000_000_000;

const base = { id: 'acme', tier: 'paid', requireSignature: false, concurrencyMax: 4, limits: [] };

function fieldOf(value: unknown): string | undefined {
  const checked = validateTenant(value);
  return checked.ok ? undefined : checked.error.field;
}

/** An update message, as a peer sends one. */
function updateMessage(update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  syncProtocol.writeUpdate(encoder, update);
  return encoding.toUint8Array(encoder);
}

/** A tenant written as a node of the schema before key records wrote it: digests only. */
function oldSchemaDoc(hashes: readonly string[]): Y.Doc {
  const doc = new Y.Doc({ gc: true });
  doc.clientID = 4242;
  doc.getMap('tenants').set(
    'acme',
    new Y.Map<unknown>([
      ['tier', 'paid'],
      ['apiKeyHashes', [...hashes]],
      ['requireSignature', false],
      ['concurrencyMax', 4],
      ['weights', { ...defaultTokenWeights }],
      ['limits', []],
    ]),
  );
  return doc;
}

describe('key records in the tenant schema', () => {
  it('accepts records and digests, and names the field of every mistake', () => {
    const checked = validateTenant({ ...base, apiKeys: [{ hash, name: 'ci', createdAtMs: 5, expiresAtMs: 10, revokedAtMs: 7 }] });
    expect(checked.ok && checked.value.apiKeys).toEqual([{ hash, name: 'ci', createdAtMs: 5, expiresAtMs: 10, revokedAtMs: 7 }]);
    expect(validateTenant(base).ok && (validateTenant(base) as { value: Tenant }).value.apiKeys).toEqual([]);
    expect(fieldOf({ ...base, apiKeys: {} })).toBe('tenants.acme.apiKeys');
    expect(fieldOf({ ...base, apiKeys: [{ hash: 'abc', name: 'x', createdAtMs: 0 }] })).toBe('tenants.acme.apiKeys[0].hash');
    expect(fieldOf({ ...base, apiKeys: [{ hash, name: ' padded', createdAtMs: 0 }] })).toBe('tenants.acme.apiKeys[0].name');
    expect(fieldOf({ ...base, apiKeys: [{ hash, name: 'x'.repeat(65), createdAtMs: 0 }] })).toBe('tenants.acme.apiKeys[0].name');
    expect(fieldOf({ ...base, apiKeys: [{ hash, name: 'x', createdAtMs: -1 }] })).toBe('tenants.acme.apiKeys[0].createdAtMs');
    expect(fieldOf({ ...base, apiKeys: [{ hash, name: 'x', createdAtMs: 0, expiresAtMs: 'soon' }] })).toBe('tenants.acme.apiKeys[0].expiresAtMs');
    expect(fieldOf({ ...base, apiKeys: [{ hash, name: 'x', createdAtMs: 0, revokedAtMs: 1.5 }] })).toBe('tenants.acme.apiKeys[0].revokedAtMs');
    expect(
      fieldOf({
        ...base,
        apiKeys: [
          { hash, name: 'a', createdAtMs: 0 },
          { hash, name: 'b', createdAtMs: 0 },
        ],
      }),
    ).toBe('tenants.acme.apiKeys[1]');
    const many = Array.from({ length: tenantKeyRecordsMax + 1 }, (_, i) => ({ hash: i.toString(16).padStart(64, '0'), name: 'k', createdAtMs: 0 }));
    expect(fieldOf({ ...base, apiKeys: many })).toBe('tenants.acme.apiKeys');
  });

  it('reads a digest of the old schema as an imported key, and lets a record of the same key win', () => {
    const legacy = validateTenant({ ...base, apiKeyHashes: [hash, other] });
    expect(legacy.ok && legacy.value.apiKeys).toEqual([
      { hash, name: '', createdAtMs: 0 },
      { hash: other, name: '', createdAtMs: 0 },
    ]);
    const both = validateTenant({ ...base, apiKeyHashes: [hash], apiKeys: [{ hash, name: 'ci', createdAtMs: 1, revokedAtMs: 2 }] });
    expect(both.ok && both.value.apiKeys).toEqual([{ hash, name: 'ci', createdAtMs: 1, revokedAtMs: 2 }]);
  });

  it('tells the state of a key at a time, and lists for old peers only the keys not revoked', () => {
    const records = [
      { hash, name: 'a', createdAtMs: 0 },
      { hash: other, name: 'b', createdAtMs: 0, revokedAtMs: nowMs + 10 },
      { hash: 'c'.repeat(64), name: 'c', createdAtMs: 0, expiresAtMs: nowMs },
    ];
    expect(records.map((record) => apiKeyState(record, nowMs))).toEqual(['active', 'revoking', 'expired']);
    expect(apiKeyState(records[1]!, nowMs + 10)).toBe('revoked');
    expect(legacyKeyHashes(records)).toEqual([hash, 'c'.repeat(64)]);
  });
});

describe('a document shared with a peer of the schema before key records', () => {
  it('authenticates a key that peer made, and refuses it once revoked here, even if the peer lists it again', () => {
    const old = oldSchemaDoc([hash]);
    const doc = new PolicyDocument(7);
    expect(doc.onSyncMessage(updateMessage(Y.encodeStateAsUpdate(old))).ok).toBe(true);
    expect(doc.tenant(acmeId)?.apiKeys).toEqual([{ hash, name: '', createdAtMs: 0 }]);
    const auth = new RequestAuthenticator(nodeAuthCrypto, (id) => doc.tenant(id));
    const request = { method: 'POST', path: '/carpool.v1.Carpool/Complete', body: new Uint8Array(0), apiKey: key };
    expect(auth.authenticate(request, nowMs).ok).toBe(true);

    // Revoked here: the record says so, and the digests old peers read no longer list the key.
    const tenant = doc.tenant(acmeId) as Tenant;
    expect(doc.upsertTenant({ ...tenant, apiKeys: [{ ...tenant.apiKeys[0]!, revokedAtMs: nowMs }] }).ok).toBe(true);
    Y.applyUpdate(old, doc.encodeState());
    const oldView = old.getMap('tenants').get('acme') as Y.Map<unknown>;
    expect(oldView.get('apiKeyHashes')).toEqual([]);
    expect(auth.authenticate(request, nowMs).ok).toBe(false);

    // The old peer, writing from a stale view, lists the digest again: the record still wins.
    oldView.set('apiKeyHashes', [hash]);
    expect(doc.onSyncMessage(updateMessage(Y.encodeStateAsUpdate(old))).ok).toBe(true);
    expect(doc.tenant(acmeId)?.apiKeys).toEqual([{ hash, name: '', createdAtMs: 0, revokedAtMs: nowMs }]);
    expect(auth.authenticate(request, nowMs).ok).toBe(false);
  });
});
