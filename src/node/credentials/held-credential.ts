import { createHash } from 'node:crypto';
import type { Credential } from '../../upstream/upstream-request.js';
import type { OAuthCredential } from './oauth-credential.js';

/**
 * What a node holds for one account it calls:
 *
 *   api-key      an API key, sent as `x-api-key`
 *   oauth-token  a bare OAuth access token (the old `key`/`keyEnv`/`keyFile` forms of an `oauth`
 *                account): sent as a bearer token, never renewed
 *   oauth        a renewable subscription credential, renewed before it expires (./account-credentials.ts)
 */
export type HeldCredential =
  | { readonly kind: 'api-key'; readonly key: string }
  | { readonly kind: 'oauth-token'; readonly token: string }
  | { readonly kind: 'oauth'; readonly credential: OAuthCredential };

/** The credential an upstream call sends. */
export function upstreamCredentialOf(held: HeldCredential): Credential {
  switch (held.kind) {
    case 'api-key':
      return { kind: 'api-key', key: held.key };
    case 'oauth-token':
      return { kind: 'oauth', token: held.token };
    case 'oauth':
      return { kind: 'oauth', token: held.credential.accessToken };
  }
}

/**
 * A one-way fingerprint of the secret a credential descends from: the refresh token of a
 * renewable one (the access token changes at every refresh, the chain is named by where it
 * started), the key or token of the others. The store keeps it beside a rotated credential to
 * know whether the operator's file or variable still holds what that credential came from
 * (./credential-vault.ts); being a SHA-256 of a high-entropy secret, it reveals nothing of it.
 */
export function fingerprintOf(held: HeldCredential | undefined): string {
  if (held === undefined) return 'none';
  const secret = held.kind === 'api-key' ? held.key : held.kind === 'oauth-token' ? held.token : held.credential.refreshToken;
  return `${held.kind}:${createHash('sha256').update(secret).digest('hex')}`;
}

/** Every secret the credential holds, for tests and scrubbing; never for output. */
export function secretsOf(held: HeldCredential): string[] {
  switch (held.kind) {
    case 'api-key':
      return [held.key];
    case 'oauth-token':
      return [held.token];
    case 'oauth':
      return [held.credential.accessToken, held.credential.refreshToken];
  }
}
