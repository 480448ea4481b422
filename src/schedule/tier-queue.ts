import type { ShedLoad } from '../admission/shedder.js';
import { assert, isCount } from '../core/assert.js';
import type { Brand, TenantId } from '../core/ids.js';
import { gatewayCallsInFlightMax, tierQueueCountersMax, tierQueueDepthMax, tierQueueQuantumTokens, tierQueueTotalDepthMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { type Tier, tiers } from '../mesh/policy/policy-schema.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../mesh/policy/schedule-schema.js';

/**
 * A node's admission queue in front of the upstream: requests that passed admission wait here
 * for one of the node's call slots.
 *
 *   enqueue ─ tier or total bound reached ─▶ refused (`queue-full`; the caller sheds it)
 *      └ queued in its tier, in its tenant's lane (FIFO)
 *   dequeue(now) ─ while calls in flight < the in-flight limit, by the policy's `settings.schedule`:
 *      dynamic: 1. the tier: the highest with anything queued (vip > paid > free), except that
 *                  once in every `escapeEvery` starts a lower tier whose oldest request waited
 *                  `escapeAfterMs` goes first (the escape);
 *               2. the level: the lowest (best) level of the multi-level feedback queue among the
 *                  tier's lanes;
 *               3. the tenant: the smallest virtual token counter among the lanes at that level.
 *      fifo:    the oldest request of any tier and tenant (the round-robin relay's baseline).
 *   cancel  ─ a queued request leaves (its client went away); idempotent
 *   finish  ─ a running request frees its slot, and corrects its tenant's counter to what the
 *             request really used when the caller knows it; idempotent
 *
 * Levels (the multi-level feedback queue; Corbató's MLFQ with tenants for jobs). A lane's level is
 *   rate level + depth level − aging, clamped to [0, levels − 1], where
 *   - rate level: 0 while the tenant's weighted tokens per minute over both rolling windows
 *     (`rateWindowMs`, in 10-second buckets, and `historyWindowMs`, in minute buckets) stay
 *     within `levelTokensPerMinute` × its tier's weight, and one more per doubling past it. The
 *     figure comes from `TenantUsage`, which the node answers from the replicated counters, so a
 *     tenant heavy in one region drops in every region;
 *   - depth level: one per `depthPerLevel` of the tenant's requests queued behind its first;
 *   - aging: one per `agingMs` its oldest queued request has waited.
 * So a light tenant's request starts before a heavy tenant's, and a heavy tenant's waiting work
 * climbs back to the top level within (levels − 1) × agingMs: a level never starves.
 *
 * Fairness (virtual token counters; Sheng et al., "Fairness in Serving Large Language Models",
 * OSDI 2024). Each tenant has a counter that grows by a started request's estimated weighted
 * tokens, capped at U = `quantumTokens`, divided by its tier's weight; `finish` with the tokens
 * really used moves it by the difference (same cap). A tenant that starts queueing is lifted to
 * the smallest counter of the tier's queued tenants (or to the tier's virtual time, the counter
 * of its last start, when none queue), so idle time banks nothing. Bound, for counters charged
 * by estimates: two tenants of one tier that stay queued at one level over any span of starts
 * start work within 2U weighted tokens of each other (each counter stays within U of the
 * smallest while queued; the test is test/schedule/tier-queue.prop.test.ts).
 *
 * Across regions. The order within a level is by counter plus what other nodes served the tenant
 * over `rateWindowMs` (over its tier's weight), read from the replicated counters through
 * `TenantUsage.othersOver`: a tenant that other regions already serve heavily waits behind one they
 * do not, so tenants backlogged at several nodes even out mesh-wide, not only per node. The 2U
 * bound then holds for counter plus that figure, up to what gossip has not yet delivered (the
 * tokens settled elsewhere in the last gossip interval) and what left the window.
 *
 * Tiers and the escape. Without the escape, priority between tiers is strict, which is what the
 * Shedder (src/admission/shedder.ts) assumes when it judges a request by the queues at and above
 * its tier. The escape bounds how long a lower tier can wait and how much a higher tier loses:
 * while a tier has work queued, among any `escapeEvery` consecutive starts at most one goes to a
 * tier below it (an escape needs `escapeEvery − 1` starts of the highest tier since the last).
 * `escapeEvery = 0` turns it off.
 *
 * Everything is bounded: queued requests per tier and in total, calls in flight, lanes (at most
 * one per queued request) and counters (`tierQueueCountersMax`, least recently served forgotten
 * first, never one with a lane; and idle ones that carry nothing as soon as they are seen). Nothing here reads a clock: `nowMs` comes with each enqueue and
 * dequeue. A dequeue looks at every lane of one tier: O(queued tenants of that tier).
 */
export type Ticket = Brand<number, 'Ticket'>;

export interface TierQueueLimits {
  /** Requests queued in one tier: 1 to `tierQueueDepthMax`. */
  readonly tierDepthMax: number;
  /** Requests queued in all tiers: `tierDepthMax` to `tierQueueTotalDepthMax`. */
  readonly totalDepthMax: number;
  /** Requests running at once: 1 to `gatewayCallsInFlightMax`. */
  readonly inFlightMax: number;
  /** The most one request counts for fairness, U, in weighted tokens: 1 to `tierQueueQuantumTokens`. */
  readonly quantumTokens: number;
}

export const defaultTierQueueLimits: TierQueueLimits = Object.freeze({
  tierDepthMax: tierQueueDepthMax,
  totalDepthMax: tierQueueTotalDepthMax,
  inFlightMax: gatewayCallsInFlightMax,
  quantumTokens: tierQueueQuantumTokens,
});

/**
 * What a tenant recently used, mesh-wide: the weighted tokens charged to it over the last
 * `spanMs` before `nowMs`, summed from `bucket` sub-buckets. The node answers from the replicated
 * counters (src/node/gateway/schedule-usage.ts); without one every tenant reads as idle.
 */
export interface TenantUsage {
  tokensOver(tenant: TenantId, spanMs: number, bucket: 'sec10' | 'minute', nowMs: number): number;
  /** Of that, over 10-second buckets, what other nodes served: this node's counters hold its own. */
  othersOver(tenant: TenantId, spanMs: number, nowMs: number): number;
}

const idleUsage: TenantUsage = Object.freeze({ tokensOver: () => 0, othersOver: () => 0 });

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
  /** Starts by the level the request's lane had when it started (dynamic mode). */
  readonly startsByLevel: number[] = [0, 0, 0, 0, 0, 0, 0, 0];
  /** Starts of a lower tier ahead of a higher one's queued work. */
  escapes = 0;
  cancelled = 0;
  finished = 0;
}

/** One tenant's queued requests in one tier, oldest first, and its level from usage. */
interface Lane {
  readonly tenant: TenantId;
  readonly entries: Map<Ticket, QueuedRequest>;
  /** The rate level, from `TenantUsage`: read when the lane forms and after each start from it. */
  rateLevel: number;
  /** What other nodes served the tenant over `rateWindowMs`, over its tier's weight; read with `rateLevel`. */
  elsewhere: number;
}

interface TierState {
  readonly lanes: Map<TenantId, Lane>;
  /** Every queued request of the tier in enqueue order: the first is the oldest. */
  readonly queued: Map<Ticket, QueuedRequest>;
  /** The counter of the tier's last start: where a tenant joining an empty tier starts. */
  virtualTime: number;
}

interface Running extends QueuedRequest {
  /** What the start added to its tenant's counter, before the tier's weight. */
  readonly charged: number;
}

export interface TierQueueOptions {
  readonly settings?: ScheduleSettings;
  readonly usage?: TenantUsage;
}

export class TierQueue {
  readonly limits: TierQueueLimits;
  readonly stats = new TierQueueStats();

  private settings: ScheduleSettings;
  private readonly usage: TenantUsage;
  private readonly tiers: Readonly<Record<Tier, TierState>>;
  private readonly running = new Map<Ticket, Running>();
  /** Virtual token counters by tenant, least recently served first, with the tier each counts in. */
  private readonly counters = new Map<TenantId, { readonly value: number; readonly tier: Tier }>();
  /** Starts of the highest queued tier since the last escape. */
  private sinceEscape = 0;
  private queuedCount = 0;
  private nextTicket = 1;
  private inFlightCap = Number.POSITIVE_INFINITY;

  constructor(limits: TierQueueLimits = defaultTierQueueLimits, options: TierQueueOptions = {}) {
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
    this.settings = options.settings ?? defaultScheduleSettings;
    this.usage = options.usage ?? idleUsage;
    const state = (): TierState => ({ lanes: new Map(), queued: new Map(), virtualTime: 0 });
    this.tiers = { vip: state(), paid: state(), free: state() };
  }

  /** The policy's settings from now on; queued requests keep their place and are ordered by them. */
  configure(settings: ScheduleSettings): void {
    if (settings === this.settings) return;
    this.settings = settings;
    // Levels read from usage were judged by the old thresholds.
    for (const tier of tiers) for (const lane of this.tiers[tier].lanes.values()) this.readUsage(lane, tier, undefined);
  }

  get schedule(): ScheduleSettings {
    return this.settings;
  }

  /** Requests queued in all tiers. */
  get depth(): number {
    return this.queuedCount;
  }

  /**
   * The queue's tables, for the bound tests: `queued` ≤ `totalDepthMax` (refused past it), `lanes`
   * ≤ queued (a lane goes with its last request), `running` ≤ `inFlightMax` (not dequeued past it),
   * `counters` ≤ `tierQueueCountersMax`.
   */
  tableSizes(): { readonly queued: number; readonly lanes: number; readonly running: number; readonly counters: number } {
    let lanes = 0;
    for (const state of Object.values(this.tiers)) lanes += state.lanes.size;
    return { queued: this.queuedCount, lanes, running: this.running.size, counters: this.counters.size };
  }

  /**
   * Requests that may run at once: `inFlightMax`, or less while the owner caps it to what the
   * upstream can take now (`setInFlightCap`): work beyond it waits here, in priority order,
   * rather than in the account pool's first-come queues.
   */
  get inFlightLimit(): number {
    return Math.min(this.limits.inFlightMax, this.inFlightCap);
  }

  /** Caps the requests running at once (at least 1); running ones above a lowered cap finish as they are. */
  setInFlightCap(cap: number): void {
    assert(cap >= 1, 'a cap lets one request run at least');
    this.inFlightCap = cap;
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
      lane = { tenant: request.tenant, entries: new Map(), rateLevel: 0, elsewhere: 0 };
      this.readUsage(lane, request.tier, nowMs);
      this.lift(tier, request.tier, request.tenant);
      tier.lanes.set(request.tenant, lane);
    }
    lane.entries.set(entry.ticket, entry);
    tier.queued.set(entry.ticket, entry);
    this.queuedCount++;
    this.stats.enqueued[request.tier]++;
    return ok(entry);
  }

  /**
   * Starts the next request, if a call slot is free and anything is queued, by the order of the
   * file comment. The request counts as running until `finish`.
   */
  dequeue(nowMs: number): QueuedRequest | undefined {
    assert(Number.isFinite(nowMs), 'the clock reads a finite time');
    if (this.running.size >= this.inFlightLimit || this.queuedCount === 0) return undefined;
    const tier = this.settings.mode === 'fifo' ? this.oldestTier() : this.tierToServe(nowMs);
    const state = this.tiers[tier];
    const lane = this.settings.mode === 'fifo' ? this.laneOfOldest(state) : this.laneToServe(state, tier, nowMs);
    const head = lane.entries.values().next().value;
    assert(head !== undefined, 'a lane in a tier has a queued request');
    lane.entries.delete(head.ticket);
    state.queued.delete(head.ticket);
    this.queuedCount--;
    const charged = Math.min(Math.max(1, head.costTokens), this.limits.quantumTokens);
    const counter = this.counters.get(head.tenant)?.value ?? state.virtualTime;
    state.virtualTime = counter;
    this.setCounter(head.tenant, tier, counter + charged / this.settings.tierWeights[tier]);
    this.forgetIdle();
    if (lane.entries.size === 0) state.lanes.delete(head.tenant);
    else this.readUsage(lane, tier, nowMs);
    this.running.set(head.ticket, { ...head, charged });
    this.stats.dequeued[tier]++;
    return head;
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
      if (lane.entries.size === 0) state.lanes.delete(entry.tenant);
      state.queued.delete(ticket);
      this.queuedCount--;
      this.stats.cancelled++;
      return true;
    }
    return false;
  }

  /**
   * Frees a running request's slot; false, changing nothing, if the ticket is not running. Given
   * the weighted tokens the request really used, its tenant's counter is corrected from the
   * estimate to them (both capped at U), so fairness follows what tenants used.
   */
  finish(ticket: Ticket, usedTokens?: number): boolean {
    const entry = this.running.get(ticket);
    if (entry === undefined) return false;
    this.running.delete(ticket);
    this.stats.finished++;
    if (usedTokens !== undefined) {
      assert(Number.isFinite(usedTokens) && usedTokens >= 0, 'tokens used are a finite count');
      const counter = this.counters.get(entry.tenant);
      const used = Math.min(usedTokens, this.limits.quantumTokens);
      if (counter !== undefined)
        this.counters.set(entry.tenant, { value: counter.value + (used - entry.charged) / this.settings.tierWeights[entry.tier], tier: counter.tier });
    }
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

  /** A tenant's virtual token counter; undefined when it has none (new, or forgotten). */
  counterOf(tenant: TenantId): number | undefined {
    return this.counters.get(tenant)?.value;
  }

  /** The level a tenant's queued lane in `tier` has at `nowMs`; undefined when it has none. */
  levelOf(tenant: TenantId, tier: Tier, nowMs: number): number | undefined {
    const lane = this.tiers[tier].lanes.get(tenant);
    return lane === undefined ? undefined : this.levelOfLane(lane, nowMs);
  }

  /** Each tier's depth and the arrival of its oldest queued request, for the Shedder. */
  load(): ShedLoad {
    const loadOf = (tier: Tier): ShedLoad[Tier] => {
      const oldest = this.oldestOf(this.tiers[tier]);
      return { depth: this.tiers[tier].queued.size, oldestEnqueuedAtMs: oldest?.enqueuedAtMs };
    };
    return { vip: loadOf('vip'), paid: loadOf('paid'), free: loadOf('free') };
  }

  // ---- Internals ----

  /** The tier of the next start in dynamic mode: the highest queued, or an aged lower one on an escape turn. */
  private tierToServe(nowMs: number): Tier {
    const highest = tiers.findIndex((tier) => this.tiers[tier].queued.size > 0);
    assert(highest >= 0, 'something is queued');
    const { escapeEvery, escapeAfterMs } = this.settings;
    if (escapeEvery > 0 && this.sinceEscape >= escapeEvery - 1) {
      for (let index = highest + 1; index < tiers.length; index++) {
        const tier = tiers[index] as Tier;
        const oldest = this.oldestOf(this.tiers[tier]);
        if (oldest !== undefined && nowMs - oldest.enqueuedAtMs >= escapeAfterMs) {
          this.sinceEscape = 0;
          this.stats.escapes++;
          return tier;
        }
      }
    }
    this.sinceEscape++;
    return tiers[highest] as Tier;
  }

  /** The lane at the best level, and within it the smallest counter (then the older head). */
  private laneToServe(state: TierState, tier: Tier, nowMs: number): Lane {
    let best: Lane | undefined;
    let bestLevel = Number.POSITIVE_INFINITY;
    let bestCounter = Number.POSITIVE_INFINITY;
    for (const lane of state.lanes.values()) {
      const level = this.levelOfLane(lane, nowMs);
      if (level > bestLevel) continue;
      const counter = (this.counters.get(lane.tenant)?.value ?? state.virtualTime) + lane.elsewhere;
      if (level === bestLevel && counter >= bestCounter) continue;
      best = lane;
      bestLevel = level;
      bestCounter = counter;
    }
    assert(best !== undefined, `tier ${tier} has a lane`);
    this.stats.startsByLevel[bestLevel] = (this.stats.startsByLevel[bestLevel] ?? 0) + 1;
    return best;
  }

  private levelOfLane(lane: Lane, nowMs: number): number {
    const { levels, depthPerLevel, agingMs } = this.settings;
    const head = lane.entries.values().next().value;
    assert(head !== undefined, 'a lane has a queued request');
    const depthLevel = Math.floor((lane.entries.size - 1) / depthPerLevel);
    const aged = Math.floor(Math.max(0, nowMs - head.enqueuedAtMs) / agingMs);
    return Math.min(levels - 1, Math.max(0, lane.rateLevel + depthLevel - aged));
  }

  /**
   * The lane's rate level — 0 while the tenant's weighted tokens per minute over both windows stay
   * within the tier's threshold, then one per doubling — and what other nodes served it. `nowMs`
   * undefined (a settings change) reads both as 0 until the lane's next start reads usage again.
   */
  private readUsage(lane: Lane, tier: Tier, nowMs: number | undefined): void {
    const { levels, rateWindowMs, historyWindowMs, levelTokensPerMinute, tierWeights } = this.settings;
    if (nowMs === undefined) {
      lane.rateLevel = 0;
      lane.elsewhere = 0;
      return;
    }
    lane.elsewhere = this.usage.othersOver(lane.tenant, rateWindowMs, nowMs) / tierWeights[tier];
    if (levels === 1) {
      lane.rateLevel = 0;
      return;
    }
    const rate = (this.usage.tokensOver(lane.tenant, rateWindowMs, 'sec10', nowMs) * 60_000) / rateWindowMs;
    const history = (this.usage.tokensOver(lane.tenant, historyWindowMs, 'minute', nowMs) * 60_000) / historyWindowMs;
    const ratio = Math.max(rate, history) / (levelTokensPerMinute * tierWeights[tier]);
    lane.rateLevel = ratio <= 1 ? 0 : Math.min(levels - 1, Math.ceil(Math.log2(ratio)));
  }

  /** A tenant that starts queueing in a tier: lifted to the tier's smallest queued counter, so idle time banks nothing. */
  private lift(state: TierState, tier: Tier, tenant: TenantId): void {
    let floor = Number.POSITIVE_INFINITY;
    for (const lane of state.lanes.values()) floor = Math.min(floor, this.counters.get(lane.tenant)?.value ?? state.virtualTime);
    if (floor === Number.POSITIVE_INFINITY) floor = state.virtualTime;
    const own = this.counters.get(tenant);
    if (own === undefined || own.value < floor || own.tier !== tier) this.setCounter(tenant, tier, Math.max(floor, own?.tier === tier ? own.value : floor));
  }

  /** Sets a counter as the most recently served; forgets the least recently served tenant without a lane past the bound. */
  private setCounter(tenant: TenantId, tier: Tier, value: number): void {
    this.counters.delete(tenant);
    this.counters.set(tenant, { value, tier });
    if (this.counters.size <= tierQueueCountersMax) return;
    // Lanes are at most `tierQueueTotalDepthMax` < the bound, so one without a lane is found.
    for (const other of this.counters.keys()) {
      if (tiers.some((tier) => this.tiers[tier].lanes.has(other))) continue;
      this.counters.delete(other);
      return;
    }
  }

  /**
   * Forgets the least recently served counters that carry nothing: a tenant with nothing queued
   * whose counter is at or below its tier's virtual time would be lifted at least that far when it
   * queues again. Two looks per start keep it O(1) and the table as small as the active tenants.
   */
  private forgetIdle(): void {
    for (let look = 0; look < 2; look++) {
      const first = this.counters.entries().next().value;
      if (first === undefined) return;
      const [tenant, counter] = first;
      const state = this.tiers[counter.tier];
      if (state.lanes.has(tenant)) {
        // Queued: never forgotten; it goes to the back so that the look passes on.
        this.counters.delete(tenant);
        this.counters.set(tenant, counter);
      } else if (counter.value <= state.virtualTime) {
        this.counters.delete(tenant);
      } else {
        return;
      }
    }
  }

  private oldestOf(state: TierState): QueuedRequest | undefined {
    return state.queued.size === 0 ? undefined : state.queued.values().next().value;
  }

  /** The tier holding the oldest queued request (tickets grow with each enqueue). */
  private oldestTier(): Tier {
    let best: Tier | undefined;
    let bestTicket = Number.POSITIVE_INFINITY;
    for (const tier of tiers) {
      const oldest = this.oldestOf(this.tiers[tier]);
      if (oldest !== undefined && oldest.ticket < bestTicket) {
        best = tier;
        bestTicket = oldest.ticket;
      }
    }
    assert(best !== undefined, 'something is queued');
    return best;
  }

  private laneOfOldest(state: TierState): Lane {
    const oldest = this.oldestOf(state);
    assert(oldest !== undefined, 'the tier has a queued request');
    const lane = state.lanes.get(oldest.tenant);
    assert(lane !== undefined, 'a queued request has its lane');
    return lane;
  }

  private refuse(tier: Tier, scope: QueueFull['scope'], depthMax: number): Result<never, QueueFull> {
    this.stats.refusedFull[tier]++;
    return err({ kind: 'queue-full', scope, tier, depthMax });
  }
}
