// The offered load of the scheduling benchmark (test/bench/scheduling.bench.ts): who the tenants
// are, which of them sends each request of the open-loop schedule (drawn from one seed, so every
// arm meets the same sequence), the request bodies, and Jain's fairness index. No I/O here.
import { SeededRandom } from '../../src/core/random.js';
import { defaultScheduleSettings } from '../../src/mesh/policy/schedule-schema.js';

export const benchTiers = ['vip', 'paid', 'free'] as const;
export type BenchTier = (typeof benchTiers)[number];

export interface MixTenant {
  readonly id: string;
  readonly tier: BenchTier;
  /** A heavy tenant sends `heavyFactor` times what a light one of any tier sends. */
  readonly heavy: boolean;
  /** Its share of the requests offered, relative to a light tenant's 1. */
  readonly share: number;
}

/** Tenants per tier, and how many times more a heavy tenant sends than a light one. */
export interface MixShape {
  readonly counts: Readonly<Record<BenchTier, number>>;
  readonly heavyFactor: number;
}

/** 2 vip, 4 paid and 8 free tenants; a third of each tier (rounded: 1, 1 and 3) heavy, sending 5× a light one. */
export const defaultMixShape: MixShape = Object.freeze({ counts: Object.freeze({ vip: 2, paid: 4, free: 8 }), heavyFactor: 5 });

export function tenantMix(shape: MixShape = defaultMixShape): MixTenant[] {
  const tenants: MixTenant[] = [];
  for (const tier of benchTiers) {
    const count = shape.counts[tier];
    const heavyCount = Math.round(count / 3);
    for (let i = 0; i < count; i++) {
      const heavy = i < heavyCount;
      tenants.push({ id: `${tier}-${heavy ? 'heavy' : 'light'}-${i + 1}`, tier, heavy, share: heavy ? shape.heavyFactor : 1 });
    }
  }
  return tenants;
}

/**
 * The tenant (an index into `tenants`) of each of `count` requests, drawn independently with
 * probability proportional to each tenant's share from `seed`: the same seed, the same sequence,
 * whatever the arm.
 */
export function arrivalTenants(tenants: readonly MixTenant[], count: number, seed: number): Uint8Array {
  if (tenants.length > 255) throw new Error('at most 255 tenants fit the arrival table');
  const random = new SeededRandom(seed);
  const total = tenants.reduce((sum, t) => sum + t.share, 0);
  const picks = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    let x = random.float() * total;
    let k = 0;
    // Bounded by the tenant count; the last tenant takes what rounding leaves.
    while (k < tenants.length - 1 && x >= tenants[k]!.share) x -= tenants[k++]!.share;
    picks[i] = k;
  }
  return picks;
}

/** Every request asks up to this many output tokens: above the emulator's longest natural answer, so only a degrade rule cuts one. */
export const requestMaxTokens = 512;
export const requestModel = 'claude-sonnet-4-6';

/**
 * The body of request `i`: its question names `i`, so the emulator's answer (deterministic per
 * request) has its own natural length, and request `i` gets the same answer in every arm.
 */
export function requestBody(i: number): string {
  return JSON.stringify({
    model: requestModel,
    max_tokens: requestMaxTokens,
    messages: [{ role: 'user', content: `Scheduling benchmark, question ${i}: who rides in the carpool today?` }],
  });
}

/** The tiers' weights for fairness: the dynamic queue's own defaults (vip 4, paid 2, free 1). */
export const fairnessWeights: Readonly<Record<BenchTier, number>> = defaultScheduleSettings.tierWeights;

/**
 * Jain's fairness index (Σx)² / (n Σx²) over `values`: 1 when all are equal, 1/n when one value
 * holds everything. NaN for no values or all zero.
 */
export function jainIndex(values: readonly number[]): number {
  let sum = 0;
  let squares = 0;
  for (const x of values) {
    sum += x;
    squares += x * x;
  }
  return values.length === 0 || squares === 0 ? Number.NaN : (sum * sum) / (values.length * squares);
}
