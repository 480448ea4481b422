import type { ShedLoad } from '../../admission/shedder.js';
import { assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../platform/system-clock.js';
import { tierQueueWaitMsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Tier } from '../../mesh/policy/policy-schema.js';
import { noopObserver, type QueueObserver } from '../../observe/gateway-observer.js';
import type { QueueFull, QueueRequest, Ticket, TierQueue } from '../../schedule/tier-queue.js';
import { systemTimers, type Timers } from '../../upstream/call-guard.js';

/**
 * The admission queue (src/schedule/tier-queue.ts) with waiting: a request parks on a promise
 * until the queue starts it, its client goes away, or it has waited `waitMs`.
 *
 *   acquire ─ enqueue ─ full ────────────────────────▶ queue-full
 *              └ park ─ dequeued (a slot freed) ─────▶ a CallSlot
 *                     ─ signal aborted: cancel ──────▶ cancelled
 *                     ─ waited waitMs: cancel ───────▶ queue-timeout
 *   slot.release() ─ finish, then start whoever is next
 *
 * The queue decides; this file only keeps the promises and one timer per parked request. Every
 * way out removes the request from the queue and clears its timer and listener, so nothing
 * outlives it: the queue's own `cancel` and `finish` are idempotent, and so is `release`.
 *
 * Every parked request's wait is reported to the observer once, when it leaves the queue with a
 * slot or without one; a request refused as `queue-full` never waited and is not reported.
 */
export interface CallSlot {
  readonly ticket: Ticket;
  /**
   * Frees the slot and starts the next queued request; idempotent. Given the weighted tokens the
   * request used, the queue's fairness counts them in place of the estimate.
   */
  release(usedTokens?: number): void;
}

export type SchedulerRefusal =
  QueueFull | { readonly kind: 'queue-timeout'; readonly waitedMs: number } | { readonly kind: 'cancelled' } | { readonly kind: 'closed' };

interface Parked {
  readonly resolve: (outcome: Result<CallSlot, SchedulerRefusal>) => void;
  readonly timer: unknown;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
  readonly tier: Tier;
  /** When it parked, on the observer's clock. */
  readonly parkedAtMs: number;
}

export interface CallSchedulerOptions {
  readonly queue: TierQueue;
  /** Longest a request waits, 1 to `tierQueueWaitMsMax`. */
  readonly waitMs?: number;
  readonly clock?: Clock;
  readonly timers?: Timers;
  /** Told how long each parked request waited; observes nothing by default. */
  readonly observer?: QueueObserver;
}

export class CallScheduler {
  readonly queue: TierQueue;
  private readonly waitMs: number;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly observer: QueueObserver;
  private readonly parked = new Map<Ticket, Parked>();
  private closed = false;
  private capacity = Number.POSITIVE_INFINITY;

  constructor(options: CallSchedulerOptions) {
    this.queue = options.queue;
    this.waitMs = options.waitMs ?? tierQueueWaitMsMax;
    assert(Number.isSafeInteger(this.waitMs) && this.waitMs >= 1 && this.waitMs <= tierQueueWaitMsMax, 'waitMs is 1 to tierQueueWaitMsMax');
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.observer = options.observer ?? noopObserver;
  }

  /** Requests parked right now: for leak checks. */
  get parkedCount(): number {
    return this.parked.size;
  }

  load(): ShedLoad {
    return this.queue.load();
  }

  /** Waits for a call slot, at most `waitMs` (the scheduler's own wait when undefined); see the file comment. */
  acquire(request: QueueRequest, signal: AbortSignal, waitMs?: number): Promise<Result<CallSlot, SchedulerRefusal>> {
    assert(waitMs === undefined || (Number.isSafeInteger(waitMs) && waitMs >= 1 && waitMs <= tierQueueWaitMsMax), 'waitMs is 1 to tierQueueWaitMsMax');
    if (this.closed) return Promise.resolve(err({ kind: 'closed' }));
    if (signal.aborted) return Promise.resolve(err({ kind: 'cancelled' }));
    const nowMs = this.clock.nowMs();
    const queued = this.queue.enqueue(request, nowMs);
    if (!queued.ok) return Promise.resolve(queued);
    const ticket = queued.value.ticket;
    // Nobody waits and a slot is free: the request starts now, without a timer or a listener.
    if (this.parked.size === 0 && this.queue.inFlight < this.queue.inFlightLimit) {
      const entry = this.queue.dequeue(this.clock.nowMs());
      assert(entry?.ticket === ticket, 'with nobody waiting, the request just queued is the next one');
      this.observer.queueWait(request.tier, 'granted', 0);
      return Promise.resolve(ok(this.slotOf(ticket)));
    }
    const outcome = new Promise<Result<CallSlot, SchedulerRefusal>>((resolve) => {
      const onAbort = (): void => this.leave(ticket, { kind: 'cancelled' });
      const timer = this.timers.start(() => this.leave(ticket, { kind: 'queue-timeout', waitedMs: this.clock.nowMs() - nowMs }), waitMs ?? this.waitMs);
      this.parked.set(ticket, { resolve, timer, signal, onAbort, tier: request.tier, parkedAtMs: this.observer.nowMs() });
      signal.addEventListener('abort', onAbort, { once: true });
    });
    this.pump();
    return outcome;
  }

  /** Refuses new requests and ends every parked one with `closed`; slots already running stay theirs. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ticket of [...this.parked.keys()]) this.leave(ticket, { kind: 'closed' });
  }

  /**
   * Lets at most `cap` requests run at once (the queue's `setInFlightCap`), `Infinity` for the
   * queue's own bound; a raised cap starts waiting requests at once.
   */
  setCapacity(cap: number): void {
    if (cap === this.capacity) return;
    this.capacity = cap;
    this.queue.setInFlightCap(cap);
    this.pump();
  }

  /** Starts queued requests while the queue has free slots. */
  private pump(): void {
    // Bounded: each turn starts one request, and at most `inFlightMax` run at once.
    for (let turn = 0; turn < this.queue.limits.inFlightMax; turn++) {
      const entry = this.queue.dequeue(this.clock.nowMs());
      if (entry === undefined) return;
      const parked = this.parked.get(entry.ticket);
      assert(parked !== undefined, 'every queued request has a parked caller');
      this.unpark(entry.ticket, parked);
      this.observer.queueWait(parked.tier, 'granted', this.observer.nowMs() - parked.parkedAtMs);
      parked.resolve(ok(this.slotOf(entry.ticket)));
    }
  }

  private slotOf(ticket: Ticket): CallSlot {
    let released = false;
    return {
      ticket,
      release: (usedTokens?: number) => {
        if (released) return;
        released = true;
        this.queue.finish(ticket, usedTokens);
        this.pump();
      },
    };
  }

  /** A parked request leaves without a slot: out of the queue, timer and listener gone. */
  private leave(ticket: Ticket, refusal: SchedulerRefusal): void {
    const parked = this.parked.get(ticket);
    if (parked === undefined) return;
    this.unpark(ticket, parked);
    const wasQueued = this.queue.cancel(ticket);
    assert(wasQueued, 'a parked request is still queued');
    // `leave` is only ever given the refusals of a parked request; `queue-full` never parks.
    if (refusal.kind !== 'queue-full') this.observer.queueWait(parked.tier, refusal.kind, this.observer.nowMs() - parked.parkedAtMs);
    parked.resolve(err(refusal));
  }

  private unpark(ticket: Ticket, parked: Parked): void {
    this.parked.delete(ticket);
    this.timers.cancel(parked.timer);
    parked.signal.removeEventListener('abort', parked.onAbort);
  }
}
