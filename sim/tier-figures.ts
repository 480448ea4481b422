import { assert } from '../src/core/assert.js';
import type { TenantId } from '../src/core/ids.js';
import { type Tier, tiers } from '../src/mesh/policy/policy-schema.js';
import type { PathOutcome, PathRequest } from './request-path.js';

/**
 * What the request path served, per tier and per tenant, for the scheduling comparison
 * (sim/compare.ts): requests submitted and served, latencies of the served ones (submission to
 * end, on the region's clock, in simulated ms), and the weighted tokens each tenant's requests
 * used. Fed by every region's path (`PathObserver`), each request once.
 */

/** Latencies kept over a run (sim only): one per served request, as the books keep one entry per request. */
export const tierLatenciesMax = 2_000_000;

export interface TierSummary {
  readonly submitted: number;
  /** Requests that completed (an answer reached the client). */
  readonly served: number;
  /** Served requests that ended within the arrivals' window: the served rate's numerator. */
  readonly servedInWindow: number;
  /** Requests that did not complete: refused by quota or a full queue, failed (no account, permit expired), or left queued at the end. */
  readonly refused: number;
  /** Latency of the served requests, simulated ms; undefined when none was served. */
  readonly latencyMsP50: number | undefined;
  readonly latencyMsP99: number | undefined;
}

export interface TierFiguresSummary {
  readonly tiers: Readonly<Record<Tier, TierSummary>>;
  /** Weighted tokens used per tenant divided by its tier's weight, in tenant order. */
  readonly normalisedTokens: readonly number[];
  /** Jain's index over `normalisedTokens`: 1 when every tenant was served the same; undefined when nothing was. */
  readonly jain: number | undefined;
}

interface TierBook {
  submitted: number;
  served: number;
  servedInWindow: number;
  readonly latencies: number[];
}

export class TierFigures {
  private readonly books: Record<Tier, TierBook> = {
    vip: { submitted: 0, served: 0, servedInWindow: 0, latencies: [] },
    paid: { submitted: 0, served: 0, servedInWindow: 0, latencies: [] },
    free: { submitted: 0, served: 0, servedInWindow: 0, latencies: [] },
  };
  private readonly tokens = new Map<TenantId, number>();
  private latencies = 0;

  /**
   * `tenants` in order, each with its tier; `weights` the tiers' weights for fairness;
   * `windowEndMs` the end of the arrivals, on the clock `ended` is given.
   */
  constructor(
    private readonly tenants: readonly { readonly tenant: TenantId; readonly tier: Tier }[],
    private readonly weights: Readonly<Record<Tier, number>>,
    private readonly windowEndMs: number,
  ) {
    for (const { tenant } of tenants) this.tokens.set(tenant, 0);
  }

  /** A request ended: `latencyMs` after its submission, at `endMs` on the run's clock. */
  ended(request: PathRequest, outcome: PathOutcome, latencyMs: number, endMs: number, usedWeightedTokens: number): void {
    const book = this.books[request.tier];
    book.submitted++;
    this.tokens.set(request.tenant, (this.tokens.get(request.tenant) ?? 0) + usedWeightedTokens);
    if (outcome !== 'completed') return;
    book.served++;
    if (endMs <= this.windowEndMs) book.servedInWindow++;
    assert(this.latencies++ < tierLatenciesMax, 'the figures keep a bounded number of latencies');
    book.latencies.push(latencyMs);
  }

  summary(): TierFiguresSummary {
    const summaryOf = (book: TierBook): TierSummary => {
      const sorted = [...book.latencies].sort((a, b) => a - b);
      return {
        submitted: book.submitted,
        served: book.served,
        servedInWindow: book.servedInWindow,
        refused: book.submitted - book.served,
        latencyMsP50: percentile(sorted, 0.5),
        latencyMsP99: percentile(sorted, 0.99),
      };
    };
    const normalisedTokens = this.tenants.map(({ tenant, tier }) => (this.tokens.get(tenant) ?? 0) / this.weights[tier]);
    return {
      tiers: Object.fromEntries(tiers.map((tier) => [tier, summaryOf(this.books[tier])])) as Record<Tier, TierSummary>,
      normalisedTokens,
      jain: jainIndex(normalisedTokens),
    };
  }
}

/** The nearest-rank percentile of sorted values; undefined when there are none. */
export function percentile(sorted: readonly number[], share: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(share * sorted.length) - 1))];
}

/**
 * Jain's fairness index (Jain, Chiu and Hawe, 1984): (Σx)² / (n·Σx²), from 1/n (one of n got
 * everything) to 1 (all equal); undefined for no values or all zero.
 */
export function jainIndex(values: readonly number[]): number | undefined {
  let sum = 0;
  let squares = 0;
  for (const value of values) {
    sum += value;
    squares += value * value;
  }
  return values.length === 0 || squares === 0 ? undefined : (sum * sum) / (values.length * squares);
}
