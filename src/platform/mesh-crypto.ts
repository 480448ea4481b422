import { createHmac } from 'node:crypto';
import type { Random } from '../core/random.js';
import type { MeshCrypto } from '../mesh/handshake.js';

/** Bytes in a handshake nonce. */
const nonceBytes = 16;

/**
 * The mesh handshake's primitives (src/mesh/handshake.ts) on node:crypto: HMAC-SHA256, and nonces
 * from `nonce`, which production fills from the system's random bytes and the simulator and the
 * tests from a seeded source, so their runs stay a function of the seed.
 */
export function hmacMeshCrypto(nonce: () => Uint8Array): MeshCrypto {
  return {
    hmacSha256: (key, message) => new Uint8Array(createHmac('sha256', key).update(message).digest()),
    nonce,
  };
}

/** Nonces drawn from a seeded source: deterministic, for the simulator and tests only. */
export function seededNonces(random: Random): () => Uint8Array {
  return () => Uint8Array.from({ length: nonceBytes }, () => random.int(256));
}
