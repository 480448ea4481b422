// Proves the comparison's per-tier figures: each request counted once, percentiles, Jain's index.
import { describe, expect, it } from 'vitest';
import { asTenantId, type RequestId } from '../../src/core/ids.js';
import type { Tier } from '../../src/mesh/policy/policy-schema.js';
import { jainIndex, percentile, TierFigures } from '../../sim/tier-figures.js';

describe('tier figures', () => {
  it('computes nearest-rank percentiles and Jain’s index', () => {
    expect(percentile([], 0.5)).toBeUndefined();
    expect(percentile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(percentile([1, 2, 3, 4], 0.99)).toBe(4);
    expect(percentile([7], 0.01)).toBe(7);
    expect(jainIndex([5, 5, 5, 5])).toBe(1);
    expect(jainIndex([1, 0, 0, 0])).toBe(0.25);
    expect(jainIndex([0, 0])).toBeUndefined();
    expect(jainIndex([])).toBeUndefined();
  });

  it('counts served and refused requests per tier, latencies of the served, and tokens per tenant by tier weight', () => {
    const tenants = [
      { tenant: asTenantId('v'), tier: 'vip' as Tier },
      { tenant: asTenantId('f'), tier: 'free' as Tier },
    ];
    const figures = new TierFigures(tenants, { vip: 4, paid: 2, free: 1 }, 1_000);
    const request = (tier: Tier, tenant: string) => ({ requestId: 'r' as RequestId, tenant: asTenantId(tenant), tier, inputTokens: 1, maxTokens: 1 });
    figures.ended(request('vip', 'v'), 'completed', 100, 500, 400);
    figures.ended(request('vip', 'v'), 'completed', 300, 1_500, 400); // served after the window
    figures.ended(request('free', 'f'), 'queue-full', 0, 600, 0);
    figures.ended(request('free', 'f'), 'failed', 50, 700, 200); // partial use counts as tokens, not as served
    const summary = figures.summary();
    expect(summary.tiers.vip).toEqual({ submitted: 2, served: 2, servedInWindow: 1, refused: 0, latencyMsP50: 100, latencyMsP99: 300 });
    expect(summary.tiers.free).toEqual({ submitted: 2, served: 0, servedInWindow: 0, refused: 2, latencyMsP50: undefined, latencyMsP99: undefined });
    expect(summary.tiers.paid.submitted).toBe(0);
    expect(summary.normalisedTokens).toEqual([200, 200]);
    expect(summary.jain).toBe(1);
  });
});
