import { chargedKeyIn, type QuotaScope, retryAfterMsFor, usedUnder } from '../../admission/quota.js';
import type { CounterKey } from '../../crdt/counter-key.js';
import { windowAt, windowLengthMs } from '../../crdt/window.js';
import type { WindowedCounter } from '../../crdt/windowed-counter.js';
import type { LimitRule } from '../../mesh/policy/policy-schema.js';
import type { LimitUsage } from '../../net/grpc/carpool-handler.js';

/**
 * GetUsage's rows: for each limit of a tenant (and of one of its users), how much is used and
 * what remains, from this node's merged view of the counters. `used` is what admission itself
 * compares with the limit: settled usage plus the estimates of requests still running, so a row
 * can show more than the final charges will. For a QUORUM read the caller first joins R members'
 * states into the counter (`readKeysOf` names the keys), after which the same rows include every
 * completed strict admission.
 */
export interface UsageSubject {
  readonly scope: Extract<QuotaScope, 'tenant' | 'user'>;
  readonly subject: string;
  readonly rules: readonly LimitRule[];
}

export function limitUsages(counter: WindowedCounter, subjects: readonly UsageSubject[], nowMs: number): LimitUsage[] {
  const rows: LimitUsage[] = [];
  for (const { scope, subject, rules } of subjects) {
    for (const rule of rules) {
      const used = usedUnder(counter, scope, subject, rule, nowMs);
      rows.push({
        scope,
        metric: rule.metric,
        window: rule.window,
        sliding: rule.sliding,
        mode: rule.mode,
        limit: rule.limit,
        used,
        remaining: Math.max(0, rule.limit - used),
        // The end of the fixed window, or for a sliding limit the end of the current 10-second
        // sub-bucket, when the oldest counted one leaves the sum.
        resetsAtMs: nowMs + retryAfterMsFor(rule, nowMs),
      });
    }
  }
  return rows;
}

/** Every counter key the rows read: each fixed window's key, each sliding limit's sub-buckets. */
export function readKeysOf(counter: WindowedCounter, subjects: readonly UsageSubject[], nowMs: number): CounterKey[] {
  const keys = new Map<string, CounterKey>();
  for (const { scope, subject, rules } of subjects) {
    for (const rule of rules) {
      const current = chargedKeyIn(counter, scope, subject, rule, nowMs);
      if (!rule.sliding) {
        keys.set(current.id, current);
        continue;
      }
      // The same span `WindowedCounter.slidingSum` adds up; limits keep sliding spans within the
      // counter expiry horizon, so this is a few dozen keys at most.
      const first = Math.max(0, windowAt('sec10', nowMs - windowLengthMs[rule.window] + 1).index);
      for (let index = first; index <= current.window.index; index++) {
        const key = counter.keyFor(scope, subject, rule.metric, { unit: 'sec10', index });
        keys.set(key.id, key);
      }
    }
  }
  return [...keys.values()];
}
