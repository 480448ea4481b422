import type { Metadata } from '@grpc/grpc-js';
import type { SignatureFields } from '../../admission/request-signature.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CarpoolCredentials } from './carpool-handler.js';

/**
 * Reads credentials from request metadata, as the header of proto/carpool/v1/carpool.proto
 * describes them:
 *
 *   x-api-key: <key>   or   authorization: Bearer <key>
 *   x-carpool-key-id, x-carpool-timestamp, x-carpool-nonce, x-carpool-signature
 *
 * Checking them is the authenticator's job (src/admission/request-auth.ts); this only refuses
 * metadata that cannot be read one way: a credential header sent twice, two different keys, an
 * `authorization` scheme other than Bearer. Picking one of two would ignore a credential the
 * client presented, which the authenticator's rules forbid, so such a call is refused as
 * unauthenticated, with the same generic reply as any other authentication failure.
 */

export type CredentialsProblem =
  /** One credential header carried more than one value. */
  | 'repeated-credential'
  /** `x-api-key` and `authorization: Bearer` carried different keys. */
  | 'conflicting-keys'
  /** `authorization` with a scheme other than Bearer, or no token. */
  | 'unsupported-authorization'
  /** A tenant's key or signature sent to the Admin service, which takes the admin token only. */
  | 'tenant-credentials-on-admin';

const signatureHeaders = {
  keyId: 'x-carpool-key-id',
  timestamp: 'x-carpool-timestamp',
  nonce: 'x-carpool-nonce',
  signature: 'x-carpool-signature',
} as const satisfies Record<keyof SignatureFields, string>;

// RFC 6750 §2.1: the scheme is case-insensitive, then one or more spaces, then the token.
const bearerPattern = /^bearer +(\S+) *$/i;

/** Every value a request sent for a header name (lowercase), as sent; empty when none. */
export type HeaderValues = (name: string) => readonly string[];

export function carpoolCredentialsOf(metadata: Metadata): Result<CarpoolCredentials, CredentialsProblem> {
  return credentialsFrom(metadataValues(metadata));
}

/**
 * The credentials of a request whatever carries its headers (gRPC metadata here, HTTP headers in
 * src/net/http/http-credentials.ts): one rule for every surface.
 */
export function credentialsFrom(valuesOf: HeaderValues): Result<CarpoolCredentials, CredentialsProblem> {
  const apiKey = single(valuesOf, 'x-api-key');
  const bearer = bearerOf(valuesOf);
  if (!apiKey.ok) return apiKey;
  if (!bearer.ok) return bearer;
  if (apiKey.value !== undefined && bearer.value !== undefined && apiKey.value !== bearer.value) return err('conflicting-keys');
  const signature = signatureOf(valuesOf);
  if (!signature.ok) return signature;
  return ok({ apiKey: apiKey.value ?? bearer.value, signature: signature.value });
}

/** Binary (`-bin`) values never name a credential; read as latin1 they simply fail to match. */
function metadataValues(metadata: Metadata): HeaderValues {
  return (name) => metadata.get(name).map((value) => (typeof value === 'string' ? value : value.toString('latin1')));
}

/** The admin token of `authorization: Bearer <token>`; undefined when the call had none. */
export function adminTokenOf(metadata: Metadata): Result<string | undefined, CredentialsProblem> {
  if (metadata.get('x-api-key').length > 0) return err('tenant-credentials-on-admin');
  for (const header of Object.values(signatureHeaders)) {
    if (metadata.get(header).length > 0) return err('tenant-credentials-on-admin');
  }
  return bearerOf(metadataValues(metadata));
}

/** A missing field of a signature is the empty string, so the authenticator refuses it as malformed instead of the request passing as unsigned. */
function signatureOf(valuesOf: HeaderValues): Result<SignatureFields | undefined, CredentialsProblem> {
  const keyId = single(valuesOf, signatureHeaders.keyId);
  const timestamp = single(valuesOf, signatureHeaders.timestamp);
  const nonce = single(valuesOf, signatureHeaders.nonce);
  const signature = single(valuesOf, signatureHeaders.signature);
  if (!keyId.ok) return keyId;
  if (!timestamp.ok) return timestamp;
  if (!nonce.ok) return nonce;
  if (!signature.ok) return signature;
  const fields = [keyId.value, timestamp.value, nonce.value, signature.value];
  if (fields.every((field) => field === undefined)) return ok(undefined);
  return ok({ keyId: keyId.value ?? '', timestamp: timestamp.value ?? '', nonce: nonce.value ?? '', signature: signature.value ?? '' });
}

function bearerOf(valuesOf: HeaderValues): Result<string | undefined, CredentialsProblem> {
  const authorization = single(valuesOf, 'authorization');
  if (!authorization.ok || authorization.value === undefined) return authorization;
  const match = bearerPattern.exec(authorization.value);
  if (match === null) return err('unsupported-authorization');
  return ok(match[1]);
}

/** The one value of a header, undefined when absent; sent twice, it is refused. */
function single(valuesOf: HeaderValues, name: string): Result<string | undefined, CredentialsProblem> {
  const values = valuesOf(name);
  if (values.length > 1) return err('repeated-credential');
  return ok(values[0]);
}
