import type { TenantId } from '../../core/ids.js';
import type { WindowedCounter } from '../../crdt/windowed-counter.js';
import { windowAt } from '../../crdt/window.js';
import type { TenantUsage } from '../../schedule/tier-queue.js';

/**
 * What each tenant used, mesh-wide, for the admission queue's levels (src/schedule/tier-queue.ts):
 * the weighted tokens settled for it, charged to two replicated counter series of the node's
 * counter, `(tenant, <id>, served_weighted_tokens)` in 10-second and in minute buckets, which the
 * mesh gossips like any other key. So a tenant heavy in one region drops a level in every region
 * within a gossip interval, where a node-local tally would let it run at the top level in each.
 *
 * Fairness across regions reads the same series: `othersOver` is what the other nodes served a
 * tenant lately, which the queue adds to the tenant's virtual counter (see tier-queue.ts).
 *
 * Cost: two counter keys per tenant and bucket, charged once per settled request, only for
 * tenants that are served (they expire with their windows, as every key does). The keys count
 * against the counter's own bound; when it is full the charge is dropped (`dropped`) and the
 * queue sees that tenant a little lighter than it is, which is the only harm.
 */
export const servedTokensMetric = 'served_weighted_tokens';
const scope = 'tenant';

export class ScheduleUsage implements TenantUsage {
  /** Charges refused by the counter (its key bound reached). */
  dropped = 0;

  constructor(private readonly counter: WindowedCounter) {}

  tokensOver(tenant: TenantId, spanMs: number, bucket: 'sec10' | 'minute', nowMs: number): number {
    return this.counter.slidingSum(scope, tenant, servedTokensMetric, spanMs, nowMs, bucket);
  }

  /**
   * What the other nodes served the tenant over `spanMs` (10-second buckets): the sliding sum less
   * this node's own entries, which its virtual counters already hold.
   */
  othersOver(tenant: TenantId, spanMs: number, nowMs: number): number {
    const total = this.tokensOver(tenant, spanMs, 'sec10', nowMs);
    if (total === 0) return 0;
    let own = 0;
    const last = windowAt('sec10', nowMs).index;
    const first = windowAt('sec10', nowMs - spanMs + 1).index;
    for (let index = Math.max(0, first); index <= last; index++) {
      const entry = this.counter.contributions(this.counter.keyFor(scope, tenant, servedTokensMetric, { unit: 'sec10', index })).get(this.counter.self);
      if (entry !== undefined) own += Math.max(0, entry.p - entry.n);
    }
    return Math.max(0, total - own);
  }

  /** Charges a settled request's weighted tokens to its tenant's two series. */
  charge(tenant: TenantId, weightedTokens: number, nowMs: number): void {
    if (!(weightedTokens > 0)) return;
    const amount = Math.round(weightedTokens);
    for (const unit of ['sec10', 'minute'] as const) {
      const charged = this.counter.increment(this.counter.keyFor(scope, tenant, servedTokensMetric, windowAt(unit, nowMs)), amount);
      if (!charged.ok) this.dropped++;
    }
  }
}
