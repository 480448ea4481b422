// Proves requests authenticate only with a current key or a valid signature made with one.
// A signature must be fresh, unreplayed and untampered; every refusal is the same outward error
// with the right counted reason.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/core/assert.js';
import { asTenantId, type TenantId } from '../../src/core/ids.js';
import {
  apiKeyLengthMax,
  apiKeySecretLengthMax,
  apiKeySecretLengthMin,
  idLengthMax,
  nonceEvictionsPerCallMax,
  signatureSkewMsMax,
} from '../../src/core/limits.js';
import type { Result } from '../../src/core/result.js';
import { apiKeyHashHex, formatApiKey, formatKeyId, parseApiKey, parseKeyId } from '../../src/admission/api-key.js';
import type { AuthCrypto } from '../../src/admission/auth-crypto.js';
import {
  type Authenticated,
  type AuthFailure,
  type AuthFailureReason,
  authFailureReasons,
  type AuthRequest,
  type AuthUnavailable,
  RequestAuthenticator,
} from '../../src/admission/request-auth.js';
import { type SignatureFields, type SignedContent, signRequest } from '../../src/admission/request-signature.js';
import { defaultTokenWeights, type Tenant } from '../../src/mesh/policy/policy-schema.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';

const crypto = nodeAuthCrypto;
const nowMs = 1_750_000_000_000;

const acmeId = asTenantId('acme');
const acmeKey = formatApiKey(acmeId, 'A'.repeat(20) + 'b'.repeat(20));
const acmeKey2 = formatApiKey(acmeId, 'Z9'.repeat(24));
const strictId = asTenantId('strict_co');
const strictKey = formatApiKey(strictId, 'q1w2e3r4'.repeat(5));
/** Well-formed, for a tenant that exists, but never registered. */
const acmeForeignKey = formatApiKey(acmeId, 'x'.repeat(40));

function tenant(id: TenantId, keys: readonly string[], requireSignature = false): Tenant {
  return {
    id,
    tier: 'paid',
    apiKeys: keys.map((key, i) => ({ hash: apiKeyHashHex(crypto, key), name: `key-${i}`, createdAtMs: 0 })),
    requireSignature,
    concurrencyMax: 4,
    weights: defaultTokenWeights,
    limits: [],
    userLimits: [],
    userConcurrencyMax: 1,
  };
}

interface Setup {
  readonly auth: RequestAuthenticator;
  readonly tenants: Map<TenantId, Tenant>;
}

function setup(nonceEntriesMax?: number, authCrypto: AuthCrypto = crypto): Setup {
  const tenants = new Map<TenantId, Tenant>([
    [acmeId, tenant(acmeId, [acmeKey, acmeKey2])],
    [strictId, tenant(strictId, [strictKey], true)],
  ]);
  const auth = new RequestAuthenticator(authCrypto, (id) => tenants.get(id), nonceEntriesMax === undefined ? {} : { nonceEntriesMax });
  return { auth, tenants };
}

const content: SignedContent = {
  method: 'POST',
  path: '/carpool.v1.Carpool/Complete',
  body: new TextEncoder().encode('{"model":"claude","max_tokens":64}'),
};

let nonceCounter = 0;
/** A distinct valid nonce per call. */
function freshNonce(): string {
  nonceCounter++;
  return `nonce-${String(nonceCounter).padStart(12, '0')}`;
}

function signed(key: string, timestampMs = nowMs, nonce = freshNonce(), what: SignedContent = content): AuthRequest {
  return { ...what, signature: signRequest(crypto, key, what, timestampMs, nonce) };
}

function expectReason(result: Result<Authenticated, AuthFailure | AuthUnavailable>, reason: AuthFailureReason): void {
  // A full nonce cache is the node's capacity: it is answered like shedding (503), not as a 401.
  if (reason === 'nonce-cache-full') expect(result).toEqual({ ok: false, error: { kind: 'shed', reason, retryAfterMs: 1_000 } });
  else expect(result).toEqual({ ok: false, error: { kind: 'unauthenticated', reason, retryable: false } });
}

function expectAuthenticated(result: Result<Authenticated, AuthFailure | AuthUnavailable>, value: Authenticated): void {
  expect(result).toEqual({ ok: true, value });
}

const keyIdOf = (tenantId: TenantId, key: string): string => formatKeyId(tenantId, apiKeyHashHex(crypto, key));

/** The test crypto, counting SHA-256 calls: to prove which paths hash a key and which do not. */
function countingCrypto(): { counting: AuthCrypto; hashes: () => number } {
  let hashed = 0;
  const counting: AuthCrypto = {
    sha256: (bytes) => {
      hashed++;
      return crypto.sha256(bytes);
    },
    hmacSha256: (key, message) => crypto.hmacSha256(key, message),
  };
  return { counting, hashes: () => hashed };
}

describe('API key format', () => {
  it('round-trips tenant and secret, also for tenant ids holding underscores', () => {
    const parsed = parseApiKey(strictKey);
    expect(parsed).toEqual({ ok: true, value: { tenant: strictId, secret: 'q1w2e3r4'.repeat(5) } });
  });

  it('refuses to format a secret outside the alphabet or length range', () => {
    expect(() => formatApiKey(acmeId, 'short')).toThrow(AssertionError);
    expect(() => formatApiKey(acmeId, 'a_b'.repeat(12))).toThrow(AssertionError);
  });

  it('round-trips key ids, also for tenant ids holding colons', () => {
    const hash = apiKeyHashHex(crypto, acmeKey);
    const weird = asTenantId('a:b');
    expect(parseKeyId(formatKeyId(weird, hash))).toEqual({ ok: true, value: { tenant: weird, hashPrefix: hash.slice(0, 8) } });
    expect(parseKeyId('acme:ABCDEF12').ok).toBe(false);
    expect(parseKeyId(':abcdef12').ok).toBe(false);
    expect(parseKeyId('abcdef12').ok).toBe(false);
  });
});

describe('API key authentication', () => {
  it('accepts a registered key and names its tenant and key id', () => {
    const { auth } = setup();
    expectAuthenticated(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs), {
      tenant: acmeId,
      keyId: keyIdOf(acmeId, acmeKey),
      signed: false,
    });
    expect(auth.stats().authenticated).toBe(1);
  });

  it('refuses a well-formed key that is not registered for its tenant', () => {
    const { auth } = setup();
    expectReason(auth.authenticate({ ...content, apiKey: acmeForeignKey }, nowMs), 'wrong-key');
  });

  it('refuses a key for a tenant the policy does not hold', () => {
    const { auth } = setup();
    expectReason(auth.authenticate({ ...content, apiKey: formatApiKey(asTenantId('ghost'), 'g'.repeat(32)) }, nowMs), 'unknown-tenant');
  });

  it('refuses a request without any credentials', () => {
    const { auth } = setup();
    expectReason(auth.authenticate({ ...content, apiKey: undefined }, nowMs), 'missing-credentials');
  });

  const secret = 'k'.repeat(apiKeySecretLengthMin);
  const malformed: readonly [string, string][] = [
    ['empty', ''],
    ['no prefix', `acme_${secret}`],
    ['another prefix', `sk_acme_${secret}`],
    ['prefix only', 'cp_'],
    ['no separator after the tenant', `cp_acme${secret}`],
    ['empty tenant id', `cp__${secret}`],
    ['tenant id with a space', `cp_ac me_${secret}`],
    ['tenant id with a non-ASCII character', `cp_acmé_${secret}`],
    ['tenant id over the id length', `cp_${'t'.repeat(idLengthMax + 1)}_${secret}`],
    ['secret too short', `cp_acme_${'k'.repeat(apiKeySecretLengthMin - 1)}`],
    ['secret too long', `cp_acme_${'k'.repeat(apiKeySecretLengthMax + 1)}`],
    ['secret with a dash', `cp_acme_${secret.slice(1)}-`],
    ['trailing newline', `${acmeKey}\n`],
    ['over the key length', `cp_acme_${'k'.repeat(apiKeyLengthMax)}`],
  ];
  it.each(malformed)('refuses a malformed key (%s) without hashing it', (_name, apiKey) => {
    const { counting, hashes } = countingCrypto();
    const { auth } = setup(undefined, counting);
    expectReason(auth.authenticate({ ...content, apiKey }, nowMs), 'malformed-key');
    expect(hashes()).toBe(0);
  });

  it('hashes a well-formed key of an unknown tenant, as it does a wrong key, so timing tells them apart less', () => {
    const { counting, hashes } = countingCrypto();
    const { auth } = setup(undefined, counting);
    auth.authenticate({ ...content, apiKey: formatApiKey(asTenantId('ghost'), 'g'.repeat(32)) }, nowMs);
    expect(hashes()).toBe(1);
  });

  it('accepts both keys of a tenant during a rotation, and only the new one after it', () => {
    const { auth, tenants } = setup();
    expect(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs).ok).toBe(true);
    expect(auth.authenticate({ ...content, apiKey: acmeKey2 }, nowMs)).toMatchObject({
      ok: true,
      value: { keyId: keyIdOf(acmeId, acmeKey2) },
    });
    tenants.set(acmeId, tenant(acmeId, [acmeKey2]));
    expectReason(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs), 'wrong-key');
    expect(auth.authenticate({ ...content, apiKey: acmeKey2 }, nowMs).ok).toBe(true);
  });

  it('refuses a valid key alone for a tenant that requires signatures, and accepts it signed', () => {
    const { auth } = setup();
    expectReason(auth.authenticate({ ...content, apiKey: strictKey }, nowMs), 'signature-required');
    expectAuthenticated(auth.authenticate(signed(strictKey), nowMs), {
      tenant: strictId,
      keyId: keyIdOf(strictId, strictKey),
      signed: true,
    });
  });

  it('gives the caller the same error, apart from the internal reason, for every refusal', () => {
    const { auth } = setup();
    const results = [
      auth.authenticate({ ...content, apiKey: 'nonsense' }, nowMs),
      auth.authenticate({ ...content, apiKey: acmeForeignKey }, nowMs),
      auth.authenticate({ ...content, apiKey: formatApiKey(asTenantId('ghost'), 'g'.repeat(32)) }, nowMs),
      auth.authenticate(signed(acmeKey, nowMs - signatureSkewMsMax - 1), nowMs),
    ];
    const reasons = new Set<AuthFailureReason>();
    for (const result of results) {
      expect(result.ok).toBe(false);
      const { error } = result as { error: AuthFailure };
      reasons.add(error.reason);
      // What may leave the node: everything but the reason, the same for every refusal.
      expect({ kind: error.kind, retryable: error.retryable }).toEqual({ kind: 'unauthenticated', retryable: false });
      expect(Object.keys(error).sort()).toEqual(['kind', 'reason', 'retryable']);
    }
    expect(reasons.size).toBe(results.length);
  });
});

describe('key records: revocation, rotation grace and expiry', () => {
  /** acme with acmeKey carrying the given record times, acmeKey2 plain. */
  function withTimes(times: { expiresAtMs?: number; revokedAtMs?: number }): Setup {
    const setupped = setup();
    const base = tenant(acmeId, [acmeKey, acmeKey2]);
    setupped.tenants.set(acmeId, { ...base, apiKeys: base.apiKeys.map((record, i) => (i === 0 ? { ...record, ...times } : record)) });
    return setupped;
  }

  it('refuses a revoked key, alone or signed, and counts why', () => {
    const { auth } = withTimes({ revokedAtMs: nowMs - 1 });
    expectReason(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs), 'revoked-key');
    expectReason(auth.authenticate(signed(acmeKey), nowMs), 'revoked-key');
    expect(auth.authenticate({ ...content, apiKey: acmeKey2 }, nowMs).ok).toBe(true);
    expect(auth.stats().failures['revoked-key']).toBe(2);
  });

  it('accepts a rotated-out key until the end of its grace, and refuses it from then on', () => {
    const { auth } = withTimes({ revokedAtMs: nowMs + 60_000 });
    expect(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs).ok).toBe(true);
    expect(auth.authenticate(signed(acmeKey, nowMs + 59_999), nowMs + 59_999).ok).toBe(true);
    expectReason(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs + 60_000), 'revoked-key');
    expectReason(auth.authenticate(signed(acmeKey, nowMs + 60_000), nowMs + 60_000), 'revoked-key');
  });

  it('refuses a key from its expiry on, alone or signed', () => {
    const { auth } = withTimes({ expiresAtMs: nowMs + 1_000 });
    expect(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs + 999).ok).toBe(true);
    expectReason(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs + 1_000), 'expired-key');
    expectReason(auth.authenticate(signed(acmeKey, nowMs + 1_000), nowMs + 1_000), 'expired-key');
    expect(auth.authenticate({ ...content, apiKey: acmeKey2 }, nowMs + 1_000).ok).toBe(true);
  });

  it('gives the caller the same error for a revoked or expired key as for a wrong one', () => {
    const revoked = withTimes({ revokedAtMs: nowMs }).auth.authenticate({ ...content, apiKey: acmeKey }, nowMs);
    const expired = withTimes({ expiresAtMs: nowMs }).auth.authenticate({ ...content, apiKey: acmeKey }, nowMs);
    const wrong = setup().auth.authenticate({ ...content, apiKey: acmeForeignKey }, nowMs);
    for (const result of [revoked, expired, wrong]) {
      expect(result.ok).toBe(false);
      const { kind, retryable } = (result as { error: AuthFailure }).error;
      expect({ kind, retryable }).toEqual({ kind: 'unauthenticated', retryable: false });
    }
  });
});

describe('signed requests', () => {
  it('accepts a correctly signed request without the key itself', () => {
    const { auth } = setup();
    expectAuthenticated(auth.authenticate(signed(acmeKey), nowMs), { tenant: acmeId, keyId: keyIdOf(acmeId, acmeKey), signed: true });
    expectAuthenticated(auth.authenticate(signed(acmeKey2), nowMs), { tenant: acmeId, keyId: keyIdOf(acmeId, acmeKey2), signed: true });
    expect(auth.stats()).toMatchObject({ authenticated: 2, authenticatedSigned: 2, nonceEntries: 2 });
  });

  it('accepts timestamps exactly at either edge of the skew window and refuses one past either', () => {
    const { auth } = setup();
    expect(auth.authenticate(signed(acmeKey, nowMs - signatureSkewMsMax), nowMs).ok).toBe(true);
    expect(auth.authenticate(signed(acmeKey, nowMs + signatureSkewMsMax), nowMs).ok).toBe(true);
    expectReason(auth.authenticate(signed(acmeKey, nowMs - signatureSkewMsMax - 1), nowMs), 'stale-signature');
    expectReason(auth.authenticate(signed(acmeKey, nowMs + signatureSkewMsMax + 1), nowMs), 'stale-signature');
  });

  it('refuses a replay of an accepted request, but not the same nonce from another tenant', () => {
    const { auth } = setup();
    const request = signed(acmeKey, nowMs, 'shared-nonce-0000');
    expect(auth.authenticate(request, nowMs).ok).toBe(true);
    expectReason(auth.authenticate(request, nowMs + 1_000), 'replayed-nonce');
    // The same nonce under the tenant's other key is still a replay: nonces are per tenant.
    expectReason(auth.authenticate(signed(acmeKey2, nowMs, 'shared-nonce-0000'), nowMs), 'replayed-nonce');
    expect(auth.authenticate(signed(strictKey, nowMs, 'shared-nonce-0000'), nowMs).ok).toBe(true);
  });

  it('does not burn a nonce on a forged request', () => {
    const { auth } = setup();
    const good = signed(acmeKey, nowMs, 'honest-nonce-0001');
    const forged: AuthRequest = { ...good, body: new TextEncoder().encode('forged') };
    expectReason(auth.authenticate(forged, nowMs), 'bad-signature');
    expect(auth.authenticate(good, nowMs).ok).toBe(true);
  });

  const tamperings: readonly [string, (request: AuthRequest & { signature: SignatureFields }) => AuthRequest][] = [
    ['method', (r) => ({ ...r, method: 'GET' })],
    ['path', (r) => ({ ...r, path: '/carpool.v1.Carpool/CountTokens' })],
    ['body', (r) => ({ ...r, body: new TextEncoder().encode('{"model":"claude","max_tokens":65}') })],
    ['empty body', (r) => ({ ...r, body: new Uint8Array(0) })],
    ['timestamp', (r) => ({ ...r, signature: { ...r.signature, timestamp: String(Number(r.signature.timestamp) + 1) } })],
    ['nonce', (r) => ({ ...r, signature: { ...r.signature, nonce: `${r.signature.nonce}x` } })],
    ['signature', (r) => ({ ...r, signature: { ...r.signature, signature: flipHexDigit(r.signature.signature) } })],
    ['key id to the other key', (r) => ({ ...r, signature: { ...r.signature, keyId: keyIdOf(acmeId, acmeKey2) } })],
  ];
  it.each(tamperings)('refuses a request whose %s was changed after signing', (_name, tamper) => {
    const { auth } = setup();
    const request = signed(acmeKey) as AuthRequest & { signature: SignatureFields };
    expectReason(auth.authenticate(tamper(request), nowMs), 'bad-signature');
    expect(auth.authenticate(request, nowMs).ok).toBe(true);
  });

  it('refuses a request signed with an unregistered key under a registered key id', () => {
    const { auth } = setup();
    const forged = signed(acmeForeignKey);
    const claimed: AuthRequest = { ...forged, signature: { ...forged.signature!, keyId: keyIdOf(acmeId, acmeKey) } };
    expectReason(auth.authenticate(claimed, nowMs), 'bad-signature');
  });

  it('refuses a key id that names no key of its tenant, or no tenant', () => {
    const { auth } = setup();
    expectReason(auth.authenticate(signed(acmeForeignKey), nowMs), 'unknown-key');
    expectReason(auth.authenticate(signed(formatApiKey(asTenantId('ghost'), 'g'.repeat(32))), nowMs), 'unknown-tenant');
  });

  it('stops accepting signatures of a key once it is rotated out', () => {
    const { auth, tenants } = setup();
    tenants.set(acmeId, tenant(acmeId, [acmeKey2]));
    expectReason(auth.authenticate(signed(acmeKey), nowMs), 'unknown-key');
    expect(auth.authenticate(signed(acmeKey2), nowMs).ok).toBe(true);
  });

  const malformedFields: readonly [string, (request: AuthRequest & { signature: SignatureFields }) => AuthRequest][] = [
    ['timestamp with a leading zero', (r) => ({ ...r, signature: { ...r.signature, timestamp: `0${r.signature.timestamp}` } })],
    ['timestamp with a sign', (r) => ({ ...r, signature: { ...r.signature, timestamp: `+${r.signature.timestamp}` } })],
    ['timestamp in seconds with a fraction', (r) => ({ ...r, signature: { ...r.signature, timestamp: '1750000000.5' } })],
    ['timestamp past the safe integers', (r) => ({ ...r, signature: { ...r.signature, timestamp: '9007199254740993' } })],
    ['nonce too short', (r) => ({ ...r, signature: { ...r.signature, nonce: 'short' } })],
    ['nonce with a space', (r) => ({ ...r, signature: { ...r.signature, nonce: 'a nonce with spaces' } })],
    ['nonce too long', (r) => ({ ...r, signature: { ...r.signature, nonce: 'n'.repeat(65) } })],
    ['signature in capitals', (r) => ({ ...r, signature: { ...r.signature, signature: r.signature.signature.toUpperCase() } })],
    ['signature truncated', (r) => ({ ...r, signature: { ...r.signature, signature: r.signature.signature.slice(2) } })],
    ['key id without a digest prefix', (r) => ({ ...r, signature: { ...r.signature, keyId: 'acme' } })],
    ['path with a newline', (r) => ({ ...r, path: '/a\n/b' })],
    ['path too long', (r) => ({ ...r, path: `/${'p'.repeat(2_048)}` })],
    ['method in lower case', (r) => ({ ...r, method: 'post' })],
  ];
  it.each(malformedFields)('refuses a signed request with a %s as malformed', (_name, mangle) => {
    const { auth } = setup();
    const request = signed(acmeKey) as AuthRequest & { signature: SignatureFields };
    expectReason(auth.authenticate(mangle(request), nowMs), 'malformed-signature');
  });

  it('checks a key sent along with a signature against the key the signature names', () => {
    const { auth } = setup();
    expect(auth.authenticate({ ...signed(acmeKey), apiKey: acmeKey }, nowMs)).toMatchObject({ ok: true, value: { signed: true } });
    expectReason(auth.authenticate({ ...signed(acmeKey), apiKey: acmeKey2 }, nowMs), 'key-mismatch');
    expectReason(auth.authenticate({ ...signed(acmeKey), apiKey: strictKey }, nowMs), 'key-mismatch');
    expectReason(auth.authenticate({ ...signed(acmeKey), apiKey: acmeForeignKey }, nowMs), 'wrong-key');
  });
});

describe('nonce cache', () => {
  it('forgets nonces by age, so a full cache of old nonces admits new requests', () => {
    const { auth } = setup(2);
    const first = signed(acmeKey, nowMs);
    expect(auth.authenticate(first, nowMs).ok).toBe(true);
    expect(auth.authenticate(signed(acmeKey, nowMs + 10), nowMs).ok).toBe(true);
    expect(auth.stats().nonceEntries).toBe(2);

    // The first nonce's timestamp leaves the window one millisecond past the skew: it is forgotten,
    // and its replay is refused as stale, not let through.
    const later = nowMs + signatureSkewMsMax + 1;
    expect(auth.authenticate(signed(acmeKey, later), later).ok).toBe(true);
    expect(auth.stats().nonceEntries).toBe(2);
    expectReason(auth.authenticate(first, later), 'stale-signature');
    expect(auth.stats().failures['nonce-cache-full']).toBe(0);
  });

  it('forgets by request timestamp, not arrival order', () => {
    const { auth } = setup(2);
    // A request from a clock running ahead arrives first, then one from a clock running behind.
    expect(auth.authenticate(signed(acmeKey, nowMs + 60_000), nowMs).ok).toBe(true);
    const behind = signed(acmeKey, nowMs - 60_000);
    expect(auth.authenticate(behind, nowMs).ok).toBe(true);
    // Only the behind one has left the window at this time, so only it is forgotten.
    const later = nowMs + signatureSkewMsMax - 59_999;
    expect(auth.authenticate(signed(acmeKey, later), later).ok).toBe(true);
    expectReason(auth.authenticate(signed(acmeKey, later), later), 'nonce-cache-full');
  });

  it('refuses new signed requests when full of live nonces, keeping every remembered nonce', () => {
    const { auth } = setup(2);
    const first = signed(acmeKey, nowMs);
    const second = signed(strictKey, nowMs);
    expect(auth.authenticate(first, nowMs).ok).toBe(true);
    expect(auth.authenticate(second, nowMs).ok).toBe(true);
    expectReason(auth.authenticate(signed(acmeKey, nowMs), nowMs + 1), 'nonce-cache-full');
    expectReason(auth.authenticate(signed(strictKey, nowMs), nowMs + 1), 'nonce-cache-full');
    // Nothing was forgotten to make room: the remembered requests are still replays.
    expectReason(auth.authenticate(first, nowMs + 2), 'replayed-nonce');
    expectReason(auth.authenticate(second, nowMs + 2), 'replayed-nonce');
    // Unsigned requests need no nonce and pass meanwhile.
    expect(auth.authenticate({ ...content, apiKey: acmeKey }, nowMs + 2).ok).toBe(true);
    expect(auth.stats().failures['nonce-cache-full']).toBe(2);
    // Once the remembered nonces age out, signed requests are admitted again.
    const later = nowMs + signatureSkewMsMax + 1;
    expect(auth.authenticate(signed(acmeKey, later), later).ok).toBe(true);
  });

  it('forgets at most a fixed number of aged-out nonces per request, oldest first', () => {
    const entries = 3 * nonceEvictionsPerCallMax;
    const { auth } = setup(entries);
    const requests = Array.from({ length: entries }, (_, i) => signed(acmeKey, nowMs + i));
    for (const request of requests) expect(auth.authenticate(request, nowMs).ok).toBe(true);

    // Every nonce has aged out, but one request forgets only the budgeted oldest ones.
    const later = nowMs + signatureSkewMsMax + entries;
    expect(auth.authenticate(signed(acmeKey, later), later).ok).toBe(true);
    expect(auth.stats().nonceEntries).toBe(entries - nonceEvictionsPerCallMax + 1);
    // An aged-out nonce not yet forgotten still counts as seen; a forgotten one is free again.
    const newest = requests.at(-1)!.signature!.nonce;
    const oldest = requests[0]!.signature!.nonce;
    expectReason(auth.authenticate(signed(acmeKey, later, newest), later), 'replayed-nonce');
    expect(auth.authenticate(signed(acmeKey, later, oldest), later).ok).toBe(true);
  });

  it('keeps refusing a forgotten nonce when the clock steps backwards', () => {
    const { auth } = setup(4);
    const old = signed(acmeKey, nowMs);
    expect(auth.authenticate(old, nowMs).ok).toBe(true);
    const later = nowMs + signatureSkewMsMax + 1;
    expect(auth.authenticate(signed(acmeKey, later), later).ok).toBe(true);
    expect(auth.stats().nonceEntries).toBe(1);
    // The clock steps back to where `old` would be fresh again; it is forgotten, yet not replayable.
    expectReason(auth.authenticate(old, nowMs), 'stale-signature');
  });
});

describe('stats', () => {
  it('counts every outcome under its reason and nothing under the others', () => {
    const { auth } = setup();
    auth.authenticate({ ...content, apiKey: acmeKey }, nowMs);
    auth.authenticate({ ...content, apiKey: 'cp_' }, nowMs);
    auth.authenticate({ ...content, apiKey: acmeForeignKey }, nowMs);
    auth.authenticate({ ...content, apiKey: acmeForeignKey }, nowMs);
    auth.authenticate({ ...content, apiKey: strictKey }, nowMs);
    const replayed = signed(acmeKey);
    auth.authenticate(replayed, nowMs);
    auth.authenticate(replayed, nowMs);
    const stats = auth.stats();
    expect(stats.authenticated).toBe(2);
    expect(stats.authenticatedSigned).toBe(1);
    const expected = Object.fromEntries(authFailureReasons.map((reason) => [reason, 0]));
    expect(stats.failures).toEqual({
      ...expected,
      'malformed-key': 1,
      'wrong-key': 2,
      'signature-required': 1,
      'replayed-nonce': 1,
    });
  });
});

function flipHexDigit(hex: string): string {
  const last = hex.at(-1);
  return hex.slice(0, -1) + (last === '0' ? '1' : '0');
}
