// Proves that under any interleaving of reserves, retries, settlements and lease expiries the
// counter holds exactly Σ charged for settled requests plus Σ reserved for open ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReservationTable, type Settlement } from '../../src/admission/reservations.js';
import { asReplicaId, asTenantId, type RequestId } from '../../src/core/ids.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { checkProperty } from '../support/property.js';

type Op =
  | { kind: 'reserve'; id: number; amount: number; leaseMs: number }
  | { kind: 'settle'; id: number; used: number }
  | { kind: 'advance'; ms: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), id: fc.nat(15), amount: fc.nat(10_000), leaseMs: fc.integer({ min: 1, max: 5_000 }) }),
  fc.record({ kind: fc.constant('settle' as const), id: fc.nat(15), used: fc.nat(12_000) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(3_000) }),
);

describe('ReservationTable books', () => {
  it('always balance', () => {
    checkProperty(
      fc.property(fc.array(arbOp, { maxLength: 80, size: 'max' }), (ops) => {
        const key = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'day', index: 1 });
        const counter = new WindowedCounter(asReplicaId('n~1'));
        const table = new ReservationTable(counter);
        const open = new Map<number, number>();
        const settled = new Map<number, Settlement>();
        let now = 0;
        for (const op of ops) {
          const requestId = `req-${'id' in op ? op.id : 0}` as RequestId;
          if (op.kind === 'reserve') {
            const result = table.reserve(requestId, asTenantId('acme'), [key], op.amount, now, op.leaseMs);
            if (settled.has(op.id)) expect(result.ok).toBe(false);
            else {
              expect(result.ok).toBe(true);
              if (!open.has(op.id)) open.set(op.id, op.amount);
            }
          } else if (op.kind === 'settle') {
            const result = table.settle(requestId, op.used);
            const earlier = settled.get(op.id);
            if (earlier !== undefined) expect(result).toEqual({ ok: true, value: earlier });
            else if (open.has(op.id)) {
              expect(result.ok).toBe(true);
              if (result.ok) settled.set(op.id, result.value);
              open.delete(op.id);
            } else expect(result.ok).toBe(false);
          } else {
            now += op.ms;
            for (const s of table.expire(now)) {
              const n = Number(s.requestId.slice(4));
              expect(s.charged).toBe(open.get(n));
              settled.set(n, s);
              open.delete(n);
            }
          }
          const expected = [...open.values()].reduce((a, b) => a + b, 0) + [...settled.values()].reduce((a, s) => a + s.charged, 0);
          expect(counter.value(key)).toBe(expected);
          expect(table.openCount).toBe(open.size);
        }
      }),
      300,
    );
  });
});
