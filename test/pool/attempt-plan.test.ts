// Proves a request's attempt plan retries retryable failures on other accounts.
// It never tries the same account twice, stays within the switch bound, never retries after a
// client error or a started response, and ends in a no-account refusal with a hint when the pool
// runs dry.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/core/assert.js';
import { type AccountId, asRegionId, asTenantId } from '../../src/core/ids.js';
import { accountSwitchesMax } from '../../src/core/limits.js';
import { SeededRandom } from '../../src/core/random.js';
import { type AccountFeedback, emptyRateLimits } from '../../src/pool/account-feedback.js';
import { AccountPool } from '../../src/pool/account-pool.js';
import { AttemptPlan, isRetryable } from '../../src/pool/attempt-plan.js';

const t0 = 1_800_000_000_000;
const tenant = asTenantId('acme');
const ok: AccountFeedback = { kind: 'success', rateLimits: emptyRateLimits };
const throttled: AccountFeedback = { kind: 'rate-limited', retryAfterMs: 20_000, rateLimits: emptyRateLimits };
const overloaded: AccountFeedback = { kind: 'overloaded' };
const badRequest: AccountFeedback = { kind: 'client-error', status: 400 };

function pool(n: number): AccountPool {
  const p = new AccountPool({ random: new SeededRandom(5), strategy: 'round-robin' });
  p.update(
    Array.from({ length: n }, (_, i) => ({
      id: `acct-${i}` as AccountId,
      kind: 'api-key' as const,
      homeRegion: asRegionId('us-east'),
      weight: 1,
      concurrencyMax: 4,
      limits: [],
    })),
  );
  return p;
}

type Ending = { kind: 'done' | 'give-up' | 'no-account'; accounts: string[]; detail?: unknown };

/** Runs one request through the pool, answering each attempt with the next scripted feedback. */
function run(p: AccountPool, script: readonly AccountFeedback[], plan = new AttemptPlan()): Ending {
  const accounts: string[] = [];
  // Bounded by the plan: at most switchesMax + 1 attempts.
  for (let step = 0; step <= accountSwitchesMax + 1; step++) {
    const picked = p.acquire({ tenant, deadlineMs: t0, excluded: plan.tried }, t0);
    if (!picked.ok) return { kind: 'no-account', accounts, detail: picked.error };
    if (picked.value.kind !== 'granted') throw new Error('no waiting in this test');
    const { account, permit } = picked.value;
    plan.begin(account.id);
    accounts.push(account.id);
    const feedback = script[step] ?? ok;
    p.release(permit);
    p.onFeedback(account.id, feedback, t0);
    const decision = plan.after(feedback);
    if (decision.kind === 'done') return { kind: 'done', accounts };
    if (decision.kind === 'give-up') return { kind: 'give-up', accounts, detail: decision.reason };
  }
  throw new Error('the plan did not bound the attempts');
}

describe('AttemptPlan', () => {
  it("classifies failures: the account's trouble is retried, the request's is not", () => {
    expect(['rate-limited', 'overloaded', 'server-error', 'network', 'auth-failed'].every((k) => isRetryable(k as AccountFeedback['kind']))).toBe(true);
    expect(isRetryable('client-error')).toBe(false);
    expect(isRetryable('success')).toBe(false);
  });

  it('moves to another account after each retryable failure and stops at the first success', () => {
    const ending = run(pool(5), [throttled, overloaded, { kind: 'auth-failed', status: 401 }]);
    expect(ending.kind).toBe('done');
    expect(ending.accounts).toHaveLength(4);
    expect(new Set(ending.accounts).size).toBe(4);
  });

  it('gives up after the switch bound, with no account tried twice', () => {
    const failure: AccountFeedback = { kind: 'network', detail: 'reset' };
    const ending = run(
      pool(10),
      Array.from({ length: 10 }, () => failure),
    );
    expect(ending).toMatchObject({ kind: 'give-up', detail: 'switches-exhausted' });
    expect(ending.accounts).toHaveLength(accountSwitchesMax + 1);
    expect(new Set(ending.accounts).size).toBe(accountSwitchesMax + 1);
  });

  it('does not retry a client error, nor a failure after the response started', () => {
    expect(run(pool(3), [badRequest])).toMatchObject({ kind: 'give-up', detail: 'not-retryable', accounts: ['acct-0'] });
    const plan = new AttemptPlan();
    plan.begin('acct-0' as AccountId);
    expect(plan.after(overloaded, { responseStarted: true })).toEqual({ kind: 'give-up', reason: 'response-started' });
  });

  it('ends in no-account with the earliest cooldown end as the hint when every account failed', () => {
    const p = pool(2);
    const ending = run(p, [throttled, throttled]);
    expect(ending.accounts).toHaveLength(2);
    expect(ending).toMatchObject({ kind: 'no-account', detail: { kind: 'no-account', retryAfterMs: 20_000 } });
  });

  it('asserts against a second attempt on one account and attempts past the bound', () => {
    const plan = new AttemptPlan(1);
    plan.begin('a' as AccountId);
    expect(() => plan.begin('b' as AccountId)).toThrow(AssertionError);
    plan.after(overloaded);
    expect(() => plan.begin('a' as AccountId)).toThrow(AssertionError);
    plan.begin('b' as AccountId);
    expect(plan.after(overloaded)).toEqual({ kind: 'give-up', reason: 'switches-exhausted' });
    expect(plan.canAttempt).toBe(false);
    expect(() => plan.begin('c' as AccountId)).toThrow(AssertionError);
  });
});
