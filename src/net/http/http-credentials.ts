import type { IncomingHttpHeaders } from 'node:http';
import type { SignatureFields } from '../../admission/request-signature.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CarpoolCredentials } from '../grpc/carpool-handler.js';
import type { CredentialsProblem } from '../grpc/metadata-credentials.js';

/**
 * A tenant's credentials from HTTP request headers, by the rules the gRPC metadata follows
 * (../grpc/metadata-credentials.ts):
 *
 *   x-api-key: <key>   or   Authorization: Bearer <key>   (Claude Code's ANTHROPIC_AUTH_TOKEN)
 *   x-carpool-key-id, x-carpool-timestamp, x-carpool-nonce, x-carpool-signature   (signed requests)
 *
 * What a signature covers over HTTP is `method "\n" target "\n" timestamp "\n" nonce "\n"
 * hex(SHA-256(body))` with the method as sent (`POST`, `GET`), the request target exactly as
 * received (path and query, `/v1/messages?beta=true`) and the body's raw bytes (empty for a GET):
 * src/admission/request-signature.ts. Checking is the authenticator's; this only refuses headers
 * that cannot be read one way (a credential header sent twice, two different keys, a scheme other
 * than Bearer), with the same generic answer as any failed authentication.
 *
 * Takes Node's `headersDistinct` (every value of a header, as sent), since `headers` would join
 * repeated values with commas, or keep only the first `authorization`.
 */
export type DistinctHeaders = Readonly<Record<string, readonly string[] | undefined>>;

const signatureHeaders = {
  keyId: 'x-carpool-key-id',
  timestamp: 'x-carpool-timestamp',
  nonce: 'x-carpool-nonce',
  signature: 'x-carpool-signature',
} as const satisfies Record<keyof SignatureFields, string>;

// RFC 6750 §2.1: the scheme is case-insensitive, then one or more spaces, then the token.
const bearerPattern = /^bearer +(\S+) *$/i;

export function httpCredentialsOf(headers: DistinctHeaders): Result<CarpoolCredentials, CredentialsProblem> {
  const apiKey = single(headers, 'x-api-key');
  if (!apiKey.ok) return apiKey;
  const authorization = single(headers, 'authorization');
  if (!authorization.ok) return authorization;
  let bearer: string | undefined;
  if (authorization.value !== undefined) {
    const match = bearerPattern.exec(authorization.value);
    if (match === null) return err('unsupported-authorization');
    bearer = match[1];
  }
  if (apiKey.value !== undefined && bearer !== undefined && apiKey.value !== bearer) return err('conflicting-keys');
  const fields: Partial<Record<keyof SignatureFields, string>> = {};
  let anySignature = false;
  for (const [field, header] of Object.entries(signatureHeaders) as [keyof SignatureFields, string][]) {
    const value = single(headers, header);
    if (!value.ok) return value;
    if (value.value !== undefined) anySignature = true;
    fields[field] = value.value ?? '';
  }
  // A missing field of a signature is the empty string, so the authenticator refuses it as
  // malformed instead of the request passing as unsigned.
  const signature: SignatureFields | undefined = anySignature
    ? { keyId: fields.keyId ?? '', timestamp: fields.timestamp ?? '', nonce: fields.nonce ?? '', signature: fields.signature ?? '' }
    : undefined;
  return ok({ apiKey: apiKey.value ?? bearer, signature });
}

/** The value of a header sent at most once; undefined when absent. */
export function singleHeader(headers: DistinctHeaders | IncomingHttpHeaders, name: string): Result<string | undefined, 'repeated'> {
  const values = headers[name];
  if (values === undefined) return ok(undefined);
  if (typeof values === 'string') return ok(values);
  if (values.length > 1) return err('repeated');
  return ok(values[0]);
}

function single(headers: DistinctHeaders, name: string): Result<string | undefined, CredentialsProblem> {
  const value = singleHeader(headers, name);
  return value.ok ? value : err('repeated-credential');
}
