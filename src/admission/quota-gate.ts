import { assert } from '../core/assert.js';
import type { RequestId, TenantId } from '../core/ids.js';
import { escrowRebalanceIntervalMs, quotaRetryAfterMs, quotaWaitingMax, strictBatchMax, strictRetryDelayMsMax, strictRetryDelayMsMin } from '../core/limits.js';
import { type Random, SeededRandom } from '../core/random.js';
import { err, ok, type Result } from '../core/result.js';
import type { CounterKey } from '../crdt/counter-key.js';
import { windowAt, windowLengthMs } from '../crdt/window.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import type { RoundDone, RoundOutcome, RoundRequest } from '../mesh/quorum.js';
import type { LimitRule } from '../mesh/policy/policy-schema.js';
import { claimKey, type EscrowBook } from './escrow.js';
import type { Rejection } from './outcome.js';
import { chargedKeyIn, checkEventual, type QuotaScope, quotaRejection } from './quota.js';
import type { EscrowSpend, OpenRequestRecord } from './open-request-record.js';
import type { ReservationTable, Settlement } from './reservations.js';
import { holdKeyOf } from './successor-release.js';

/**
 * The quota decision in all three consistency modes (DESIGN.md §4), and the reservations that
 * follow an admission. One request goes through, in order:
 *
 *   1. `eventual` rules: the local merged view must have room (`checkEventual`);
 *   2. `escrow` rules: the node spends its own rights; if they do not cover the request, it
 *      claims more from the limit by a strict round on the claims counter (batched per key), and
 *      refuses the request if even that leaves too few;
 *   3. the reservation: the estimate is added to every counter the request is charged to;
 *   4. `strict` rules: the request joins its tenant's next quorum round (group commit: one round
 *      in flight per tenant and node, every request that arrives meanwhile rides the next one).
 *      The batch's reservations are written to W members, R members are read, and the requests
 *      are admitted in arrival order while, for every strict rule, the others' usage plus the
 *      batch's admitted amounts stay within the limit. The rest are refunded and refused.
 *
 * Why admitting part of a batch is safe: the round wrote the whole batch, so any round that
 * reads after this one completed its write sees at least this batch's reservations (or their
 * refunds, which leave no more than the admitted part); the DESIGN.md argument applies to the
 * batch as one writer whose admitted total passed the check.
 *
 * Before all of them, a request whose amount alone is over a rule's limit, in any mode, is
 * refused `exceeds-limit`: it could not pass even in an empty window, and a `quota` refusal with
 * a retry hint would send the client back for ever.
 *
 * Completion: `done` is called exactly once, synchronously for decisions that need no round,
 * otherwise from the mesh node's `tick`.
 *
 * The guarantee of strict and escrow limits is on what was reserved: a settlement above the
 * estimate is charged to the counters (never lost) but was never checked against the limit.
 * Estimates are upper bounds by construction (`estimateWeightedTokens` prices every input token
 * at the dearest weight and counts all of `max_tokens`), so only a caller passing its own
 * amounts can get there.
 */
export interface QuotaSubject {
  readonly scope: QuotaScope;
  readonly subject: string;
  readonly rules: readonly LimitRule[];
}

export interface QuotaRequest {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  /** The tenant's rules, and the user's if the policy has any. */
  readonly subjects: readonly QuotaSubject[];
  /** The estimate per metric (`requests`: 1, `weighted_tokens`: the weighted estimate); metrics left out count zero. */
  readonly amounts: ReadonlyMap<string, number>;
  readonly leaseMs: number;
  /** The caller's record of the request, kept with it on a durable node (see "Durability" below). */
  readonly context?: string;
}

export type QuotaRejection = Extract<Rejection, { kind: 'quota' | 'no-quorum' | 'shed' | 'exceeds-limit' | 'request-done' }>;
export type QuotaDecision = Result<undefined, QuotaRejection>;

/** What the gate needs from the mesh node. */
export interface RoundStarter {
  startRound(request: RoundRequest, nowMs: number, done: RoundDone): void;
}

export interface QuotaGateStats {
  admitted: number;
  rejected: number;
  strictRounds: number;
  strictBatched: number;
  /** Strict requests refused under contention and given their one retry. */
  strictRetries: number;
  claimRounds: number;
  rightsClaimed: number;
}

/** One counter a request is charged to, under one rule. */
interface Charge {
  readonly key: CounterKey;
  readonly rule: LimitRule;
  readonly amount: number;
  /** Keys whose sum the rule limits: the window's key, or a sliding rule's sub-buckets. */
  readonly readKeys: readonly CounterKey[];
}

interface Pending {
  readonly request: QuotaRequest;
  readonly nowMs: number;
  readonly escrow: readonly Charge[];
  readonly strict: readonly Charge[];
  readonly done: (decision: QuotaDecision) => void;
  /** Whether a strict round already refused it once under contention (it is retried once). */
  retried: boolean;
}

/**
 * A strict rider as its round decides it: each strict charge with what the others held on its
 * keys when the round started (`othersBefore`), so the round's news is what they gained since.
 */
interface StrictRider {
  readonly pending: Pending;
  readonly charges: readonly { readonly charge: Charge; readonly othersBefore: number }[];
}

interface Batch {
  inFlight: boolean;
  waiting: Pending[];
}

interface OpenRequest {
  readonly tenant: TenantId;
  readonly metrics: readonly string[];
  readonly escrow: readonly EscrowSpend[];
  admitted: boolean;
  readonly context: string | undefined;
}

/** A request that was open when a durable node died, as `recoverInterrupted` ended it. */
export interface InterruptedRequest {
  readonly record: OpenRequestRecord;
  /** Admitted before the death: charged its whole estimate (these settlements). Not admitted: withdrawn, refunded whole. */
  readonly settlements: readonly Settlement[];
  /** Of an admitted one, the keys charged under eventual rules only, released again (what a successor releases). */
  readonly released: readonly { readonly key: CounterKey; readonly amount: number }[];
}

export class QuotaGate {
  readonly stats: QuotaGateStats = { admitted: 0, rejected: 0, strictRounds: 0, strictBatched: 0, strictRetries: 0, claimRounds: 0, rightsClaimed: 0 };
  private readonly strictBatches = new Map<string, Batch>();
  private readonly claimBatches = new Map<string, Batch>();
  private readonly open = new Map<RequestId, OpenRequest>();
  /** Open requests changed (opened, admitted, ended) since `takeOpenChanges`. */
  private openChanged = new Set<RequestId>();
  /** Whether anyone takes `openChanged` (a node with a durable store); else it is not kept. */
  private durable = false;
  private waitingCount = 0;
  private nextRebalanceMs = -Infinity;
  /** Strict requests refused under contention, waiting for their one retry. */
  private retries: { readonly tenant: string; readonly pending: Pending; readonly atMs: number }[] = [];

  constructor(
    private readonly counter: WindowedCounter,
    private readonly reservations: ReservationTable,
    private readonly escrow: EscrowBook,
    private readonly rounds: RoundStarter,
    /** Configured mesh members: an escrow claim asks for a share of the limit per member. */
    private readonly members: number,
    /** Jitter of strict retries; every node should draw from its own seed. */
    private readonly random: Random = new SeededRandom(members),
  ) {
    assert(members >= 1, 'a mesh has members');
  }

  /** Requests waiting for a strict round or an escrow claim. */
  get waiting(): number {
    return this.waitingCount;
  }

  admit(request: QuotaRequest, nowMs: number, done: (decision: QuotaDecision) => void): void {
    const escrow: Charge[] = [];
    const strict: Charge[] = [];
    const never = exceedsLimit(request);
    if (never !== undefined) return this.reject(done, never);
    for (const { scope, subject, rules } of request.subjects) {
      const eventual = checkEventual(this.counter, scope, subject, rules, (metric) => request.amounts.get(metric) ?? 0, nowMs);
      if (!eventual.ok) return this.reject(done, eventual.error);
      for (const rule of rules) {
        const amount = request.amounts.get(rule.metric) ?? 0;
        if (amount === 0 || rule.mode === 'eventual') continue;
        const key = chargedKeyIn(this.counter, scope, subject, rule, nowMs);
        const charge: Charge = { key, rule, amount, readKeys: readKeysOf(this.counter, scope, subject, rule, key, nowMs) };
        (rule.mode === 'escrow' ? escrow : strict).push(charge);
      }
    }
    const pending: Pending = { request, nowMs, escrow, strict, done, retried: false };
    for (const charge of escrow) this.escrow.recordDemand(charge.key, charge.amount, nowMs);
    if (escrow.length > 0 && !this.spendEscrow(pending)) {
      if (!this.enqueue(this.claimBatches, (escrow[0] as Charge).key.id, pending)) return;
      this.runClaims((escrow[0] as Charge).key.id, nowMs);
      return;
    }
    this.afterEscrow(pending);
  }

  /**
   * Settles an admitted request with its actual usage per metric (a metric left out is charged
   * its estimate). Idempotent on the request id, like the reservation table underneath.
   */
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[] {
    // A gate that restarted over durable books has no record of requests admitted before: it
    // settles the metrics the caller names, without escrow refunds (those rights stay spent).
    const open = this.open.get(requestId) ?? { metrics: [...used.keys()], escrow: [] };
    this.closeOpen(requestId);
    const settlements: Settlement[] = [];
    for (const metric of open.metrics) {
      const id = reservationId(requestId, metric);
      // A metric the caller does not report is charged its estimate (found by the gate tests:
      // a missing metric used to be charged as 2^53 of excess usage).
      const usage = used.get(metric) ?? this.reservations.get(id)?.amount;
      if (usage === undefined) continue;
      const settled = this.reservations.settle(id, usage);
      if (!settled.ok) continue;
      settlements.push(settled.value);
      const { reserved, charged } = settled.value;
      // Rights spent beyond the actual usage go back to this node's escrow.
      if (charged < reserved) for (const spend of open.escrow) if (spend.metric === metric) this.escrow.refund(spend.key, reserved - charged);
    }
    return settlements;
  }

  /**
   * Withdraws an admitted request that never reached an upstream model (it left the queue, no
   * account could take it, or every account refused it before running it): each reservation is
   * refunded whole, spent escrow rights go back, and the id is forgotten, so the client may send
   * the same id again. Returns whether the request was open here.
   */
  withdraw(requestId: RequestId): boolean {
    const open = this.open.get(requestId);
    if (open === undefined) return false;
    this.closeOpen(requestId);
    for (const metric of open.metrics) this.reservations.cancel(reservationId(requestId, metric));
    for (const charge of open.escrow) this.escrow.refund(charge.key, charge.amount);
    return true;
  }

  /** Lease expiry, rebalancing and escrow expiry; call it from the node's tick. */
  tick(nowMs: number): void {
    for (const settlement of this.reservations.expire(nowMs)) {
      // Expired leases are charged in full: no refund, the open record just goes.
      this.closeOpen(requestOf(settlement.requestId));
    }
    if (this.retries.length > 0) this.runRetries(nowMs);
    if (nowMs >= this.nextRebalanceMs) {
      this.escrow.rebalance(nowMs);
      this.escrow.expire(nowMs);
      this.nextRebalanceMs = nowMs + escrowRebalanceIntervalMs;
    }
  }

  /** When `tick` next has timed work (for the owner's scheduler). */
  nextTickMs(nowMs: number): number {
    let next = Math.min(this.nextRebalanceMs, nowMs + escrowRebalanceIntervalMs);
    for (const retry of this.retries) next = Math.min(next, retry.atMs);
    return Math.max(nowMs, next);
  }

  // ---- Durability ----
  //
  // A node that keeps its state on disk writes its open requests (reservations with their
  // leases, escrow rights spent, and whether the gate said yes) in the same commit as the counter
  // entries they charged, so the two never disagree on disk. At a restart it puts them back
  // (`restoreOpen`) and ends them at once (`recoverInterrupted`): one the gate had not yet
  // admitted reached no upstream (the gateway waits for the commit of the admission before it
  // dispatches), so it is withdrawn; one it had admitted may have, and what the upstream produced
  // is unknown. It ends as a dead node's reservations end when its successor releases them
  // (src/admission/successor-release.ts): keys charged under eventual rules only are released (a
  // tenant is not charged an estimate for a call it may never have had), and keys of strict and
  // escrow rules keep the whole estimate (a call that may have run counts in full against a
  // limit that must never be passed).

  /** Keeps the changes `takeOpenChanges` hands out from now on; the owner must then take them every commit. */
  keepDurable(): void {
    this.durable = true;
  }

  /** Open requests opened, admitted or ended since the last call: records to write, ids to delete. */
  takeOpenChanges(): { readonly put: OpenRequestRecord[]; readonly deleted: RequestId[] } {
    const put: OpenRequestRecord[] = [];
    const deleted: RequestId[] = [];
    for (const requestId of this.openChanged) {
      const open = this.open.get(requestId);
      if (open === undefined) {
        deleted.push(requestId);
        continue;
      }
      const reservations = open.metrics.map((metric) => this.reservations.get(reservationId(requestId, metric))).filter((r) => r !== undefined);
      put.push({ requestId, tenant: open.tenant, admitted: open.admitted, context: open.context, reservations, escrow: open.escrow });
    }
    this.openChanged = new Set();
    return { put, deleted };
  }

  /** Puts back the open requests a durable store kept, before any admission; see above. */
  restoreOpen(records: readonly OpenRequestRecord[]): void {
    for (const record of records) {
      if (this.open.has(record.requestId)) continue;
      const metrics: string[] = [];
      for (const reservation of record.reservations) {
        if (this.reservations.get(reservation.requestId) !== undefined) continue;
        this.reservations.restore(reservation);
        metrics.push(metricOfReservation(reservation.requestId));
      }
      this.open.set(record.requestId, { tenant: record.tenant, metrics, escrow: record.escrow, admitted: record.admitted, context: record.context });
    }
  }

  /** Ends every restored request (see above); call it once, right after `restoreOpen`. */
  recoverInterrupted(): InterruptedRequest[] {
    const ended: InterruptedRequest[] = [];
    for (const [requestId, open] of [...this.open]) {
      const reservations = open.metrics.map((metric) => this.reservations.get(reservationId(requestId, metric))).filter((r) => r !== undefined);
      const record: OpenRequestRecord = { requestId, tenant: open.tenant, admitted: open.admitted, context: open.context, reservations, escrow: open.escrow };
      if (!open.admitted) {
        this.withdraw(requestId);
        ended.push({ record, settlements: [], released: [] });
        continue;
      }
      // Every metric left out of `used` is charged its estimate; then the held keys are released.
      const settlements = this.settle(requestId, new Map());
      const released: { key: CounterKey; amount: number }[] = [];
      for (const reservation of reservations) {
        const held = new Set(reservation.holds.map((hold) => hold.id));
        for (const key of reservation.keys) {
          if (reservation.amount === 0 || !held.has(holdKeyOf(this.counter, key).id)) continue;
          if (this.counter.decrement(key, reservation.amount).ok) released.push({ key, amount: reservation.amount });
        }
      }
      ended.push({ record, settlements, released });
    }
    return ended;
  }

  private closeOpen(requestId: RequestId): void {
    if (this.open.delete(requestId) && this.durable) this.openChanged.add(requestId);
  }

  // ---- Escrow ----

  private spendEscrow(pending: Pending): boolean {
    return this.escrow.spend(
      pending.escrow.map((c) => c.key),
      pending.escrow.map((c) => c.amount),
    );
  }

  /**
   * One claim round per escrowed key at a time: it claims what the waiting requests lack, at
   * least a quarter of a per-member share so that a busy node does not claim per request.
   */
  private runClaims(batchId: string, nowMs: number): void {
    const batch = this.claimBatches.get(batchId);
    if (batch === undefined || batch.inFlight) return;
    // Nothing in flight and nothing waiting: the batch goes (one per escrowed key and window
    // would otherwise stay for the life of the process); the next request makes a new one.
    if (batch.waiting.length === 0) {
      this.claimBatches.delete(batchId);
      return;
    }
    const riders = batch.waiting.splice(0, strictBatchMax);
    const need = new Map<string, { charge: Charge; amount: number }>();
    for (const pending of riders) {
      for (const charge of pending.escrow) {
        const known = need.get(charge.key.id);
        if (known === undefined) need.set(charge.key.id, { charge, amount: charge.amount });
        else known.amount += charge.amount;
      }
    }
    const claims: { charge: Charge; claimed: number; key: CounterKey }[] = [];
    for (const { charge, amount } of need.values()) {
      const lacking = Math.max(0, amount - this.escrow.rights(charge.key));
      if (lacking === 0) continue;
      const chunk = Math.ceil(charge.rule.limit / (4 * this.members));
      const claimed = Math.min(charge.rule.limit, Math.max(lacking, chunk));
      const key = claimKey(charge.key);
      if (!this.counter.increment(key, claimed).ok) continue;
      claims.push({ charge, claimed, key });
    }
    batch.inFlight = true;
    const finish = (outcome: RoundOutcome, doneMs: number): void => {
      assert(batch.inFlight, 'a claim round completes once');
      batch.inFlight = false;
      for (const { charge, claimed, key } of claims) {
        let kept = 0;
        if (outcome.ok) {
          const others = this.counter.value(key) - claimed;
          kept = Math.max(0, Math.min(claimed, charge.rule.limit - others));
        }
        if (claimed > kept) this.counter.decrement(key, claimed - kept);
        if (kept > 0 && this.escrow.grant(charge.key, kept)) this.stats.rightsClaimed += kept;
      }
      for (const pending of riders) {
        this.waitingCount--;
        if (this.spendEscrow(pending)) this.afterEscrow(pending);
        else if (!outcome.ok) this.reject(pending.done, { kind: 'no-quorum', operation: 'admission', retryAfterMs: quotaRetryAfterMs });
        else this.reject(pending.done, quotaRejection((pending.escrow[0] as Charge).rule, pending.nowMs));
      }
      // The next batch starts now, with a whole timeout of its own.
      this.runClaims(batchId, doneMs);
    };
    // Rights may have arrived meanwhile (a rebalancing transfer): then there is nothing to claim.
    if (claims.length === 0) return finish({ ok: true }, nowMs);
    this.stats.claimRounds++;
    const keys = claims.map((c) => c.key);
    this.rounds.startRound({ writeKeys: keys, readKeys: keys }, nowMs, finish);
  }

  private refundEscrow(pending: Pending): void {
    for (const charge of pending.escrow) this.escrow.refund(charge.key, charge.amount);
  }

  // ---- Reservation and strict ----

  private afterEscrow(pending: Pending): void {
    if (pending.strict.length === 0) {
      if (this.reserve(pending)) this.admitted(pending);
      return;
    }
    if (!this.enqueue(this.strictBatches, pending.request.tenant, pending)) {
      this.refundEscrow(pending);
      return;
    }
    this.runStrict(pending.request.tenant, pending.nowMs);
  }

  /** Reserves every metric's estimate; on failure everything is undone and the request refused. */
  private reserve(pending: Pending): boolean {
    const { request } = pending;
    // An open request holds a reservation per charged metric, or none when no rule charges it
    // (a tenant without limits): those would otherwise be bounded only by the caller settling.
    // So the open requests share the reservation table's bound (found by the bounds audit).
    if (this.open.size >= this.reservations.openMax && !this.open.has(request.requestId)) {
      this.refundEscrow(pending);
      this.reject(pending.done, { kind: 'shed', retryAfterMs: quotaRetryAfterMs });
      return false;
    }
    const metrics: string[] = [];
    for (const [metric, amount] of request.amounts) {
      if (amount === 0) continue;
      const keys: CounterKey[] = [];
      // Keys charged only under eventual rules take holds: should this node die, its successor
      // releases them (src/admission/successor-release.ts); strict and escrow estimates stay.
      const holds: CounterKey[] = [];
      for (const { scope, subject, rules } of request.subjects) {
        for (const rule of rules) {
          if (rule.metric !== metric) continue;
          const key = chargedKeyIn(this.counter, scope, subject, rule, pending.nowMs);
          keys.push(key);
          if (
            rule.mode === 'eventual' &&
            !rules.some((other) => other.mode !== 'eventual' && chargedKeyIn(this.counter, scope, subject, other, pending.nowMs).id === key.id)
          ) {
            holds.push(holdKeyOf(this.counter, key));
          }
        }
      }
      if (keys.length === 0) continue;
      const reserved = this.reservations.reserve(reservationId(request.requestId, metric), request.tenant, keys, amount, pending.nowMs, request.leaseMs, holds);
      if (!reserved.ok) {
        for (const done of metrics) this.reservations.cancel(reservationId(request.requestId, done));
        this.refundEscrow(pending);
        // A request id that was already settled is final: its usage is recorded, and admitting it
        // again would let one id be charged twice. Saying so ends the client's retries, where a
        // retry hint would loop them forever. A node that still keeps the answer gives it before
        // admission (src/node/gateway/answer-store.ts), so one that gets here no longer has it.
        // A full table or a refused counter key is capacity.
        this.reject(
          pending.done,
          reserved.error.kind === 'already-settled'
            ? { kind: 'request-done', reason: 'this request id already completed; the answer is no longer kept, and a new request needs a new id' }
            : { kind: 'shed', retryAfterMs: quotaRetryAfterMs },
        );
        return false;
      }
      metrics.push(metric);
    }
    this.open.set(request.requestId, {
      tenant: request.tenant,
      metrics,
      escrow: pending.escrow.map((charge) => ({ key: charge.key, metric: charge.rule.metric, amount: charge.amount })),
      admitted: false,
      context: request.context,
    });
    if (this.durable) this.openChanged.add(request.requestId);
    return true;
  }

  private cancel(pending: Pending): void {
    this.withdraw(pending.request.requestId);
  }

  private runStrict(tenant: string, nowMs: number): void {
    const batch = this.strictBatches.get(tenant);
    if (batch === undefined || batch.inFlight) return;
    // Idle (its strict retries wait in `retries`, and rejoin through `batchOf`): the batch goes.
    if (batch.waiting.length === 0) {
      this.strictBatches.delete(tenant);
      return;
    }
    const riders: Pending[] = [];
    for (const pending of batch.waiting.splice(0, strictBatchMax)) {
      this.waitingCount--;
      // Reserved when the round starts, not on arrival: a request waiting for the next round must
      // not count against the one in flight.
      if (this.reserve(pending)) riders.push(pending);
    }
    if (riders.length === 0) return this.runStrict(tenant, nowMs);
    const writeKeys = new Map<string, CounterKey>();
    const readKeys = new Map<string, CounterKey>();
    for (const pending of riders) {
      for (const charge of pending.strict) {
        writeKeys.set(charge.key.id, charge.key);
        for (const key of charge.readKeys) readKeys.set(key.id, key);
      }
    }
    batch.inFlight = true;
    this.stats.strictRounds++;
    this.stats.strictBatched += riders.length;
    // What this node knew of the others before the round: the round's news is what they gained.
    const strict = this.strictViews(riders);
    this.rounds.startRound({ writeKeys: [...writeKeys.values()], readKeys: [...readKeys.values()] }, nowMs, (outcome, doneMs) => {
      assert(batch.inFlight, 'a strict round completes once');
      batch.inFlight = false;
      this.decideStrict(tenant, strict, outcome, doneMs);
      // Found by test/admission/quota-gate.test.ts: the next batch used the old start time, so
      // a request that waited behind a failed round got a round with no time left.
      this.runStrict(tenant, doneMs);
    });
  }

  /** Per rider, each strict charge with what the others held on its keys when the round started. */
  private strictViews(riders: readonly Pending[]): StrictRider[] {
    const batchByKey = this.batchByKey(riders);
    return riders.map((pending) => ({ pending, charges: pending.strict.map((charge) => ({ charge, othersBefore: this.othersOn(charge, batchByKey) })) }));
  }

  /** What the whole batch reserved on each key. */
  private batchByKey(riders: readonly Pending[]): Map<string, number> {
    const batchByKey = new Map<string, number>();
    for (const pending of riders) for (const charge of pending.strict) batchByKey.set(charge.key.id, (batchByKey.get(charge.key.id) ?? 0) + charge.amount);
    return batchByKey;
  }

  /** What the others hold on a charge's read keys in this node's counter: its total minus the whole batch's reservations. */
  private othersOn(charge: Charge, batchByKey: ReadonlyMap<string, number>): number {
    // Per key never below zero: a key driven negative (see `usedUnder`) must not lend room.
    return charge.readKeys.reduce((sum, key) => sum + Math.max(0, this.counter.value(key) - (batchByKey.get(key.id) ?? 0)), 0);
  }

  private decideStrict(tenant: string, strict: readonly StrictRider[], outcome: RoundOutcome, nowMs: number): void {
    if (!outcome.ok) {
      for (const { pending } of strict) {
        this.cancel(pending);
        this.reject(
          pending.done,
          outcome.reason === 'no-quorum'
            ? { kind: 'no-quorum', operation: 'admission', retryAfterMs: quotaRetryAfterMs }
            : { kind: 'shed', retryAfterMs: quotaRetryAfterMs },
        );
      }
      return;
    }
    // The whole batch is in the counter; what the others hold is the read total minus the batch.
    // Every total is read before any decision takes effect: refunding a refused request lowers
    // the counter, and a total read after it would undercount the others by that refund.
    const batchByKey = this.batchByKey(strict.map((rider) => rider.pending));
    const decided = strict.map(({ pending, charges }) => ({
      pending,
      charges: charges.map((view) => ({ ...view, othersNow: this.othersOn(view.charge, batchByKey) })),
    }));
    const sumOver = (keys: readonly CounterKey[], amounts: ReadonlyMap<string, number>): number =>
      keys.reduce((sum, key) => sum + (amounts.get(key.id) ?? 0), 0);
    const admittedByKey = new Map<string, number>();
    // In arrival order: each admitted request counts against the ones after it.
    const verdicts = decided.map(({ pending, charges }) => {
      const over = charges.find(({ charge, othersNow }) => othersNow + sumOver(charge.readKeys, admittedByKey) + charge.amount > charge.rule.limit);
      if (over === undefined) {
        for (const charge of pending.strict) admittedByKey.set(charge.key.id, (admittedByKey.get(charge.key.id) ?? 0) + charge.amount);
        return { pending, refused: undefined };
      }
      const { charge, othersBefore, othersNow } = over;
      // Contention: concurrent batches at other nodes count each other's reservations before
      // either is decided, so at the limit they can refuse each other all round. A request that
      // would have fit without what the others gained during this round (beyond what this node
      // knew when it started) may be refused only for their pending reservations: it gets one
      // retry after a random delay, by which their refunds have spread. A tenant steadily over
      // its limit gained nothing new and is refused at once. (Escrow rights the request spent
      // are refunded with it; a retry would have to spend them again, so a request with escrow
      // rules is refused instead.)
      const gained = Math.max(0, othersNow - othersBefore);
      const fitsWithout = othersNow - gained + sumOver(charge.readKeys, admittedByKey) + charge.amount <= charge.rule.limit;
      return { pending, refused: { rule: charge.rule, retry: fitsWithout && !pending.retried && pending.escrow.length === 0 } };
    });
    for (const { pending, refused } of verdicts) {
      if (refused === undefined) {
        this.admitted(pending);
        continue;
      }
      this.cancel(pending);
      if (!refused.retry || this.waitingCount >= quotaWaitingMax) {
        this.reject(pending.done, quotaRejection(refused.rule, pending.nowMs));
        continue;
      }
      pending.retried = true;
      this.waitingCount++;
      this.stats.strictRetries++;
      this.retries.push({ tenant, pending, atMs: nowMs + strictRetryDelayMsMin + this.random.int(strictRetryDelayMsMax - strictRetryDelayMsMin) });
    }
  }

  /** Strict retries whose delay is over join their tenant's next batch. */
  private runRetries(nowMs: number): void {
    const due = this.retries.filter((retry) => retry.atMs <= nowMs);
    if (due.length === 0) return;
    this.retries = this.retries.filter((retry) => retry.atMs > nowMs);
    const tenants = new Set<string>();
    for (const { tenant, pending } of due) {
      // Still counted in `waitingCount` from when it was refused.
      this.batchOf(this.strictBatches, tenant).waiting.push(pending);
      tenants.add(tenant);
    }
    for (const tenant of tenants) this.runStrict(tenant, nowMs);
  }

  // ---- Shared ----

  private enqueue(batches: Map<string, Batch>, id: string, pending: Pending): boolean {
    if (this.waitingCount >= quotaWaitingMax) {
      this.reject(pending.done, { kind: 'shed', retryAfterMs: quotaRetryAfterMs });
      return false;
    }
    this.batchOf(batches, id).waiting.push(pending);
    this.waitingCount++;
    return true;
  }

  /** The batch of `id`, made when there is none (an idle batch is dropped by its runner). */
  private batchOf(batches: Map<string, Batch>, id: string): Batch {
    let batch = batches.get(id);
    if (batch === undefined) {
      batch = { inFlight: false, waiting: [] };
      batches.set(id, batch);
    }
    return batch;
  }

  /**
   * The gate's tables, for the bound tests: `open` ≤ the reservation table's `openMax` (refused
   * past it); `openChanged` only on a durable node, emptied every commit; each batch has a request
   * waiting (≤ `quotaWaitingMax` in all) or a round in flight (≤ `quorumRoundsOpenMax`), and goes
   * when it has neither; `retries` count in `quotaWaitingMax`.
   */
  tableSizes(): {
    readonly open: number;
    readonly openChanged: number;
    readonly strictBatches: number;
    readonly claimBatches: number;
    readonly retries: number;
    readonly waiting: number;
  } {
    return {
      open: this.open.size,
      openChanged: this.openChanged.size,
      strictBatches: this.strictBatches.size,
      claimBatches: this.claimBatches.size,
      retries: this.retries.length,
      waiting: this.waitingCount,
    };
  }

  /** Batches held: for the bound tests (each goes once it has nothing in flight or waiting). */
  get batchCounts(): { readonly strict: number; readonly claims: number } {
    return { strict: this.strictBatches.size, claims: this.claimBatches.size };
  }

  private admitted(pending: Pending): void {
    const open = this.open.get(pending.request.requestId);
    if (open !== undefined) {
      open.admitted = true;
      if (this.durable) this.openChanged.add(pending.request.requestId);
    }
    this.stats.admitted++;
    pending.done(ok(undefined));
  }

  private reject(done: (decision: QuotaDecision) => void, rejection: QuotaRejection): void {
    this.stats.rejected++;
    done(err(rejection));
  }
}

/** The first rule whose limit the request's amount alone is over, as the refusal; none when every one could fit. */
function exceedsLimit(request: QuotaRequest): Extract<Rejection, { kind: 'exceeds-limit' }> | undefined {
  for (const { scope, rules } of request.subjects) {
    for (const rule of rules) {
      const amount = request.amounts.get(rule.metric) ?? 0;
      if (amount > rule.limit) return { kind: 'exceeds-limit', scope, metric: rule.metric, limit: rule.limit, window: rule.window, amount };
    }
  }
  return undefined;
}

/** A sliding rule sums the sub-buckets over its span; a fixed rule reads its window's key. */
function readKeysOf(counter: WindowedCounter, scope: QuotaScope, subject: string, rule: LimitRule, key: CounterKey, nowMs: number): CounterKey[] {
  if (!rule.sliding) return [key];
  const first = windowAt('sec10', nowMs - windowLengthMs[rule.window] + 1).index;
  const keys: CounterKey[] = [];
  for (let index = Math.max(0, first); index <= key.window.index; index++) keys.push(counter.keyFor(scope, subject, rule.metric, { unit: 'sec10', index }));
  return keys;
}

/** One reservation per metric: each settles with its own actual usage. */
function reservationId(requestId: RequestId, metric: string): RequestId {
  return `${requestId}#${metric}` as RequestId;
}

function requestOf(reservation: RequestId): RequestId {
  return reservation.slice(0, reservation.lastIndexOf('#')) as RequestId;
}

/** The metric a settlement or reservation of the gate is for: the other half of `reservationId`. */
export function metricOfReservation(reservation: RequestId): string {
  return reservation.slice(reservation.lastIndexOf('#') + 1);
}
