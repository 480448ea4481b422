// Proves credentials are read from metadata as the contract describes.
// Metadata which could be read two ways is refused rather than half ignored.
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { adminTokenOf, carpoolCredentialsOf } from '../../../src/net/grpc/metadata-credentials.js';

function metadataOf(entries: ReadonlyArray<readonly [string, string]>): Metadata {
  const metadata = new Metadata();
  for (const [name, value] of entries) metadata.add(name, value);
  return metadata;
}

const key = 'cp_acme_0123456789abcdef0123456789abcdef';

describe('carpoolCredentialsOf', () => {
  it('reads x-api-key, or a Bearer token in any letter case, or both when they agree', () => {
    expect(carpoolCredentialsOf(metadataOf([['x-api-key', key]]))).toEqual({ ok: true, value: { apiKey: key, signature: undefined } });
    expect(carpoolCredentialsOf(metadataOf([['authorization', `bearer  ${key}`]]))).toEqual({ ok: true, value: { apiKey: key, signature: undefined } });
    expect(
      carpoolCredentialsOf(
        metadataOf([
          ['x-api-key', key],
          ['authorization', `Bearer ${key}`],
        ]),
      ),
    ).toEqual({
      ok: true,
      value: { apiKey: key, signature: undefined },
    });
    expect(carpoolCredentialsOf(new Metadata())).toEqual({ ok: true, value: { apiKey: undefined, signature: undefined } });
  });

  it('reads the four signature fields, filling missing ones with the empty string', () => {
    const full = carpoolCredentialsOf(
      metadataOf([
        ['x-carpool-key-id', 'acme:0123abcd'],
        ['x-carpool-timestamp', '1700000000000'],
        ['x-carpool-nonce', 'n'.repeat(16)],
        ['x-carpool-signature', 'f'.repeat(64)],
      ]),
    );
    expect(full).toEqual({
      ok: true,
      value: { apiKey: undefined, signature: { keyId: 'acme:0123abcd', timestamp: '1700000000000', nonce: 'n'.repeat(16), signature: 'f'.repeat(64) } },
    });
    const partial = carpoolCredentialsOf(metadataOf([['x-carpool-nonce', 'n'.repeat(16)]]));
    expect(partial.ok && partial.value.signature).toEqual({ keyId: '', timestamp: '', nonce: 'n'.repeat(16), signature: '' });
  });

  it('refuses repeated, conflicting and non-Bearer credentials', () => {
    expect(
      carpoolCredentialsOf(
        metadataOf([
          ['x-api-key', key],
          ['x-api-key', key],
        ]),
      ),
    ).toEqual({ ok: false, error: 'repeated-credential' });
    expect(
      carpoolCredentialsOf(
        metadataOf([
          ['x-api-key', key],
          ['authorization', 'Bearer cp_other_x'],
        ]),
      ),
    ).toEqual({ ok: false, error: 'conflicting-keys' });
    expect(carpoolCredentialsOf(metadataOf([['authorization', 'Basic dXNlcjpwYXNz']]))).toEqual({ ok: false, error: 'unsupported-authorization' });
    expect(carpoolCredentialsOf(metadataOf([['authorization', 'Bearer']]))).toEqual({ ok: false, error: 'unsupported-authorization' });
    expect(
      carpoolCredentialsOf(
        metadataOf([
          ['x-carpool-nonce', 'a'],
          ['x-carpool-nonce', 'b'],
        ]),
      ),
    ).toEqual({ ok: false, error: 'repeated-credential' });
  });
});

describe('adminTokenOf', () => {
  it("takes the Bearer token, none when absent, and refuses a tenant's credentials", () => {
    expect(adminTokenOf(metadataOf([['authorization', 'Bearer admin-1']]))).toEqual({ ok: true, value: 'admin-1' });
    expect(adminTokenOf(new Metadata())).toEqual({ ok: true, value: undefined });
    expect(adminTokenOf(metadataOf([['x-api-key', key]]))).toEqual({ ok: false, error: 'tenant-credentials-on-admin' });
    expect(adminTokenOf(metadataOf([['x-carpool-signature', 'f'.repeat(64)]]))).toEqual({ ok: false, error: 'tenant-credentials-on-admin' });
  });
});
