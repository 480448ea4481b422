import { createHmac, hash } from 'node:crypto';
import type { AuthCrypto } from '../admission/auth-crypto.js';

/**
 * Request authentication's hashing on Node's crypto module. The digests are copied into plain
 * Uint8Arrays so callers never hold a Buffer that some Node API might treat specially.
 */
export const nodeAuthCrypto: AuthCrypto = Object.freeze({
  // One-shot `hash`: every request with an API key hashes it, and a Hash object costs more.
  sha256: (bytes: Uint8Array): Uint8Array => new Uint8Array(hash('sha256', bytes, 'buffer')),
  hmacSha256: (key: Uint8Array, message: Uint8Array): Uint8Array => new Uint8Array(createHmac('sha256', key).update(message).digest()),
});
