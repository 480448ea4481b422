import { assert } from '../core/assert.js';
import type { NodeId } from '../core/ids.js';

/**
 * Peer authentication: a mutual challenge-response keyed by the mesh secret (see the message
 * flow at the top of proto/carpool/v1/mesh.proto). Each side proves it knows the secret with an
 * HMAC over both nonces and both member ids, under a role label, so a proof cannot be reflected
 * back at its sender or replayed on another connection (the responder's nonce is fresh).
 *
 * The HMAC and the nonces come in through `MeshCrypto`, so this file stays free of I/O: the node
 * wires Node's crypto module, and the simulator may too.
 */
export interface MeshCrypto {
  hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array;
  /** Fresh unpredictable bytes for a handshake nonce (16 or more). */
  nonce(): Uint8Array;
}

export const meshProtocolVersion = 1;
const label = 'carpool-mesh/1';

export type HandshakeRole = 'dialer' | 'responder';

export function handshakeProof(
  crypto: MeshCrypto,
  secret: Uint8Array,
  role: HandshakeRole,
  nonceDialer: Uint8Array,
  nonceResponder: Uint8Array,
  dialer: NodeId,
  responder: NodeId,
): Uint8Array {
  return crypto.hmacSha256(secret, lengthPrefixed([label, role, nonceDialer, nonceResponder, dialer, responder]));
}

/** Compares two byte strings in time that depends only on their length. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}

/**
 * Remembers the last `capacity` dialer nonces a responder has seen. A dialer nonce seen twice is
 * a replayed Hello; refusing it early saves the HMAC and makes the replay visible in metrics.
 * Oldest entries are forgotten first, so memory stays bounded.
 */
export class NonceCache {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  private head = 0;

  constructor(private readonly capacity: number) {
    assert(capacity > 0, 'capacity must be positive');
  }

  /** Records `nonce`; returns false if it was already recorded. */
  remember(nonce: Uint8Array): boolean {
    const key = hex(nonce);
    if (this.seen.has(key)) return false;
    if (this.order.length < this.capacity) this.order.push(key);
    else {
      this.seen.delete(this.order[this.head] as string);
      this.order[this.head] = key;
      this.head = (this.head + 1) % this.capacity;
    }
    this.seen.add(key);
    return true;
  }
}

function hex(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0');
  return text;
}

/** Each part as a 4-byte big-endian length and its bytes: no two part lists encode alike. */
function lengthPrefixed(parts: readonly (string | Uint8Array)[]): Uint8Array {
  const encoded = parts.map((part) => (typeof part === 'string' ? asciiBytes(part) : part));
  const total = encoded.reduce((sum, part) => sum + 4 + part.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of encoded) {
    out[at] = (part.length >>> 24) & 0xff;
    out[at + 1] = (part.length >>> 16) & 0xff;
    out[at + 2] = (part.length >>> 8) & 0xff;
    out[at + 3] = part.length & 0xff;
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  return out;
}

function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0x7f;
  return bytes;
}
