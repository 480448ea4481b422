import type { ShedLoad } from '../admission/shedder.js';
import { assert, isCount } from '../core/assert.js';
import type { Brand, TenantId } from '../core/ids.js';
import { gatewayCallsInFlightMax, tierQueueDepthMax, tierQueueQuantumTokens, tierQueueTotalDepthMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { type Tier, tiers } from '../mesh/policy/policy-schema.js';

/**
 * A node's admission queue in front of the upstream: requests that passed admission wait here
 * for one of the node's call slots.
 *
 *   enqueue ─ tier or total bound reached ─▶ refused (`queue-full`; the caller sheds it)
 *      └ queued in its tier, in its tenant's lane (FIFO)
 *   dequeue ─ while calls in flight < inFlightMax:
 *      highest tier with anything queued (vip > paid > free), and within it the tenant whose
 *      turn it is by deficit round robin over estimated tokens ─▶ running
 *   cancel  ─ a queued request leaves (its client went away); idempotent
 *   finish  ─ a running request frees its slot; idempotent
 *
 * Priority between tiers is strict: a lower tier runs only while every higher tier is empty.
 * That is what the Shedder (src/admission/shedder.ts) assumes when it judges a request by the
 * queues at and above its tier, and shedding is what keeps the lower tiers from waiting forever
 * under sustained higher-tier load: their wait grows past the threshold and new arrivals are
 * refused with a retry hint, instead of queueing without end.
 *
 * Fairness within a tier is deficit round robin (Shreedhar and Varghese) by estimated weighted
 * tokens. The tier's tenants with queued requests form a ring; when a tenant's turn comes it
 * gains one quantum of credit and starts requests while its credit covers their cost, then the
 * next tenant's turn comes. So within a tier each backlogged tenant starts about one quantum of
 * estimated work per round, whatever its request rate: a tenant flooding small requests cannot
 * crowd out one that sends few large ones, nor the other way round. A request costing more than
 * the quantum counts as one quantum, which bounds every dequeue to two steps (a tenant whose
 * turn starts always has credit for its first request) and makes very large requests share
 * turns round robin. Credit is dropped when a tenant's lane empties, as DRR does, so an idle
 * tenant banks nothing. A queued request waits at most (tenants in its tier) turns per request
 * ahead of it in its own lane: no starvation within a tier.
 *
 * Everything is bounded: queued requests per tier and in total, calls in flight, and lanes (at
 * most one per queued request). Nothing here reads a clock; `nowMs` comes with each enqueue so
 * that `load()` can tell the Shedder when each tier's oldest request arrived.
 */
export type Ticket = Brand<number, 'Ticket'>;

export interface TierQueueLimits {
  /** Requests queued in one tier: 1 to `tierQueueDepthMax`. */
  readonly tierDepthMax: number;
  /** Requests queued in all tiers: `tierDepthMax` to `tierQueueTotalDepthMax`. */
  readonly totalDepthMax: number;
  /** Requests running at once: 1 to `gatewayCallsInFlightMax`. */
  readonly inFlightMax: number;
  /** Deficit round robin quantum in weighted tokens: 1 to `tierQueueQuantumTokens`. */
  readonly quantumTokens: number;
}

export const defaultTierQueueLimits: TierQueueLimits = Object.freeze({
  tierDepthMax: tierQueueDepthMax,
  totalDepthMax: tierQueueTotalDepthMax,
  inFlightMax: gatewayCallsInFlightMax,
  quantumTokens: tierQueueQuantumTokens,
});

export interface QueueRequest {
  readonly tier: Tier;
  readonly tenant: TenantId;
  /** The request's estimated weighted tokens: its cost for fairness. Zero counts as one. */
  readonly costTokens: number;
}

export interface QueuedRequest extends QueueRequest {
  readonly ticket: Ticket;
  readonly enqueuedAtMs: number;
}

/** The queue is full: `tier` when the request's own tier is, `total` when all tiers together are. */
export interface QueueFull {
  readonly kind: 'queue-full';
  readonly scope: 'tier' | 'total';
  readonly tier: Tier;
  readonly depthMax: number;
}

export type TicketState = 'queued' | 'running';

/** Plain counters for the metrics binding; labels come from the tier set. */
export class TierQueueStats {
  readonly enqueued: Record<Tier, number> = { vip: 0, paid: 0, free: 0 };
  readonly dequeued: Record<Tier, number> = { vip: 0, paid: 0, free: 0 };
  readonly refusedFull: Record<Tier, number> = { vip: 0, paid: 0, free: 0 };
  cancelled = 0;
  finished = 0;
}

/** One tenant's queued requests in one tier, oldest first, and its round robin credit. */
interface Lane {
  readonly entries: Map<Ticket, QueuedRequest>;
  deficitTokens: number;
}

interface TierState {
  /** The ring: lanes in turn order, the current turn first. Map order is the ring order. */
  readonly lanes: Map<TenantId, Lane>;
  /** Every queued request of the tier in enqueue order: the first is the oldest. */
  readonly queued: Map<Ticket, QueuedRequest>;
  /** Whether the first lane already got its quantum for the current turn. */
  turnOpen: boolean;
}

export class TierQueue {
  readonly limits: TierQueueLimits;
  readonly stats = new TierQueueStats();

  private readonly tiers: Readonly<Record<Tier, TierState>>;
  private readonly running = new Map<Ticket, QueuedRequest>();
  private queuedCount = 0;
  private nextTicket = 1;

  constructor(limits: TierQueueLimits = defaultTierQueueLimits) {
    const { tierDepthMax, totalDepthMax, inFlightMax, quantumTokens } = limits;
    assert(Number.isSafeInteger(tierDepthMax) && tierDepthMax >= 1 && tierDepthMax <= tierQueueDepthMax, 'tierDepthMax is 1 to tierQueueDepthMax');
    assert(
      Number.isSafeInteger(totalDepthMax) && totalDepthMax >= tierDepthMax && totalDepthMax <= tierQueueTotalDepthMax,
      'totalDepthMax is tierDepthMax to tierQueueTotalDepthMax',
    );
    assert(Number.isSafeInteger(inFlightMax) && inFlightMax >= 1 && inFlightMax <= gatewayCallsInFlightMax, 'inFlightMax is 1 to gatewayCallsInFlightMax');
    assert(
      Number.isSafeInteger(quantumTokens) && quantumTokens >= 1 && quantumTokens <= tierQueueQuantumTokens,
      'quantumTokens is 1 to tierQueueQuantumTokens',
    );
    this.limits = Object.freeze({ ...limits });
    const state = (): TierState => ({ lanes: new Map(), queued: new Map(), turnOpen: false });
    this.tiers = { vip: state(), paid: state(), free: state() };
  }

  /** Requests queued in all tiers. */
  get depth(): number {
    return this.queuedCount;
  }

  /**
   * The queue's tables, for the bound tests: `queued` ≤ `totalDepthMax` (refused past it), `lanes`
   * ≤ queued (a lane goes with its last request), `running` ≤ `inFlightMax` (not dequeued past it).
   */
  tableSizes(): { readonly queued: number; readonly lanes: number; readonly running: number } {
    let lanes = 0;
    for (const state of Object.values(this.tiers)) lanes += state.lanes.size;
    return { queued: this.queuedCount, lanes, running: this.running.size };
  }

  /** Requests running (dequeued and not finished). */
  get inFlight(): number {
    return this.running.size;
  }

  /** Queues a request, or refuses it when its tier or the whole queue is full. */
  enqueue(request: QueueRequest, nowMs: number): Result<QueuedRequest, QueueFull> {
    assert(isCount(request.costTokens), 'a cost is a count of tokens');
    assert(Number.isFinite(nowMs), 'the clock reads a finite time');
    const tier = this.tiers[request.tier];
    if (tier.queued.size >= this.limits.tierDepthMax) return this.refuse(request.tier, 'tier', this.limits.tierDepthMax);
    if (this.queuedCount >= this.limits.totalDepthMax) return this.refuse(request.tier, 'total', this.limits.totalDepthMax);
    assert(Number.isSafeInteger(this.nextTicket), 'tickets stay exact integers');
    const entry: QueuedRequest = Object.freeze({ ...request, ticket: this.nextTicket++ as Ticket, enqueuedAtMs: nowMs });
    let lane = tier.lanes.get(request.tenant);
    if (lane === undefined) {
      // A new lane joins the ring at the end: it waits one round at most for its first turn.
      lane = { entries: new Map(), deficitTokens: 0 };
      tier.lanes.set(request.tenant, lane);
    }
    lane.entries.set(entry.ticket, entry);
    tier.queued.set(entry.ticket, entry);
    this.queuedCount++;
    this.stats.enqueued[request.tier]++;
    return ok(entry);
  }

  /**
   * Starts the next request, if a call slot is free and anything is queued: the highest tier
   * first, within it the tenant whose turn it is. The request counts as running until `finish`.
   */
  dequeue(): QueuedRequest | undefined {
    if (this.running.size >= this.limits.inFlightMax) return undefined;
    for (const tier of tiers) {
      const state = this.tiers[tier];
      if (state.queued.size === 0) continue;
      const entry = this.takeFrom(state);
      this.running.set(entry.ticket, entry);
      this.stats.dequeued[tier]++;
      return entry;
    }
    return undefined;
  }

  /** Removes a queued request; false, changing nothing, if the ticket is not queued (any more). */
  cancel(ticket: Ticket): boolean {
    for (const tier of tiers) {
      const state = this.tiers[tier];
      const entry = state.queued.get(ticket);
      if (entry === undefined) continue;
      const lane = state.lanes.get(entry.tenant);
      assert(lane !== undefined && lane.entries.has(ticket), 'a queued request is in its lane');
      lane.entries.delete(ticket);
      if (lane.entries.size === 0) this.dropLane(state, entry.tenant);
      state.queued.delete(ticket);
      this.queuedCount--;
      this.stats.cancelled++;
      return true;
    }
    return false;
  }

  /** Frees a running request's slot; false, changing nothing, if the ticket is not running. */
  finish(ticket: Ticket): boolean {
    if (!this.running.delete(ticket)) return false;
    this.stats.finished++;
    return true;
  }

  state(ticket: Ticket): TicketState | undefined {
    if (this.running.has(ticket)) return 'running';
    for (const tier of tiers) if (this.tiers[tier].queued.has(ticket)) return 'queued';
    return undefined;
  }

  /** Requests queued in one tier. */
  depthOf(tier: Tier): number {
    return this.tiers[tier].queued.size;
  }

  /** Each tier's depth and the arrival of its oldest queued request, for the Shedder. */
  load(): ShedLoad {
    const loadOf = (tier: Tier): ShedLoad[Tier] => {
      const queued = this.tiers[tier].queued;
      const oldest = queued.size === 0 ? undefined : (queued.values().next().value as QueuedRequest);
      return { depth: queued.size, oldestEnqueuedAtMs: oldest?.enqueuedAtMs };
    };
    return { vip: loadOf('vip'), paid: loadOf('paid'), free: loadOf('free') };
  }

  /** One step of deficit round robin in a tier that has something queued; see the file comment. */
  private takeFrom(state: TierState): QueuedRequest {
    // Two steps at most: a lane whose turn just started has a quantum of credit, and a head
    // request costs at most a quantum, so the second step always serves.
    for (let step = 0; step < 2; step++) {
      const first = state.lanes.entries().next().value;
      assert(first !== undefined, 'a tier with queued requests has a lane');
      const [tenant, lane] = first;
      if (!state.turnOpen) {
        lane.deficitTokens += this.limits.quantumTokens;
        state.turnOpen = true;
      }
      const head = lane.entries.values().next().value;
      assert(head !== undefined, 'a lane in the ring has a queued request');
      const cost = Math.min(Math.max(1, head.costTokens), this.limits.quantumTokens);
      if (lane.deficitTokens >= cost) {
        lane.deficitTokens -= cost;
        lane.entries.delete(head.ticket);
        state.queued.delete(head.ticket);
        this.queuedCount--;
        if (lane.entries.size === 0) this.dropLane(state, tenant);
        return head;
      }
      // The turn is over: the lane moves to the end of the ring, keeping its credit.
      state.lanes.delete(tenant);
      state.lanes.set(tenant, lane);
      state.turnOpen = false;
    }
    assert(false, 'a dequeue serves within two steps');
  }

  /** Removes an empty lane and its credit; the turn passes on if it was this lane's. */
  private dropLane(state: TierState, tenant: TenantId): void {
    const isCurrent = state.lanes.keys().next().value === tenant;
    state.lanes.delete(tenant);
    if (isCurrent) state.turnOpen = false;
  }

  private refuse(tier: Tier, scope: QueueFull['scope'], depthMax: number): Result<never, QueueFull> {
    this.stats.refusedFull[tier]++;
    return err({ kind: 'queue-full', scope, tier, depthMax });
  }
}
