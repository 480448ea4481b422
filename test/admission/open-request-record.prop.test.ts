// Proves the hand-written open-request encoder writes the record's exact JSON, which decodes back.
// (Byte for byte the JSON of the record's object form.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeOpenRequest, encodeOpenRequest, type OpenRequestRecord } from '../../src/admission/open-request-record.js';
import type { RequestId, TenantId } from '../../src/core/ids.js';
import { counterKey, type CounterKey } from '../../src/crdt/counter-key.js';
import { windowUnits } from '../../src/crdt/window.js';
import { checkProperty } from '../support/property.js';

const arbId = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 64 });
const arbName = fc.stringMatching(/^[a-z][a-z0-9_]{0,31}$/);
const arbCount = fc.oneof(fc.nat(10_000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const arbKey: fc.Arbitrary<CounterKey> = fc
  .record({ scope: arbName, subject: arbId, metric: arbName, unit: fc.constantFrom(...windowUnits), index: fc.nat(1_000_000) })
  .map(({ scope, subject, metric, unit, index }) => counterKey(scope, subject, metric, { unit, index }));

function arbRecord(id: fc.Arbitrary<string>, text: fc.Arbitrary<string>): fc.Arbitrary<OpenRequestRecord> {
  return fc
    .record({
      requestId: id.map((v) => v as RequestId),
      tenant: id.map((v) => v as TenantId),
      admitted: fc.boolean(),
      context: fc.option(text, { nil: undefined }),
      reservations: fc.array(
        fc.record({
          requestId: id.map((v) => v as RequestId),
          keys: fc.array(arbKey, { maxLength: 3 }),
          amount: arbCount,
          reservedAtMs: arbCount,
          leaseExpiresMs: arbCount,
          holds: fc.array(arbKey, { maxLength: 3 }),
        }),
        { maxLength: 3 },
      ),
      escrow: fc.array(fc.record({ key: arbKey, metric: text, amount: arbCount }), { maxLength: 3 }),
    })
    .map((r) => ({ ...r, reservations: r.reservations.map((v) => ({ ...v, tenant: r.tenant })) }));
}

/** The object form the encoder used to build for JSON.stringify: the format's definition. */
function reference(record: OpenRequestRecord): string {
  const keyJson = (key: CounterKey): unknown[] => [key.scope, key.subject, key.metric, key.window.unit, key.window.index];
  return JSON.stringify({
    t: record.tenant,
    a: record.admitted,
    c: record.context ?? null,
    r: record.reservations.map((r) => ({
      id: r.requestId,
      k: r.keys.map(keyJson),
      n: r.amount,
      at: r.reservedAtMs,
      until: r.leaseExpiresMs,
      h: r.holds.map(keyJson),
    })),
    e: record.escrow.map((e) => ({ k: keyJson(e.key), m: e.metric, n: e.amount })),
  });
}

describe('open request records', () => {
  it('encode to the JSON of their object form, whatever the strings hold', () => {
    // Any string, including quotes, backslashes, control characters and lone surrogates.
    const anyText = fc.string({ unit: 'binary', maxLength: 20 });
    checkProperty(
      fc.property(arbRecord(anyText, anyText), (record) => {
        expect(encodeOpenRequest(record)).toBe(reference(record));
      }),
      500,
    );
  });

  it('decode back to the record they were encoded from', () => {
    checkProperty(
      fc.property(arbRecord(arbId, fc.string({ unit: 'binary', maxLength: 20 })), (record) => {
        const decoded = decodeOpenRequest(record.requestId, encodeOpenRequest(record));
        expect(decoded).toEqual({ ok: true, value: record });
      }),
      300,
    );
  });
});
