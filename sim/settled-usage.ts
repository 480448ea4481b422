import { assert } from '../src/core/assert.js';
import type { RegionId, TenantId } from '../src/core/ids.js';
import { scheduleSettingsBounds } from '../src/mesh/policy/schedule-schema.js';
import type { TenantUsage } from '../src/schedule/tier-queue.js';

/**
 * The tier queue's `TenantUsage` for a run without replicated counters (sim/request-run.ts,
 * whose regions' gates each count only their own admissions): the weighted tokens each request
 * was settled at, per tenant, as production's ScheduleUsage (src/node/gateway/schedule-usage.ts)
 * would read them from the gossiped counter. A region sees its own settlements at once and every
 * other region's `replicationDelayMs` later (a gossip interval; a real mesh adds the network's
 * delay); `othersOver` is what the other regions served. Sums are read from 10-second and minute
 * buckets as `WindowedCounter.slidingSum` reads them: every bucket that overlaps the span
 * counts in full.
 *
 * Bounded: a charge waits in `pending` until the others see it (at most the settlements of one
 * delay), and each tenant keeps buckets only as far back as the longest span the schedule may
 * read in them (`spanMsMax`).
 */
const bucketMs = { sec10: 10_000, minute: 60_000 } as const;
type Unit = keyof typeof bucketMs;
/** Longest span read in each kind of bucket: the schedule's longest rate and history windows (src/mesh/policy/schedule-schema.ts). */
export const spanMsMax = { sec10: scheduleSettingsBounds.rateWindowMs.max, minute: scheduleSettingsBounds.historyWindowMs.max } as const;
/** Tenants summed (sim only). */
export const settledUsageTenantsMax = 100_000;

/** Per region of origin, buckets by index. */
type Buckets = Map<RegionId, Map<number, number>>;

interface TenantBuckets {
  /** What each region's own reads show: its settlements, at once. */
  readonly own: Record<Unit, Buckets>;
  /** What the other regions' reads show: each region's settlements, once replicated. */
  readonly replicated: Record<Unit, Buckets>;
}

export class SettledUsage {
  private readonly pending: { readonly tenant: TenantId; readonly region: RegionId; readonly tokens: number; readonly atMs: number }[] = [];
  private pendingHead = 0;
  private readonly tenants = new Map<TenantId, TenantBuckets>();
  private lastChargeMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly replicationDelayMs: number) {
    assert(Number.isFinite(replicationDelayMs) && replicationDelayMs >= 0, 'a replication delay is a time');
  }

  /** A settlement at `region` at `nowMs` charged `tokens` weighted tokens to `tenant`. Times never go back. */
  charge(region: RegionId, tenant: TenantId, tokens: number, nowMs: number): void {
    assert(nowMs >= this.lastChargeMs, 'charges come in time order');
    this.lastChargeMs = nowMs;
    if (!(tokens > 0)) return;
    this.add(this.bucketsOf(tenant).own, region, tokens, nowMs);
    this.pending.push({ tenant, region, tokens, atMs: nowMs });
  }

  /** What region `region`'s queue reads. */
  viewFor(region: RegionId): TenantUsage {
    return {
      tokensOver: (tenant, spanMs, bucket, nowMs) => this.sum(tenant, region, spanMs, bucket, nowMs, true),
      othersOver: (tenant, spanMs, nowMs) => this.sum(tenant, region, spanMs, 'sec10', nowMs, false),
    };
  }

  private sum(tenant: TenantId, reader: RegionId, spanMs: number, unit: Unit, nowMs: number, withOwn: boolean): number {
    assert(spanMs > 0 && spanMs <= spanMsMax[unit], 'a span within the longest window');
    this.deliver(nowMs);
    const buckets = this.tenants.get(tenant);
    if (buckets === undefined) return 0;
    const first = Math.floor((nowMs - spanMs + 1) / bucketMs[unit]);
    const last = Math.floor(nowMs / bucketMs[unit]);
    let total = 0;
    const add = (indexes: ReadonlyMap<number, number> | undefined): void => {
      for (const [index, tokens] of indexes ?? []) if (index >= first && index <= last) total += tokens;
    };
    for (const [origin, indexes] of buckets.replicated[unit]) if (origin !== reader) add(indexes);
    if (withOwn) add(buckets.own[unit].get(reader));
    return total;
  }

  /** Replicates every charge the other regions see by `nowMs`. */
  private deliver(nowMs: number): void {
    while (this.pendingHead < this.pending.length) {
      const charge = this.pending[this.pendingHead];
      assert(charge !== undefined, 'a pending charge');
      if (charge.atMs + this.replicationDelayMs > nowMs) break;
      this.pendingHead++;
      this.add(this.bucketsOf(charge.tenant).replicated, charge.region, charge.tokens, charge.atMs);
    }
    if (this.pendingHead > 1_024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  /** Adds to the buckets of the charge's time (as the charging node's counter keys it), forgetting those older than any span. */
  private add(buckets: Record<Unit, Buckets>, region: RegionId, tokens: number, atMs: number): void {
    for (const unit of ['sec10', 'minute'] as const) {
      let indexes = buckets[unit].get(region);
      if (indexes === undefined) {
        indexes = new Map<number, number>();
        buckets[unit].set(region, indexes);
      }
      const index = Math.floor(atMs / bucketMs[unit]);
      indexes.set(index, (indexes.get(index) ?? 0) + tokens);
      // Charges come in time order, so the map's first keys are its oldest.
      const oldest = Math.floor((atMs - spanMsMax[unit]) / bucketMs[unit]);
      for (const kept of indexes.keys()) {
        if (kept >= oldest) break;
        indexes.delete(kept);
      }
    }
  }

  private bucketsOf(tenant: TenantId): TenantBuckets {
    let buckets = this.tenants.get(tenant);
    if (buckets === undefined) {
      assert(this.tenants.size < settledUsageTenantsMax, 'the usage sums a bounded set of tenants');
      buckets = { own: { sec10: new Map(), minute: new Map() }, replicated: { sec10: new Map(), minute: new Map() } };
      this.tenants.set(tenant, buckets);
    }
    return buckets;
  }
}
