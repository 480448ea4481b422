// The claim subject is part of what the mesh replicates and the store keeps (a claim's counter
// key), so its formula is fixed: every node, of any version, must derive the same subject from
// one (tenant, request id). The law pins it to its definition: the first 16 bytes of SHA-256 over
// the tenant, a NUL and the id, in base64url; and it is a valid id of 22 characters.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidId, type RequestId, type TenantId } from '../../../src/core/ids.js';
import { claimSubjectOf } from '../../../src/node/gateway/claim-subject.js';

const printable = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 64 });

describe('claimSubjectOf', () => {
  it('is the first 16 bytes of SHA-256(tenant, NUL, id) in base64url, a valid 22-character id', () => {
    fc.assert(
      fc.property(printable, printable, (tenant, requestId) => {
        const expected = createHash('sha256').update(tenant).update('\u0000').update(requestId).digest().subarray(0, 16).toString('base64url');
        const subject = claimSubjectOf(tenant as TenantId, requestId as RequestId);
        expect(subject).toBe(expected);
        expect(subject).toHaveLength(22);
        expect(isValidId(subject)).toBe(true);
      }),
    );
  });

  it('keeps the subject of a known pair', () => {
    // Computed once with the formula above; a change here would orphan every claim a store holds.
    expect(claimSubjectOf('tenant-1' as TenantId, 'req-123456' as RequestId)).toBe('BplMZHwADUFYNzVJcAg9mw');
  });
});
