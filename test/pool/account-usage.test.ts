// Proves account usage is counted in the replicated windowed counter under scope `account`.
// So a charge at one replica restricts the account at another once their states join.
import { describe, expect, it } from 'vitest';
import { usedUnder } from '../../src/admission/quota.js';
import { type AccountId, asRegionId, asReplicaId } from '../../src/core/ids.js';
import { windowAt, windowEndMs } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { Account, LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { accountAmountsOf, AccountUsage, estimateAccountAmounts } from '../../src/pool/account-usage.js';

const t0 = Date.UTC(2026, 10, 26, 10, 0, 5);

const rpm: LimitRule = { metric: 'requests', window: 'minute', sliding: true, limit: 3, mode: 'eventual' };
const outputPerDay: LimitRule = { metric: 'output_tokens', window: 'day', sliding: false, limit: 10_000, mode: 'eventual' };
const inputPerMinute: LimitRule = { metric: 'input_tokens', window: 'minute', sliding: false, limit: 50_000, mode: 'strict' };

const account: Account = {
  id: 'pool-1' as AccountId,
  kind: 'api-key',
  homeRegion: asRegionId('us-east'),
  weight: 1,
  concurrencyMax: 8,
  limits: [rpm, outputPerDay, inputPerMinute],
};

describe('account amounts', () => {
  it('counts cache writes but not cache reads as input, and weights all four kinds by the defaults', () => {
    expect(accountAmountsOf({ input: 100, output: 20, cacheWrite: 1_000, cacheRead: 10_000 })).toEqual({
      requests: 1,
      input_tokens: 1_100,
      output_tokens: 20,
      // 100 + 5 × 20 + 1.25 × 1,000 + 0.1 × 10,000
      weighted_tokens: 2_450,
    });
    expect(estimateAccountAmounts(1_000, 500)).toEqual({ requests: 1, input_tokens: 1_000, output_tokens: 500, weighted_tokens: 1_250 + 2_500 });
  });
});

describe('AccountUsage', () => {
  it("restricts the account at a second replica after joining the first one's charges", () => {
    const east = new WindowedCounter(asReplicaId('us-east~1'));
    const west = new WindowedCounter(asReplicaId('eu-west~1'));
    const eastUsage = new AccountUsage(east);
    const westUsage = new AccountUsage(west);
    const estimate = estimateAccountAmounts(1_000, 4_000);

    expect(westUsage.hasRoom(account, estimate, t0).ok).toBe(true);
    expect(eastUsage.charge(account, accountAmountsOf({ input: 1_000, output: 7_000, cacheWrite: 0, cacheRead: 0 }), t0).ok).toBe(true);
    // Before the join, west has not seen the charge.
    expect(westUsage.hasRoom(account, estimate, t0 + 1_000).ok).toBe(true);

    west.join(east.takeDelta());
    const refused = westUsage.hasRoom(account, estimate, t0 + 1_000);
    expect(refused).toEqual({
      ok: false,
      error: { kind: 'account-quota', metric: 'output_tokens', limit: 10_000, window: 'day', retryAfterMs: windowEndMs(windowAt('day', t0)) - (t0 + 1_000) },
    });
    // A smaller call still fits what is left.
    expect(westUsage.hasRoom(account, estimateAccountAmounts(1_000, 3_000), t0 + 1_000).ok).toBe(true);
    expect(usedUnder(west, 'account', account.id, outputPerDay, t0 + 1_000)).toBe(7_000);
  });

  it('counts requests from both replicas against a sliding per-minute limit', () => {
    const a = new WindowedCounter(asReplicaId('a~1'));
    const b = new WindowedCounter(asReplicaId('b~1'));
    const usageA = new AccountUsage(a);
    const usageB = new AccountUsage(b);
    const call = accountAmountsOf({ input: 10, output: 10, cacheWrite: 0, cacheRead: 0 });
    usageA.charge(account, call, t0);
    usageA.charge(account, call, t0 + 1_000);
    usageB.charge(account, call, t0 + 2_000);
    a.join(b.takeDelta());
    b.join(a.takeDelta());
    for (const usage of [usageA, usageB]) {
      const refused = usage.hasRoom(account, estimateAccountAmounts(10, 10), t0 + 3_000);
      expect(refused.ok === false && refused.error.metric).toBe('requests');
      // Every mode is read from the local view, strict included: the upstream is the final judge.
      expect(usage.hasRoom(account, estimateAccountAmounts(10, 10), t0 + 75_000).ok).toBe(true);
    }
  });

  it('charges only metrics a rule limits, under the account scope and id', () => {
    const counter = new WindowedCounter(asReplicaId('a~1'));
    const usage = new AccountUsage(counter);
    usage.charge({ ...account, limits: [outputPerDay] }, accountAmountsOf({ input: 5, output: 7, cacheWrite: 0, cacheRead: 0 }), t0);
    const delta = counter.takeDelta();
    expect(delta.entries.map((entry) => [entry.key.scope, entry.key.subject, entry.key.metric, entry.p])).toEqual([['account', 'pool-1', 'output_tokens', 7]]);
  });
});
