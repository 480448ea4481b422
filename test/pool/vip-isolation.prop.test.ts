// Proves VIP isolation: dedicated accounts and no-spill VIP tenants stay apart from the rest.
// Under any strategy, session key, health changes and dedication edits, a dedicated account never
// serves (or queues) a tenant it is not dedicated to, and a no-spill VIP tenant never lands on a
// shared account.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { type AccountId, asRegionId, asTenantId, type TenantId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { emptyRateLimits, type AccountFeedback } from '../../src/pool/account-feedback.js';
import { AccountPool } from '../../src/pool/account-pool.js';
import type { Permit } from '../../src/pool/permits.js';
import { baseStrategyNames } from '../../src/pool/strategies.js';
import { checkProperty } from '../support/property.js';

const tenants = ['t0', 't1', 't2'].map(asTenantId);
const accountIds = ['a0', 'a1', 'a2', 'a3', 'a4'].map((id) => id as AccountId);
const regions = ['r0', 'r1'].map(asRegionId);
const t0 = 1_800_000_000_000;

/** Dedications to choose from: shared, or some set of tenants. */
const dedications: readonly (readonly TenantId[] | undefined)[] = [undefined, [tenants[0]!], [tenants[1]!], [tenants[0]!, tenants[1]!]];

const feedbacks: readonly AccountFeedback[] = [
  { kind: 'success', rateLimits: emptyRateLimits },
  { kind: 'rate-limited', retryAfterMs: 3_000, rateLimits: emptyRateLimits },
  { kind: 'overloaded' },
  { kind: 'auth-failed', status: 401 },
  { kind: 'server-error', status: 500 },
  { kind: 'client-error', status: 400 },
];

type Op =
  | { readonly kind: 'acquire'; readonly tenant: number; readonly session: number; readonly region: number; readonly waitMs: number; readonly exclude: number }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'feedback'; readonly account: number; readonly feedback: number }
  | { readonly kind: 'dedicate'; readonly account: number; readonly dedication: number }
  | { readonly kind: 'tick'; readonly advanceMs: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      tenant: fc.nat(tenants.length - 1),
      // −1: no session key.
      session: fc.integer({ min: -1, max: 5 }),
      region: fc.integer({ min: -1, max: regions.length - 1 }),
      waitMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5_000 })),
      exclude: fc.integer({ min: -1, max: accountIds.length - 1 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('feedback' as const), account: fc.nat(accountIds.length - 1), feedback: fc.nat(feedbacks.length - 1) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('dedicate' as const), account: fc.nat(accountIds.length - 1), dedication: fc.nat(dedications.length - 1) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), advanceMs: fc.integer({ min: 0, max: 4_000 }) }) },
);

const arbSetup = fc.record({
  strategy: fc.constantFrom(...baseStrategyNames),
  sticky: fc.boolean(),
  vipSpillToShared: fc.boolean(),
  seed: fc.nat(),
  accounts: fc.array(
    fc.record({ dedication: fc.nat(dedications.length - 1), cap: fc.nat(2), region: fc.nat(regions.length - 1), weight: fc.integer({ min: 1, max: 5 }) }),
    {
      minLength: accountIds.length,
      maxLength: accountIds.length,
    },
  ),
});

describe('AccountPool VIP isolation (property)', () => {
  it('never serves a tenant from an account dedicated to others', () => {
    checkProperty(
      fc.property(arbSetup, fc.array(arbOp, { maxLength: 60, size: 'max' }), (setup, ops) => {
        const accounts: Account[] = setup.accounts.map((a, i) => {
          const dedication = dedications[a.dedication];
          return {
            id: accountIds[i]!,
            kind: 'api-key',
            homeRegion: regions[a.region]!,
            weight: a.weight,
            concurrencyMax: a.cap,
            limits: [],
            ...(dedication === undefined ? {} : { dedicatedTenants: dedication }),
          };
        });
        const pool = new AccountPool({
          random: new SeededRandom(setup.seed),
          strategy: setup.strategy,
          sticky: setup.sticky,
          vipSpillToShared: setup.vipSpillToShared,
        });
        pool.update(accounts);
        let nowMs = t0;
        const held: Permit[] = [];

        const check = (accountId: AccountId, tenant: TenantId, what: string): void => {
          const account = accounts.find((a) => a.id === accountId)!;
          if (account.dedicatedTenants !== undefined && !account.dedicatedTenants.includes(tenant)) {
            throw new Error(`${what}: ${accountId} dedicated to ${account.dedicatedTenants.join(',')} served ${tenant}`);
          }
          const hasOwn = accounts.some((a) => a.dedicatedTenants?.includes(tenant) === true);
          if (!setup.vipSpillToShared && hasOwn && account.dedicatedTenants === undefined) {
            throw new Error(`${what}: VIP tenant ${tenant} spilled onto shared ${accountId}`);
          }
        };
        const drain = (): void => {
          for (const event of pool.takeEvents()) {
            if (event.kind !== 'granted') continue;
            check(event.permit.accountId, event.context, 'hand-over');
            held.push(event.permit);
          }
        };

        for (const op of ops) {
          switch (op.kind) {
            case 'acquire': {
              const tenant = tenants[op.tenant]!;
              const result = pool.acquire(
                {
                  tenant,
                  deadlineMs: nowMs + op.waitMs,
                  sessionKey: op.session < 0 ? undefined : `session-${op.session}`,
                  localRegion: op.region < 0 ? undefined : regions[op.region],
                  excluded: op.exclude < 0 ? undefined : new Set([accountIds[op.exclude]!]),
                },
                nowMs,
              );
              if (!result.ok) break;
              check(result.value.account.id, tenant, result.value.kind);
              if (result.value.kind === 'granted') held.push(result.value.permit);
              break;
            }
            case 'release': {
              if (held.length === 0) break;
              const [permit] = held.splice(op.pick % held.length, 1);
              if (!pool.release(permit!).ok) throw new Error('a held permit was not released');
              break;
            }
            case 'feedback':
              pool.onFeedback(accountIds[op.account]!, feedbacks[op.feedback]!, nowMs);
              if (feedbacks[op.feedback]!.kind === 'auth-failed' && op.feedback % 2 === 0) pool.enable(accountIds[op.account]!, nowMs);
              break;
            case 'dedicate': {
              const dedication = dedications[op.dedication];
              const rest: Account = { ...accounts[op.account]! };
              delete (rest as { dedicatedTenants?: unknown }).dedicatedTenants;
              accounts[op.account] = dedication === undefined ? rest : { ...rest, dedicatedTenants: dedication };
              pool.update(accounts);
              break;
            }
            case 'tick':
              nowMs += op.advanceMs;
              pool.tick(nowMs);
              break;
          }
          drain();
        }
      }),
      500,
    );
  });
});
