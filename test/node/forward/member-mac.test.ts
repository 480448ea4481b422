// Proves a forward's member proof binds the member, the time, the request, the account and the
// body: any of them changed, a stale timestamp, an unknown member or a malformed MAC is refused.
import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../../src/core/ids.js';
import { forwardClockSkewMsMax } from '../../../src/core/limits.js';
import { signForward, verifyForward } from '../../../src/node/forward/member-mac.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';

const utf8 = new TextEncoder();
const secret = utf8.encode('member-mac-test-secret');
const member = 'use-1' as NodeId;
const isMember = (id: NodeId): boolean => id === member;
const subject = { requestId: 'req-1', accountId: 'acct-1', body: utf8.encode('{"model":"m"}') };
const nowMs = 1_790_000_000_000;

describe('member proofs of forwarded calls', () => {
  it('accepts the proof it made and refuses every change', () => {
    const proof = signForward(nodeAuthCrypto, secret, member, nowMs, subject);
    expect(verifyForward(nodeAuthCrypto, secret, isMember, proof, subject, nowMs + 5).ok).toBe(true);
    const refusal = (changed: Parameters<typeof verifyForward>[3], about = subject, at = nowMs): string | undefined => {
      const verdict = verifyForward(nodeAuthCrypto, secret, isMember, changed, about, at);
      return verdict.ok ? undefined : verdict.error;
    };
    expect(refusal(proof, { ...subject, requestId: 'req-2' })).toBe('bad-mac');
    expect(refusal(proof, { ...subject, accountId: 'acct-2' })).toBe('bad-mac');
    expect(refusal(proof, { ...subject, body: utf8.encode('{"model":"n"}') })).toBe('bad-mac');
    expect(refusal({ ...proof, timestampMs: proof.timestampMs + 1 })).toBe('bad-mac');
    expect(refusal({ ...proof, mac: proof.mac.toUpperCase() })).toBe('bad-mac');
    expect(refusal({ ...proof, member: 'aps-1' as NodeId })).toBe('unknown-member');
    expect(refusal(proof, subject, nowMs + forwardClockSkewMsMax + 1)).toBe('stale-timestamp');
    expect(verifyForward(nodeAuthCrypto, utf8.encode('another-mesh-secret'), isMember, proof, subject, nowMs).ok).toBe(false);
  });
});
