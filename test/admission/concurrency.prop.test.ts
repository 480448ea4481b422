// Proves the concurrency limiter agrees with a model under any sequence of acquires and releases.
// The sequences mix acquires, retries and releases; the limiter never passes a cap or bound, and
// leaks nothing once every request is released.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter, type ConcurrencyPermit } from '../../src/admission/concurrency.js';
import { asTenantId, type RequestId, type TenantId, type UserId } from '../../src/core/ids.js';
import { checkProperty } from '../support/property.js';

const tenants: readonly TenantId[] = ['t0', 't1', 't2'].map(asTenantId);
const users: readonly UserId[] = ['u0', 'u1', 'u2'].map((text) => text as UserId);

/** `user` is an index into `users`, or -1 for a request without a user cap. */
type Op = { kind: 'acquire'; id: number; tenant: number; user: number } | { kind: 'release'; id: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('acquire' as const), id: fc.nat(15), tenant: fc.nat(2), user: fc.integer({ min: -1, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), id: fc.nat(15) }) },
);

const arbSetup = fc.record({
  tenantMax: fc.array(fc.nat(5), { minLength: 3, maxLength: 3 }),
  userMax: fc.array(fc.nat(3), { minLength: 3, maxLength: 3 }),
  heldMax: fc.integer({ min: 1, max: 16 }),
  keysMax: fc.integer({ min: 1, max: 12 }),
});

const requestId = (n: number): RequestId => `req-${n}` as RequestId;
const userKey = (tenant: TenantId, user: UserId): string => `${tenant}/${user}`;

describe('ConcurrencyLimiter', () => {
  it('matches its model, keeps every cap and bound, and leaks nothing', () => {
    checkProperty(
      fc.property(arbSetup, fc.array(arbOp, { maxLength: 120, size: 'max' }), (setup, ops) => {
        const limiter = new ConcurrencyLimiter({ heldMax: setup.heldMax, keysMax: setup.keysMax });
        const tenantMaxOf = (t: number): number => setup.tenantMax[t] as number;
        const userMaxOf = (u: number): number => setup.userMax[u] as number;
        // The model: every held request by its number, with the permit the limiter handed out.
        const held = new Map<number, ConcurrencyPermit>();
        const count = (predicate: (permit: ConcurrencyPermit) => boolean): number => [...held.values()].filter(predicate).length;
        const keysOf = (permits: Iterable<ConcurrencyPermit>): number => {
          const keys = new Set<string>();
          for (const p of permits) {
            keys.add(p.tenant);
            if (p.user !== undefined) keys.add(userKey(p.tenant, p.user));
          }
          return keys.size;
        };

        for (const op of ops) {
          if (op.kind === 'release') {
            expect(limiter.release(requestId(op.id))).toBe(held.delete(op.id));
          } else {
            const tenant = tenants[op.tenant] as TenantId;
            const user = op.user < 0 ? undefined : { id: users[op.user] as UserId, max: userMaxOf(op.user) };
            const result = limiter.acquire(requestId(op.id), tenant, tenantMaxOf(op.tenant), user);
            const earlier = held.get(op.id);
            const candidate: ConcurrencyPermit = { requestId: requestId(op.id), tenant, user: user?.id };
            if (earlier !== undefined) {
              if (earlier.tenant === tenant && earlier.user === user?.id) expect(result).toEqual({ ok: true, value: earlier });
              else expect(result.ok === false && result.error.kind).toBe('invalid');
            } else if (count((p) => p.tenant === tenant) >= tenantMaxOf(op.tenant)) {
              expect(result.ok === false && result.error).toMatchObject({ kind: 'concurrency', scope: 'tenant' });
            } else if (user !== undefined && count((p) => p.tenant === tenant && p.user === user.id) >= user.max) {
              expect(result.ok === false && result.error).toMatchObject({ kind: 'concurrency', scope: 'user' });
            } else if (held.size >= setup.heldMax) {
              expect(result).toEqual({ ok: false, error: { kind: 'concurrency-full', table: 'held', max: setup.heldMax } });
            } else if (keysOf([...held.values(), candidate]) > setup.keysMax) {
              expect(result).toEqual({ ok: false, error: { kind: 'concurrency-full', table: 'keys', max: setup.keysMax } });
            } else {
              expect(result).toEqual({ ok: true, value: candidate });
              held.set(op.id, candidate);
            }
          }

          // One comparison per step keeps a long soak fast; the caps hold if the model's counts do.
          const inFlight = tenants.map((tenant) => [limiter.inFlight(tenant), ...users.map((user) => limiter.inFlightUser(tenant, user))]);
          expect({ size: limiter.size, keys: limiter.keys, inFlight }).toEqual({
            size: held.size,
            keys: keysOf(held.values()),
            inFlight: tenants.map((tenant) => [
              count((p) => p.tenant === tenant),
              ...users.map((user) => count((p) => p.tenant === tenant && p.user === user)),
            ]),
          });
          const withinCaps =
            limiter.size <= setup.heldMax &&
            limiter.keys <= setup.keysMax &&
            inFlight.every(([tenantCount, ...userCounts], t) => (tenantCount as number) <= tenantMaxOf(t) && userCounts.every((c, u) => c <= userMaxOf(u)));
          expect(withinCaps).toBe(true);
        }

        // Release everything, twice over: the second round must find nothing left to free.
        for (const n of [...held.keys()]) expect(limiter.release(requestId(n))).toBe(true);
        for (let n = 0; n <= 15; n++) expect(limiter.release(requestId(n))).toBe(false);
        expect([limiter.size, limiter.keys]).toEqual([0, 0]);
        for (const tenant of tenants) {
          expect(limiter.inFlight(tenant)).toBe(0);
          for (const user of users) expect(limiter.inFlightUser(tenant, user)).toBe(0);
        }
      }),
      // fast-check's default 100 in `npm test`; `FC_RUNS=1000` soaks it (see ../support/property.ts).
      100,
    );
  });
});
