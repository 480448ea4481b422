import { assert } from '../src/core/assert.js';
import type { RegionId, TenantId } from '../src/core/ids.js';
import { type Tier, tiers } from '../src/mesh/policy/policy-schema.js';
import type { ScheduleSettings } from '../src/mesh/policy/schedule-schema.js';
import type { QueuedRequest, Ticket } from '../src/schedule/tier-queue.js';
import type { QueuePort } from './request-path.js';
import type { CheckFailure } from './sim-result.js';

/**
 * The schedule's books: two exact checkers over the starts of each region's tier queue
 * (src/schedule/tier-queue.ts), seen through a seam between the request path and the queue
 * (`observeQueue`). The books keep their own copy of what is queued (by the tickets the queue
 * hands out, the times the path gave, and the tenants and tiers of the requests), so they judge
 * each start by what was queued, not by what the queue says of itself.
 *
 *  - `tier-inversion` (dynamic mode): at every start, whether a higher tier than the started
 *    request's had work queued at that region. Such a start is an escape; the queue promises
 *    that while a tier has work queued, among any `escapeEvery` consecutive starts at most one
 *    goes to a tier below it (none when `escapeEvery` is 0), and that it goes only to a tier
 *    whose oldest queued request has waited at least `escapeAfterMs` (by the times the path
 *    gave the queue). Checked at each start in O(1): the start's index against the last
 *    escape's, and the age of the tier's oldest request in the books' copy.
 *  - `fairness` (dynamic mode with one level, counters charged by estimates): the virtual token
 *    counters' bound. Work a tenant started is its requests' estimated weighted tokens, each
 *    capped at U (`quantumTokens`), as the queue charges them. For any two tenants of one tier
 *    that stay queued at a region over a span of starts, the work they started in it differs
 *    by at most 2U. With levels > 1 a tenant's level moves with its usage and a lower level
 *    rightly waits, and with counters corrected to the tokens used a tenant whose calls used
 *    less than estimated is rightly owed the difference: the queue states no span bound there,
 *    so neither does this checker. Across regions the queue orders a level by counter plus what
 *    other nodes served the tenant (`TenantUsage.othersOver`, gossiped), so a node keeps the
 *    bound for tenants no other node serves: a tenant queued at a second region leaves the check
 *    for good (counted as untracked). The scenarios where it runs home each tenant in one region
 *    (`tenantMix.homed`).
 *    Exact and cheap: for each pair of co-queued tenants the books keep the range (max − min)
 *    of the difference of their started work since both were queued; every span's difference
 *    is a difference of two points of it, so the bound holds over every span if and only if the
 *    range stays within 2U. A start moves only the pairs of its own tenant: O(co-queued
 *    tenants) per start, and memory O(k²) for k tenants of one tier queued at once at a region,
 *    bounded by tracking at most `fairnessTenantsMax` per tier (more are counted as untracked).
 */

/** Tenants of one tier at one region whose pairs the fairness checker tracks at once (sim only). */
export const fairnessTenantsMax = 256;
/** Tenants whose home region the fairness checker follows (sim only). */
export const fairnessHomesMax = 100_000;
/** Failures kept, as the request books: the first few say what broke. */
export const scheduleFailuresMax = 50;

export type ScheduleChecker = 'tier-inversion' | 'fairness';

/** What the books hold the queues to: the region's schedule settings, U, and what finishes charge. */
export interface ScheduleRules {
  readonly settings: ScheduleSettings;
  readonly quantumTokens: number;
  readonly countersBy: 'used' | 'estimate';
}

export interface ScheduleFigures {
  readonly starts: number;
  /** Starts of a lower tier while a higher tier had work queued. */
  readonly escapes: number;
  /** Whether the fairness checker ran (dynamic, one level, counters by estimate). */
  readonly fairnessChecked: boolean;
  /** The largest range of started work between two co-queued tenants seen, in weighted tokens (the bound is 2U). */
  readonly fairnessSpreadMax: number;
  /** Tenants the fairness checker left out for want of room (`fairnessTenantsMax`). */
  readonly fairnessUntracked: number;
}

interface Shadow {
  readonly tier: Tier;
  readonly tenant: TenantId;
  readonly enqueuedAtMs: number;
  /** The request's cost as the path gave it. */
  readonly costTokens: number;
}

/** One tenant queued in one tier at one region. */
interface LaneBook {
  queued: number;
  /** Work started since the lane formed, in weighted tokens capped per request at U. */
  work: number;
  /** Whether the fairness checker tracks this lane (room was left when it formed, and its tenant is served at one region). */
  tracked: boolean;
  /** Per other tracked lane of the tier: min and max of (own work − its work) since both were queued. */
  readonly pairs: Map<TenantId, { min: number; max: number }>;
}

interface RegionBook {
  readonly region: RegionId;
  /** The books' copy of the queue: every queued ticket, per tier in enqueue order. */
  readonly queued: Record<Tier, Map<Ticket, Shadow>>;
  readonly lanes: Record<Tier, Map<TenantId, LaneBook>>;
  readonly tracked: Record<Tier, number>;
  starts: number;
  lastEscape: number | undefined;
}

export class ScheduleBooks {
  readonly failures: CheckFailure[] = [];
  private failuresDropped = 0;
  private readonly regions: RegionBook[] = [];
  /** For the fairness checker: the one region each tenant has queued at, or `roaming` once it queued at two. */
  private readonly homes = new Map<TenantId, RegionBook | 'roaming'>();
  private starts = 0;
  private escapes = 0;
  private spreadMax = 0;
  private untracked = 0;
  private readonly fairness: boolean;

  constructor(private readonly rules: ScheduleRules) {
    assert(Number.isSafeInteger(rules.quantumTokens) && rules.quantumTokens >= 1, 'U is a positive count of tokens');
    const { mode, levels } = rules.settings;
    this.fairness = mode === 'dynamic' && levels === 1 && rules.countersBy === 'estimate';
  }

  /** Wraps a region's queue so that every enqueue, start, cancel and finish passes through the books. */
  observeQueue(queue: QueuePort, region: RegionId): QueuePort {
    const book: RegionBook = {
      region,
      queued: { vip: new Map(), paid: new Map(), free: new Map() },
      lanes: { vip: new Map(), paid: new Map(), free: new Map() },
      tracked: { vip: 0, paid: 0, free: 0 },
      starts: 0,
      lastEscape: undefined,
    };
    this.regions.push(book);
    return {
      enqueue: (request, nowMs) => {
        const queued = queue.enqueue(request, nowMs);
        if (queued.ok)
          this.onEnqueue(book, queued.value.ticket, { tier: request.tier, tenant: request.tenant, enqueuedAtMs: nowMs, costTokens: request.costTokens });
        return queued;
      },
      dequeue: (nowMs) => {
        const started = queue.dequeue(nowMs);
        if (started !== undefined) this.onStart(book, started, nowMs);
        return started;
      },
      cancel: (ticket) => {
        const cancelled = queue.cancel(ticket);
        if (cancelled) this.onLeave(book, ticket);
        return cancelled;
      },
      finish: (ticket, usedTokens) => queue.finish(ticket, usedTokens),
      setInFlightCap: (cap) => queue.setInFlightCap(cap),
    };
  }

  figures(): ScheduleFigures {
    return { starts: this.starts, escapes: this.escapes, fairnessChecked: this.fairness, fairnessSpreadMax: this.spreadMax, fairnessUntracked: this.untracked };
  }

  get failuresDroppedCount(): number {
    return this.failuresDropped;
  }

  // ---- Events ----

  private onEnqueue(book: RegionBook, ticket: Ticket, shadow: Shadow): void {
    assert(!tiers.some((tier) => book.queued[tier].has(ticket)), 'the queue hands out each ticket once');
    book.queued[shadow.tier].set(ticket, shadow);
    const lanes = book.lanes[shadow.tier];
    const lane = lanes.get(shadow.tenant);
    if (lane !== undefined) {
      lane.queued++;
      return;
    }
    const homed = this.fairness && this.homeAt(book, shadow.tenant);
    const tracked = homed && book.tracked[shadow.tier] < fairnessTenantsMax;
    if (homed && !tracked) this.untracked++;
    const fresh: LaneBook = { queued: 1, work: 0, tracked, pairs: new Map() };
    if (tracked) {
      book.tracked[shadow.tier]++;
      // The pair's difference starts at zero: only work started while both are queued counts.
      for (const [other, lane] of lanes) {
        if (!lane.tracked) continue;
        const difference = -lane.work;
        fresh.pairs.set(other, { min: difference, max: difference });
        lane.pairs.set(shadow.tenant, { min: -difference, max: -difference });
      }
    }
    lanes.set(shadow.tenant, fresh);
  }

  private onStart(book: RegionBook, started: QueuedRequest, nowMs: number): void {
    const shadow = book.queued[started.tier].get(started.ticket);
    if (shadow === undefined || shadow.tenant !== started.tenant) {
      this.fail(
        'tier-inversion',
        nowMs,
        `${book.region}'s queue started ticket ${started.ticket} (${started.tier}, ${started.tenant}), which was not queued there as such`,
      );
      return;
    }
    const index = book.starts++;
    this.starts++;
    if (this.rules.settings.mode === 'dynamic') this.checkTiers(book, shadow, index, nowMs);
    const lane = book.lanes[shadow.tier].get(shadow.tenant);
    assert(lane !== undefined, 'a queued request has its lane in the books');
    if (lane.tracked) this.chargeStart(book, shadow, lane, nowMs);
    this.onLeave(book, started.ticket);
  }

  /** A queued ticket leaves the books' copy (started or cancelled); a lane goes with its last. */
  private onLeave(book: RegionBook, ticket: Ticket): void {
    for (const tier of tiers) {
      const shadow = book.queued[tier].get(ticket);
      if (shadow === undefined) continue;
      book.queued[tier].delete(ticket);
      const lanes = book.lanes[tier];
      const lane = lanes.get(shadow.tenant);
      assert(lane !== undefined && lane.queued > 0, 'a queued request has its lane in the books');
      if (--lane.queued > 0) return;
      lanes.delete(shadow.tenant);
      if (!lane.tracked) return;
      book.tracked[tier]--;
      for (const other of lane.pairs.keys()) lanes.get(other)?.pairs.delete(shadow.tenant);
      return;
    }
  }

  /** Whether `tenant` has queued only at `book`'s region; the first time it queues at another, its lanes leave the check. */
  private homeAt(book: RegionBook, tenant: TenantId): boolean {
    const home = this.homes.get(tenant);
    if (home === book) return true;
    if (home === 'roaming') return false;
    if (home === undefined) {
      assert(this.homes.size < fairnessHomesMax, 'the books follow a bounded set of tenants');
      this.homes.set(tenant, book);
      return true;
    }
    this.homes.set(tenant, 'roaming');
    this.untracked++;
    for (const tier of tiers) {
      const lanes = home.lanes[tier];
      const lane = lanes.get(tenant);
      if (lane === undefined || !lane.tracked) continue;
      lane.tracked = false;
      home.tracked[tier]--;
      for (const other of lane.pairs.keys()) lanes.get(other)?.pairs.delete(tenant);
      lane.pairs.clear();
    }
    return false;
  }

  // ---- Checkers ----

  private checkTiers(book: RegionBook, shadow: Shadow, index: number, nowMs: number): void {
    const above = tiers.slice(0, tiers.indexOf(shadow.tier)).filter((tier) => book.queued[tier].size > 0);
    if (above.length === 0) return;
    this.escapes++;
    const { escapeEvery, escapeAfterMs } = this.rules.settings;
    const where = `${book.region} started a ${shadow.tier} request of ${shadow.tenant} (start ${index}) while ${above.join(' and ')} work was queued`;
    if (escapeEvery === 0) this.fail('tier-inversion', nowMs, `${where}, with escapes off (escapeEvery 0)`);
    else if (book.lastEscape !== undefined && index - book.lastEscape < escapeEvery)
      this.fail(
        'tier-inversion',
        nowMs,
        `${where}, ${index - book.lastEscape} starts after the last such start (${book.lastEscape}); at most one in ${escapeEvery}`,
      );
    book.lastEscape = index;
    const oldest = book.queued[shadow.tier].values().next().value;
    assert(oldest !== undefined, 'the started tier has queued work');
    const waitedMs = nowMs - oldest.enqueuedAtMs;
    if (waitedMs < escapeAfterMs)
      this.fail(
        'tier-inversion',
        nowMs,
        `${where}, though the oldest ${shadow.tier} request had waited only ${waitedMs} ms of the ${escapeAfterMs} ms an escape needs`,
      );
  }

  /** The started tenant's work grows by its capped estimate; every pair with it moves, and must stay within 2U. */
  private chargeStart(book: RegionBook, shadow: Shadow, lane: LaneBook, nowMs: number): void {
    const { quantumTokens } = this.rules;
    const charged = Math.min(Math.max(1, shadow.costTokens), quantumTokens);
    lane.work += charged;
    const lanes = book.lanes[shadow.tier];
    for (const [other, range] of lane.pairs) {
      const otherLane = lanes.get(other);
      assert(otherLane !== undefined, 'a pair names a queued lane');
      const difference = lane.work - otherLane.work;
      range.max = Math.max(range.max, difference);
      const mirrored = otherLane.pairs.get(shadow.tenant);
      assert(mirrored !== undefined, 'pairs are kept on both lanes');
      mirrored.min = Math.min(mirrored.min, -difference);
      const spread = range.max - range.min;
      this.spreadMax = Math.max(this.spreadMax, spread);
      if (spread > 2 * quantumTokens)
        this.fail(
          'fairness',
          nowMs,
          `at ${book.region}, ${shadow.tenant} started ${spread} weighted tokens more than ${other} over a span in which both stayed queued in tier ${shadow.tier}; the bound is 2U = ${2 * quantumTokens}`,
        );
    }
  }

  private fail(checker: ScheduleChecker, atMs: number, message: string): void {
    if (this.failures.length >= scheduleFailuresMax) {
      this.failuresDropped++;
      return;
    }
    this.failures.push({ checker, atMs, message });
  }
}
