import { assert } from '../core/assert.js';
import { adminTokensMax } from '../core/limits.js';
import { type AuthCrypto, constantTimeEqual } from './auth-crypto.js';

/**
 * Who may call the admin surface, and what they may do: one role model for the admin HTTP
 * endpoint (src/net/admin-http.ts) and the gRPC Admin service (src/node/gateway/admin-gateway.ts).
 *
 * A caller presents a bearer token; each configured token has a name (what the audit log records
 * as the actor, never the token) and a role:
 *
 *   viewer  reads: status, metrics, counters, policy, keys (metadata), pool, usage, audit
 *   admin   reads, and every write: policy edits, settings, keys (create, revoke, rotate),
 *           account re-enable, usage adjustments
 *
 * The HTTP endpoint classes a request by its method (GET reads, anything else writes); the gRPC
 * service by a table over its methods. A token that matches nobody is refused with the same
 * answer as a missing one (401 / UNAUTHENTICATED), and a known token without the role gets 403 /
 * PERMISSION_DENIED.
 *
 * Tokens are compared through their SHA-256 digests with a constant-time comparison, against
 * every configured token without stopping at a match: the time taken says neither how long a
 * token is, how much of it matched, nor which entry it matched.
 */
export const adminRoles = ['viewer', 'admin'] as const;
export type AdminRole = (typeof adminRoles)[number];

/** What a call does: `read` needs `viewer` or more, `write` needs `admin`. */
export type AdminAccess = 'read' | 'write';

export interface AdminPrincipal {
  /** The token's configured name: `admin` for the node's `adminToken`. Safe to log. */
  readonly name: string;
  readonly role: AdminRole;
}

export interface AdminTokenEntry extends AdminPrincipal {
  readonly token: string;
}

export function roleAllows(role: AdminRole, access: AdminAccess): boolean {
  return access === 'read' || role === 'admin';
}

export function isAdminRole(value: unknown): value is AdminRole {
  return typeof value === 'string' && (adminRoles as readonly string[]).includes(value);
}

const utf8 = new TextEncoder();

export class AdminTokens {
  private readonly entries: readonly { readonly principal: AdminPrincipal; readonly digest: Uint8Array }[];

  /**
   * Names and token values must be distinct (the configuration checks it and names the field);
   * two entries with one token would make the caller's identity ambiguous.
   */
  constructor(
    private readonly crypto: AuthCrypto,
    entries: readonly AdminTokenEntry[],
  ) {
    assert(entries.length <= adminTokensMax, 'admin tokens stay within adminTokensMax');
    assert(new Set(entries.map((entry) => entry.name)).size === entries.length, 'admin token names are distinct');
    assert(new Set(entries.map((entry) => entry.token)).size === entries.length, 'admin token values are distinct');
    this.entries = entries.map((entry) => ({
      principal: Object.freeze({ name: entry.name, role: entry.role }),
      digest: crypto.sha256(utf8.encode(entry.token)),
    }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal whose token this is; undefined for a missing or unknown token. */
  authenticate(token: string | undefined): AdminPrincipal | undefined {
    if (token === undefined) return undefined;
    const digest = this.crypto.sha256(utf8.encode(token));
    let matched: AdminPrincipal | undefined;
    for (const entry of this.entries) {
      if (constantTimeEqual(digest, entry.digest) && matched === undefined) matched = entry.principal;
    }
    return matched;
  }
}
