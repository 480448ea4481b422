import type { TokenUsage } from '../../admission/estimate.js';
import { assert } from '../../core/assert.js';
import type { TenantId } from '../../core/ids.js';
import { recentUsageTenantsMax } from '../../core/limits.js';

/**
 * Tokens by kind each tenant used over about the last minute at this node: GetUsage's
 * `last_minute`. The replicated counters hold what limits need (per rule metric and window), not
 * a per-kind tally, and adding four replicated keys per tenant and 10-second bucket only for this
 * figure would cost mesh traffic on every request; so this is a node-local tally, which the
 * contract allows ("this region's view"; with several nodes in a region it is one node's view).
 *
 * Each tenant keeps six 10-second buckets in a ring, so "the last minute" is the current bucket
 * and the five before it (50 to 60 seconds). Tenants are kept in least-recently-charged order and
 * the oldest is forgotten past `tenantsMax`, counted in `forgotten`.
 *
 * A seventh ring holds the node's total over every tenant, for the token rate the metrics
 * binding exposes (no tenant label there). It is kept apart rather than summed over the tenants
 * at read time: a scrape then costs six buckets, not six per tenant, and a forgotten tenant's
 * tokens stay in the node's total.
 */
const bucketMs = 10_000;
const bucketsPerMinute = 6;

interface Bucket {
  index: number;
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

const zero: TokenUsage = Object.freeze({ input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });

function newRing(): Bucket[] {
  return Array.from({ length: bucketsPerMinute }, () => ({ index: -1, input: 0, output: 0, cacheWrite: 0, cacheRead: 0 }));
}

function charge(ring: Bucket[], usage: TokenUsage, nowMs: number): void {
  const index = Math.floor(nowMs / bucketMs);
  const bucket = ring[index % bucketsPerMinute] as Bucket;
  if (bucket.index !== index) Object.assign(bucket, { index, input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });
  bucket.input += usage.input;
  bucket.output += usage.output;
  bucket.cacheWrite += usage.cacheWrite;
  bucket.cacheRead += usage.cacheRead;
}

function sumOf(ring: readonly Bucket[], nowMs: number): TokenUsage {
  const current = Math.floor(nowMs / bucketMs);
  const sum = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
  for (const bucket of ring) {
    if (bucket.index <= current - bucketsPerMinute || bucket.index > current) continue;
    sum.input += bucket.input;
    sum.output += bucket.output;
    sum.cacheWrite += bucket.cacheWrite;
    sum.cacheRead += bucket.cacheRead;
  }
  return sum;
}

export class RecentUsage {
  forgotten = 0;
  private readonly tenants = new Map<TenantId, Bucket[]>();
  private readonly total = newRing();

  constructor(private readonly tenantsMax: number = recentUsageTenantsMax) {
    assert(Number.isSafeInteger(tenantsMax) && tenantsMax >= 1 && tenantsMax <= recentUsageTenantsMax, 'tenantsMax is 1 to recentUsageTenantsMax');
  }

  get size(): number {
    return this.tenants.size;
  }

  add(tenant: TenantId, usage: TokenUsage, nowMs: number): void {
    let ring = this.tenants.get(tenant);
    if (ring === undefined) {
      if (this.tenants.size >= this.tenantsMax) {
        const oldest = this.tenants.keys().next().value as TenantId;
        this.tenants.delete(oldest);
        this.forgotten++;
      }
      ring = newRing();
    } else {
      // Re-inserted last: the map's order is least recently charged first.
      this.tenants.delete(tenant);
    }
    this.tenants.set(tenant, ring);
    charge(ring, usage, nowMs);
    charge(this.total, usage, nowMs);
  }

  lastMinute(tenant: TenantId, nowMs: number): TokenUsage {
    const ring = this.tenants.get(tenant);
    if (ring === undefined) return zero;
    return sumOf(ring, nowMs);
  }

  /** Tokens by kind every tenant together used at this node over the last minute. */
  lastMinuteTotal(nowMs: number): TokenUsage {
    return sumOf(this.total, nowMs);
  }

  /**
   * How long "the last minute" is at `nowMs`: the five whole buckets before the current one and
   * the part of the current one gone by, 50 to 60 seconds. A rate is a sum divided by this.
   */
  static lastMinuteSpanMs(nowMs: number): number {
    return (bucketsPerMinute - 1) * bucketMs + (nowMs - Math.floor(nowMs / bucketMs) * bucketMs);
  }
}
