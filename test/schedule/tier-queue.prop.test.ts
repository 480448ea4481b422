// Proves the tier queue keeps bounds, order and fairness, and starves no tier, under random use.
// Under random enqueue/dequeue/cancel/finish sequences and random schedule settings the queue never
// exceeds its bounds, keeps each tenant's requests FIFO, serves the highest non-empty tier except
// by an escape of aged work, which happens at most once in any escapeEvery starts (the inversion
// bound), starts requests in arrival order in fifo mode, and leaks no slot on cancel. Two tenants
// of one tier that stay queued start work within 2U of each other (the fairness bound); an aged
// free request starts within escapeEvery starts under a flood of vip work; and a queued request
// starts within a bound while other tenants keep arriving in its tier.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TenantId } from '../../src/core/ids.js';
import type { Tier } from '../../src/mesh/policy/policy-schema.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../../src/mesh/policy/schedule-schema.js';
import { type QueuedRequest, type Ticket, TierQueue, type TierQueueLimits } from '../../src/schedule/tier-queue.js';
import { checkProperty } from '../support/property.js';

const tierNames: readonly Tier[] = ['vip', 'paid', 'free'];
const tenants = ['t0', 't1', 't2', 't3'].map((id) => id as TenantId);

type Op =
  | { readonly kind: 'enqueue'; readonly tier: number; readonly tenant: number; readonly cost: number }
  | { readonly kind: 'dequeue' }
  | { readonly kind: 'cancel'; readonly pick: number }
  | { readonly kind: 'finish'; readonly pick: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('enqueue' as const),
      tier: fc.nat(2),
      tenant: fc.nat(tenants.length - 1),
      cost: fc.integer({ min: 0, max: 3_000 }),
    }),
  },
  { weight: 4, arbitrary: fc.constant({ kind: 'dequeue' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }) },
);

const arbLimits: fc.Arbitrary<TierQueueLimits> = fc
  .record({
    tierDepthMax: fc.integer({ min: 1, max: 6 }),
    extra: fc.nat(6),
    inFlightMax: fc.integer({ min: 1, max: 4 }),
    quantumTokens: fc.integer({ min: 1, max: 2_000 }),
  })
  .map(({ tierDepthMax, extra, inFlightMax, quantumTokens }) => ({ tierDepthMax, totalDepthMax: tierDepthMax + extra, inFlightMax, quantumTokens }));

const arbSettings: fc.Arbitrary<ScheduleSettings> = fc
  .record({
    mode: fc.constantFrom('dynamic' as const, 'dynamic' as const, 'fifo' as const),
    levels: fc.integer({ min: 1, max: 4 }),
    depthPerLevel: fc.integer({ min: 1, max: 3 }),
    agingMs: fc.integer({ min: 100, max: 400 }),
    escapeEvery: fc.constantFrom(0, 2, 3, 5),
    escapeAfterMs: fc.integer({ min: 0, max: 60 }),
    levelTokensPerMinute: fc.integer({ min: 1, max: 5_000 }),
  })
  .map((fields) => ({ ...defaultScheduleSettings, ...fields }));

/** Per-tenant usage per minute, as the replicated counters would report it. */
const arbUsage = fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: tenants.length, maxLength: tenants.length });

/** The reference: which tickets are queued (in order) and running, kept as plainly as possible. */
interface Model {
  queued: QueuedRequest[];
  running: QueuedRequest[];
  /** Every ticket ever issued, for picking cancels and finishes of any state. */
  issued: Ticket[];
  readonly settings: ScheduleSettings;
  /** For each start, whether a higher tier than the started one had work queued. */
  readonly inversions: boolean[];
}

function checkInvariants(queue: TierQueue, model: Model, limits: TierQueueLimits): void {
  expect(queue.depth).toBe(model.queued.length);
  expect(queue.inFlight).toBe(model.running.length);
  expect(queue.depth).toBeLessThanOrEqual(limits.totalDepthMax);
  expect(queue.inFlight).toBeLessThanOrEqual(limits.inFlightMax);
  for (const tier of tierNames) {
    const inTier = model.queued.filter((entry) => entry.tier === tier);
    expect(queue.depthOf(tier)).toBe(inTier.length);
    expect(queue.depthOf(tier)).toBeLessThanOrEqual(limits.tierDepthMax);
    expect(queue.load()[tier]).toEqual({ depth: inTier.length, oldestEnqueuedAtMs: inTier[0]?.enqueuedAtMs });
  }
  for (const entry of model.queued) expect(queue.state(entry.ticket)).toBe('queued');
  for (const entry of model.running) expect(queue.state(entry.ticket)).toBe('running');
}

function apply(queue: TierQueue, model: Model, limits: TierQueueLimits, op: Op, nowMs: number): void {
  switch (op.kind) {
    case 'enqueue': {
      const tier = tierNames[op.tier] as Tier;
      const tierFull = model.queued.filter((entry) => entry.tier === tier).length >= limits.tierDepthMax;
      const totalFull = model.queued.length >= limits.totalDepthMax;
      const result = queue.enqueue({ tier, tenant: tenants[op.tenant] as TenantId, costTokens: op.cost }, nowMs);
      expect(result.ok).toBe(!tierFull && !totalFull);
      if (result.ok) {
        model.queued.push(result.value);
        model.issued.push(result.value.ticket);
      } else {
        expect(result.error).toMatchObject({ kind: 'queue-full', scope: tierFull ? 'tier' : 'total', tier });
      }
      return;
    }
    case 'dequeue': {
      const escapesBefore = queue.stats.escapes;
      const entry = queue.dequeue(nowMs);
      if (model.running.length >= limits.inFlightMax || model.queued.length === 0) {
        expect(entry).toBeUndefined();
        return;
      }
      expect(entry).toBeDefined();
      if (entry === undefined) return;
      const highest = tierNames.find((tier) => model.queued.some((queued) => queued.tier === tier));
      const inverted = entry.tier !== highest;
      if (model.settings.mode === 'fifo') {
        expect(entry.ticket).toBe(model.queued[0]?.ticket);
      } else if (inverted) {
        // Only an escape starts a lower tier, and only for work that waited escapeAfterMs.
        expect(queue.stats.escapes).toBe(escapesBefore + 1);
        const oldest = model.queued.find((queued) => queued.tier === entry.tier);
        expect(nowMs - (oldest?.enqueuedAtMs ?? nowMs)).toBeGreaterThanOrEqual(model.settings.escapeAfterMs);
        model.inversions.push(true);
        const window = model.inversions.slice(-Math.max(1, model.settings.escapeEvery));
        expect(model.settings.escapeEvery).toBeGreaterThan(0);
        expect(window.filter(Boolean).length).toBe(1);
      } else {
        model.inversions.push(false);
      }
      // FIFO within a tenant: nothing of the same tenant and tier was queued before it.
      const first = model.queued.find((queued) => queued.tier === entry.tier && queued.tenant === entry.tenant);
      expect(entry.ticket).toBe(first?.ticket);
      model.queued = model.queued.filter((queued) => queued.ticket !== entry.ticket);
      model.running.push(entry);
      return;
    }
    case 'cancel': {
      const ticket = model.issued[op.pick % Math.max(1, model.issued.length)];
      if (ticket === undefined) return;
      const wasQueued = model.queued.some((entry) => entry.ticket === ticket);
      expect(queue.cancel(ticket)).toBe(wasQueued);
      // Idempotent: a second cancel changes nothing.
      expect(queue.cancel(ticket)).toBe(false);
      model.queued = model.queued.filter((entry) => entry.ticket !== ticket);
      return;
    }
    case 'finish': {
      const ticket = model.issued[op.pick % Math.max(1, model.issued.length)];
      if (ticket === undefined) return;
      const wasRunning = model.running.some((entry) => entry.ticket === ticket);
      expect(queue.finish(ticket)).toBe(wasRunning);
      expect(queue.finish(ticket)).toBe(false);
      model.running = model.running.filter((entry) => entry.ticket !== ticket);
      return;
    }
  }
}

describe('TierQueue properties', () => {
  it('matches the model, keeps the inversion bound, stays within its bounds, and leaks nothing once everything is cancelled and finished', () => {
    checkProperty(
      fc.property(arbLimits, arbSettings, arbUsage, fc.array(arbOp, { maxLength: 120 }), (limits, settings, usage, ops) => {
        const perMinute = new Map(tenants.map((tenant, index) => [tenant, usage[index] ?? 0]));
        const queue = new TierQueue(limits, {
          settings,
          usage: { tokensOver: (tenant, spanMs) => ((perMinute.get(tenant) ?? 0) * spanMs) / 60_000, othersOver: () => 0 },
        });
        const model: Model = { queued: [], running: [], issued: [], settings, inversions: [] };
        ops.forEach((op, step) => {
          apply(queue, model, limits, op, 1_000 + step * 7);
          checkInvariants(queue, model, limits);
        });
        for (const entry of model.queued) expect(queue.cancel(entry.ticket)).toBe(true);
        for (const entry of model.running) expect(queue.finish(entry.ticket)).toBe(true);
        expect(queue.depth).toBe(0);
        expect(queue.inFlight).toBe(0);
        // Every slot came back: the whole capacity is there again.
        let accepted = 0;
        for (let i = 0; i < limits.totalDepthMax + 1; i++) {
          if (queue.enqueue({ tier: tierNames[i % 3] as Tier, tenant: tenants[0] as TenantId, costTokens: 1 }, 0).ok) accepted++;
        }
        expect(accepted).toBe(Math.min(limits.totalDepthMax, 3 * limits.tierDepthMax));
        let started = 0;
        while (queue.dequeue(5_000) !== undefined) started++;
        expect(started).toBe(Math.min(accepted, limits.inFlightMax));
      }),
    );
  });

  it('keeps two tenants that stay queued in one tier within 2U of each other in work started', () => {
    checkProperty(
      fc.property(
        fc.integer({ min: 1, max: 2_000 }),
        fc.array(fc.record({ tenant: fc.nat(tenants.length - 1), cost: fc.integer({ min: 0, max: 3_000 }) }), { minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(60), { minLength: tenants.length, maxLength: tenants.length }),
        fc.constantFrom<Tier>('vip', 'paid', 'free'),
        (quantumTokens, arrivals, joinAt, tier) => {
          const limits: TierQueueLimits = { tierDepthMax: 512, totalDepthMax: 512, inFlightMax: 1, quantumTokens };
          const queue = new TierQueue(limits, { settings: { ...defaultScheduleSettings, levels: 1 } });
          const costs = new Map<TenantId, number[]>(tenants.map((tenant) => [tenant, []]));
          for (const arrival of arrivals) costs.get(tenants[arrival.tenant] as TenantId)?.push(arrival.cost);
          /** Work each tenant started since it joined, and what each other tenant had started when it joined. */
          const started = new Map<TenantId, number>();
          const atJoin = new Map<TenantId, Map<TenantId, number>>();
          /** Keeps each tenant that joined queued: one more of its requests for each that starts. */
          const refill = (tenant: TenantId, step: number): void => {
            const own = costs.get(tenant) ?? [];
            const cost = own.length === 0 ? 1 : (own[step % own.length] as number);
            expect(queue.enqueue({ tier, tenant, costTokens: cost }, step).ok).toBe(true);
          };
          for (let step = 0; step < 400; step++) {
            tenants.forEach((tenant, index) => {
              if (step !== joinAt[index]) return;
              atJoin.set(tenant, new Map(started));
              started.set(tenant, 0);
              // Two queued, and one more after each start: the lane never empties (backlogged throughout).
              refill(tenant, step);
              refill(tenant, step + 1);
            });
            const entry = queue.dequeue(step);
            if (entry === undefined) continue;
            queue.finish(entry.ticket);
            started.set(entry.tenant, (started.get(entry.tenant) ?? 0) + Math.min(Math.max(1, entry.costTokens), quantumTokens));
            refill(entry.tenant, step);
            // Every pair queued together: what each started since the later of the two joined.
            for (const [later, before] of atJoin)
              for (const [earlier, then] of before) {
                const sinceJoin = (started.get(earlier) ?? 0) - then;
                expect(Math.abs((started.get(later) ?? 0) - sinceJoin)).toBeLessThanOrEqual(2 * quantumTokens);
              }
          }
        },
      ),
    );
  });

  it('starts aged free requests once in every escapeEvery starts, no more and no less, under an endless flood of vip work', () => {
    checkProperty(
      fc.property(fc.integer({ min: 2, max: 20 }), fc.integer({ min: 0, max: 100 }), fc.nat(30), (escapeEvery, escapeAfterMs, vipAhead) => {
        const queue = new TierQueue(
          { tierDepthMax: 64, totalDepthMax: 128, inFlightMax: 1, quantumTokens: 100 },
          {
            settings: { ...defaultScheduleSettings, escapeEvery, escapeAfterMs },
          },
        );
        for (let i = 0; i < vipAhead; i++) queue.enqueue({ tier: 'vip', tenant: tenants[i % 4] as TenantId, costTokens: 50 }, 0);
        for (let i = 0; i < 3; i++) queue.enqueue({ tier: 'free', tenant: 'watched' as TenantId, costTokens: 50 }, 0);
        const freeStarts: number[] = [];
        let startsSinceAged = 0;
        for (let step = 0; step < 10_000 && freeStarts.length < 3; step++) {
          queue.enqueue({ tier: 'vip', tenant: tenants[step % 4] as TenantId, costTokens: 50 }, step);
          const entry = queue.dequeue(step);
          expect(entry).toBeDefined();
          queue.finish(entry!.ticket);
          if (entry!.tier === 'free') freeStarts.push(step);
          else if (step >= escapeAfterMs && freeStarts.length === 0) startsSinceAged++;
          // The first aged start comes within escapeEvery starts; then one in every escapeEvery exactly.
          expect(startsSinceAged).toBeLessThan(escapeEvery);
        }
        expect(freeStarts).toHaveLength(3);
        expect(freeStarts[1]! - freeStarts[0]!).toBe(escapeEvery);
        expect(freeStarts[2]! - freeStarts[1]!).toBe(escapeEvery);
      }),
    );
  });

  it('starts a queued request within a bound while other tenants keep arriving in its tier', () => {
    checkProperty(
      fc.property(
        fc.array(fc.record({ tenant: fc.nat(tenants.length - 1), cost: fc.integer({ min: 100, max: 3_000 }) }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.record({ tier: fc.nat(2), tenant: fc.nat(tenants.length - 1), cost: fc.integer({ min: 100, max: 3_000 }) }), { maxLength: 40 }),
        (arrivals, aheadInLane, backlog) => {
          const limits: TierQueueLimits = { tierDepthMax: 16, totalDepthMax: 48, inFlightMax: 1, quantumTokens: 1_000 };
          const queue = new TierQueue(limits, { settings: { ...defaultScheduleSettings, levels: 1, escapeEvery: 0 } });
          // A backlog in every tier, then the watched request behind `aheadInLane` of its own tenant in free.
          for (const item of backlog) queue.enqueue({ tier: tierNames[item.tier] as Tier, tenant: tenants[item.tenant] as TenantId, costTokens: item.cost }, 0);
          const watched = 'watched' as TenantId;
          for (let i = 0; i < aheadInLane; i++) queue.enqueue({ tier: 'free', tenant: watched, costTokens: 500 }, 0);
          const target = queue.enqueue({ tier: 'free', tenant: watched, costTokens: 500 }, 0);
          if (!target.ok) return;
          // Serve one request at a time; after each, another tenant arrives in free (when there is room).
          // The watched lane's counter stays put while it waits, and every other lane's counter is
          // within U of the smallest and grows by at least 100 per start: each of the 4 others
          // starts at most U / 100 + 1 = 11 requests per request of the watched lane.
          const higher = queue.depthOf('vip') + queue.depthOf('paid');
          const bound = higher + (aheadInLane + 1) * 5 * 11;
          let served = false;
          for (let step = 0; step < bound + 1 && !served; step++) {
            const entry = queue.dequeue(step);
            expect(entry).toBeDefined();
            if (entry === undefined) break;
            if (entry.tier !== 'vip' && entry.tier !== 'paid') expect(queue.depthOf('vip') + queue.depthOf('paid')).toBe(0);
            served = entry.ticket === target.value.ticket;
            queue.finish(entry.ticket);
            const arrival = arrivals[step % arrivals.length];
            if (arrival !== undefined) queue.enqueue({ tier: 'free', tenant: tenants[arrival.tenant] as TenantId, costTokens: arrival.cost }, step);
          }
          expect(served).toBe(true);
        },
      ),
    );
  });
});
