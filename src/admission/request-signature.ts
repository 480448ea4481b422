import { assert } from '../core/assert.js';
import { signatureNonceLengthMax, signatureNonceLengthMin, signedMethodLengthMax, signedPathLengthMax } from '../core/limits.js';
import { apiKeyHashHex, formatKeyId, parseApiKey } from './api-key.js';
import { type AuthCrypto, bytesToHex, hexToBytes, sha256Bytes } from './auth-crypto.js';

/**
 * Signed requests: an HMAC over the request, so the API key itself never travels and a captured
 * request cannot be replayed or altered.
 *
 * Message flow of one signed request:
 *
 *   client                                              node
 *   keyHash   = SHA-256(apiKey)            (32 bytes)
 *   canonical = method "\n" path "\n" timestamp "\n" nonce "\n" hex(SHA-256(body))
 *   signature = hex(HMAC-SHA256(keyHash, canonical))
 *   ── keyId, timestamp, nonce, signature + method, path, body ──▶
 *                                                       tenant and digest from keyId (policy)
 *                                                       |timestamp − now| ≤ signatureSkewMsMax?
 *                                                       HMAC-SHA256(digest, canonical) = signature?
 *                                                       nonce unseen for this tenant? remember it
 *
 * Fields: `method` is the HTTP method in capitals (`POST` for gRPC); `path` is the request target
 * exactly as received, query included; `timestamp` is the client's wall clock in Unix
 * milliseconds, in plain decimal without leading zeros; `nonce` is 16 to 64 printable ASCII
 * characters without spaces, unique per request (a random 128-bit value in hex or base64url is
 * right); `signature` is 64 lowercase hex digits; `keyId` is described in ./api-key.ts.
 * No field may contain a newline (method and path are checked, the others cannot), so the
 * canonical string splits back into its fields one way only, and the body enters as a
 * fixed-length digest.
 *
 * Why the HMAC key is SHA-256(apiKey) and not the key: the node stores only the key's digest (the
 * policy document's key records), so the digest is the one secret both sides hold. The
 * consequence is that a stored digest is a signing secret. Whoever reads the policy document (any
 * mesh replica, an admin endpoint that lists tenants, a backup) can sign requests as that tenant,
 * though still not present the raw key. The policy document must therefore be guarded like the
 * keys themselves: mesh links authenticated and encrypted, admin reads restricted, backups
 * protected. Rotating or revoking a key (`carpool admin keys rotate|revoke`) revokes both powers.
 */

/** The parts of a request that a signature covers, besides timestamp and nonce. */
export interface SignedContent {
  readonly method: string;
  readonly path: string;
  readonly body: Uint8Array;
}

/** What a signed request carries, as text straight from its headers or metadata. */
export interface SignatureFields {
  readonly keyId: string;
  readonly timestamp: string;
  readonly nonce: string;
  readonly signature: string;
}

const methodPattern = /^[A-Z]+$/;
const signaturePattern = /^[0-9a-f]{64}$/;
// Canonical decimal: no sign, no leading zeros, at most 16 digits so the value stays an exact
// integer (Number.MAX_SAFE_INTEGER has 16 digits; the caller rejects the few 16-digit values above it).
const timestampPattern = /^(?:0|[1-9][0-9]{0,15})$/;

export function isSignableMethod(method: string): boolean {
  return method.length <= signedMethodLengthMax && methodPattern.test(method);
}

export function isSignablePath(path: string): boolean {
  return isPrintable(path, 1, signedPathLengthMax);
}

export function isValidNonce(nonce: string): boolean {
  return isPrintable(nonce, signatureNonceLengthMin, signatureNonceLengthMax);
}

export function isValidSignatureText(signature: string): boolean {
  return signaturePattern.test(signature);
}

/** The timestamp in milliseconds, or undefined unless `text` is a canonical decimal safe integer. */
export function parseTimestampMs(text: string): number | undefined {
  if (!timestampPattern.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** The bytes that get signed. Fields must already have passed the checks above. */
export function canonicalRequest(crypto: AuthCrypto, content: SignedContent, timestamp: string, nonce: string): Uint8Array {
  assert(isSignableMethod(content.method) && isSignablePath(content.path), 'validate method and path before signing');
  assert(parseTimestampMs(timestamp) !== undefined && isValidNonce(nonce), 'validate timestamp and nonce before signing');
  const bodyHashHex = bytesToHex(crypto.sha256(content.body));
  return utf8.encode(`${content.method}\n${content.path}\n${timestamp}\n${nonce}\n${bodyHashHex}`);
}

/** HMAC-SHA256 of the canonical bytes under a key's 32-byte digest. */
export function signatureOf(crypto: AuthCrypto, keyHash: Uint8Array, canonical: Uint8Array): Uint8Array {
  assert(keyHash.length === sha256Bytes, 'a signing key is a SHA-256 digest');
  return crypto.hmacSha256(keyHash, canonical);
}

/**
 * The client side: signs a request with an API key. Clients build their own requests, so an
 * invalid key, method, path or nonce here is a bug in the caller, not an operating failure.
 */
export function signRequest(crypto: AuthCrypto, apiKey: string, content: SignedContent, timestampMs: number, nonce: string): SignatureFields {
  const parts = parseApiKey(apiKey);
  assert(parts.ok, 'signRequest takes a well-formed API key');
  assert(Number.isSafeInteger(timestampMs) && timestampMs >= 0, 'a timestamp is a non-negative integer of milliseconds');
  const keyHashHex = apiKeyHashHex(crypto, apiKey);
  const timestamp = String(timestampMs);
  const canonical = canonicalRequest(crypto, content, timestamp, nonce);
  return {
    keyId: formatKeyId(parts.value.tenant, keyHashHex),
    timestamp,
    nonce,
    signature: bytesToHex(signatureOf(crypto, hexToBytes(keyHashHex), canonical)),
  };
}

const utf8 = new TextEncoder();

/** `min` to `max` characters of printable ASCII without spaces (0x21 to 0x7e). */
function isPrintable(text: string, min: number, max: number): boolean {
  if (text.length < min || text.length > max) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
