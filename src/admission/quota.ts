import { err, OK_VOID, type Result } from '../core/result.js';
import { counterKey, type CounterKey } from '../crdt/counter-key.js';
import { windowAt, windowEndMs, windowLengthMs } from '../crdt/window.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import type { LimitRule } from '../mesh/policy/policy-schema.js';
import type { Rejection } from './outcome.js';

/**
 * Quota rules against counters: which counter a request is charged to under each rule, how
 * much of the rule is used, and the `eventual` decision (DESIGN.md §4) on the local merged
 * view. `strict` and `escrow` rules decide through the mesh and are left to their own modules;
 * here they are skipped.
 *
 * A fixed rule charges the window containing now (`day:20418`); a sliding rule charges the
 * current 10-second sub-bucket and sums the sub-buckets overlapping the last window length, so
 * its sum errs high by at most one sub-bucket (see `WindowedCounter.slidingSum`).
 */
export type QuotaScope = 'tenant' | 'account' | 'user';

/** The counter a request is charged to under `rule` at `nowMs`. */
export function chargedKey(scope: QuotaScope, subject: string, rule: LimitRule, nowMs: number): CounterKey {
  return counterKey(scope, subject, rule.metric, windowAt(rule.sliding ? 'sec10' : rule.window, nowMs));
}

/**
 * `chargedKey` from the counter's bounded key cache: the same key, without building and
 * validating it per request. For the request path, which charges the same few keys over and over.
 */
export function chargedKeyIn(counter: WindowedCounter, scope: QuotaScope, subject: string, rule: LimitRule, nowMs: number): CounterKey {
  return counter.keyFor(scope, subject, rule.metric, windowAt(rule.sliding ? 'sec10' : rule.window, nowMs));
}

/** Every counter a request is charged to under `rules`, without duplicates. */
export function chargedKeys(scope: QuotaScope, subject: string, rules: readonly LimitRule[], nowMs: number): CounterKey[] {
  const keys = new Map<string, CounterKey>();
  for (const rule of rules) {
    const key = chargedKey(scope, subject, rule, nowMs);
    keys.set(key.id, key);
  }
  return [...keys.values()];
}

/**
 * How much of `rule` is used in the local view at `nowMs`: a count, whatever state the counter
 * reached. A PN-counter's value may be below zero (a refund larger than its charge: the
 * reservation books refuse one, but a replica running other code could write it) or, summed
 * over many replicas, above 2^53; either would lend a tenant room or break the readers of this
 * figure (GetUsage once failed with INTERNAL for such a tenant), so it is clamped to a count.
 */
export function usedUnder(counter: WindowedCounter, scope: QuotaScope, subject: string, rule: LimitRule, nowMs: number): number {
  const used = rule.sliding
    ? counter.slidingSum(scope, subject, rule.metric, windowLengthMs[rule.window], nowMs)
    : // The counter's key cache, not `chargedKey`: this runs for every request and every rule.
      counter.valueAt(scope, subject, rule.metric, windowAt(rule.window, nowMs));
  return used <= 0 ? 0 : Math.min(used, Number.MAX_SAFE_INTEGER);
}

/**
 * When usage under `rule` can next fall: the end of the fixed window, or for a sliding rule the
 * end of the current sub-bucket (the oldest one then leaves the sum). A hint, not a promise.
 */
export function retryAfterMsFor(rule: LimitRule, nowMs: number): number {
  const window = windowAt(rule.sliding ? 'sec10' : rule.window, nowMs);
  return Math.max(1, windowEndMs(window) - nowMs);
}

/** The rejection of a request over `rule`, with the hint of when its usage can next fall. */
export function quotaRejection(rule: LimitRule, nowMs: number): Extract<Rejection, { kind: 'quota' }> {
  return { kind: 'quota', metric: rule.metric, limit: rule.limit, window: rule.window, retryAfterMs: retryAfterMsFor(rule, nowMs) };
}

/**
 * The `eventual` decision: admit if, in this node's merged view, every eventual rule still has
 * room for the request's `amount(metric)`. Views lag by the propagation delay, which is where
 * the mode's bounded overshoot comes from (Σ regional admit rate × propagation delay).
 */
export function checkEventual(
  counter: WindowedCounter,
  scope: QuotaScope,
  subject: string,
  rules: readonly LimitRule[],
  amount: (metric: string) => number,
  nowMs: number,
): Result<undefined, Extract<Rejection, { kind: 'quota' }>> {
  for (const rule of rules) {
    if (rule.mode !== 'eventual') continue;
    const wanted = amount(rule.metric);
    if (wanted === 0) continue;
    if (usedUnder(counter, scope, subject, rule, nowMs) + wanted > rule.limit) {
      return err(quotaRejection(rule, nowMs));
    }
  }
  return OK_VOID;
}
