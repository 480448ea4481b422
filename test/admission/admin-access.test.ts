// Proves the admin role model: a viewer reads and never writes, an admin does both.
// A token authenticates as its configured name and role only when it is one of the configured
// tokens, every configured token is compared (no early exit), and two names sharing a token are
// refused.
import { describe, expect, it } from 'vitest';
import { AdminTokens, roleAllows } from '../../src/admission/admin-access.js';
import type { AuthCrypto } from '../../src/admission/auth-crypto.js';
import { AssertionError } from '../../src/core/assert.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';

const entries = [
  { name: 'admin', role: 'admin' as const, token: 'the-admin-token-0123' },
  { name: 'grafana', role: 'viewer' as const, token: 'the-viewer-token-0123' },
];

describe('roles', () => {
  it('let a viewer read only, and an admin read and write', () => {
    expect([roleAllows('viewer', 'read'), roleAllows('viewer', 'write')]).toEqual([true, false]);
    expect([roleAllows('admin', 'read'), roleAllows('admin', 'write')]).toEqual([true, true]);
  });
});

describe('AdminTokens', () => {
  it('names the caller of a configured token, and nobody for any other', () => {
    const tokens = new AdminTokens(nodeAuthCrypto, entries);
    expect(tokens.authenticate('the-admin-token-0123')).toEqual({ name: 'admin', role: 'admin' });
    expect(tokens.authenticate('the-viewer-token-0123')).toEqual({ name: 'grafana', role: 'viewer' });
    for (const wrong of [undefined, '', 'the-admin-token-012', 'the-admin-token-01234', 'THE-ADMIN-TOKEN-0123', 'admin']) {
      expect(tokens.authenticate(wrong)).toBeUndefined();
    }
    expect(new AdminTokens(nodeAuthCrypto, []).authenticate('the-admin-token-0123')).toBeUndefined();
  });

  it('hashes the presented token once and compares it with every configured digest', () => {
    let hashed = 0;
    const counting: AuthCrypto = {
      sha256: (bytes) => (hashed++, nodeAuthCrypto.sha256(bytes)),
      hmacSha256: (key, message) => nodeAuthCrypto.hmacSha256(key, message),
    };
    const tokens = new AdminTokens(counting, entries);
    hashed = 0;
    tokens.authenticate('the-admin-token-0123');
    tokens.authenticate('no-such-token-000000');
    // One hash per call, whether the token matched the first entry or none.
    expect(hashed).toBe(2);
  });

  it('refuses two names with one token, or one name twice', () => {
    expect(() => new AdminTokens(nodeAuthCrypto, [entries[0]!, { ...entries[1]!, token: entries[0]!.token }])).toThrow(AssertionError);
    expect(() => new AdminTokens(nodeAuthCrypto, [entries[0]!, { ...entries[1]!, name: 'admin' }])).toThrow(AssertionError);
  });
});
