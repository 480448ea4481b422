// Proves AccountPool's optimized acquire decides exactly as the plain reference model.
// The optimizations are lazy quota checks in the strategy's order, reused scratch and precomputed
// groups; the model is ./reference-pool.ts. Both give the same grants, queues, refusals and retry
// hints, permit and waiter ids, events, stats, statuses and draws from the Random, over random
// pools, health, loads, quota room, policy changes and requests.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AccountId, asRegionId, asTenantId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { err, OK_VOID } from '../../src/core/result.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { emptyRateLimits, type AccountFeedback } from '../../src/pool/account-feedback.js';
import { AccountPool, type AccountPoolOptions, type AccountRequest } from '../../src/pool/account-pool.js';
import { type AccountRoom, estimateAccountAmounts } from '../../src/pool/account-usage.js';
import type { Permit, WaiterId } from '../../src/pool/permits.js';
import { baseStrategyNames } from '../../src/pool/strategies.js';
import { checkProperty } from '../support/property.js';
import { ReferencePool } from './reference-pool.js';

const tenants = ['t0', 't1', 't2'].map(asTenantId);
const regions = ['r0', 'r1'].map(asRegionId);
const accountsMax = 10;
const t0 = 1_800_000_000_000;

const dedications = [undefined, [tenants[0]!], [tenants[1]!], [tenants[0]!, tenants[1]!]] as const;

const feedbacks: readonly AccountFeedback[] = [
  { kind: 'success', rateLimits: emptyRateLimits },
  { kind: 'rate-limited', retryAfterMs: 3_000, rateLimits: emptyRateLimits },
  { kind: 'overloaded' },
  { kind: 'auth-failed', status: 401 },
  // Three in a row open the circuit; after circuitOpenMsBase it is half-open.
  { kind: 'server-error', status: 500 },
  { kind: 'network', detail: 'reset' },
  { kind: 'client-error', status: 400 },
];

/** Quota room the test turns off and on per account; a pure read, as the pool may ask in any order. */
class ScriptedRoom implements AccountRoom {
  readonly outUntilMs = new Map<AccountId, number>();

  hasRoom(account: Account, _estimate: unknown, nowMs: number): ReturnType<AccountRoom['hasRoom']> {
    const untilMs = this.outUntilMs.get(account.id) ?? -Infinity;
    if (nowMs >= untilMs) return OK_VOID;
    return err({ kind: 'account-quota', metric: 'requests', limit: 1, window: 'minute', retryAfterMs: untilMs - nowMs });
  }
}

const arbAccount = fc.record({
  dedication: fc.nat(dedications.length - 1),
  cap: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 }) }),
  region: fc.nat(regions.length - 1),
  weight: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 1_000 })),
});
type AccountSpec = typeof arbAccount extends fc.Arbitrary<infer T> ? T : never;

type Op =
  | { kind: 'acquire'; tenant: number; session: number; region: number; waitMs: number; exclude: number; estimate: boolean }
  | { kind: 'release'; pick: number }
  | { kind: 'cancel'; pick: number }
  | { kind: 'feedback'; account: number; feedback: number; times: number }
  | { kind: 'enable'; account: number }
  | { kind: 'policy'; account: number; change: AccountSpec | null }
  | { kind: 'room'; account: number; outMs: number }
  | { kind: 'tick'; advanceMs: number };

const arbIndex = fc.nat(accountsMax - 1);
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      tenant: fc.nat(tenants.length - 1),
      // −1: no session key.
      session: fc.integer({ min: -1, max: 6 }),
      region: fc.integer({ min: -1, max: regions.length - 1 }),
      waitMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5_000 })),
      // −1: none; up to accountsMax + 1: two accounts.
      exclude: fc.integer({ min: -1, max: 2 * accountsMax - 1 }),
      estimate: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('feedback' as const),
      account: arbIndex,
      feedback: fc.nat(feedbacks.length - 1),
      times: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('enable' as const), account: arbIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('policy' as const), account: arbIndex, change: fc.option(arbAccount, { nil: null }) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('room' as const), account: arbIndex, outMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20_000 })) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      advanceMs: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 3_000, max: 15_000 })),
    }),
  },
);

const arbSetup = fc.record({
  strategy: fc.constantFrom(...baseStrategyNames),
  sticky: fc.boolean(),
  vipSpillToShared: fc.boolean(),
  room: fc.boolean(),
  seed: fc.nat(),
  // Small limits reach the permits-full and queue-full refusals.
  heldMax: fc.constantFrom(3, 1_000),
  waitersPerAccountMax: fc.constantFrom(1, 4),
  accounts: fc.array(fc.option(arbAccount, { nil: null, freq: 4 }), { minLength: accountsMax, maxLength: accountsMax }),
  // Accounts from this index on start outside the policy: small pools reach the corners (a
  // half-open account whose permits are all held, every account paused) far more often.
  present: fc.integer({ min: 1, max: accountsMax }),
});

function accountOf(i: number, spec: AccountSpec): Account {
  const dedication = dedications[spec.dedication];
  return {
    id: `a${i}` as AccountId,
    kind: 'api-key',
    homeRegion: regions[spec.region]!,
    weight: spec.weight,
    concurrencyMax: spec.cap,
    limits: [],
    ...(dedication === undefined ? {} : { dedicatedTenants: dedication }),
  };
}

describe('AccountPool against its reference model (property)', () => {
  it('decides every request exactly as the reference does', () => {
    checkProperty(
      fc.property(arbSetup, fc.array(arbOp, { maxLength: 80, size: 'max' }), (setup, ops) => {
        const room = new ScriptedRoom();
        const options = (seed: number): AccountPoolOptions => ({
          random: new SeededRandom(seed),
          strategy: setup.strategy,
          sticky: setup.sticky,
          vipSpillToShared: setup.vipSpillToShared,
          permits: { heldMax: setup.heldMax, waitersPerAccountMax: setup.waitersPerAccountMax },
          ...(setup.room ? { room } : {}),
        });
        const randomOf = (o: AccountPoolOptions): SeededRandom => o.random as SeededRandom;
        const poolOptions = options(setup.seed);
        const referenceOptions = options(setup.seed);
        const pool = new AccountPool(poolOptions);
        const reference = new ReferencePool(referenceOptions);
        // The policy: one slot per account id, null while the account is not in it.
        const specs = setup.accounts.map((spec, i) => (i < setup.present ? spec : null));
        const policy = (): Account[] => specs.flatMap((spec, i) => (spec === null ? [] : [accountOf(i, spec)]));
        const update = (): void => {
          const accounts = policy();
          pool.update(accounts);
          reference.update(accounts);
        };
        update();

        let nowMs = t0;
        const held: Permit[] = [];
        const waiting: WaiterId[] = [];
        const same = <T>(actual: T, expected: T, what: string): void => {
          expect(actual, what).toStrictEqual(expected);
        };

        for (const [step, op] of ops.entries()) {
          const at = `step ${step} (${op.kind})`;
          switch (op.kind) {
            case 'acquire': {
              const excluded =
                op.exclude < 0
                  ? undefined
                  : new Set([
                      `a${op.exclude % accountsMax}` as AccountId,
                      ...(op.exclude >= accountsMax ? [`a${(op.exclude + 3) % accountsMax}` as AccountId] : []),
                    ]);
              const request: AccountRequest = {
                tenant: tenants[op.tenant]!,
                deadlineMs: nowMs + op.waitMs,
                sessionKey: op.session < 0 ? undefined : `session-${op.session}`,
                localRegion: op.region < 0 ? undefined : regions[op.region],
                excluded,
                estimate: op.estimate ? estimateAccountAmounts(100, 100) : undefined,
              };
              const result = pool.acquire(request, nowMs);
              same(result, reference.acquire(request, nowMs), at);
              if (result.ok && result.value.kind === 'granted') held.push(result.value.permit);
              if (result.ok && result.value.kind === 'queued') waiting.push(result.value.waiterId);
              break;
            }
            case 'release': {
              if (held.length === 0) break;
              const [permit] = held.splice(op.pick % held.length, 1);
              same(pool.release(permit!), reference.release(permit!), at);
              break;
            }
            case 'cancel': {
              if (waiting.length === 0) break;
              const [waiterId] = waiting.splice(op.pick % waiting.length, 1);
              same(pool.cancel(waiterId!), reference.cancel(waiterId!), at);
              break;
            }
            case 'feedback': {
              const id = `a${op.account}` as AccountId;
              for (let i = 0; i < op.times; i++)
                same(pool.onFeedback(id, feedbacks[op.feedback]!, nowMs), reference.onFeedback(id, feedbacks[op.feedback]!, nowMs), at);
              break;
            }
            case 'enable':
              same(pool.enable(`a${op.account}` as AccountId, nowMs), reference.enable(`a${op.account}` as AccountId), at);
              break;
            case 'policy':
              specs[op.account] = op.change;
              update();
              break;
            case 'room':
              room.outUntilMs.set(`a${op.account}` as AccountId, nowMs + op.outMs);
              break;
            case 'tick':
              nowMs += op.advanceMs;
              pool.tick(nowMs);
              reference.tick(nowMs);
              break;
          }
          const events = pool.takeEvents();
          same(events, reference.takeEvents(), `${at}: events`);
          for (const event of events) if (event.kind === 'granted') held.push(event.permit);
          same({ ...pool.stats }, { ...reference.stats }, `${at}: stats`);
          same(pool.status(nowMs), reference.status(nowMs), `${at}: status`);
        }
        // Both drew the same numbers from their Random, so they are at the same point of it.
        same(randomOf(poolOptions).u32(), randomOf(referenceOptions).u32(), 'the Random after the run');
      }),
      // fast-check's default 100 in `npm test`; `FC_RUNS=1000` soaks it (see ../support/property.ts).
      100,
    );
  });
});
