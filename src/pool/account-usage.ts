import { assert, isCount } from '../core/assert.js';
import { err, OK_VOID, type Result } from '../core/result.js';
import { chargedKeyIn, retryAfterMsFor, usedUnder } from '../admission/quota.js';
import { estimateWeightedTokens, type TokenUsage, weightedTokens } from '../admission/estimate.js';
import type { CounterError, WindowedCounter } from '../crdt/windowed-counter.js';
import { type Account, defaultTokenWeights, type LimitWindowUnit } from '../mesh/policy/policy-schema.js';

/**
 * An upstream account's consumption, counted in the replicated windowed counter under scope
 * `account` and the account id. Every region's nodes call the same accounts (a call egresses
 * from the account's home region, but any region may pick it), so a per-node count would let n
 * regions each spend the whole limit; in the mesh counter each node sees the others' calls one
 * gossip delay late, the `eventual` mode's bounded overshoot.
 *
 * Metrics, in the counter vocabulary admission already uses:
 *  - `requests`: one per upstream call;
 *  - `input_tokens`: uncached input plus cache writes, which is what the upstream's input-token
 *    limits count (cache reads do not count against them);
 *  - `output_tokens`;
 *  - `weighted_tokens`: all four token kinds under the default weights (DESIGN.md §3), the
 *    account's spend in input-token equivalents. Accounts have no weights of their own.
 *
 * `hasRoom` reads every rule of the account in the local merged view, whatever its `mode`:
 * the upstream enforces its own limits exactly, so the pool's check only has to keep it from
 * walking into a window the mesh already knows is spent, and a quorum round per upstream call
 * would cost more than the occasional 429 it saves. `charge` counts a call's actual usage after
 * it, once, at the node that made the call (DESIGN.md §6: forwards and retries never double
 * count); only metrics some rule limits are counted, so unlimited metrics cost no keys.
 */
export const accountMetricNames = ['requests', 'input_tokens', 'output_tokens', 'weighted_tokens'] as const;
export type AccountMetric = (typeof accountMetricNames)[number];

/** An amount per account metric: an estimate before a call or the actual usage after it. */
export type AccountAmounts = Readonly<Record<AccountMetric, number>>;

export const noAccountAmounts: AccountAmounts = Object.freeze({ requests: 0, input_tokens: 0, output_tokens: 0, weighted_tokens: 0 });

/** The account's room is spent under one of its rules. */
export interface AccountQuotaError {
  readonly kind: 'account-quota';
  readonly metric: string;
  readonly limit: number;
  readonly window: LimitWindowUnit;
  /** When usage under the rule can next fall (a hint, as for tenant quotas). */
  readonly retryAfterMs: number;
}

/** What the pool needs to know about an account's limits; `AccountUsage` is the mesh-backed one. */
export interface AccountRoom {
  hasRoom(account: Account, estimate: AccountAmounts, nowMs: number): Result<undefined, AccountQuotaError>;
}

/** The amounts a call will at most take: one request, its counted input, `max_tokens` of output. */
export function estimateAccountAmounts(inputTokens: number, maxTokens: number): AccountAmounts {
  assert(isCount(inputTokens) && isCount(maxTokens), 'token counts are counts');
  return {
    requests: 1,
    input_tokens: inputTokens,
    output_tokens: maxTokens,
    weighted_tokens: estimateWeightedTokens(inputTokens, maxTokens, defaultTokenWeights),
  };
}

/** The amounts a finished call took, from the usage the upstream reported. */
export function accountAmountsOf(usage: TokenUsage): AccountAmounts {
  return {
    requests: 1,
    input_tokens: usage.input + usage.cacheWrite,
    output_tokens: usage.output,
    weighted_tokens: weightedTokens(usage, defaultTokenWeights),
  };
}

function amountOf(amounts: AccountAmounts, metric: string): number {
  return (accountMetricNames as readonly string[]).includes(metric) ? amounts[metric as AccountMetric] : 0;
}

export class AccountUsage implements AccountRoom {
  constructor(private readonly counter: WindowedCounter) {}

  /**
   * Whether every rule of the account has room for `estimate` in this node's view; otherwise the
   * first rule without room. A rule whose metric the estimate does not name is skipped, as in
   * admission's eventual check.
   */
  hasRoom(account: Account, estimate: AccountAmounts, nowMs: number): Result<undefined, AccountQuotaError> {
    for (const rule of account.limits) {
      const wanted = amountOf(estimate, rule.metric);
      if (wanted === 0) continue;
      if (usedUnder(this.counter, 'account', account.id, rule, nowMs) + wanted > rule.limit) {
        return err({ kind: 'account-quota', metric: rule.metric, limit: rule.limit, window: rule.window, retryAfterMs: retryAfterMsFor(rule, nowMs) });
      }
    }
    return OK_VOID;
  }

  /**
   * Counts a finished call's usage into the account's windows. Rules sharing a counter key (a
   * fixed and a sliding rule never do; two rules on one metric and window cannot exist) would be
   * charged once each, so keys are deduplicated per call anyway.
   */
  charge(account: Account, used: AccountAmounts, nowMs: number): Result<undefined, CounterError> {
    const charged = new Set<string>();
    for (const rule of account.limits) {
      const amount = amountOf(used, rule.metric);
      if (amount === 0) continue;
      const key = chargedKeyIn(this.counter, 'account', account.id, rule, nowMs);
      if (charged.has(key.id)) continue;
      charged.add(key.id);
      const result = this.counter.increment(key, amount);
      if (!result.ok) return result;
    }
    return OK_VOID;
  }
}
