import { assert } from '../../core/assert.js';
import { emulatorAccessTokensPerAccountMax, emulatorRetiredRefreshTokensPerAccountMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { PromptHash } from './prompt-hash.js';

/**
 * The OAuth credentials of the emulator's subscription accounts: which access tokens name which
 * account and until when, and the one refresh token each account currently honours.
 *
 * Lifecycle, as the real token endpoint has it:
 *   - a refresh (`grant_type=refresh_token`) issues a new access token *and a new refresh token*;
 *     the one presented is retired at once, and presenting it again is refused `invalid_grant`
 *     ("returns a new access token, plus a rotated refresh token",
 *     https://github.com/anthropics/claude-code/issues/53063);
 *   - access tokens issued earlier stay valid until their own expiry, so a request already on its
 *     way with the previous token still succeeds; past its expiry a token is answered 401
 *     "OAuth token has expired" (emulator-server.ts has the body and its source);
 *   - the account's configured key is its first access token, valid for one lifetime from start.
 *
 * Bounds: an account remembers its `emulatorAccessTokensPerAccountMax` newest access tokens (an
 * older one is unknown, answered like any unknown token) and `emulatorRetiredRefreshTokensPerAccountMax`
 * retired refresh tokens (an older one is still refused, only no longer attributed to the account).
 * Tokens are derived from the seed, the account and a counter, so a run is reproducible.
 * Time comes in as `nowMs`.
 */
export interface OAuthAccountConfig {
  /** The refresh token honoured at start. */
  readonly refreshToken: string;
  /** How long each access token lives, the configured key included. */
  readonly accessTokenLifetimeMs: number;
}

export type AccessTokenLookup =
  { readonly kind: 'live'; readonly account: string } | { readonly kind: 'expired'; readonly account: string } | { readonly kind: 'unknown' };

export interface IssuedTokens {
  readonly account: string;
  readonly accessToken: string;
  readonly refreshToken: string;
  /** Whole seconds, rounded down, so a client that trusts it refreshes early, never late. */
  readonly expiresInSeconds: number;
  readonly expiresAtMs: number;
}

export interface RefreshRefused {
  readonly kind: 'invalid-grant';
  /** The account a retired or revoked token belonged to, when it is still remembered. */
  readonly account: string | undefined;
}

interface AccountTokens {
  readonly config: OAuthAccountConfig;
  /** Oldest first; at most emulatorAccessTokensPerAccountMax. */
  readonly accessTokens: string[];
  /** Oldest first; at most emulatorRetiredRefreshTokensPerAccountMax. */
  readonly retiredRefreshTokens: string[];
  refreshToken: string | undefined;
  issued: number;
}

export class OAuthTokens {
  private readonly accounts = new Map<string, AccountTokens>();
  private readonly accessTokens = new Map<string, { readonly account: string; expiresAtMs: number }>();
  private readonly refreshTokens = new Map<string, string>();
  private readonly retiredRefreshTokens = new Map<string, string>();

  constructor(private readonly seed: number) {}

  /** Adds an account whose configured key is its first access token, expiring one lifetime after `nowMs`. */
  register(account: string, config: OAuthAccountConfig, nowMs: number): void {
    assert(!this.accounts.has(account) && !this.accessTokens.has(account), 'an account is registered once');
    assert(!this.refreshTokens.has(config.refreshToken) && !this.retiredRefreshTokens.has(config.refreshToken), 'refresh tokens are distinct');
    assert(Number.isSafeInteger(config.accessTokenLifetimeMs) && config.accessTokenLifetimeMs >= 1000, 'an access token lives at least a second');
    this.accounts.set(account, { config, accessTokens: [], retiredRefreshTokens: [], refreshToken: config.refreshToken, issued: 0 });
    this.refreshTokens.set(config.refreshToken, account);
    this.addAccessToken(account, account, nowMs + config.accessTokenLifetimeMs);
  }

  has(account: string): boolean {
    return this.accounts.has(account);
  }

  lookup(accessToken: string, nowMs: number): AccessTokenLookup {
    const entry = this.accessTokens.get(accessToken);
    if (entry === undefined) return { kind: 'unknown' };
    return nowMs < entry.expiresAtMs ? { kind: 'live', account: entry.account } : { kind: 'expired', account: entry.account };
  }

  /** Exchanges a current refresh token for a new access token and a new refresh token; the presented one is retired. */
  refresh(refreshToken: string, nowMs: number): Result<IssuedTokens, RefreshRefused> {
    const account = this.refreshTokens.get(refreshToken);
    if (account === undefined) return err({ kind: 'invalid-grant', account: this.retiredRefreshTokens.get(refreshToken) });
    const tokens = this.accounts.get(account) as AccountTokens;
    this.retire(tokens, account);
    tokens.issued += 1;
    const accessToken = this.newToken('sk-ant-oat01-', account, tokens.issued);
    const nextRefreshToken = this.newToken('sk-ant-ort01-', account, tokens.issued);
    assert(!this.refreshTokens.has(nextRefreshToken) && !this.retiredRefreshTokens.has(nextRefreshToken), 'issued refresh tokens are distinct');
    tokens.refreshToken = nextRefreshToken;
    this.refreshTokens.set(nextRefreshToken, account);
    const expiresAtMs = nowMs + tokens.config.accessTokenLifetimeMs;
    this.addAccessToken(account, accessToken, expiresAtMs);
    return ok({ account, accessToken, refreshToken: nextRefreshToken, expiresInSeconds: Math.floor(tokens.config.accessTokenLifetimeMs / 1000), expiresAtMs });
  }

  /** Revokes the account's refresh token: every later refresh of the account is refused. False for an unknown account. */
  revoke(account: string): boolean {
    const tokens = this.accounts.get(account);
    if (tokens === undefined) return false;
    this.retire(tokens, account);
    return true;
  }

  /** Ends the life of every access token of the account now; false for an unknown account. */
  expireAccessTokens(account: string, nowMs: number): boolean {
    const tokens = this.accounts.get(account);
    if (tokens === undefined) return false;
    for (const token of tokens.accessTokens) {
      const entry = this.accessTokens.get(token);
      if (entry !== undefined) entry.expiresAtMs = Math.min(entry.expiresAtMs, nowMs);
    }
    return true;
  }

  /** The refresh token the account honours now, undefined once revoked: for tests and the launcher. */
  currentRefreshToken(account: string): string | undefined {
    return this.accounts.get(account)?.refreshToken;
  }

  private retire(tokens: AccountTokens, account: string): void {
    const current = tokens.refreshToken;
    if (current === undefined) return;
    this.refreshTokens.delete(current);
    tokens.refreshToken = undefined;
    tokens.retiredRefreshTokens.push(current);
    this.retiredRefreshTokens.set(current, account);
    if (tokens.retiredRefreshTokens.length > emulatorRetiredRefreshTokensPerAccountMax) {
      this.retiredRefreshTokens.delete(tokens.retiredRefreshTokens.shift() as string);
    }
  }

  private addAccessToken(account: string, token: string, expiresAtMs: number): void {
    const tokens = this.accounts.get(account) as AccountTokens;
    assert(!this.accessTokens.has(token), 'issued access tokens are distinct');
    tokens.accessTokens.push(token);
    this.accessTokens.set(token, { account, expiresAtMs });
    if (tokens.accessTokens.length > emulatorAccessTokensPerAccountMax) this.accessTokens.delete(tokens.accessTokens.shift() as string);
  }

  private newToken(prefix: string, account: string, issued: number): string {
    const hash = new PromptHash().update(`carpool-emulator-oauth:${this.seed}`).update(prefix).update(account).update(String(issued));
    const first = hash.digest();
    // 128 bits from two chained digests: long enough that no test meets a collision.
    return `${prefix}${first}${hash.update(first).digest()}`;
  }
}
