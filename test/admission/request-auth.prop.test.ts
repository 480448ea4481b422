// Proves a correct signature verifies and a change to any signed byte makes it fail.
// For random requests, changing any one byte of any signed field (method, path, body, timestamp,
// nonce, key id, signature) makes verification fail without burning the nonce.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asTenantId, type TenantId } from '../../src/core/ids.js';
import { idLengthMax, signatureSkewMsMax, signedPathLengthMax } from '../../src/core/limits.js';
import { apiKeyHashHex, formatApiKey } from '../../src/admission/api-key.js';
import { type AuthRequest, RequestAuthenticator } from '../../src/admission/request-auth.js';
import { type SignatureFields, signRequest } from '../../src/admission/request-signature.js';
import { defaultTokenWeights, type Tenant } from '../../src/mesh/policy/policy-schema.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { checkProperty } from '../support/property.js';

const crypto = nodeAuthCrypto;
const nowMs = 1_750_000_000_000;

const printableChar = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code));
const printable = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: printableChar, minLength, maxLength });

const arbTenantId = printable(1, idLengthMax).map(asTenantId);
const arbSecret = fc.stringMatching(/^[A-Za-z0-9]{32,64}$/);
const arbMethod = fc.oneof(fc.constantFrom('POST', 'GET', 'PUT', 'DELETE'), fc.stringMatching(/^[A-Z]{1,16}$/));
const arbPath = printable(0, 300).map((rest) => `/${rest}`.slice(0, signedPathLengthMax));
const arbBody = fc.uint8Array({ maxLength: 1_024 });
const arbOffsetMs = fc.integer({ min: -signatureSkewMsMax, max: signatureSkewMsMax });
const arbNonce = printable(16, 64);

const signedFields = ['method', 'path', 'body', 'timestamp', 'nonce', 'keyId', 'signature'] as const;
type SignedField = (typeof signedFields)[number];

interface Mutation {
  readonly field: SignedField;
  readonly index: number;
  /** XORed into the byte or character code; never 0, so the value always changes. */
  readonly mask: number;
}

const arbMutation: fc.Arbitrary<Mutation> = fc.record({
  field: fc.constantFrom(...signedFields),
  index: fc.nat(),
  mask: fc.integer({ min: 1, max: 0xff }),
});

type SignedRequest = AuthRequest & { readonly signature: SignatureFields };

function mutateText(text: string, index: number, mask: number): string {
  const at = index % text.length;
  return text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ mask) + text.slice(at + 1);
}

/** The request with one byte of one field changed; undefined when the chosen field is empty. */
function mutate(request: SignedRequest, { field, index, mask }: Mutation): AuthRequest | undefined {
  switch (field) {
    case 'method':
      return { ...request, method: mutateText(request.method, index, mask) };
    case 'path':
      return { ...request, path: mutateText(request.path, index, mask) };
    case 'body': {
      if (request.body.length === 0) return undefined;
      const body = request.body.slice();
      const at = index % body.length;
      body[at] = (body[at] as number) ^ mask;
      return { ...request, body };
    }
    case 'timestamp':
    case 'nonce':
    case 'keyId':
    case 'signature':
      return { ...request, signature: { ...request.signature, [field]: mutateText(request.signature[field], index, mask) } };
  }
}

function authenticatorFor(tenantId: TenantId, key: string): RequestAuthenticator {
  const tenant: Tenant = {
    id: tenantId,
    tier: 'free',
    apiKeys: [{ hash: apiKeyHashHex(crypto, key), name: 'prop', createdAtMs: 0 }],
    requireSignature: true,
    concurrencyMax: 1,
    weights: defaultTokenWeights,
    limits: [],
    userLimits: [],
    userConcurrencyMax: 1,
  };
  return new RequestAuthenticator(crypto, (id) => (id === tenantId ? tenant : undefined));
}

describe('request signatures', () => {
  it('verify when correct and fail after any single-byte change to a signed field', () => {
    checkProperty(
      fc.property(
        arbTenantId,
        arbSecret,
        arbMethod,
        arbPath,
        arbBody,
        arbOffsetMs,
        arbNonce,
        arbMutation,
        (tenantId, secret, method, path, body, offsetMs, nonce, mutation) => {
          const key = formatApiKey(tenantId, secret);
          const content = { method, path, body };
          const request: SignedRequest = { ...content, signature: signRequest(crypto, key, content, nowMs + offsetMs, nonce) };
          const auth = authenticatorFor(tenantId, key);

          const mutated = mutate(request, mutation);
          fc.pre(mutated !== undefined);
          const refused = auth.authenticate(mutated, nowMs);
          expect(refused.ok).toBe(false);

          // The refusal remembered nothing, so the genuine request still passes, once.
          expect(auth.authenticate(request, nowMs)).toEqual({
            ok: true,
            value: { tenant: tenantId, keyId: request.signature.keyId, signed: true },
          });
          expect(auth.authenticate(request, nowMs)).toMatchObject({ ok: false, error: { reason: 'replayed-nonce' } });
        },
      ),
      300,
    );
  });
});
