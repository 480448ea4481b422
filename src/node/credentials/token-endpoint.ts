import { oauthTokenResponseBytesMax, oauthTokenTimeoutMs } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Clock } from '../../core/clock.js';
import type { OAuthSettings } from '../node-config.js';
import { isTokenText, type OAuthCredential } from './oauth-credential.js';

/**
 * One refresh at the OAuth token endpoint (RFC 6749 §6), as Claude Code makes it:
 *
 *   POST {tokenUrl}
 *   content-type: application/json
 *   {"grant_type": "refresh_token", "refresh_token": "sk-ant-ort01-...", "client_id": "9d1c250a-..."}
 *
 *   200 {"access_token": "...", "refresh_token": "...", "expires_in": 28800, ...}
 *   400 {"error": "invalid_grant", "error_description": "..."}          (RFC 6749 §5.2)
 *
 * (the request and the answer's fields as the Claude Code 2.1.332 binary under node_modules sends
 * and reads them; it keeps the old refresh token when the answer has none, and so does this.) The
 * refresh token rotates: the one sent is void once the answer arrives, so the caller keeps the new
 * one durably before anything else.
 *
 * Outcomes. A 400, 401 or 403 says the grant (or the client) is bad: retrying cannot help, so it
 * is `refused`, with the RFC's error code when the body has one. Everything else (no connection,
 * a timeout, 429, a 5xx, an answer that does not parse) is `transient`: the refresher retries it.
 * No detail ever carries a token, and an error description from the endpoint is not passed on.
 */
export type RefreshFailure =
  { readonly kind: 'transient'; readonly detail: string } | { readonly kind: 'refused'; readonly status: number; readonly code: string };

export interface TokenEndpoint {
  refresh(refreshToken: string): Promise<Result<OAuthCredential, RefreshFailure>>;
}

export interface HttpTokenEndpointOptions {
  readonly clock: Clock;
  readonly timeoutMs?: number;
  /** The fetch to use; the global one (undici) by default. */
  readonly fetch?: typeof fetch;
}

const errorCodePattern = /^[a-z][a-z0-9_.-]{0,63}$/i;

export class HttpTokenEndpoint implements TokenEndpoint {
  private readonly fetch: typeof fetch;

  constructor(
    private readonly settings: Pick<OAuthSettings, 'tokenUrl' | 'clientId'>,
    private readonly options: HttpTokenEndpointOptions,
  ) {
    this.fetch = options.fetch ?? fetch;
  }

  async refresh(refreshToken: string): Promise<Result<OAuthCredential, RefreshFailure>> {
    let response: Response;
    let text: string;
    const sentMs = this.options.clock.nowMs();
    try {
      response = await this.fetch(this.settings.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: this.settings.clientId }),
        // A redirected POST may come back as a GET elsewhere: the configured URL must be the endpoint.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? oauthTokenTimeoutMs),
      });
      text = await readBounded(response);
    } catch (error) {
      // Network errors name the host at most; the body (with the token) is never part of them.
      const name = error instanceof Error ? error.name : 'error';
      if (name === 'TimeoutError') return err({ kind: 'transient', detail: 'the token endpoint did not answer in time' });
      if (name === 'OversizedAnswer') return err({ kind: 'transient', detail: `the token endpoint's answer is over ${oauthTokenResponseBytesMax} bytes` });
      return err({ kind: 'transient', detail: `the token endpoint could not be reached (${name})` });
    }
    if (response.status === 400 || response.status === 401 || response.status === 403) {
      return err({ kind: 'refused', status: response.status, code: errorCodeOf(text) ?? `http-${response.status}` });
    }
    if (response.status !== 200) return err({ kind: 'transient', detail: `the token endpoint answered ${response.status}` });
    return credentialOf(text, refreshToken, sentMs);
  }
}

/** The body as text, at most `oauthTokenResponseBytesMax` bytes of it. */
async function readBounded(response: Response): Promise<string> {
  const reader = response.body?.getReader() as ReadableStreamDefaultReader<Uint8Array> | undefined;
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > oauthTokenResponseBytesMax) {
      await reader.cancel();
      throw Object.assign(new Error('the answer is too large'), { name: 'OversizedAnswer' });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `error` of an RFC 6749 body, or `error.type` of an Anthropic one, when it reads as a code. */
function errorCodeOf(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const error = (body as Record<string, unknown>).error;
  const code = typeof error === 'string' ? error : typeof error === 'object' && error !== null ? (error as Record<string, unknown>).type : undefined;
  return typeof code === 'string' && errorCodePattern.test(code) ? code : undefined;
}

function credentialOf(text: string, sentRefreshToken: string, sentMs: number): Result<OAuthCredential, RefreshFailure> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return err({ kind: 'transient', detail: 'the token endpoint answered 200 with a body that is not JSON' });
  }
  if (typeof body !== 'object' || body === null) return err({ kind: 'transient', detail: 'the token endpoint answered 200 without a JSON object' });
  const fields = body as Record<string, unknown>;
  const refreshToken = fields.refresh_token ?? sentRefreshToken;
  if (!isTokenText(fields.access_token)) return err({ kind: 'transient', detail: 'the token endpoint answered 200 without a usable access_token' });
  if (!isTokenText(refreshToken)) return err({ kind: 'transient', detail: 'the token endpoint answered 200 with an unusable refresh_token' });
  const expiresIn = fields.expires_in;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0)
    return err({ kind: 'transient', detail: 'the token endpoint answered 200 without a positive expires_in' });
  // From when the request left: the token's life started at most then, so this errs early.
  return ok({ accessToken: fields.access_token, refreshToken, expiresAtMs: sentMs + Math.floor(expiresIn * 1000) });
}
