import type { IncomingHttpHeaders } from 'node:http';
import { err, ok, type Result } from '../../core/result.js';
import type { CarpoolCredentials } from '../grpc/carpool-handler.js';
import { type CredentialsProblem, credentialsFrom } from '../grpc/metadata-credentials.js';

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

export function httpCredentialsOf(headers: DistinctHeaders): Result<CarpoolCredentials, CredentialsProblem> {
  return credentialsFrom((name) => headers[name] ?? []);
}

/** The value of a header sent at most once; undefined when absent. */
export function singleHeader(headers: DistinctHeaders | IncomingHttpHeaders, name: string): Result<string | undefined, 'repeated'> {
  const values = headers[name];
  if (values === undefined) return ok(undefined);
  if (typeof values === 'string') return ok(values);
  if (values.length > 1) return err('repeated');
  return ok(values[0]);
}
