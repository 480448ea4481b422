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

export function carpoolCredentialsOf(metadata: Metadata): Result<CarpoolCredentials, CredentialsProblem> {
  const apiKey = single(metadata, 'x-api-key');
  const bearer = bearerOf(metadata);
  if (!apiKey.ok) return apiKey;
  if (!bearer.ok) return bearer;
  if (apiKey.value !== undefined && bearer.value !== undefined && apiKey.value !== bearer.value) return err('conflicting-keys');
  const signature = signatureOf(metadata);
  if (!signature.ok) return signature;
  return ok({ apiKey: apiKey.value ?? bearer.value, signature: signature.value });
}

/** The admin token of `authorization: Bearer <token>`; undefined when the call had none. */
export function adminTokenOf(metadata: Metadata): Result<string | undefined, CredentialsProblem> {
  if (metadata.get('x-api-key').length > 0) return err('tenant-credentials-on-admin');
  for (const header of Object.values(signatureHeaders)) {
    if (metadata.get(header).length > 0) return err('tenant-credentials-on-admin');
  }
  return bearerOf(metadata);
}

function signatureOf(metadata: Metadata): Result<SignatureFields | undefined, CredentialsProblem> {
  const keyId = single(metadata, signatureHeaders.keyId);
  const timestamp = single(metadata, signatureHeaders.timestamp);
  const nonce = single(metadata, signatureHeaders.nonce);
  const signature = single(metadata, signatureHeaders.signature);
  if (!keyId.ok) return keyId;
  if (!timestamp.ok) return timestamp;
  if (!nonce.ok) return nonce;
  if (!signature.ok) return signature;
  const fields = [keyId.value, timestamp.value, nonce.value, signature.value];
  if (fields.every((field) => field === undefined)) return ok(undefined);
  return ok({ keyId: keyId.value ?? '', timestamp: timestamp.value ?? '', nonce: nonce.value ?? '', signature: signature.value ?? '' });
}

function bearerOf(metadata: Metadata): Result<string | undefined, CredentialsProblem> {
  const authorization = single(metadata, 'authorization');
  if (!authorization.ok || authorization.value === undefined) return authorization;
  const match = bearerPattern.exec(authorization.value);
  if (match === null) return err('unsupported-authorization');
  return ok(match[1]);
}

/** The one text value of a header, undefined when absent. Binary (`-bin`) values never name a credential. */
function single(metadata: Metadata, name: string): Result<string | undefined, CredentialsProblem> {
  const values = metadata.get(name);
  if (values.length > 1) return err('repeated-credential');
  const value = values[0];
  if (value === undefined) return ok(undefined);
  return ok(typeof value === 'string' ? value : value.toString('latin1'));
}
