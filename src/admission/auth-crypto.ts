import { assert } from '../core/assert.js';

/**
 * The hashing that request authentication needs, injected so the admission core stays free of
 * I/O: the node wires Node's crypto module (src/node/node-auth-crypto.ts), and a simulator or a
 * test may wire the same or a stand-in. Both functions are pure: same input, same output.
 */
export interface AuthCrypto {
  sha256(bytes: Uint8Array): Uint8Array;
  hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array;
}

// One comparison for the whole code base: the mesh handshake's proofs and request credentials are
// checked by the same function, so a fix to it reaches both.
export { constantTimeEqual } from '../mesh/handshake.js';

/** Length of a SHA-256 digest (and so of an HMAC-SHA256 tag) in bytes. */
export const sha256Bytes = 32;

const lowerHexPattern = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex, the form in which the policy document stores key digests. */
export function bytesToHex(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0');
  return text;
}

/**
 * Decodes lowercase hex. Callers check untrusted text against their own pattern first (a
 * signature must be exactly 64 lowercase hex digits); anything else reaching here is a bug.
 */
export function hexToBytes(text: string): Uint8Array {
  assert(lowerHexPattern.test(text), 'hexToBytes takes lowercase hex of even length; validate input first');
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** True if `text` is a SHA-256 digest as the policy document stores it: 64 lowercase hex digits. */
export function isSha256Hex(text: string): boolean {
  return text.length === 2 * sha256Bytes && lowerHexPattern.test(text);
}
