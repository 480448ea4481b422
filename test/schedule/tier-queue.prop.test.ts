// Proves the tier queue keeps bounds, order and fairness, and starves no tier, under random use.
// Under random enqueue/dequeue/cancel/finish sequences the queue never exceeds its bounds, serves
// the highest non-empty tier, keeps each tenant's requests FIFO, leaks no slot on cancel, and
// serves a lower tier's queued request within a bound once higher tiers are empty, even while other
// tenants keep arriving.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TenantId } from '../../src/core/ids.js';
import type { Tier } from '../../src/mesh/policy/policy-schema.js';
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

/** The reference: which tickets are queued (in order) and running, kept as plainly as possible. */
interface Model {
  queued: QueuedRequest[];
  running: QueuedRequest[];
  /** Every ticket ever issued, for picking cancels and finishes of any state. */
  issued: Ticket[];
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
      const entry = queue.dequeue();
      if (model.running.length >= limits.inFlightMax || model.queued.length === 0) {
        expect(entry).toBeUndefined();
        return;
      }
      expect(entry).toBeDefined();
      if (entry === undefined) return;
      // Strict priority: no higher tier had anything queued.
      const highest = tierNames.find((tier) => model.queued.some((queued) => queued.tier === tier));
      expect(entry.tier).toBe(highest);
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
  it('matches the model, stays within its bounds, and leaks nothing once everything is cancelled and finished', () => {
    checkProperty(
      fc.property(arbLimits, fc.array(arbOp, { maxLength: 120 }), (limits, ops) => {
        const queue = new TierQueue(limits);
        const model: Model = { queued: [], running: [], issued: [] };
        ops.forEach((op, step) => {
          apply(queue, model, limits, op, 1_000 + step);
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
        while (queue.dequeue() !== undefined) started++;
        expect(started).toBe(Math.min(accepted, limits.inFlightMax));
      }),
    );
  });

  it('serves a lower tier once higher tiers are empty, within a bound, while other tenants keep arriving', () => {
    checkProperty(
      fc.property(
        fc.array(fc.record({ tenant: fc.nat(tenants.length - 1), cost: fc.integer({ min: 100, max: 3_000 }) }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.record({ tier: fc.nat(2), tenant: fc.nat(tenants.length - 1), cost: fc.integer({ min: 100, max: 3_000 }) }), { maxLength: 40 }),
        (arrivals, aheadInLane, backlog) => {
          const limits: TierQueueLimits = { tierDepthMax: 16, totalDepthMax: 48, inFlightMax: 1, quantumTokens: 1_000 };
          const queue = new TierQueue(limits);
          // A backlog in every tier, then the watched request behind `aheadInLane` of its own tenant in free.
          for (const item of backlog) queue.enqueue({ tier: tierNames[item.tier] as Tier, tenant: tenants[item.tenant] as TenantId, costTokens: item.cost }, 0);
          const watched = 'watched' as TenantId;
          for (let i = 0; i < aheadInLane; i++) queue.enqueue({ tier: 'free', tenant: watched, costTokens: 500 }, 0);
          const target = queue.enqueue({ tier: 'free', tenant: watched, costTokens: 500 }, 0);
          if (!target.ok) return;
          // Serve one request at a time; after each, another tenant arrives in free (when there is room).
          // Per round each of at most 5 lanes starts at most quantum / 100 = 10 requests, so the
          // target starts within (aheadInLane + 1) rounds once vip and paid are empty.
          const higher = queue.depthOf('vip') + queue.depthOf('paid');
          const bound = higher + (aheadInLane + 1) * 5 * 11;
          let served = false;
          for (let step = 0; step < bound + 1 && !served; step++) {
            const entry = queue.dequeue();
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
