import { type AuthCrypto, bytesToHex, constantTimeEqual } from '../../admission/auth-crypto.js';
import type { NodeId } from '../../core/ids.js';
import { forwardClockSkewMsMax } from '../../core/limits.js';
import { err, OK_VOID, type Result } from '../../core/result.js';

/**
 * How a mesh member proves itself on a forwarded call (proto/carpool/mesh/v1/forward.proto): an
 * HMAC-SHA256 keyed by the mesh secret, which only members hold, over the member's id, a
 * timestamp, and what the call is about (request id, account id, body digest). A stolen MAC
 * cannot be moved to another request or body, and one older than `forwardClockSkewMsMax` is
 * refused. A replay within that window re-runs nothing: the home node's ledger answers a repeated
 * (request id, account id) from what it stored.
 */
export interface MemberProof {
  readonly member: NodeId;
  readonly timestampMs: number;
  /** 64 lowercase hex digits. */
  readonly mac: string;
}

export interface ForwardSubject {
  readonly requestId: string;
  readonly accountId: string;
  readonly body: Uint8Array;
}

export type MemberProofProblem = 'unknown-member' | 'stale-timestamp' | 'bad-mac';

const macPattern = /^[0-9a-f]{64}$/;
const utf8 = new TextEncoder();

export function memberMac(crypto: AuthCrypto, secret: Uint8Array, member: NodeId, timestampMs: number, subject: ForwardSubject): string {
  const digest = bytesToHex(crypto.sha256(subject.body));
  const text = `carpool-forward-v1\n${member}\n${timestampMs}\n${subject.requestId}\n${subject.accountId}\n${digest}`;
  return bytesToHex(crypto.hmacSha256(secret, utf8.encode(text)));
}

export function signForward(crypto: AuthCrypto, secret: Uint8Array, member: NodeId, nowMs: number, subject: ForwardSubject): MemberProof {
  const timestampMs = Math.floor(nowMs);
  return { member, timestampMs, mac: memberMac(crypto, secret, member, timestampMs, subject) };
}

export function verifyForward(
  crypto: AuthCrypto,
  secret: Uint8Array,
  isMember: (id: NodeId) => boolean,
  proof: MemberProof,
  subject: ForwardSubject,
  nowMs: number,
): Result<undefined, MemberProofProblem> {
  if (!isMember(proof.member)) return err('unknown-member');
  if (!Number.isSafeInteger(proof.timestampMs) || Math.abs(nowMs - proof.timestampMs) > forwardClockSkewMsMax) return err('stale-timestamp');
  if (!macPattern.test(proof.mac)) return err('bad-mac');
  const expected = memberMac(crypto, secret, proof.member, proof.timestampMs, subject);
  return constantTimeEqual(utf8.encode(expected), utf8.encode(proof.mac)) ? OK_VOID : err('bad-mac');
}
