import { assert } from '../src/core/assert.js';
import type { TenantId } from '../src/core/ids.js';
import { scheduleSettingsBounds } from '../src/mesh/policy/schedule-schema.js';
import type { TenantUsage } from '../src/schedule/tier-queue.js';

/**
 * The tier queue's `TenantUsage` for a run without replicated counters (sim/request-run.ts,
 * whose regions' gates each count only their own admissions): the weighted tokens each request
 * was settled at, summed per tenant over every region, and seen by every region only
 * `replicationDelayMs` after the settlement, as a gossiped counter would show it (the
 * scenario's gossip interval; the network's delay comes on top in a real mesh). Sums are read
 * from 10-second and minute buckets as `WindowedCounter.slidingSum` reads them: every bucket
 * that overlaps the span counts in full.
 *
 * Bounded: a charge waits in `pending` until it is visible (at most the settlements of one
 * delay), and each tenant keeps buckets only as far back as the longest span the schedule may
 * read in them (`spanMsMax`).
 */
const bucketMs = { sec10: 10_000, minute: 60_000 } as const;
/** Longest span read in each kind of bucket: the schedule's longest rate and history windows (src/mesh/policy/schedule-schema.ts). */
export const spanMsMax = { sec10: scheduleSettingsBounds.rateWindowMs.max, minute: scheduleSettingsBounds.historyWindowMs.max } as const;
/** Tenants summed (sim only). */
export const settledUsageTenantsMax = 100_000;

interface TenantBuckets {
  readonly sec10: Map<number, number>;
  readonly minute: Map<number, number>;
}

export class SettledUsage implements TenantUsage {
  private readonly pending: { readonly tenant: TenantId; readonly tokens: number; readonly visibleAtMs: number }[] = [];
  private pendingHead = 0;
  private readonly tenants = new Map<TenantId, TenantBuckets>();
  private lastChargeMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly replicationDelayMs: number) {
    assert(Number.isFinite(replicationDelayMs) && replicationDelayMs >= 0, 'a replication delay is a time');
  }

  /** A settlement at `nowMs` charged `tokens` weighted tokens to `tenant`. Times never go back. */
  charge(tenant: TenantId, tokens: number, nowMs: number): void {
    assert(nowMs >= this.lastChargeMs, 'charges come in time order');
    this.lastChargeMs = nowMs;
    if (tokens <= 0) return;
    this.pending.push({ tenant, tokens, visibleAtMs: nowMs + this.replicationDelayMs });
  }

  tokensOver(tenant: TenantId, spanMs: number, bucket: 'sec10' | 'minute', nowMs: number): number {
    assert(spanMs > 0 && spanMs <= spanMsMax[bucket], 'a span within the longest window');
    this.deliver(nowMs);
    const buckets = this.tenants.get(tenant)?.[bucket];
    if (buckets === undefined) return 0;
    const length = bucketMs[bucket];
    const first = Math.floor((nowMs - spanMs + 1) / length);
    const last = Math.floor(nowMs / length);
    let total = 0;
    for (const [index, tokens] of buckets) if (index >= first && index <= last) total += tokens;
    return total;
  }

  /** Moves every charge visible at `nowMs` into its tenant's buckets, and forgets buckets older than any span. */
  private deliver(nowMs: number): void {
    while (this.pendingHead < this.pending.length) {
      const charge = this.pending[this.pendingHead];
      assert(charge !== undefined, 'a pending charge');
      if (charge.visibleAtMs > nowMs) break;
      this.pendingHead++;
      let buckets = this.tenants.get(charge.tenant);
      if (buckets === undefined) {
        assert(this.tenants.size < settledUsageTenantsMax, 'the usage sums a bounded set of tenants');
        buckets = { sec10: new Map(), minute: new Map() };
        this.tenants.set(charge.tenant, buckets);
      }
      for (const unit of ['sec10', 'minute'] as const) {
        const index = Math.floor(charge.visibleAtMs / bucketMs[unit]);
        const map = buckets[unit];
        map.set(index, (map.get(index) ?? 0) + charge.tokens);
        const oldest = Math.floor((charge.visibleAtMs - spanMsMax[unit]) / bucketMs[unit]);
        for (const kept of map.keys()) {
          if (kept >= oldest) break;
          map.delete(kept);
        }
      }
    }
    if (this.pendingHead > 1_024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }
}
