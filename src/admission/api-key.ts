import { assert } from '../core/assert.js';
import { isValidId, type TenantId } from '../core/ids.js';
import { apiKeyLengthMax, apiKeySecretLengthMax, apiKeySecretLengthMin, idLengthMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { type AuthCrypto, bytesToHex, isSha256Hex } from './auth-crypto.js';

/**
 * API keys and key ids.
 *
 * An API key reads `cp_<tenantId>_<secret>`:
 *   - `cp_` marks a carpool key, so secret scanners and people can recognise a leaked one;
 *   - `<tenantId>` is the tenant's id (see src/core/ids.ts), in the clear, so the server finds the
 *     tenant's stored digests with one lookup instead of comparing against every tenant's keys;
 *   - `<secret>` is `apiKeySecretLengthMin` to `apiKeySecretLengthMax` base62 characters
 *     (`[A-Za-z0-9]`) drawn at random by whoever mints the key.
 * Tenant ids may themselves contain `_`, but secrets never do, so a key splits unambiguously at its
 * last underscore. The whole key, prefix and tenant id included, is what gets hashed: the policy
 * document stores SHA-256(key) as 64 lowercase hex digits, never the key. A fast unsalted hash is
 * enough because the secret is long and random, not a password a person chose.
 *
 * A key id reads `<tenantId>:<the first 8 hex digits of SHA-256(key)>`. It names one key of a
 * tenant in signed requests, results and logs without revealing the key. It is taken from the
 * digest rather than the digest's position in the tenant's list so that removing one key during a
 * rotation does not renumber, and so break, the others. Eight digits make an accidental clash
 * between two keys of one tenant (at most 16) a one-in-tens-of-millions event, and a clash is
 * still handled: the verifier tries every key whose digest has the prefix.
 */

export const apiKeyPrefix = 'cp_';

/** Hex digits of the key digest that a key id carries. */
export const keyIdHashHexLength = 8;

/** Longest key id: a tenant id, the `:` and the digest prefix. */
export const keyIdLengthMax = idLengthMax + 1 + keyIdHashHexLength;

const secretPattern = /^[A-Za-z0-9]*$/;
const hashPrefixPattern = /^[0-9a-f]{8}$/;

export interface ApiKeyParts {
  readonly tenant: TenantId;
  readonly secret: string;
}

export interface KeyIdParts {
  readonly tenant: TenantId;
  /** The first `keyIdHashHexLength` hex digits of the key's SHA-256. */
  readonly hashPrefix: string;
}

/** Why a key or key id was refused; the detail is for logs, never for the caller. */
export interface ApiKeyError {
  readonly kind: 'malformed-api-key' | 'malformed-key-id';
  readonly reason: string;
}

export function isValidApiKeySecret(secret: string): boolean {
  return secret.length >= apiKeySecretLengthMin && secret.length <= apiKeySecretLengthMax && secretPattern.test(secret);
}

/**
 * Builds the key for a freshly drawn secret. The secret comes from the minting code's random
 * source, so one outside the format is a bug there; check untrusted text with
 * `isValidApiKeySecret` first.
 */
export function formatApiKey(tenant: TenantId, secret: string): string {
  assert(isValidId(tenant), 'formatApiKey takes a validated tenant id');
  assert(isValidApiKeySecret(secret), `an API key secret is ${apiKeySecretLengthMin} to ${apiKeySecretLengthMax} base62 characters`);
  return `${apiKeyPrefix}${tenant}_${secret}`;
}

/** Splits untrusted text into tenant and secret; the length is checked before anything else. */
export function parseApiKey(text: string): Result<ApiKeyParts, ApiKeyError> {
  if (text.length > apiKeyLengthMax) return malformedKey(`longer than ${apiKeyLengthMax} characters`);
  if (!text.startsWith(apiKeyPrefix)) return malformedKey(`does not start with ${apiKeyPrefix}`);
  const split = text.lastIndexOf('_');
  // The prefix's own underscore is at prefix length - 1; a key needs one more after the tenant id.
  if (split < apiKeyPrefix.length) return malformedKey('no separator between tenant id and secret');
  const tenant = text.slice(apiKeyPrefix.length, split);
  const secret = text.slice(split + 1);
  if (!isValidId(tenant)) return malformedKey('bad tenant id');
  if (!isValidApiKeySecret(secret)) return malformedKey('bad secret');
  return ok({ tenant: tenant as TenantId, secret });
}

/** SHA-256 of the key's UTF-8 bytes (ASCII, for a well-formed key). */
export function apiKeyDigest(crypto: AuthCrypto, key: string): Uint8Array {
  return crypto.sha256(utf8.encode(key));
}

/** The digest the policy document stores for `key`, in lowercase hex. */
export function apiKeyHashHex(crypto: AuthCrypto, key: string): string {
  return bytesToHex(apiKeyDigest(crypto, key));
}

/** The key id of the key whose stored digest is `keyHashHex`. */
export function formatKeyId(tenant: TenantId, keyHashHex: string): string {
  assert(isValidId(tenant), 'formatKeyId takes a validated tenant id');
  assert(isSha256Hex(keyHashHex), 'formatKeyId takes a stored SHA-256 digest');
  return `${tenant}:${keyHashHex.slice(0, keyIdHashHexLength)}`;
}

/** Splits an untrusted key id. Tenant ids may contain `:`, so the digest prefix is cut from the end. */
export function parseKeyId(text: string): Result<KeyIdParts, ApiKeyError> {
  if (text.length > keyIdLengthMax) return malformedKeyId(`longer than ${keyIdLengthMax} characters`);
  const split = text.length - keyIdHashHexLength - 1;
  if (split < 1 || text[split] !== ':') return malformedKeyId('not <tenant>:<8 hex digits>');
  const tenant = text.slice(0, split);
  const hashPrefix = text.slice(split + 1);
  if (!isValidId(tenant)) return malformedKeyId('bad tenant id');
  if (!hashPrefixPattern.test(hashPrefix)) return malformedKeyId('bad digest prefix');
  return ok({ tenant: tenant as TenantId, hashPrefix });
}

const utf8 = new TextEncoder();

function malformedKey(reason: string): Result<never, ApiKeyError> {
  return err({ kind: 'malformed-api-key', reason });
}

function malformedKeyId(reason: string): Result<never, ApiKeyError> {
  return err({ kind: 'malformed-key-id', reason });
}
