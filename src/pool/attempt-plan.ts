import { assert, unreachable } from '../core/assert.js';
import type { AccountId } from '../core/ids.js';
import { accountSwitchesMax } from '../core/limits.js';
import type { AccountFeedback } from './account-feedback.js';

/**
 * One request's attempts across accounts. The runtime asks the pool for an account excluding
 * `tried`, calls it, reports the feedback to the pool's health and then to `after`, which says
 * whether to try another account.
 *
 *   plan = new AttemptPlan()
 *   loop: pool.acquire({ ..., excluded: plan.tried }) ─ no account ─▶ reply no-account
 *         plan.begin(account) · call upstream · pool.onFeedback(feedback)
 *         plan.after(feedback) ─ retry ─▶ loop
 *                              ─ done / give-up ─▶ reply with the last outcome
 *
 * What is retried: a 429, 529, 401/403, 5xx or network failure is the account's (or the
 * upstream's) trouble, so another account may well succeed. A client error (400, 404, 413)
 * would fail the same way anywhere and is returned as is. Nothing is retried once the response
 * started reaching the client: the client cannot un-receive the first half of a stream.
 *
 * Bounds: at most `switchesMax` switches, so `switchesMax + 1` attempts, and never the same
 * account twice, so a request cannot loop over a small pool.
 */
export type AttemptDecision =
  | { readonly kind: 'done' }
  | { readonly kind: 'retry' }
  | { readonly kind: 'give-up'; readonly reason: 'not-retryable' | 'switches-exhausted' | 'response-started' };

/** Whether a failure of this kind may succeed on another account. */
export function isRetryable(kind: AccountFeedback['kind']): boolean {
  switch (kind) {
    case 'rate-limited':
    case 'overloaded':
    case 'server-error':
    case 'network':
    case 'auth-failed':
      return true;
    case 'success':
    case 'client-error':
      return false;
    default:
      return unreachable(kind, 'unknown feedback kind');
  }
}

export class AttemptPlan {
  private readonly triedAccounts = new Set<AccountId>();
  private open: AccountId | undefined;

  constructor(readonly switchesMax: number = accountSwitchesMax) {
    assert(Number.isSafeInteger(switchesMax) && switchesMax >= 0 && switchesMax <= accountSwitchesMax, 'switchesMax out of range');
  }

  /** Accounts attempted so far: the pool's `excluded` for the next pick. */
  get tried(): ReadonlySet<AccountId> {
    return this.triedAccounts;
  }

  get attempts(): number {
    return this.triedAccounts.size;
  }

  /** Whether another attempt is within the bound. */
  get canAttempt(): boolean {
    return this.open === undefined && this.triedAccounts.size <= this.switchesMax;
  }

  /** Records that a call to `accountId` starts. The pool never offers a tried account. */
  begin(accountId: AccountId): void {
    assert(this.open === undefined, 'one attempt at a time');
    assert(!this.triedAccounts.has(accountId), 'an account is attempted at most once per request');
    assert(this.triedAccounts.size <= this.switchesMax, 'attempts stay within the switch bound');
    this.triedAccounts.add(accountId);
    this.open = accountId;
  }

  /** Ends the open attempt with its feedback and says what to do next. */
  after(feedback: AccountFeedback, options: { readonly responseStarted?: boolean } = {}): AttemptDecision {
    assert(this.open !== undefined, 'an attempt ends only after it began');
    this.open = undefined;
    if (feedback.kind === 'success') return { kind: 'done' };
    if (!isRetryable(feedback.kind)) return { kind: 'give-up', reason: 'not-retryable' };
    if (options.responseStarted === true) return { kind: 'give-up', reason: 'response-started' };
    if (this.triedAccounts.size > this.switchesMax) return { kind: 'give-up', reason: 'switches-exhausted' };
    return { kind: 'retry' };
  }
}
