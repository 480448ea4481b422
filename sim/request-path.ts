import { type TokenUsage, zeroUsage } from '../src/admission/estimate.js';
import type { QuotaDecision, QuotaSubject } from '../src/admission/quota-gate.js';
import { assert } from '../src/core/assert.js';
import type { AccountId, RegionId, RequestId, TenantId } from '../src/core/ids.js';
import { accountCallTurnsMax } from '../src/core/limits.js';
import { type Account, defaultTokenWeights, type Tier } from '../src/mesh/policy/policy-schema.js';
import { type AccountFeedback, emptyRateLimits } from '../src/pool/account-feedback.js';
import type { AccountPool } from '../src/pool/account-pool.js';
import { estimateAccountAmounts } from '../src/pool/account-usage.js';
import { AttemptPlan } from '../src/pool/attempt-plan.js';
import type { Permit, WaiterId } from '../src/pool/permits.js';
import type { Ticket, TierQueue } from '../src/schedule/tier-queue.js';
import { estimateWeightedTokens, weightedTokens } from '../src/admission/estimate.js';
import { estimatedAmounts, settledAmounts } from '../src/admission/request-amounts.js';
import type { GatePort, RequestBooks } from './request-books.js';
import type { CallId, SimUpstream, UpstreamAnswer, UpstreamCall } from './upstream-accounts.js';

/**
 * One region node's request path under simulation, event by event, through the production
 * cores it is handed: the quota gate, the tier queue, the account pool with its permits and
 * health, and the attempt plan. It plays what src/node/gateway/carpool-gateway.ts and
 * src/node/account-caller.ts do with promises and timers, in the same order:
 *
 *   submit ─ gate.admit ─ refused ─────────────────────────────────────────▶ done (nothing held)
 *     └ decided (from the gate's callback, delivered as an event, never inside the call)
 *       queue.enqueue ─ full ──────────────────────────────────────────────▶ withdraw
 *       queue.dequeue when a slot frees
 *       loop over the AttemptPlan:
 *         pool.acquire(excluded = tried ∪ skipped) ─ refused ───────────────▶ end
 *           └ queued: the grant, expiry or eviction comes out of pool.takeEvents()
 *         account homed here: upstream call
 *         homed elsewhere: network delay, the home's pool.admitForward ─ no ─▶ a 429 to the origin
 *           └ upstream call at the home; the home's pool hears the feedback and the home
 *             charges the account; network delay back
 *         pool.onFeedback, then pool.release (feedback first: an account that just turned
 *         unhealthy evicts its waiters instead of getting this permit's hand-over)
 *         plan.after ─ retry ─▶ loop
 *       end: gate.settle with what the calls produced, or gate.withdraw if nothing reached a
 *       model; queue.finish frees the slot
 *   close ─ every request still queued (and any admitted later) is withdrawn; running ones go on
 *
 * The order is production's: the gateway admits before it queues (a request holds its
 * reservation while it waits for a slot), not the other way round.
 *
 * `close` is the gateway's shutdown (src/node/gateway/region-gateway.ts `shutDown`, then
 * `CarpoolGateway.close`): no new request comes in, every request parked in the queue ends
 * `closed` and is withdrawn (it reached no model), and the running ones finish their calls and
 * settle. Without it, a run that ends with a backlog leaves its queued requests admitted for
 * ever: under overload the queue holds minutes of work that the slots (`inFlightMax`) drain
 * only a few calls at a time.
 *
 * Sans-I/O and synchronous: time comes in as `nowMs` on every entry point, and whatever must
 * happen later is handed to `schedule` as a `PathEvent` for the owner's event queue, which
 * gives it back through `handle`. Deadlines of queued permits pass at `tick`.
 */

export interface PathRequest {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly tier: Tier;
  readonly inputTokens: number;
  readonly maxTokens: number;
}

export type PathEvent =
  | { readonly kind: 'decided'; readonly requestId: RequestId; readonly decision: QuotaDecision }
  /** A call to an account homed here ends. */
  | { readonly kind: 'answer'; readonly requestId: RequestId; readonly callId: CallId }
  /** A forwarded call reaches the account's home. */
  | { readonly kind: 'forward-arrive'; readonly requestId: RequestId }
  /** The upstream call at the home ends. */
  | { readonly kind: 'forward-done'; readonly requestId: RequestId; readonly callId: CallId }
  /** The home's answer reaches the origin. */
  | { readonly kind: 'forward-answer'; readonly requestId: RequestId; readonly answer: UpstreamAnswer };

/** The tier queue as the path uses it (the schedule books observe it through this seam; a test may put a broken one under them). */
export type QueuePort = Pick<TierQueue, 'enqueue' | 'dequeue' | 'cancel' | 'finish' | 'setInFlightCap'>;

/** How a request ended, for the per-tier figures: refused at once, or after admission. */
export type PathOutcome = 'completed' | 'failed' | 'closed' | 'refused-quota' | 'queue-full' | 'path-full';

/** Hears every submitted request end once (sim/tier-figures.ts): its outcome, when, and the weighted tokens it used. */
export interface PathObserver {
  ended(request: PathRequest, outcome: PathOutcome, submittedAtMs: number, nowMs: number, usedWeightedTokens: number): void;
}

/** The pool as the path uses it (a test may wrap it with a broken one). */
export type PoolPort = Pick<AccountPool, 'acquire' | 'release' | 'cancel' | 'tick' | 'takeEvents' | 'onFeedback' | 'account' | 'totals'> &
  Partial<Pick<AccountPool, 'capacity'>>;

/** A region the path forwards to: its pool decides whether the account may take the call. */
export interface ForwardHome {
  readonly pool: Pick<AccountPool, 'admitForward' | 'onFeedback'>;
}

export interface RequestPathOptions {
  readonly region: RegionId;
  readonly gate: GatePort;
  readonly pool: PoolPort;
  readonly queue: QueuePort;
  /**
   * What a request's end tells the queue: the weighted tokens it used (`used`, as the gateway
   * does, so the tenant's virtual counter follows its real use), or nothing (`estimate`: the
   * counter keeps the estimate it was charged at the start).
   */
  readonly countersBy?: 'used' | 'estimate';
  /**
   * Whether the queue's running calls are capped, at each submission, at the permits the pool's
   * accounts offer now, as the gateway does in dynamic mode: work beyond what the accounts take
   * waits in the priority queue rather than in the pool's first-come permit queues.
   */
  readonly capToPool?: boolean;
  readonly observer?: PathObserver;
  readonly upstream: SimUpstream;
  readonly books: RequestBooks;
  /** The tenant's quota subjects (its rules), for the gate. */
  readonly subjectsOf: (tenant: TenantId) => readonly QuotaSubject[];
  /** The region an account is homed in, as a forward target; undefined when unreachable. */
  readonly homeOf: (region: RegionId) => ForwardHome | undefined;
  /** One-way network delay between two regions, drawn by the owner. */
  readonly delayMs: (from: RegionId, to: RegionId) => number;
  readonly schedule: (atMs: number, event: PathEvent) => void;
  /** How long a request may wait for a permit; the gateway's `accountWaitMs`. */
  readonly accountWaitMs: number;
  /** The reservation's lease: long enough that settlement, not expiry, ends every request. */
  readonly leaseMs: number;
}

/** Requests a path carries at once, admission to end (sim only): it refuses past this. */
export const pathFlightsMax = 100_000;

/** Where a request is; every phase after admission holds its queue ticket (queued, or a running slot). */
type Phase =
  /** Waiting for the gate's decision: nothing held yet. */
  | { readonly kind: 'admitting' }
  /** Admitted, waiting in the tier queue for a slot. */
  | { readonly kind: 'queued'; readonly ticket: Ticket }
  /** Holding a slot, between pool steps. */
  | { readonly kind: 'running'; readonly ticket: Ticket }
  /** Parked on a pool ticket until its grant, expiry or eviction comes out of `takeEvents`. */
  | { readonly kind: 'acquiring'; readonly ticket: Ticket; readonly waiterId: WaiterId }
  /** Holding a permit of `account`, its call (or forward) under way. */
  | { readonly kind: 'calling'; readonly ticket: Ticket; readonly permit: Permit; readonly account: Account };

interface Flight {
  readonly request: PathRequest;
  phase: Phase;
  readonly plan: AttemptPlan;
  readonly skipped: Set<AccountId>;
  usage: TokenUsage;
  turns: number;
  /** The path's clock at submission, for the latency figures. */
  readonly submittedAtMs: number;
}

export class PathStats {
  submitted = 0;
  refusedQuota = 0;
  /** Refused before admission: `pathFlightsMax` open already, or the same id open. */
  refusedFull = 0;
  admitted = 0;
  queueFull = 0;
  completed = 0;
  failed = 0;
  attempts = 0;
  retries = 0;
  forwards = 0;
  forwardsRefused = 0;
  noAccount = 0;
  permitExpired = 0;
  evicted = 0;
  orphanGrants = 0;
  /** Admitted, then withdrawn unserved because the path closed while they waited for a slot (or for their decision). */
  closed = 0;
}

export class RequestPath {
  readonly stats = new PathStats();
  private readonly flights = new Map<RequestId, Flight>();
  /** Flights parked on a pool ticket; a subset of `flights`. */
  private readonly waiters = new Map<WaiterId, RequestId>();
  /** Queued flights by their queue ticket; a subset of `flights`. */
  private readonly tickets = new Map<Ticket, RequestId>();
  private nowMs = 0;
  private pumping = false;
  /** Set by `close`: nothing new is queued or started. */
  private closed = false;
  /** The queue's in-flight cap last set (`capToPool`). */
  private cap = Number.POSITIVE_INFINITY;

  constructor(private readonly options: RequestPathOptions) {}

  get region(): RegionId {
    return this.options.region;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Requests between submission and end. */
  get flightsOpen(): number {
    return this.flights.size;
  }

  submit(request: PathRequest, nowMs: number): void {
    assert(!this.closed, 'no request is submitted to a closed path');
    this.nowMs = nowMs;
    this.stats.submitted++;
    if (this.flights.size >= pathFlightsMax || this.flights.has(request.requestId)) {
      this.stats.refusedFull++;
      this.options.observer?.ended(request, 'path-full', nowMs, nowMs, 0);
      return;
    }
    this.capQueue(nowMs);
    this.flights.set(request.requestId, {
      request,
      phase: { kind: 'admitting' },
      plan: new AttemptPlan(),
      skipped: new Set(),
      usage: zeroUsage,
      turns: 0,
      submittedAtMs: nowMs,
    });
    const amounts = estimatedAmounts(request.inputTokens, request.maxTokens, defaultTokenWeights);
    const quota = {
      requestId: request.requestId,
      tenant: request.tenant,
      subjects: this.options.subjectsOf(request.tenant),
      amounts,
      leaseMs: this.options.leaseMs,
    };
    // The decision goes through the owner's queue even when the gate decides at once: completions
    // are delivered as events, never from inside a call.
    this.options.gate.admit(quota, nowMs, (decision) => this.options.schedule(this.nowMs, { kind: 'decided', requestId: request.requestId, decision }));
  }

  handle(event: PathEvent, nowMs: number): void {
    this.nowMs = nowMs;
    const flight = this.flights.get(event.requestId);
    assert(flight !== undefined, `an event of an open request (${event.kind})`);
    switch (event.kind) {
      case 'decided':
        return this.decided(flight, event.decision);
      case 'answer': {
        const answer = this.options.upstream.finish(event.callId, nowMs);
        this.chargeAccount(flight, answer);
        return this.answered(flight, answer);
      }
      case 'forward-arrive':
        return this.forwardArrive(flight);
      case 'forward-done':
        return this.forwardDone(flight, event.callId);
      case 'forward-answer':
        return this.answered(flight, event.answer);
    }
  }

  /**
   * Expires permit waiters past their deadline and drains what that decided. The gate is not
   * ticked here: it belongs to the node's core, which ticks it (and its rounds' callbacks reach
   * the path as `decided` events).
   */
  tick(nowMs: number): void {
    this.nowMs = nowMs;
    this.options.pool.tick(nowMs);
    this.drainPool();
  }

  /**
   * Shuts the path down as the gateway does: every request waiting in the queue is withdrawn,
   * and one admitted from now on is withdrawn at its decision. Requests holding a slot go on to
   * their end, so once they have, every admitted request is settled or withdrawn and every
   * permit released. Idempotent.
   */
  close(nowMs: number): void {
    this.nowMs = nowMs;
    this.closed = true;
    // Ending a queued request frees no slot, so nothing else starts meanwhile (and `pumpQueue` is off once closed).
    for (const requestId of [...this.tickets.values()]) {
      const flight = this.flights.get(requestId);
      assert(flight !== undefined && flight.phase.kind === 'queued' && isZero(flight.usage), 'a queued request is open and reached no model');
      this.end(flight, 'closed');
    }
  }

  /** The pool changed outside the path (a health record joined from the mesh, a policy update): its outcomes are drained. */
  poolChanged(nowMs: number): void {
    this.nowMs = nowMs;
    this.drainPool();
  }

  // ---- Steps ----

  /** As the gateway on each request: the queue may run as many calls as the pool's serving accounts take now; a raised cap starts waiters. */
  private capQueue(nowMs: number): void {
    if (this.options.capToPool !== true) return;
    const capacity = this.options.pool.capacity?.(nowMs);
    const cap = capacity === undefined ? Number.POSITIVE_INFINITY : Math.max(1, capacity.permits);
    if (cap === this.cap) return;
    const raised = cap > this.cap;
    this.cap = cap;
    this.options.queue.setInFlightCap(cap);
    if (raised) this.pumpQueue();
  }

  private decided(flight: Flight, decision: QuotaDecision): void {
    if (!decision.ok) {
      this.stats.refusedQuota++;
      this.flights.delete(flight.request.requestId);
      this.options.observer?.ended(flight.request, 'refused-quota', flight.submittedAtMs, this.nowMs, 0);
      return;
    }
    this.stats.admitted++;
    const { request } = flight;
    if (this.closed) {
      // As the scheduler of a closed gateway answers `closed` at once: the reservation goes.
      this.stats.closed++;
      this.options.gate.withdraw(request.requestId);
      this.flights.delete(request.requestId);
      this.options.observer?.ended(request, 'closed', flight.submittedAtMs, this.nowMs, 0);
      return;
    }
    // The cost for fairness is the estimate the gate reserved, in weighted tokens, as the gateway's.
    const costTokens = estimateWeightedTokens(request.inputTokens, request.maxTokens, defaultTokenWeights);
    const queued = this.options.queue.enqueue({ tier: request.tier, tenant: request.tenant, costTokens }, this.nowMs);
    if (!queued.ok) {
      this.stats.queueFull++;
      this.options.gate.withdraw(request.requestId);
      this.flights.delete(request.requestId);
      this.options.observer?.ended(request, 'queue-full', flight.submittedAtMs, this.nowMs, 0);
      return;
    }
    flight.phase = { kind: 'queued', ticket: queued.value.ticket };
    this.tickets.set(queued.value.ticket, request.requestId);
    this.pumpQueue();
  }

  /**
   * Starts queued requests while the queue has slots; bounded by the queue's depth. Not re-entered:
   * a request that ends at once (no account) frees its slot for this same loop, where a nested
   * pump per ending request would stack as deep as the queue.
   */
  private pumpQueue(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      for (;;) {
        const next = this.options.queue.dequeue(this.nowMs);
        if (next === undefined) return;
        const flight = this.flightOfTicket(next.ticket);
        flight.phase = { kind: 'running', ticket: next.ticket };
        this.acquire(flight);
      }
    } finally {
      this.pumping = false;
    }
  }

  private acquire(flight: Flight): void {
    const { request, plan, skipped } = flight;
    const ticket = ticketOf(flight);
    flight.turns++;
    if (flight.turns > accountCallTurnsMax) return this.end(flight, 'failed');
    const excluded = skipped.size === 0 ? plan.tried : new Set([...plan.tried, ...skipped]);
    const picked = this.options.pool.acquire(
      {
        tenant: request.tenant,
        deadlineMs: this.nowMs + this.options.accountWaitMs,
        excluded,
        localRegion: this.options.region,
        estimate: estimateAccountAmounts(request.inputTokens, request.maxTokens),
      },
      this.nowMs,
    );
    if (!picked.ok) {
      this.stats.noAccount++;
      return this.end(flight, 'failed');
    }
    if (picked.value.kind === 'queued') {
      flight.phase = { kind: 'acquiring', ticket, waiterId: picked.value.waiterId };
      this.waiters.set(picked.value.waiterId, request.requestId);
      return;
    }
    this.dispatch(flight, picked.value.permit, picked.value.account);
  }

  private dispatch(flight: Flight, permit: Permit, account: Account): void {
    const { request, plan } = flight;
    if (plan.attempts > 0) this.stats.retries++;
    this.stats.attempts++;
    plan.begin(account.id);
    flight.phase = { kind: 'calling', ticket: ticketOf(flight), permit, account };
    const { region } = this.options;
    if (account.homeRegion === region) {
      const { callId, endAtMs } = this.options.upstream.start(this.callOf(flight, account, region), this.nowMs);
      this.options.schedule(endAtMs, { kind: 'answer', requestId: request.requestId, callId });
      return;
    }
    this.stats.forwards++;
    this.options.schedule(this.nowMs + this.options.delayMs(region, account.homeRegion), { kind: 'forward-arrive', requestId: request.requestId });
  }

  /** At the home: its pool's word, then the call, or a refusal the origin reads as a 429. */
  private forwardArrive(flight: Flight): void {
    const { account } = callingOf(flight);
    const home = this.options.homeOf(account.homeRegion);
    const admitted = home?.pool.admitForward(account.id, this.nowMs) ?? { ok: false as const, retryAfterMs: undefined };
    if (!admitted.ok) {
      this.stats.forwardsRefused++;
      const feedback: AccountFeedback = { kind: 'rate-limited', retryAfterMs: admitted.retryAfterMs, rateLimits: emptyRateLimits };
      return this.sendBack(flight, { feedback, usage: zeroUsage, started: false });
    }
    const { callId, endAtMs } = this.options.upstream.start(this.callOf(flight, account, account.homeRegion), this.nowMs);
    this.options.schedule(endAtMs, { kind: 'forward-done', requestId: flight.request.requestId, callId });
  }

  /** At the home: its pool hears the account, the home charges it, and the answer goes back. */
  private forwardDone(flight: Flight, callId: CallId): void {
    const { account } = callingOf(flight);
    const answer = this.options.upstream.finish(callId, this.nowMs);
    this.options.homeOf(account.homeRegion)?.pool.onFeedback(account.id, answer.feedback, this.nowMs);
    this.chargeAccount(flight, answer);
    this.sendBack(flight, answer);
  }

  private sendBack(flight: Flight, answer: UpstreamAnswer): void {
    const { account } = callingOf(flight);
    this.options.schedule(this.nowMs + this.options.delayMs(account.homeRegion, this.options.region), {
      kind: 'forward-answer',
      requestId: flight.request.requestId,
      answer,
    });
  }

  /** The origin hears the account: feedback, release, then the plan decides. */
  private answered(flight: Flight, answer: UpstreamAnswer): void {
    const { permit, account, ticket } = callingOf(flight);
    flight.usage = addUsage(flight.usage, answer.usage);
    this.options.pool.onFeedback(account.id, answer.feedback, this.nowMs);
    this.options.pool.release(permit);
    flight.phase = { kind: 'running', ticket };
    const decision = flight.plan.after(answer.feedback, { responseStarted: answer.started });
    this.drainPool();
    if (decision.kind !== 'retry') return this.end(flight, decision.kind === 'done' ? 'completed' : 'failed');
    this.acquire(flight);
  }

  /** Settles with what the calls produced, or withdraws a request that reached no model; frees its slot. */
  private end(flight: Flight, outcome: 'completed' | 'failed' | 'closed'): void {
    const { request } = flight;
    const used = isZero(flight.usage) ? 0 : weightedTokens(flight.usage, defaultTokenWeights);
    if (isZero(flight.usage)) this.options.gate.withdraw(request.requestId);
    else this.options.gate.settle(request.requestId, settledAmounts(flight.usage, defaultTokenWeights, true));
    if (flight.phase.kind === 'queued') {
      this.options.queue.cancel(flight.phase.ticket);
      this.tickets.delete(flight.phase.ticket);
    } else if (flight.phase.kind !== 'admitting') {
      if (this.options.countersBy === 'estimate') this.options.queue.finish(flight.phase.ticket);
      else this.options.queue.finish(flight.phase.ticket, used);
    }
    this.stats[outcome]++;
    this.flights.delete(request.requestId);
    this.options.observer?.ended(request, outcome, flight.submittedAtMs, this.nowMs, used);
    this.pumpQueue();
  }

  /** Settles parked flights with the pool's outcomes; releases grants nobody waits for. */
  private drainPool(): void {
    // Bounded: every event ends one ticket, and only a released orphan grant decides another.
    for (let round = 0; round < pathFlightsMax; round++) {
      const events = this.options.pool.takeEvents();
      if (events.length === 0) return;
      for (const event of events) {
        const requestId = this.waiters.get(event.waiterId);
        this.waiters.delete(event.waiterId);
        const flight = requestId === undefined ? undefined : this.flights.get(requestId);
        if (flight === undefined) {
          if (event.kind === 'granted') {
            this.stats.orphanGrants++;
            this.options.pool.release(event.permit);
          }
          continue;
        }
        const ticket = ticketOf(flight);
        flight.phase = { kind: 'running', ticket };
        if (event.kind === 'granted') {
          const account = this.options.pool.account(event.permit.accountId);
          if (account === undefined) {
            this.options.pool.release(event.permit);
            this.end(flight, 'failed');
          } else this.dispatch(flight, event.permit, account);
        } else if (event.kind === 'expired') {
          this.stats.permitExpired++;
          this.end(flight, 'failed');
        } else {
          this.stats.evicted++;
          flight.skipped.add(event.accountId);
          this.acquire(flight);
        }
      }
    }
    assert(false, 'the pool outbox drains within the flight bound');
  }

  private chargeAccount(flight: Flight, answer: UpstreamAnswer): void {
    // As src/node/account-caller.ts: an attempt that reached the model is charged to its account.
    if (answer.feedback.kind === 'success' || !isZero(answer.usage)) this.options.books.accountCharged(callingOf(flight).account.id, answer.usage);
  }

  private callOf(flight: Flight, account: Account, executing: RegionId): UpstreamCall {
    const { request } = flight;
    return {
      requestId: request.requestId,
      tenant: request.tenant,
      accountId: account.id,
      origin: this.options.region,
      executing,
      inputTokens: request.inputTokens,
      maxTokens: request.maxTokens,
    };
  }

  private flightOfTicket(ticket: Ticket): Flight {
    const requestId = this.tickets.get(ticket);
    assert(requestId !== undefined, 'a dequeued ticket belongs to a flight');
    this.tickets.delete(ticket);
    const flight = this.flights.get(requestId);
    assert(flight !== undefined, 'a dequeued ticket belongs to an open flight');
    return flight;
  }
}

function ticketOf(flight: Flight): Ticket {
  assert(flight.phase.kind !== 'admitting', 'a flight past admission holds a queue ticket');
  return flight.phase.ticket;
}

function callingOf(flight: Flight): Extract<Phase, { readonly kind: 'calling' }> {
  assert(flight.phase.kind === 'calling', 'a call in flight');
  return flight.phase;
}

function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  if (isZero(b)) return a;
  return { input: a.input + b.input, output: a.output + b.output, cacheWrite: a.cacheWrite + b.cacheWrite, cacheRead: a.cacheRead + b.cacheRead };
}

function isZero(usage: TokenUsage): boolean {
  return usage.input === 0 && usage.output === 0 && usage.cacheWrite === 0 && usage.cacheRead === 0;
}
