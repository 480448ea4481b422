import { randomBytes } from 'node:crypto';
import { apiKeyHashHex, formatApiKey, formatKeyId } from '../../admission/api-key.js';
import type { AuthCrypto } from '../../admission/auth-crypto.js';
import { assert } from '../../core/assert.js';
import type { TenantId } from '../../core/ids.js';
import { apiKeySecretLengthMax, apiKeySecretLengthMin } from '../../core/limits.js';

/**
 * Makes a new API key for a tenant (the format is src/admission/api-key.ts's): a secret of
 * `mintedSecretLength` base62 characters drawn from the operating system's CSPRNG, by rejection
 * sampling so that every character is equally likely (a byte modulo 62 would favour the first
 * eight). The key is shown once, to the caller; only its digest is stored.
 */
export interface MintedKey {
  readonly apiKey: string;
  /** What the policy document stores: SHA-256 of the key in lowercase hex. */
  readonly keyHashHex: string;
  readonly keyId: string;
}

/** 40 base62 characters: about 238 bits, within the format's 32 to 128. */
export const mintedSecretLength = 40;

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Bytes at or above this are skipped: 248 is the largest multiple of 62 that fits a byte. */
const acceptedBelow = 248;

assert(mintedSecretLength >= apiKeySecretLengthMin && mintedSecretLength <= apiKeySecretLengthMax, 'minted secrets fit the key format');

export function mintApiKey(crypto: AuthCrypto, tenant: TenantId, random: (bytes: number) => Uint8Array = randomBytes): MintedKey {
  let secret = '';
  // Bounded: each draw of 64 bytes keeps about 97% of them, and a draw that keeps too few is
  // followed by another; eight draws failing to yield 40 characters would take a broken source.
  for (let draw = 0; draw < 8 && secret.length < mintedSecretLength; draw++) {
    for (const byte of random(64)) {
      if (byte >= acceptedBelow) continue;
      secret += alphabet[byte % alphabet.length];
      if (secret.length === mintedSecretLength) break;
    }
  }
  assert(secret.length === mintedSecretLength, 'the random source yields enough bytes');
  const apiKey = formatApiKey(tenant, secret);
  const keyHashHex = apiKeyHashHex(crypto, apiKey);
  return { apiKey, keyHashHex, keyId: formatKeyId(tenant, keyHashHex) };
}
