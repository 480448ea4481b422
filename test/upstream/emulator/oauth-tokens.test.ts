// Proves the OAuth token table: the configured key is the first access token and expires after
// one lifetime; a refresh rotates the refresh token (the used one is refused, attributed to its
// account), keeps the previous access token alive until its own expiry, and issues reproducible
// tokens; revocation and forced expiry work; and the table stays bounded per account.
import { describe, expect, it } from 'vitest';
import { emulatorAccessTokensPerAccountMax, emulatorRetiredRefreshTokensPerAccountMax } from '../../../src/core/limits.js';
import { OAuthTokens } from '../../../src/upstream/emulator/oauth-tokens.js';

const key = 'sk-ant-oat01-configured';
const refreshToken = 'sk-ant-ort01-configured';
const lifetimeMs = 5_000;

function table(seed = 1): OAuthTokens {
  const tokens = new OAuthTokens(seed);
  tokens.register(key, { refreshToken, accessTokenLifetimeMs: lifetimeMs }, 0);
  return tokens;
}

describe('OAuthTokens', () => {
  it('serves the configured key until one lifetime after start, then calls it expired', () => {
    const tokens = table();
    expect(tokens.lookup(key, 4_999)).toEqual({ kind: 'live', account: key });
    expect(tokens.lookup(key, 5_000)).toEqual({ kind: 'expired', account: key });
    expect(tokens.lookup('sk-ant-oat01-never-issued', 0)).toEqual({ kind: 'unknown' });
  });

  it('rotates the refresh token on every refresh and refuses the used one, naming its account', () => {
    const tokens = table();
    const first = tokens.refresh(refreshToken, 1_000);
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    expect(first.value).toMatchObject({ account: key, expiresInSeconds: 5, expiresAtMs: 6_000 });
    expect(first.value.accessToken).toMatch(/^sk-ant-oat01-[0-9a-f]{32}$/);
    expect(first.value.refreshToken).toMatch(/^sk-ant-ort01-[0-9a-f]{32}$/);
    expect(tokens.currentRefreshToken(key)).toBe(first.value.refreshToken);
    expect(tokens.refresh(refreshToken, 1_001)).toEqual({ ok: false, error: { kind: 'invalid-grant', account: key } });
    expect(tokens.refresh('sk-ant-ort01-never-issued', 1_001)).toEqual({ ok: false, error: { kind: 'invalid-grant', account: undefined } });
    const second = tokens.refresh(first.value.refreshToken, 2_000);
    expect(second.ok && second.value.refreshToken !== first.value.refreshToken && second.value.accessToken !== first.value.accessToken).toBe(true);
  });

  it('keeps earlier access tokens alive until their own expiry, as the real API does', () => {
    const tokens = table();
    const first = tokens.refresh(refreshToken, 4_000);
    if (!first.ok) throw new Error('refresh refused');
    expect(tokens.lookup(key, 4_500).kind).toBe('live');
    expect(tokens.lookup(first.value.accessToken, 4_500).kind).toBe('live');
    expect(tokens.lookup(key, 5_000).kind).toBe('expired');
    expect(tokens.lookup(first.value.accessToken, 8_999).kind).toBe('live');
    expect(tokens.lookup(first.value.accessToken, 9_000)).toEqual({ kind: 'expired', account: key });
  });

  it('issues the same tokens for the same seed and different ones for another', () => {
    const issue = (seed: number): string[] => {
      const tokens = table(seed);
      const issued = tokens.refresh(refreshToken, 0);
      return issued.ok ? [issued.value.accessToken, issued.value.refreshToken] : [];
    };
    expect(issue(3)).toEqual(issue(3));
    expect(issue(3)[0]).not.toBe(issue(4)[0]);
  });

  it('refuses every refresh after a revocation, and forgets nothing it must refuse', () => {
    const tokens = table();
    expect(tokens.revoke(key)).toBe(true);
    expect(tokens.currentRefreshToken(key)).toBeUndefined();
    expect(tokens.refresh(refreshToken, 0)).toEqual({ ok: false, error: { kind: 'invalid-grant', account: key } });
    expect(tokens.revoke('sk-ant-oat01-not-an-account')).toBe(false);
    // The access token already issued lives on: revoking the login is not revoking the token.
    expect(tokens.lookup(key, 1).kind).toBe('live');
  });

  it('expires every access token of the account on demand', () => {
    const tokens = table();
    const first = tokens.refresh(refreshToken, 0);
    if (!first.ok) throw new Error('refresh refused');
    expect(tokens.expireAccessTokens(key, 100)).toBe(true);
    expect(tokens.lookup(key, 100).kind).toBe('expired');
    expect(tokens.lookup(first.value.accessToken, 100).kind).toBe('expired');
    expect(tokens.expireAccessTokens('sk-ant-oat01-not-an-account', 100)).toBe(false);
  });

  it('remembers a bounded number of access tokens and retired refresh tokens per account', () => {
    const tokens = table();
    const refreshTokens = [refreshToken];
    let current = refreshToken;
    const rounds = Math.max(emulatorAccessTokensPerAccountMax, emulatorRetiredRefreshTokensPerAccountMax) + 2;
    for (let i = 0; i < rounds; i++) {
      const issued = tokens.refresh(current, i);
      if (!issued.ok) throw new Error('refresh refused');
      current = issued.value.refreshToken;
      refreshTokens.push(current);
    }
    // The configured key was the oldest access token: forgotten, so unknown rather than expired.
    expect(tokens.lookup(key, 0)).toEqual({ kind: 'unknown' });
    // The oldest retired refresh token is still refused, only no longer attributed.
    expect(tokens.refresh(refreshToken, rounds)).toEqual({ ok: false, error: { kind: 'invalid-grant', account: undefined } });
    expect(tokens.refresh(refreshTokens[rounds - 1] as string, rounds)).toEqual({ ok: false, error: { kind: 'invalid-grant', account: key } });
  });
});
