import { err, ok, type Result } from '../../core/result.js';
import { isJson } from './token-count.js';

/**
 * The body of `POST /v1/oauth/token`, the endpoint Claude Code and the relays call to renew a
 * subscription login (console.anthropic.com, now platform.claude.com). They send JSON,
 *
 *   {"grant_type": "refresh_token", "refresh_token": "sk-ant-ort01-...", "client_id": "9d1c250a-..."}
 *
 * (Wei-Shaw/claude-relay-service, src/services/account/claudeAccountService.js, and
 * Wei-Shaw/sub2api, backend/internal/pkg/oauth/oauth.go `RefreshTokenRequest`); a generic OAuth
 * client sends the same fields form-encoded (RFC 6749 §6), which is accepted too.
 *
 * A bad request is answered 400 with the RFC 6749 §5.2 error shape the real endpoint uses,
 * `{"error": "...", "error_description": "..."}` (its invalid_grant answer, quoted in
 * https://github.com/ex-machina-co/opencode-anthropic-auth/issues/162, has exactly these fields):
 * `invalid_request` for a missing, repeated or malformed field, `unsupported_grant_type` for any
 * grant but `refresh_token` (the emulator has no browser login, so no `authorization_code`).
 * The client id is required, as by the real endpoint, but any value is accepted.
 */
export interface RefreshRequest {
  readonly refreshToken: string;
  readonly clientId: string;
}

export type TokenErrorCode = 'invalid_request' | 'unsupported_grant_type' | 'invalid_grant';

export interface TokenError {
  readonly error: TokenErrorCode;
  readonly description: string;
}

/** RFC 6749 §5.2 body. */
export function tokenErrorBody(error: TokenError): { error: TokenErrorCode; error_description: string } {
  return { error: error.error, error_description: error.description };
}

const invalid = (description: string): Result<never, TokenError> => err({ error: 'invalid_request', description });

/** Parses a token request body given its `content-type`. */
export function parseTokenRequest(contentType: string | undefined, body: string): Result<RefreshRequest, TokenError> {
  const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  let fields: Record<string, unknown>;
  if (mediaType === 'application/json') {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return invalid('The request body is not valid JSON.');
    }
    if (!isJson(json)) return invalid('The request body must be a JSON object.');
    fields = json;
  } else if (mediaType === 'application/x-www-form-urlencoded') {
    fields = {};
    for (const [name, value] of new URLSearchParams(body)) {
      if (name in fields) return invalid(`Parameter ${name} is included more than once.`);
      fields[name] = value;
    }
  } else {
    return invalid('The content type must be application/json or application/x-www-form-urlencoded.');
  }
  const field = (name: string): Result<string, TokenError> => {
    const value = fields[name];
    if (value === undefined || value === '') return invalid(`Missing required parameter: ${name}.`);
    if (typeof value !== 'string') return invalid(`Parameter ${name} must be a string.`);
    return ok(value);
  };
  const grantType = field('grant_type');
  if (!grantType.ok) return grantType;
  if (grantType.value !== 'refresh_token')
    return err({
      error: 'unsupported_grant_type',
      description: `Grant type ${JSON.stringify(grantType.value).slice(0, 64)} is not supported here; use refresh_token.`,
    });
  const refreshToken = field('refresh_token');
  if (!refreshToken.ok) return refreshToken;
  const clientId = field('client_id');
  if (!clientId.ok) return clientId;
  return ok({ refreshToken: refreshToken.value, clientId: clientId.value });
}
