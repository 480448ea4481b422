import { err, ok, type Result } from '../../core/result.js';
import type { HeldCredential } from './held-credential.js';
import { isTokenText, parseCredentialObject } from './oauth-credential.js';

/**
 * The body of `PUT /pool/accounts/{id}/credential` (src/node/admin-routes.ts), without its
 * `reason`:
 *
 *   {"kind": "oauth", "accessToken": "...", "refreshToken": "...", "expiresAt": 1747909518727}
 *   {"kind": "api-key", "key": "sk-ant-..."}
 *
 * An `oauth` body may also be Claude Code's file as it is, `{"kind": "oauth", "claudeAiOauth":
 * {...}}`. Problems name the field, never a value.
 */
export function parseCredentialBody(body: Readonly<Record<string, unknown>>): Result<HeldCredential, { readonly field: string; readonly reason: string }> {
  const { kind, ...rest } = body;
  if (kind === 'api-key') {
    const unknown = Object.keys(rest).find((name) => name !== 'key');
    if (unknown !== undefined) return err({ field: unknown.slice(0, 64), reason: 'unknown field; an api-key credential takes key' });
    if (!isTokenText(rest.key)) return err({ field: 'key', reason: 'must be printable ASCII without spaces' });
    return ok({ kind: 'api-key', key: rest.key });
  }
  if (kind !== 'oauth') return err({ field: 'kind', reason: 'must be oauth or api-key' });
  const allowed = rest.claudeAiOauth === undefined ? ['accessToken', 'refreshToken', 'expiresAt'] : ['claudeAiOauth'];
  const unknown = Object.keys(rest).find((name) => !allowed.includes(name));
  if (unknown !== undefined) return err({ field: unknown.slice(0, 64), reason: `unknown field; an oauth credential takes ${allowed.join(', ')}` });
  const parsed = parseCredentialObject(rest);
  if (!parsed.ok) return err(parsed.error);
  return ok({ kind: 'oauth', credential: parsed.value });
}
