import { assert, isCount } from '../core/assert.js';
import type { AccountId, Brand } from '../core/ids.js';
import { accountBusyRetryAfterMs, permitDeadlineHeapSlackMax, permitsHeldMax, permitWaitersMax, permitWaitersPerAccountMax } from '../core/limits.js';
import { PriorityHeap } from '../core/priority-heap.js';
import { err, ok, OK_VOID, type Result } from '../core/result.js';

/**
 * Per-account concurrency permits: at most `concurrencyMax` upstream calls in flight on one
 * account from this node, with a bounded FIFO queue of requests waiting for a permit.
 *
 * Waiting without promises or timers. The core cannot park a caller, so `acquire` answers at
 * once with either a granted permit or a queued ticket (a `WaiterId`). Whatever later happens to
 * a ticket (a permit handed over by a release, its deadline passing at a `tick`, its account
 * removed or gone unhealthy) is decided inside the table and put in an outbox of events that the
 * runtime drains with `takeEvents()` after each call, resolving the promise it keeps per ticket.
 * An outbox, not a callback: a callback fired from inside `release` could re-enter the table
 * (acquire, cancel) halfway through a hand-over; an outbox is drained when the table is
 * consistent, and the simulator drains it in a deterministic order. Events come out in the order
 * they were decided.
 *
 * Accounting. A permit counts against its account from the moment it is decided, including a
 * grant still sitting in the outbox, so `inFlight ≤ concurrencyMax` holds at every step (a cap
 * lowered by a policy change takes effect as permits drain; held permits are never revoked).
 * Every permit leaves exactly once: `release` of an unknown or already released permit is a
 * typed no-op, never a second decrement. `cancel` of a ticket is idempotent: while queued it
 * leaves the queue; granted but not yet taken, the grant is revoked and its permit handed on;
 * otherwise nothing happens and the caller owns whatever it took (a taken grant must be
 * released).
 *
 * FIFO. Waiters of one account are granted in the order they queued, and a newcomer never
 * overtakes them: a permit frees straight to the head of the queue, so while anyone waits there
 * is no free permit to take.
 *
 * Bounds. Each account queues at most `waitersPerAccountMax`; all accounts together hold at most
 * `waitersMax` tickets, counting decided outcomes not yet drained (so a runtime that stops
 * draining cannot grow the outbox); held permits are capped by `heldMax`. Overflow is a typed
 * refusal, never a dropped ticket. Expiry uses a deadline heap whose stale entries (tickets that
 * left by another way) are bounded by rebuilding it.
 */
export type PermitId = Brand<number, 'PermitId'>;
export type WaiterId = Brand<number, 'WaiterId'>;

export interface Permit {
  readonly id: PermitId;
  readonly accountId: AccountId;
}

export type EvictionReason =
  /** The account left the policy. */
  | 'account-removed'
  /** The account went into a cooldown, was disabled or its circuit opened. */
  | 'account-unavailable'
  /** The account's VIP dedication changed and no longer admits the waiter's tenant. */
  | 'not-allowed';

/** What became of a ticket; `context` is what the caller attached when it queued. */
export type PermitEvent<C> =
  | { readonly kind: 'granted'; readonly waiterId: WaiterId; readonly permit: Permit; readonly context: C }
  | { readonly kind: 'expired'; readonly waiterId: WaiterId; readonly accountId: AccountId; readonly context: C }
  | { readonly kind: 'evicted'; readonly waiterId: WaiterId; readonly accountId: AccountId; readonly reason: EvictionReason; readonly context: C };

export type PermitError =
  /** The account has no free permit and the caller may not wait (deadline not after now). */
  | { readonly kind: 'busy'; readonly retryAfterMs: number }
  /** The account's queue, or the queues of all accounts together, are full. */
  | { readonly kind: 'queue-full'; readonly scope: 'account' | 'total'; readonly max: number }
  /** The node holds `heldMax` permits already. */
  | { readonly kind: 'permits-full'; readonly max: number }
  | { readonly kind: 'unknown-account'; readonly accountId: AccountId };

export type Acquired = { readonly kind: 'granted'; readonly permit: Permit } | { readonly kind: 'queued'; readonly waiterId: WaiterId };

export type CancelOutcome =
  /** The ticket was waiting and left the queue. */
  | 'cancelled'
  /** The ticket had been granted but the grant was not taken yet: the permit went back. */
  | 'revoked'
  /** Nothing was waiting under this id (never queued, already cancelled, or its outcome taken). */
  | 'not-waiting';

export interface PermitTableOptions {
  readonly waitersPerAccountMax?: number;
  readonly waitersMax?: number;
  readonly heldMax?: number;
}

/** Plain counters for the metrics binding. */
export class PermitStats {
  granted = 0;
  queued = 0;
  /** Grants to waiters, by release or by a raised cap. */
  handedOver = 0;
  expired = 0;
  evicted = 0;
  cancelled = 0;
  revoked = 0;
  released = 0;
  /** Releases of a permit not held: a runtime bug made harmless, worth an alert. */
  unknownReleases = 0;
  refusedBusy = 0;
  refusedQueueFull = 0;
  refusedPermitsFull = 0;
}

/**
 * An account's permits as the table counts them, read live. For a caller that decides on every
 * request (the pool) and would otherwise pay a map lookup per count; see `PermitTable.view`.
 */
export interface PermitView {
  readonly max: number;
  readonly inFlight: number;
  /** Left the policy: takes no new tickets. */
  readonly retired: boolean;
  readonly waiters: { readonly size: number };
}

interface Waiter<C> {
  readonly id: WaiterId;
  readonly accountId: AccountId;
  readonly deadlineMs: number;
  readonly context: C;
}

interface Slots<C> {
  max: number;
  inFlight: number;
  /** Insertion order is queue order; deletion from the middle (cancel, expiry) is O(1). */
  readonly waiters: Map<WaiterId, Waiter<C>>;
  /** Left the policy: takes no new tickets, and goes once its last permit is released. */
  retired: boolean;
}

export class PermitTable<C> {
  readonly stats = new PermitStats();
  readonly waitersPerAccountMax: number;
  readonly waitersMax: number;
  readonly heldMax: number;

  private readonly accounts = new Map<AccountId, Slots<C>>();
  private readonly held = new Map<PermitId, AccountId>();
  /** Every queued ticket, for cancel and expiry. */
  private readonly waiting = new Map<WaiterId, Waiter<C>>();
  /** Decided outcomes not yet taken, in decision order. */
  private outbox = new Map<WaiterId, PermitEvent<C>>();
  private readonly deadlines = new PriorityHeap<WaiterId>();
  private nextPermit = 1;
  private nextWaiter = 1;

  constructor(options: PermitTableOptions = {}) {
    this.waitersPerAccountMax = options.waitersPerAccountMax ?? permitWaitersPerAccountMax;
    this.waitersMax = options.waitersMax ?? permitWaitersMax;
    this.heldMax = options.heldMax ?? permitsHeldMax;
    assert(this.waitersPerAccountMax >= 0 && this.waitersPerAccountMax <= permitWaitersPerAccountMax, 'waitersPerAccountMax out of range');
    assert(this.waitersMax >= 0 && this.waitersMax <= permitWaitersMax, 'waitersMax out of range');
    assert(this.heldMax >= 1 && this.heldMax <= permitsHeldMax, 'heldMax out of range');
  }

  // ---- Accounts ----

  /**
   * Adds an account or changes its cap. A raised cap hands the new permits to waiters at once; a
   * lowered one lets the excess drain. An account removed but still draining comes back with
   * its permits in flight.
   */
  setAccount(accountId: AccountId, concurrencyMax: number): void {
    assert(isCount(concurrencyMax), 'a concurrency cap is a count');
    const slots = this.accounts.get(accountId);
    if (slots === undefined) {
      this.accounts.set(accountId, { max: concurrencyMax, inFlight: 0, waiters: new Map(), retired: false });
      return;
    }
    slots.max = concurrencyMax;
    slots.retired = false;
    this.handOver(accountId, slots);
  }

  /** Retires an account: its waiters are evicted, its permits stay valid until released. */
  removeAccount(accountId: AccountId): void {
    const slots = this.accounts.get(accountId);
    if (slots === undefined) return;
    this.evict(accountId, () => true, 'account-removed');
    slots.retired = true;
    this.dropIfIdle(accountId, slots);
  }

  /** Evicts the account's waiters whose context `matches`; returns how many. */
  evict(accountId: AccountId, matches: (context: C) => boolean, reason: EvictionReason): number {
    const slots = this.accounts.get(accountId);
    if (slots === undefined) return 0;
    let evicted = 0;
    for (const waiter of [...slots.waiters.values()]) {
      if (!matches(waiter.context)) continue;
      this.unqueue(slots, waiter);
      this.outbox.set(waiter.id, { kind: 'evicted', waiterId: waiter.id, accountId, reason, context: waiter.context });
      evicted++;
    }
    this.stats.evicted += evicted;
    return evicted;
  }

  has(accountId: AccountId): boolean {
    const slots = this.accounts.get(accountId);
    return slots !== undefined && !slots.retired;
  }

  inFlight(accountId: AccountId): number {
    return this.accounts.get(accountId)?.inFlight ?? 0;
  }

  queued(accountId: AccountId): number {
    return this.accounts.get(accountId)?.waiters.size ?? 0;
  }

  /** Whether a permit of the account can be taken right now without overtaking a waiter. */
  canGrant(accountId: AccountId): boolean {
    const slots = this.accounts.get(accountId);
    return slots !== undefined && this.canGrantIn(slots);
  }

  /** `canGrant` for an account whose view the caller holds. */
  canGrantIn(view: PermitView): boolean {
    return !view.retired && view.inFlight < view.max && view.waiters.size === 0 && this.held.size < this.heldMax;
  }

  /**
   * The account's counts, live: the view changes as permits come and go. It stays the account's
   * view while the table tracks the account, which is until `removeAccount` and the last of its
   * permits released; a `setAccount` after that starts a new one. Undefined when not tracked.
   */
  view(accountId: AccountId): PermitView | undefined {
    return this.accounts.get(accountId);
  }

  /** Permits held across all accounts, undelivered grants included. */
  get heldCount(): number {
    return this.held.size;
  }

  /** Tickets queued across all accounts. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Outcomes decided and not yet taken. */
  get pendingEvents(): number {
    return this.outbox.size;
  }

  /** Accounts tracked, retired ones still draining included. */
  get accountCount(): number {
    return this.accounts.size;
  }

  // ---- Permits ----

  /**
   * Takes a permit of the account now, or queues a ticket until `deadlineMs`. A deadline at or
   * before `nowMs` means "do not wait": without a free permit the answer is `busy`.
   */
  acquire(accountId: AccountId, deadlineMs: number, context: C, nowMs: number): Result<Acquired, PermitError> {
    const slots = this.accounts.get(accountId);
    if (slots === undefined || slots.retired) return err({ kind: 'unknown-account', accountId });
    if (slots.inFlight < slots.max && slots.waiters.size === 0) {
      if (this.held.size >= this.heldMax) {
        this.stats.refusedPermitsFull++;
        return err({ kind: 'permits-full', max: this.heldMax });
      }
      this.stats.granted++;
      return ok({ kind: 'granted', permit: this.grant(accountId, slots) });
    }
    if (deadlineMs <= nowMs) {
      this.stats.refusedBusy++;
      return err({ kind: 'busy', retryAfterMs: accountBusyRetryAfterMs });
    }
    if (slots.waiters.size >= this.waitersPerAccountMax) {
      this.stats.refusedQueueFull++;
      return err({ kind: 'queue-full', scope: 'account', max: this.waitersPerAccountMax });
    }
    if (this.waiting.size + this.outbox.size >= this.waitersMax) {
      this.stats.refusedQueueFull++;
      return err({ kind: 'queue-full', scope: 'total', max: this.waitersMax });
    }
    const waiter: Waiter<C> = { id: this.nextWaiter++ as WaiterId, accountId, deadlineMs, context };
    slots.waiters.set(waiter.id, waiter);
    this.waiting.set(waiter.id, waiter);
    this.deadlines.push(deadlineMs, waiter.id);
    this.stats.queued++;
    return ok({ kind: 'queued', waiterId: waiter.id });
  }

  /**
   * Returns a permit; the freed slot goes to the account's first waiter. Releasing a permit
   * that is not held changes nothing and says so.
   */
  release(permitId: PermitId): Result<undefined, { readonly kind: 'unknown-permit'; readonly permitId: PermitId }> {
    if (!this.giveBack(permitId)) {
      this.stats.unknownReleases++;
      return err({ kind: 'unknown-permit', permitId });
    }
    this.stats.released++;
    return OK_VOID;
  }

  /** Withdraws a ticket; see the file comment for what each outcome means. */
  cancel(waiterId: WaiterId): CancelOutcome {
    const waiter = this.waiting.get(waiterId);
    if (waiter !== undefined) {
      const slots = this.accounts.get(waiter.accountId);
      assert(slots !== undefined, 'a waiter belongs to a tracked account');
      this.unqueue(slots, waiter);
      this.stats.cancelled++;
      this.dropIfIdle(waiter.accountId, slots);
      return 'cancelled';
    }
    const decided = this.outbox.get(waiterId);
    if (decided === undefined) return 'not-waiting';
    this.outbox.delete(waiterId);
    if (decided.kind !== 'granted') return 'not-waiting';
    this.stats.revoked++;
    // The permit goes to the next waiter exactly as a finished call's would.
    assert(this.giveBack(decided.permit.id), 'an undelivered grant holds its permit');
    return 'revoked';
  }

  /** Expires every ticket whose deadline is at or before `nowMs`. */
  tick(nowMs: number): void {
    // Bounded by the heap, which holds at most 2 × waiting + slack entries.
    while (this.deadlines.size > 0 && (this.deadlines.peekPriority() as number) <= nowMs) {
      const waiterId = this.deadlines.pop();
      const waiter = this.waiting.get(waiterId);
      // Stale entries: the ticket left by another way (granted, cancelled, evicted).
      if (waiter === undefined || waiter.deadlineMs > nowMs) continue;
      const slots = this.accounts.get(waiter.accountId);
      assert(slots !== undefined, 'a waiter belongs to a tracked account');
      this.unqueue(slots, waiter);
      this.outbox.set(waiter.id, { kind: 'expired', waiterId: waiter.id, accountId: waiter.accountId, context: waiter.context });
      this.stats.expired++;
      this.dropIfIdle(waiter.accountId, slots);
    }
  }

  /** The outcomes decided since the last call, in the order they were decided. */
  takeEvents(): PermitEvent<C>[] {
    if (this.outbox.size === 0) return [];
    const events = [...this.outbox.values()];
    this.outbox = new Map();
    return events;
  }

  // ---- Internals ----

  private grant(accountId: AccountId, slots: Slots<C>): Permit {
    assert(slots.inFlight < slots.max, 'a permit is granted only below the cap');
    const permit: Permit = { id: this.nextPermit++ as PermitId, accountId };
    slots.inFlight++;
    this.held.set(permit.id, accountId);
    return permit;
  }

  /** Returns a held permit and hands its slot on; false when the permit is not held. */
  private giveBack(permitId: PermitId): boolean {
    const accountId = this.held.get(permitId);
    if (accountId === undefined) return false;
    this.held.delete(permitId);
    const slots = this.accounts.get(accountId);
    assert(slots !== undefined && slots.inFlight > 0, 'a held permit belongs to a tracked account with permits in flight');
    slots.inFlight--;
    this.handOver(accountId, slots);
    this.dropIfIdle(accountId, slots);
    return true;
  }

  /** Grants free permits of the account to its waiters, oldest first. */
  private handOver(accountId: AccountId, slots: Slots<C>): void {
    // Bounded by the account's waiters: every turn removes one.
    while (!slots.retired && slots.inFlight < slots.max && this.held.size < this.heldMax) {
      const first = slots.waiters.values().next();
      if (first.done === true) break;
      const waiter = first.value;
      this.unqueue(slots, waiter);
      this.outbox.set(waiter.id, { kind: 'granted', waiterId: waiter.id, permit: this.grant(accountId, slots), context: waiter.context });
      this.stats.handedOver++;
    }
  }

  private unqueue(slots: Slots<C>, waiter: Waiter<C>): void {
    slots.waiters.delete(waiter.id);
    this.waiting.delete(waiter.id);
    // The heap entry stays behind as a stale entry; rebuild once they outnumber the live ones.
    if (this.deadlines.size > 2 * this.waiting.size + permitDeadlineHeapSlackMax) {
      const waiters = [...this.waiting.values()];
      this.deadlines.rebuild(
        waiters.map((w) => w.deadlineMs),
        waiters.map((w) => w.id),
      );
    }
  }

  private dropIfIdle(accountId: AccountId, slots: Slots<C>): void {
    if (slots.retired && slots.inFlight === 0 && slots.waiters.size === 0) this.accounts.delete(accountId);
  }
}
