import type { QuotaScope } from '../../admission/quota.js';
import { type AccountId, isValidId, type TenantId } from '../../core/ids.js';
import { usageAdjustmentAmountMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { counterKey, type CounterKey } from '../../crdt/counter-key.js';
import { windowAt, type WindowUnit } from '../../crdt/window.js';
import { isValidAuditReason } from '../../mesh/policy/audit-schema.js';
import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import type { LimitRule } from '../../mesh/policy/policy-schema.js';
import type { KeyProblem } from './key-lifecycle.js';

/**
 * An operator's usage adjustment, checked field by field before anything is counted: a charge
 * adds to a counter, a credit takes from it, on one key `(scope, subject, metric, window)`, with a
 * reason that the audit log keeps. This replaces writing counters directly (the old
 * `POST /counters`), which let a misspelt metric or an over-refund through.
 *
 *   { "scope": "tenant", "subject": "acme", "metric": "requests", "window": "day",
 *     "index": 20454, "kind": "credit", "amount": 5, "reason": "refund for incident 42" }
 *
 * What is accepted, and why:
 *   - `scope` is `tenant`, `user` (subject `<tenant>:<user>`) or `account`, and the subject must
 *     exist in the policy (for `user`, its tenant);
 *   - `metric` and `window` must be those of one of the subject's limits (a tenant's `limits`, its
 *     `userLimits` for a user, an account's `limits`). Only those counters decide anything, so an
 *     adjustment of any other is a mistake, most often a misspelt metric. A sliding limit counts
 *     in 10-second sub-buckets: its window here is `sec10`;
 *   - `index` names the window (default: the one containing now); a future window is refused,
 *     and one past the counters' expiry horizon is refused when applied;
 *   - `amount` is 1 to `usageAdjustmentAmountMax`; a credit may not exceed the counter's value,
 *     which the service checks (./admin-service.ts) so that no credit drives a counter below zero;
 *   - `reason` is required; no other field is accepted.
 */
export type AdjustmentKind = 'charge' | 'credit';

export interface UsageAdjustment {
  readonly key: CounterKey;
  readonly kind: AdjustmentKind;
  readonly amount: number;
  readonly reason: string;
}

const fieldNames = ['scope', 'subject', 'metric', 'window', 'index', 'kind', 'amount', 'reason'];
const scopes: readonly QuotaScope[] = ['tenant', 'user', 'account'];

export function parseUsageAdjustment(value: unknown, policy: Pick<PolicyDocument, 'tenant' | 'account'>, nowMs: number): Result<UsageAdjustment, KeyProblem> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return problem('(body)', 'must be a JSON object');
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).find((name) => !fieldNames.includes(name));
  if (unknown !== undefined) return problem(unknown.slice(0, 64), `unknown field; the fields are ${fieldNames.join(', ')}`);
  const { scope, subject, metric, window, index, kind, amount, reason } = fields;
  if (typeof scope !== 'string' || !(scopes as readonly string[]).includes(scope)) return problem('scope', `must be one of ${scopes.join(', ')}`);
  if (typeof subject !== 'string' || !isValidId(subject)) return problem('subject', 'must be a tenant, user (<tenant>:<user>) or account id');
  const rules = rulesOf(scope as QuotaScope, subject, policy);
  if (!rules.ok) return rules;
  if (kind !== 'charge' && kind !== 'credit') return problem('kind', 'must be charge or credit');
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 1 || amount > usageAdjustmentAmountMax) {
    return problem('amount', `must be an integer from 1 to ${usageAdjustmentAmountMax}`);
  }
  if (!isValidAuditReason(reason)) return problem('reason', 'is required: say why, in 1 to 512 characters');
  const metrics = [...new Set(rules.value.map((rule) => rule.metric))];
  if (typeof metric !== 'string' || !metrics.includes(metric)) {
    return problem(
      'metric',
      metrics.length === 0
        ? `${scope} ${subject} has no limits, so no counter to adjust`
        : `must be a metric of ${scope} ${subject}'s limits: ${metrics.join(', ')}`,
    );
  }
  const units = [...new Set(rules.value.filter((rule) => rule.metric === metric).map(countedUnit))];
  if (typeof window !== 'string' || !(units as readonly string[]).includes(window)) {
    return problem('window', `must be a window of a ${metric} limit of ${scope} ${subject}: ${units.join(', ')} (sec10 for a sliding limit)`);
  }
  const current = windowAt(window as WindowUnit, nowMs).index;
  if (index !== undefined && (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index > current)) {
    return problem('index', `must be a window index from 0 to the current one, ${current}`);
  }
  const key = counterKey(scope, subject, metric, { unit: window as WindowUnit, index: index ?? current });
  return ok({ key, kind, amount, reason });
}

/** The window unit a rule's counter counts in: sliding limits count in `sec10` sub-buckets. */
function countedUnit(rule: LimitRule): WindowUnit {
  return rule.sliding ? 'sec10' : rule.window;
}

function rulesOf(scope: QuotaScope, subject: string, policy: Pick<PolicyDocument, 'tenant' | 'account'>): Result<readonly LimitRule[], KeyProblem> {
  if (scope === 'tenant') {
    const tenant = policy.tenant(subject as TenantId);
    return tenant === undefined ? problem('subject', `names no tenant of the policy`) : ok(tenant.limits);
  }
  if (scope === 'account') {
    const account = policy.account(subject as AccountId);
    return account === undefined ? problem('subject', 'names no account of the policy') : ok(account.limits);
  }
  // A user's subject is `<tenant>:<user>`; tenant ids may hold `:` themselves, so every split
  // is tried, the first that names a tenant wins.
  for (let split = subject.indexOf(':'); split > 0; split = subject.indexOf(':', split + 1)) {
    const tenant = policy.tenant(subject.slice(0, split) as TenantId);
    if (tenant !== undefined && split < subject.length - 1) return ok(tenant.userLimits);
  }
  return problem('subject', 'must be <tenant>:<user> for a tenant of the policy');
}

function problem(field: string, reason: string): Result<never, KeyProblem> {
  return err({ field, reason });
}
