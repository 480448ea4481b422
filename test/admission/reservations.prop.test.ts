// Proves that under any interleaving of reserves, retries, settlements and lease expiries the
// counter holds exactly Σ charged for settled requests plus Σ reserved for open ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReservationTable, type Settlement } from '../../src/admission/reservations.js';
import { asReplicaId, asTenantId, type RequestId } from '../../src/core/ids.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { checkProperty } from '../support/property.js';

type Op = { kind: 'reserve'; id: number; amount: number; leaseMs: number } | { kind: 'settle'; id: number; used: number } | { kind: 'advance'; ms: number };

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

type OrderOp =
  { kind: 'reserve'; id: number; leaseMs: number } | { kind: 'settle'; id: number } | { kind: 'cancel'; id: number } | { kind: 'advance'; ms: number };

const arbOrderOp: fc.Arbitrary<OrderOp> = fc.oneof(
  // Few distinct leases, so that many end in the same millisecond and the tie-break matters.
  fc.record({ kind: fc.constant('reserve' as const), id: fc.nat(30), leaseMs: fc.constantFrom(1, 5, 10, 50) }),
  fc.record({ kind: fc.constant('settle' as const), id: fc.nat(30) }),
  fc.record({ kind: fc.constant('cancel' as const), id: fc.nat(30) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(20) }),
);

describe('ReservationTable expiry order', () => {
  it('expires what a stably sorted list of leases would, in the same order', () => {
    checkProperty(
      fc.property(fc.array(arbOrderOp, { maxLength: 150, size: 'max' }), (ops) => {
        const key = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'day', index: 1 });
        const table = new ReservationTable(new WindowedCounter(asReplicaId('n~1')));
        // The reference: every lease in arrival order, sorted stably at each expire.
        const leases: { expiresMs: number; id: RequestId }[] = [];
        const open = new Map<RequestId, number>();
        let now = 0;
        for (const op of ops) {
          if (op.kind === 'advance') {
            now += op.ms;
            const due = leases.filter((l) => l.expiresMs <= now).sort((a, b) => a.expiresMs - b.expiresMs);
            const expected = due.filter((l) => open.get(l.id) === l.expiresMs && open.delete(l.id)).map((l) => l.id);
            leases.splice(0, leases.length, ...leases.filter((l) => l.expiresMs > now));
            expect(table.expire(now).map((s) => s.requestId)).toEqual(expected);
            continue;
          }
          const requestId = `req-${op.id}` as RequestId;
          if (op.kind === 'reserve') {
            const result = table.reserve(requestId, asTenantId('acme'), [key], 1, now, op.leaseMs);
            if (result.ok && !open.has(requestId)) {
              open.set(requestId, now + op.leaseMs);
              leases.push({ expiresMs: now + op.leaseMs, id: requestId });
            }
          } else if (op.kind === 'settle') {
            if (table.settle(requestId, 1).ok) open.delete(requestId);
          } else if (table.cancel(requestId)) open.delete(requestId);
        }
      }),
      300,
    );
  });
});
