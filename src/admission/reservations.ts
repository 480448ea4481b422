import { assert, isCount } from '../core/assert.js';
import type { RequestId, TenantId } from '../core/ids.js';
import { PriorityHeap } from '../core/priority-heap.js';
import { reservationLeaseMsMax, reservationLeaseSlackMax, reservationsOpenMax, reservationsSettledRememberedMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { CounterKey } from '../crdt/counter-key.js';
import type { CounterError, WindowedCounter } from '../crdt/windowed-counter.js';

/**
 * The reservation lifecycle (DESIGN.md §4): estimate → reserve → upstream call → settle.
 *
 * `reserve` adds the estimate to every counter the request is charged to (the tenant's and
 * the account's windows) before the call, so concurrent requests see each other's estimates;
 * `settle` then refunds the difference through the PN-counter's negative side, or charges the
 * excess if the request used more than estimated. Every reservation carries a lease: a request
 * that vanishes (a crashed caller, a lost stream) is settled by `expire`, charged in full, so
 * a reservation is never kept forever and never refunded without evidence of what was used.
 *
 * Settlement is idempotent on the request id: a retried settle, or a settle that races the
 * lease, changes nothing the second time and returns the first outcome. Ids settled recently
 * are remembered (bounded), so a late duplicate `reserve` of a settled request is refused
 * instead of charging it twice.
 *
 * Which counters to charge and whether the estimate fits the tenant's limits is the caller's
 * business (the consistency modes); this table only keeps the books straight.
 *
 * Holds. A reservation may also name hold keys (one per charged key the caller wants released
 * should this node die; see src/admission/successor-release.ts): each is raised by the amount
 * when the reservation opens and lowered by the same amount when it closes (settled, expired
 * or cancelled). A replica's own entry on a hold key is thus exactly what its open reservations
 * hold there, and a successor that finds a dead predecessor's entry above zero knows what that
 * predecessor left open.
 */
export interface Reservation {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly keys: readonly CounterKey[];
  /** Units reserved on every key (weighted tokens, or 1 for a request counter). */
  readonly amount: number;
  readonly reservedAtMs: number;
  readonly leaseExpiresMs: number;
  /** Hold keys raised by `amount` while the reservation is open (see Holds above). */
  readonly holds: readonly CounterKey[];
}

export interface Settlement {
  readonly requestId: RequestId;
  readonly reserved: number;
  /** What the request was finally charged on every key. */
  readonly charged: number;
  /** 'usage': settled with the actual usage; 'lease': the lease ran out, charged in full. */
  readonly by: 'usage' | 'lease';
}

export type ReserveError =
  | { readonly kind: 'already-settled'; readonly settlement: Settlement }
  | { readonly kind: 'reservations-full'; readonly openMax: number }
  | { readonly kind: 'counter'; readonly error: CounterError };

export type SettleError = { readonly kind: 'unknown-reservation'; readonly requestId: RequestId };

interface Lease {
  readonly expiresMs: number;
  readonly requestId: RequestId;
  readonly arrival: number;
}

export class ReservationTable {
  private readonly open = new Map<RequestId, Reservation>();
  private readonly settled = new Map<RequestId, Settlement>();
  /**
   * Open reservations by lease expiry, for `expire`: a heap, so that an expire takes off only the
   * leases that ran out (a list re-sorted at every expire cost strict mode most of its time when
   * leases arrived out of order: issue 17). Entries of settled ids stay until popped or compacted
   * and are skipped; `arrival` orders leases that end in the same millisecond as they came.
   */
  private readonly leases = new PriorityHeap<Lease>();
  private arrivals = 0;
  /** Open reservations held at once: 1 to `reservationsOpenMax`. */
  readonly openMax: number;

  constructor(
    private readonly counter: WindowedCounter,
    options: { readonly openMax?: number } = {},
  ) {
    this.openMax = options.openMax ?? reservationsOpenMax;
    assert(this.openMax > 0 && this.openMax <= reservationsOpenMax, 'openMax out of range');
  }

  /** Entries in the lease book, open or awaiting removal (bounded by the compaction). */
  get leasesHeld(): number {
    return this.leases.size;
  }

  get openCount(): number {
    return this.open.size;
  }

  /**
   * The table's tables, for the bound tests: `open` ≤ `openMax` (refused past it), `settled` ≤
   * `reservationsSettledRememberedMax` (the oldest forgotten), `leases` ≤ 2 × open +
   * `reservationLeaseSlackMax` after a reserve (compacted past it) and shrinking with every expiry.
   */
  tableSizes(): { readonly open: number; readonly settled: number; readonly leases: number } {
    return { open: this.open.size, settled: this.settled.size, leases: this.leases.size };
  }

  /** The open reservation under `requestId`, if any. */
  get(requestId: RequestId): Reservation | undefined {
    return this.open.get(requestId);
  }

  /**
   * Charges `amount` to every key, or nothing: if one key refuses (a full map, an expired
   * window), the keys already charged are refunded. Reserving an id that is still open returns
   * the open reservation unchanged (a retried request is not charged twice).
   */
  reserve(
    requestId: RequestId,
    tenant: TenantId,
    keys: readonly CounterKey[],
    amount: number,
    nowMs: number,
    leaseMs: number,
    holds: readonly CounterKey[] = [],
  ): Result<Reservation, ReserveError> {
    assert(isCount(amount), 'amount must be a count');
    assert(leaseMs > 0 && leaseMs <= reservationLeaseMsMax, 'lease out of range');
    const existing = this.open.get(requestId);
    if (existing !== undefined) return ok(existing);
    const settlement = this.settled.get(requestId);
    if (settlement !== undefined) return err({ kind: 'already-settled', settlement });
    if (this.open.size >= this.openMax) return err({ kind: 'reservations-full', openMax: this.openMax });
    for (let i = 0; i < keys.length; i++) {
      const charged = this.counter.increment(keys[i] as CounterKey, amount);
      if (!charged.ok) {
        for (let j = 0; j < i; j++) this.counter.decrement(keys[j] as CounterKey, amount);
        return err({ kind: 'counter', error: charged.error });
      }
    }
    // A hold that cannot be raised is left out (a full counter): that reservation is then simply
    // not released on this node's death, the behaviour before holds existed.
    const raised = holds.filter((hold) => amount === 0 || this.counter.increment(hold, amount).ok);
    const reservation: Reservation = { requestId, tenant, keys: [...keys], amount, reservedAtMs: nowMs, leaseExpiresMs: nowMs + leaseMs, holds: raised };
    this.open.set(requestId, reservation);
    this.addLease(reservation);
    this.compactLeases();
    return ok(reservation);
  }

  /**
   * Puts back an open reservation a durable store kept (see QuotaGate's durability): the counters
   * already hold its amount and holds, so nothing is charged again.
   */
  restore(reservation: Reservation): void {
    assert(!this.open.has(reservation.requestId), 'a reservation is restored once');
    assert(this.open.size < this.openMax, 'restored reservations fit the table');
    this.open.set(reservation.requestId, reservation);
    this.addLease(reservation);
  }

  /** Settles with the actual usage; the same outcome again for an id already settled. */
  settle(requestId: RequestId, used: number): Result<Settlement, SettleError> {
    assert(isCount(used), 'usage must be a count');
    const done = this.settled.get(requestId);
    if (done !== undefined) return ok(done);
    const reservation = this.open.get(requestId);
    if (reservation === undefined) return err({ kind: 'unknown-reservation', requestId });
    return ok(this.close(reservation, used, 'usage'));
  }

  /**
   * Withdraws an open reservation that was never admitted (a strict round said no, or a later
   * check failed): the whole amount is refunded and the id is forgotten, so the client may retry
   * it. Returns false if the id is not open.
   */
  cancel(requestId: RequestId): boolean {
    const reservation = this.open.get(requestId);
    if (reservation === undefined) return false;
    for (const key of reservation.keys) this.counter.decrement(key, reservation.amount);
    this.lowerHolds(reservation);
    this.open.delete(requestId);
    return true;
  }

  /** What the open reservations hold on each hold key, by key id. */
  openHolds(): Map<string, number> {
    const held = new Map<string, number>();
    for (const reservation of this.open.values()) {
      for (const hold of reservation.holds) held.set(hold.id, (held.get(hold.id) ?? 0) + reservation.amount);
    }
    return held;
  }

  /** Settles every reservation whose lease ran out by `nowMs`, charged in full, in lease order. */
  expire(nowMs: number): Settlement[] {
    const due: Lease[] = [];
    while ((this.leases.peekPriority() ?? Infinity) <= nowMs) due.push(this.leases.pop());
    if (due.length === 0) return [];
    // The heap pops equal expiries in no set order; arrival order keeps the outcome that of a
    // stably sorted list, whatever the heap's shape.
    if (due.length > 1) due.sort((a, b) => a.expiresMs - b.expiresMs || a.arrival - b.arrival);
    const expired: Settlement[] = [];
    for (const lease of due) {
      const reservation = this.open.get(lease.requestId);
      if (reservation !== undefined && reservation.leaseExpiresMs === lease.expiresMs) {
        expired.push(this.close(reservation, reservation.amount, 'lease'));
      }
    }
    return expired;
  }

  private addLease(reservation: Reservation): void {
    this.leases.push(reservation.leaseExpiresMs, { expiresMs: reservation.leaseExpiresMs, requestId: reservation.requestId, arrival: this.arrivals++ });
  }

  /**
   * Leases of reservations settled before they expire are dropped lazily. Without this, a caller
   * that settles everything (and so rarely calls `expire`) would grow the book without bound.
   * Amortised O(1): it runs only when stale entries outnumber the open ones.
   */
  private compactLeases(): void {
    if (this.leases.size > 2 * this.open.size + reservationLeaseSlackMax) this.leases.retain((_, lease) => this.open.has(lease.requestId));
  }

  private close(reservation: Reservation, used: number, by: Settlement['by']): Settlement {
    if (used < reservation.amount) {
      for (const key of reservation.keys) this.counter.decrement(key, reservation.amount - used);
    } else if (used > reservation.amount) {
      // More than estimated (for example cache writes priced above input): charge the excess.
      // The window may have been expired meanwhile; then there is nothing left to charge.
      for (const key of reservation.keys) this.counter.increment(key, used - reservation.amount);
    }
    const settlement: Settlement = { requestId: reservation.requestId, reserved: reservation.amount, charged: used, by };
    this.lowerHolds(reservation);
    this.open.delete(reservation.requestId);
    this.settled.set(reservation.requestId, settlement);
    if (this.settled.size > reservationsSettledRememberedMax) {
      // Maps iterate in insertion order: the first entry is the oldest settlement.
      const oldest = this.settled.keys().next().value as RequestId;
      this.settled.delete(oldest);
    }
    return settlement;
  }

  private lowerHolds(reservation: Reservation): void {
    if (reservation.amount === 0) return;
    for (const hold of reservation.holds) this.counter.decrement(hold, reservation.amount);
  }
}
