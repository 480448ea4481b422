import { oauthCredentialBytesMax, oauthTokenLengthMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';

/**
 * A renewable subscription credential: the access token sent as `authorization: Bearer`, the
 * refresh token that buys the next one, and when the access token expires.
 *
 * The JSON an operator gives (a file of mode 0600, an environment variable, or the admin call) is
 * the shape Claude Code keeps in `~/.claude/.credentials.json` on Linux, so that file can be used
 * as it is:
 *
 *   {"claudeAiOauth": {"accessToken": "sk-ant-oat01-...", "refreshToken": "sk-ant-ort01-...",
 *                      "expiresAt": 1747909518727, "scopes": [...], ...}}
 *
 * (`expiresAt` in milliseconds since the epoch; the shape is described in
 * RavenStorm-bit/claude-token-refresh README.md, "Supported Configuration Formats", and the
 * Claude Code 2.1.332 binary this repository installs as a devDependency builds exactly
 * `{accessToken, refreshToken, expiresAt, ...}` after a refresh.) The bare inner object,
 * `{"accessToken": ..., "refreshToken": ..., "expiresAt": ...}`, is accepted too. Other fields
 * (scopes, subscriptionType) are ignored on read and kept on a write back (`credentialJson`).
 *
 * Errors name the field and never carry a value: a token must not reach a log line.
 */
export interface OAuthCredential {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** When the access token expires, ms since the epoch. */
  readonly expiresAtMs: number;
}

export interface CredentialProblem {
  /** The field at fault, under the credential (`accessToken`, `claudeAiOauth.expiresAt`). */
  readonly field: string;
  readonly reason: string;
}

const tokenPattern = /^[\x21-\x7e]+$/;

/** Whether `text` can be a token: printable ASCII without spaces (it travels in a header), bounded. */
export function isTokenText(text: unknown): text is string {
  return typeof text === 'string' && text.length > 0 && text.length <= oauthTokenLengthMax && tokenPattern.test(text);
}

/** Reads the credential from its JSON text (a file's or a variable's). */
export function parseCredentialJson(text: string): Result<OAuthCredential, CredentialProblem> {
  if (text.length > oauthCredentialBytesMax) return err({ field: '(credential)', reason: `is longer than ${oauthCredentialBytesMax} characters` });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // The parser's message quotes the text near the fault, which may be a token: not passed on.
    return err({ field: '(credential)', reason: 'is not JSON: give {"accessToken", "refreshToken", "expiresAt"} or Claude Code\'s {"claudeAiOauth": {...}}' });
  }
  return parseCredentialObject(raw);
}

/** Reads the credential from parsed JSON (an admin call's body). */
export function parseCredentialObject(raw: unknown): Result<OAuthCredential, CredentialProblem> {
  if (!isRecord(raw)) return err({ field: '(credential)', reason: 'must be a JSON object' });
  const nested = raw.claudeAiOauth !== undefined;
  const inner = nested ? raw.claudeAiOauth : raw;
  const prefix = nested ? 'claudeAiOauth.' : '';
  if (!isRecord(inner)) return err({ field: 'claudeAiOauth', reason: 'must be an object with accessToken, refreshToken and expiresAt' });
  if (!isTokenText(inner.accessToken))
    return err({ field: `${prefix}accessToken`, reason: `must be 1 to ${oauthTokenLengthMax} printable ASCII characters without spaces` });
  if (!isTokenText(inner.refreshToken))
    return err({ field: `${prefix}refreshToken`, reason: `must be 1 to ${oauthTokenLengthMax} printable ASCII characters without spaces` });
  if (inner.accessToken === inner.refreshToken) return err({ field: `${prefix}refreshToken`, reason: 'must differ from accessToken' });
  const expiresAt = inner.expiresAt;
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt <= 0) {
    return err({ field: `${prefix}expiresAt`, reason: 'must be the expiry in milliseconds since the epoch, a positive integer' });
  }
  return ok({ accessToken: inner.accessToken, refreshToken: inner.refreshToken, expiresAtMs: expiresAt });
}

/**
 * The credential as JSON in Claude Code's shape, for a write back to the operator's file. The
 * fields of `previous` (the file's JSON as it was) that are not the credential's are kept, so a
 * file shared with Claude Code keeps its scopes and subscription type.
 */
export function credentialJson(credential: OAuthCredential, previous: unknown): string {
  const fields = { accessToken: credential.accessToken, refreshToken: credential.refreshToken, expiresAt: credential.expiresAtMs };
  // A file in the bare shape stays bare.
  if (isRecord(previous) && previous.claudeAiOauth === undefined && previous.accessToken !== undefined)
    return `${JSON.stringify({ ...previous, ...fields }, null, 2)}\n`;
  const outer = isRecord(previous) ? previous : {};
  const inner = isRecord(outer.claudeAiOauth) ? { ...outer.claudeAiOauth, ...fields } : fields;
  return `${JSON.stringify({ ...outer, claudeAiOauth: inner }, null, 2)}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
