import { assert } from '../core/assert.js';
import type { TenantId } from '../core/ids.js';
import { nonceCacheEntriesMax, nonceCacheFullRetryAfterMs, signatureSkewMsMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { type ApiKeyRecord, apiKeyState, type Tenant } from '../mesh/policy/policy-schema.js';
import { apiKeyDigest, formatKeyId, parseApiKey, parseKeyId } from './api-key.js';
import { type AuthCrypto, constantTimeEqual, hexToBytes } from './auth-crypto.js';
import { NonceWindow } from './nonce-window.js';
import {
  canonicalRequest,
  isSignableMethod,
  isSignablePath,
  isValidNonce,
  isValidSignatureText,
  parseTimestampMs,
  type SignatureFields,
  type SignedContent,
  signatureOf,
} from './request-signature.js';

/**
 * Request authentication: who is calling, proven by an API key or by a signature made with one.
 *
 * A request presents one of:
 *   - an API key alone (see ./api-key.ts): its SHA-256 must equal the digest of one of the
 *     tenant's key records, and that key must be neither revoked nor expired at the request's
 *     time. Tenants with `requireSignature` refuse this form, since the key then travels with
 *     every request;
 *   - a signature (see ./request-signature.ts), fresh, unreplayed and made with one of the
 *     tenant's keys;
 *   - both: the signature decides, and the key must be the very key the signature names. A
 *     credential that was presented is never ignored, so a stray wrong key cannot ride along.
 *
 * Every failure reaches the caller as the same `unauthenticated` error: telling a prober whether
 * the tenant exists, the key was close or the clock was off would help only the prober. The
 * `reason` is for metrics and logs on the node side; the error table must not put it in replies.
 * Timing is evened out where it is cheap: a well-formed key is hashed before its tenant is looked
 * up, so an unknown tenant costs the same hash as a wrong key, and a key is compared with every
 * stored digest of its tenant without stopping at a match. A signed request for an unknown tenant
 * skips the HMAC, so its timing can show that the tenant does not exist; tenant ids are not
 * secrets (each key and key id carries one in the clear), so that is accepted.
 *
 * Checks run cheapest first and nothing is remembered before the signature verifies: field
 * formats, then the timestamp, then the tenant and key, then the HMAC, and only then the nonce.
 * Checking the nonce after the HMAC means a forged request can neither fill the nonce cache nor
 * burn a nonce an honest client is about to use, and `replayed-nonce` counts only genuine replays.
 */

export const authFailureReasons = [
  /** Neither an API key nor a signature. */
  'missing-credentials',
  /** The API key does not follow `cp_<tenant>_<secret>` or is too long. */
  'malformed-key',
  /** The key or key id names a tenant the policy does not hold. */
  'unknown-tenant',
  /** The key's digest is not among its tenant's digests. */
  'wrong-key',
  /** The key is one of its tenant's, but was revoked (at once, or at the end of a rotation's grace). */
  'revoked-key',
  /** The key is one of its tenant's, but its expiry has passed. */
  'expired-key',
  /** A valid key alone, for a tenant that requires signed requests. */
  'signature-required',
  /** A signature field (key id, timestamp, nonce, signature) or the method or path is malformed. */
  'malformed-signature',
  /** The key id's digest prefix matches none of its tenant's keys (perhaps a rotated-out key). */
  'unknown-key',
  /** A request carries both a key and a signature, and the signature names another key. */
  'key-mismatch',
  /** The timestamp lies outside the skew window. */
  'stale-signature',
  /** The HMAC does not match: tampered request, wrong key or client bug. */
  'bad-signature',
  /** A correctly signed request whose nonce was already accepted inside the window. */
  'replayed-nonce',
  /**
   * The nonce cache is full of live nonces; the request is refused rather than one forgotten.
   * Counted here with the others, but answered as `AuthUnavailable` (503), not as a 401.
   */
  'nonce-cache-full',
] as const;
export type AuthFailureReason = (typeof authFailureReasons)[number];

export interface AuthFailure {
  readonly kind: 'unauthenticated';
  /** For metrics and node-side logs only; never sent to the caller. */
  readonly reason: AuthFailureReason;
  /** Resending the same credentials cannot succeed; a client must fix them (or re-sign) first. */
  readonly retryable: false;
}

/**
 * The node cannot check a signed request now: its nonce cache is full of live nonces. That is the
 * node's capacity, not the client's credentials, so it maps like shedding (503, retry later),
 * never to 401, which would tell an honest client its key is wrong.
 */
export interface AuthUnavailable {
  readonly kind: 'shed';
  readonly reason: 'nonce-cache-full';
  readonly retryAfterMs: number;
}

export interface Authenticated {
  readonly tenant: TenantId;
  /** `<tenant>:<8 hex digits of the key digest>`, see ./api-key.ts; safe to log. */
  readonly keyId: string;
  readonly signed: boolean;
}

/**
 * A request as the transport adapter sees it. Optional fields accept `undefined`, so an adapter
 * can pass a header that may be missing straight through.
 */
export interface AuthRequest extends SignedContent {
  readonly apiKey?: string | undefined;
  readonly signature?: SignatureFields | undefined;
}

export interface AuthStats {
  readonly authenticated: number;
  /** Of `authenticated`, those that were signed. */
  readonly authenticatedSigned: number;
  readonly failures: Readonly<Record<AuthFailureReason, number>>;
  /** Nonces currently remembered. */
  readonly nonceEntries: number;
}

export interface RequestAuthenticatorOptions {
  /** Nonce cache capacity, 1 to `nonceCacheEntriesMax` (tests use small ones). */
  readonly nonceEntriesMax?: number;
}

/** One frozen failure per reason: refusing a flood of bad requests allocates nothing. */
const failures: Readonly<Record<AuthFailureReason, AuthFailure>> = Object.freeze(
  Object.fromEntries(authFailureReasons.map((reason) => [reason, Object.freeze({ kind: 'unauthenticated', reason, retryable: false })])) as Record<
    AuthFailureReason,
    AuthFailure
  >,
);

interface KeyMatch {
  readonly tenant: Tenant;
  /** The stored digest (lowercase hex) that the key hashed to. */
  readonly keyHashHex: string;
}

/** Why a record that matched may not authenticate at `nowMs`, if it may not. */
function inactiveReason(record: ApiKeyRecord, nowMs: number): 'revoked-key' | 'expired-key' | undefined {
  const state = apiKeyState(record, nowMs);
  if (state === 'revoked') return 'revoked-key';
  if (state === 'expired') return 'expired-key';
  return undefined;
}

/**
 * Authenticates requests against the tenants of the policy document. It holds the nonce cache,
 * so a node keeps one instance for all its requests; it reads tenants through `lookupTenant` on
 * every request, so policy edits (a new key, a removed one) apply at once.
 */
export class RequestAuthenticator {
  private readonly nonces: NonceWindow;
  private readonly failureCounts = new Map<AuthFailureReason, number>();
  /** Stored key digests as bytes, by record (`storedDigest`); gone with the record. */
  private readonly storedDigests = new WeakMap<ApiKeyRecord, Uint8Array>();
  private authenticatedCount = 0;
  private authenticatedSignedCount = 0;
  /**
   * The latest clock reading seen. The oldest acceptable timestamp is derived from it, not from
   * the current reading, so it never moves back: if the clock steps backwards, nonces already
   * forgotten as too old stay unacceptable instead of becoming replayable. The price is that
   * after a large forward step that is then undone, signed requests are refused as stale until
   * the clock catches up.
   */
  private latestNowMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly crypto: AuthCrypto,
    private readonly lookupTenant: (id: TenantId) => Tenant | undefined,
    options: RequestAuthenticatorOptions = {},
  ) {
    const entriesMax = options.nonceEntriesMax ?? nonceCacheEntriesMax;
    assert(entriesMax >= 1 && entriesMax <= nonceCacheEntriesMax, 'the nonce cache capacity is 1 to nonceCacheEntriesMax');
    this.nonces = new NonceWindow(entriesMax);
  }

  authenticate(request: AuthRequest, nowMs: number): Result<Authenticated, AuthFailure | AuthUnavailable> {
    assert(Number.isSafeInteger(nowMs), 'nowMs is an integer of milliseconds');
    this.latestNowMs = Math.max(this.latestNowMs, nowMs);
    const outcome = request.signature !== undefined ? this.verifySigned(request, request.signature, nowMs) : this.verifyKeyOnly(request.apiKey, nowMs);
    if (!outcome.ok) {
      this.failureCounts.set(outcome.error, (this.failureCounts.get(outcome.error) ?? 0) + 1);
      if (outcome.error === 'nonce-cache-full') return err({ kind: 'shed', reason: outcome.error, retryAfterMs: nonceCacheFullRetryAfterMs });
      return err(failures[outcome.error]);
    }
    this.authenticatedCount++;
    if (outcome.value.signed) this.authenticatedSignedCount++;
    return outcome;
  }

  stats(): AuthStats {
    const counts = {} as Record<AuthFailureReason, number>;
    for (const reason of authFailureReasons) counts[reason] = this.failureCounts.get(reason) ?? 0;
    return {
      authenticated: this.authenticatedCount,
      authenticatedSigned: this.authenticatedSignedCount,
      failures: counts,
      nonceEntries: this.nonces.size,
    };
  }

  private verifyKeyOnly(apiKey: string | undefined, nowMs: number): Result<Authenticated, AuthFailureReason> {
    if (apiKey === undefined) return err('missing-credentials');
    const match = this.matchApiKey(apiKey, nowMs);
    if (!match.ok) return match;
    const { tenant, keyHashHex } = match.value;
    if (tenant.requireSignature) return err('signature-required');
    return ok({ tenant: tenant.id, keyId: formatKeyId(tenant.id, keyHashHex), signed: false });
  }

  /**
   * A stored key's digest as bytes, decoded from its hex once per record: policy records are
   * immutable, and a changed key is a new record, so the cache can never answer for a stale one.
   */
  private storedDigest(record: ApiKeyRecord): Uint8Array {
    let bytes = this.storedDigests.get(record);
    if (bytes === undefined) {
      bytes = hexToBytes(record.hash);
      this.storedDigests.set(record, bytes);
    }
    return bytes;
  }

  private matchApiKey(apiKey: string, nowMs: number): Result<KeyMatch, AuthFailureReason> {
    // The parser refuses an over-long key before anything else, so hashing is bounded.
    const parts = parseApiKey(apiKey);
    if (!parts.ok) return err('malformed-key');
    // Hash before the lookup: an unknown tenant then costs what a wrong key costs.
    const digest = apiKeyDigest(this.crypto, apiKey);
    const tenant = this.tenantById(parts.value.tenant);
    if (tenant === undefined) return err('unknown-tenant');
    let matched: ApiKeyRecord | undefined;
    // Every stored digest is compared, even after a match, so timing does not tell which
    // position matched (or how many keys the tenant has before the match).
    for (const record of tenant.apiKeys) {
      if (constantTimeEqual(digest, this.storedDigest(record)) && matched === undefined) matched = record;
    }
    if (matched === undefined) return err('wrong-key');
    const inactive = inactiveReason(matched, nowMs);
    if (inactive !== undefined) return err(inactive);
    return ok({ tenant, keyHashHex: matched.hash });
  }

  private verifySigned(request: AuthRequest, signature: SignatureFields, nowMs: number): Result<Authenticated, AuthFailureReason> {
    const keyId = parseKeyId(signature.keyId);
    const timestampMs = parseTimestampMs(signature.timestamp);
    if (
      !keyId.ok ||
      timestampMs === undefined ||
      !isValidNonce(signature.nonce) ||
      !isValidSignatureText(signature.signature) ||
      !isSignableMethod(request.method) ||
      !isSignablePath(request.path)
    ) {
      return err('malformed-signature');
    }
    const floorMs = this.latestNowMs - signatureSkewMsMax;
    if (timestampMs < floorMs || timestampMs > nowMs + signatureSkewMsMax) return err('stale-signature');

    let tenant: Tenant;
    let candidates: readonly string[];
    if (request.apiKey !== undefined) {
      const match = this.matchApiKey(request.apiKey, nowMs);
      if (!match.ok) return match;
      if (match.value.tenant.id !== keyId.value.tenant || !match.value.keyHashHex.startsWith(keyId.value.hashPrefix)) {
        return err('key-mismatch');
      }
      tenant = match.value.tenant;
      candidates = [match.value.keyHashHex];
    } else {
      const found = this.tenantById(keyId.value.tenant);
      if (found === undefined) return err('unknown-tenant');
      tenant = found;
      const named = tenant.apiKeys.filter((record) => record.hash.startsWith(keyId.value.hashPrefix));
      if (named.length === 0) return err('unknown-key');
      // A revoked or expired key signs nothing any more. Checked before the HMAC, which reveals
      // only that the key id names a key of this tenant that no longer works; key ids are not
      // secrets (they appear in logs and the admin views).
      const usable = named.filter((record) => inactiveReason(record, nowMs) === undefined);
      if (usable.length === 0) return err(inactiveReason(named[0] as ApiKeyRecord, nowMs) ?? 'unknown-key');
      candidates = usable.map((record) => record.hash);
    }

    const canonical = canonicalRequest(this.crypto, request, signature.timestamp, signature.nonce);
    const presented = hexToBytes(signature.signature);
    let verified = false;
    // Almost always one candidate; two only if two keys of the tenant share a digest prefix.
    for (const keyHashHex of candidates) {
      const expected = signatureOf(this.crypto, hexToBytes(keyHashHex), canonical);
      if (constantTimeEqual(expected, presented)) verified = true;
    }
    if (!verified) return err('bad-signature');

    // Nonces are scoped to the tenant: tenants cannot see each other's nonces, and one tenant
    // reusing a value another used is no replay. Neither part contains a space.
    const outcome = this.nonces.remember(`${tenant.id} ${signature.nonce}`, timestampMs, floorMs);
    if (outcome === 'replayed') return err('replayed-nonce');
    if (outcome === 'full') return err('nonce-cache-full');
    return ok({ tenant: tenant.id, keyId: signature.keyId, signed: true });
  }

  private tenantById(id: TenantId): Tenant | undefined {
    const tenant = this.lookupTenant(id);
    assert(tenant === undefined || tenant.id === id, 'lookupTenant returns the tenant with the asked id');
    return tenant;
  }
}
