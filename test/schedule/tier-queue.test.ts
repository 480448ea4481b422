// Proves the tier queue's rules on small cases.
// Tiers in order (and the bounded escape of aged lower-tier work), the feedback levels from usage,
// depth and aging, virtual token counters between tenants of one tier, the fifo baseline, the
// call slot bound, refusals at the tier and total bounds, and the load the Shedder reads.
import { describe, expect, it } from 'vitest';
import type { TenantId } from '../../src/core/ids.js';
import { tierQueueCountersMax } from '../../src/core/limits.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../../src/mesh/policy/schedule-schema.js';
import { type QueuedRequest, TierQueue, type TenantUsage } from '../../src/schedule/tier-queue.js';

const a = 'tenant-a' as TenantId;
const b = 'tenant-b' as TenantId;
const c = 'tenant-c' as TenantId;

const strict: ScheduleSettings = { ...defaultScheduleSettings, escapeEvery: 0, levels: 1 };

function drain(queue: TierQueue, nowMs = 0): QueuedRequest[] {
  const out: QueuedRequest[] = [];
  // Bounded: each turn starts and finishes one queued request.
  for (let i = 0; i < 1_000; i++) {
    const entry = queue.dequeue(nowMs);
    if (entry === undefined) return out;
    out.push(entry);
    queue.finish(entry.ticket);
  }
  throw new Error('the queue did not drain');
}

/** Usage as the replicated counters would report it: tokens per tenant over any window. */
function usageOf(perMinute: Record<string, number>, elsewhere: Record<string, number> = {}): TenantUsage {
  return { tokensOver: (tenant, spanMs) => ((perMinute[tenant] ?? 0) * spanMs) / 60_000, othersOver: (tenant) => elsewhere[tenant] ?? 0 };
}

describe('TierQueue', () => {
  it('starts paid before free and vip before both, whatever the arrival order', () => {
    const queue = new TierQueue({ tierDepthMax: 8, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 }, { settings: strict });
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 1);
    queue.enqueue({ tier: 'paid', tenant: b, costTokens: 10 }, 2);
    queue.enqueue({ tier: 'vip', tenant: a, costTokens: 10 }, 3);
    expect(drain(queue).map((entry) => entry.tier)).toEqual(['vip', 'paid', 'free']);
  });

  it('lets an aged free request escape once in every escapeEvery starts, and not before it aged', () => {
    const settings: ScheduleSettings = { ...strict, escapeEvery: 3, escapeAfterMs: 1_000 };
    const queue = new TierQueue({ tierDepthMax: 16, totalDepthMax: 32, inFlightMax: 1, quantumTokens: 100 }, { settings });
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 0);
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 0);
    for (let i = 0; i < 8; i++) queue.enqueue({ tier: 'paid', tenant: b, costTokens: 10 }, 0);
    // Not aged yet: paid first, however many starts.
    expect(drain1(queue, 500).tier).toBe('paid');
    expect(drain1(queue, 500).tier).toBe('paid');
    expect(drain1(queue, 500).tier).toBe('paid');
    // Aged, and three paid starts since the last escape: free goes once, then two paid starts.
    expect(['free', 'paid', 'paid', 'free', 'paid'].map(() => drain1(queue, 1_000).tier)).toEqual(['free', 'paid', 'paid', 'free', 'paid']);
    expect(queue.stats.escapes).toBe(2);
  });

  it('drops a tenant whose recent usage is over its tier share below a light one, and ages it back', () => {
    const settings: ScheduleSettings = { ...defaultScheduleSettings, levels: 4, levelTokensPerMinute: 1_000, agingMs: 1_000, escapeEvery: 0 };
    // a used 5x its free-tier share (level 3 of 0..3), c 1.5x (level 1), b nothing.
    const queue = new TierQueue(
      { tierDepthMax: 8, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 },
      { settings, usage: usageOf({ [a]: 5_000, [c]: 1_500 }) },
    );
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 0);
    queue.enqueue({ tier: 'free', tenant: c, costTokens: 10 }, 0);
    queue.enqueue({ tier: 'free', tenant: b, costTokens: 10 }, 0);
    expect([a, b, c].map((tenant) => queue.levelOf(tenant, 'free', 0))).toEqual([3, 0, 1]);
    expect(drain1(queue, 0).tenant).toBe(b);
    // Two seconds of waiting lift a by two levels and c to the top: c, then a.
    expect(queue.levelOf(a, 'free', 2_000)).toBe(1);
    expect(drain(queue, 2_000).map((entry) => entry.tenant)).toEqual([c, a]);
  });

  it('weights the level threshold by tier: the same usage leaves a vip tenant on top', () => {
    const settings: ScheduleSettings = { ...defaultScheduleSettings, levels: 4, levelTokensPerMinute: 1_000 };
    const queue = new TierQueue(undefined, { settings, usage: usageOf({ [a]: 3_000, [b]: 3_000 }) });
    queue.enqueue({ tier: 'vip', tenant: a, costTokens: 10 }, 0);
    queue.enqueue({ tier: 'free', tenant: b, costTokens: 10 }, 0);
    expect(queue.levelOf(a, 'vip', 0)).toBe(0);
    expect(queue.levelOf(b, 'free', 0)).toBe(2);
  });

  it('drops a tenant one level per depthPerLevel requests queued behind its first', () => {
    const settings: ScheduleSettings = { ...defaultScheduleSettings, levels: 4, depthPerLevel: 2, agingMs: 60_000 };
    const queue = new TierQueue({ tierDepthMax: 16, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 }, { settings });
    for (let i = 0; i < 5; i++) queue.enqueue({ tier: 'paid', tenant: a, costTokens: 10 }, 0);
    expect(queue.levelOf(a, 'paid', 0)).toBe(2);
    queue.enqueue({ tier: 'paid', tenant: b, costTokens: 10 }, 0);
    // b's one request starts first although a was there before it.
    expect(drain1(queue, 0).tenant).toBe(b);
  });

  it('shares a tier by virtual token counters: a tenant of small requests starts several per large request', () => {
    const queue = new TierQueue({ tierDepthMax: 16, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 1_000 }, { settings: strict });
    for (let i = 0; i < 4; i++) queue.enqueue({ tier: 'paid', tenant: a, costTokens: 1_000 }, i);
    for (let i = 0; i < 8; i++) queue.enqueue({ tier: 'paid', tenant: b, costTokens: 250 }, 10 + i);
    const order = drain(queue).map((entry) => (entry.tenant === a ? 'A' : 'b'));
    // Ties go to the lane seen first (a); each A is answered by four b of the same tokens.
    expect(order.join('')).toBe('AbbbbAbbbbAA');
  });

  it('corrects a counter to the tokens really used on finish, so a tenant that used less comes first', () => {
    const queue = new TierQueue({ tierDepthMax: 16, totalDepthMax: 16, inFlightMax: 2, quantumTokens: 1_000 }, { settings: strict });
    for (const tenant of [a, b, a, b]) queue.enqueue({ tier: 'free', tenant, costTokens: 800 }, 0);
    const first = queue.dequeue(0)!;
    const second = queue.dequeue(0)!;
    expect([first.tenant, second.tenant]).toEqual([a, b]);
    queue.finish(first.ticket, 100);
    queue.finish(second.ticket, 800);
    expect(queue.counterOf(a)).toBe(100);
    expect(queue.counterOf(b)).toBe(800);
    expect(drain1(queue, 1).tenant).toBe(a);
  });

  it('puts a tenant other regions served lately behind one they did not, within a level', () => {
    // Same level for both (usage under the threshold); b got 3,000 weighted tokens at other nodes.
    const queue = new TierQueue(
      { tierDepthMax: 64, totalDepthMax: 64, inFlightMax: 1, quantumTokens: 1_000 },
      { settings: strict, usage: usageOf({}, { [b]: 3_000 }) },
    );
    for (let i = 0; i < 4; i++) queue.enqueue({ tier: 'free', tenant: b, costTokens: 1_000 }, 0);
    for (let i = 0; i < 4; i++) queue.enqueue({ tier: 'free', tenant: a, costTokens: 1_000 }, 0);
    // a starts three requests (3,000 tokens) before b's counter plus what it got elsewhere is the smaller.
    expect(
      drain(queue)
        .map((entry) => (entry.tenant === a ? 'a' : 'b'))
        .join(''),
    ).toBe('aaababbb');
  });

  it('lifts a returning tenant to the smallest queued counter: idle time banks nothing', () => {
    const queue = new TierQueue({ tierDepthMax: 64, totalDepthMax: 64, inFlightMax: 1, quantumTokens: 100 }, { settings: strict });
    for (let i = 0; i < 20; i++) queue.enqueue({ tier: 'free', tenant: a, costTokens: 100 }, 0);
    for (let i = 0; i < 10; i++) drain1(queue, 0);
    queue.enqueue({ tier: 'free', tenant: b, costTokens: 100 }, 1);
    expect(queue.counterOf(b)).toBe(queue.counterOf(a));
  });

  it('in fifo mode starts requests in arrival order, whatever their tier and tenant', () => {
    const queue = new TierQueue(undefined, { settings: { ...defaultScheduleSettings, mode: 'fifo' } });
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 1);
    queue.enqueue({ tier: 'paid', tenant: b, costTokens: 10 }, 2);
    queue.enqueue({ tier: 'vip', tenant: c, costTokens: 10 }, 3);
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 4);
    expect(drain(queue).map((entry) => entry.enqueuedAtMs)).toEqual([1, 2, 3, 4]);
  });

  it('keeps at most tierQueueCountersMax counters, forgetting tenants that have nothing queued', () => {
    const queue = new TierQueue({ tierDepthMax: 4, totalDepthMax: 4, inFlightMax: 1, quantumTokens: 100 }, { settings: strict });
    // a waits in free the whole time, behind one paid tenant after another.
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 0);
    for (let i = 0; i < tierQueueCountersMax + 100; i++) {
      queue.enqueue({ tier: 'paid', tenant: `t${i}` as TenantId, costTokens: 10 }, 0);
      const entry = queue.dequeue(0);
      expect(entry?.tier).toBe('paid');
      queue.finish(entry!.ticket);
    }
    expect(queue.tableSizes().counters).toBe(tierQueueCountersMax);
    expect(queue.counterOf(a)).toBeDefined();
    expect(queue.counterOf('t0' as TenantId)).toBeUndefined();
  });

  it('holds requests while every call slot is taken, and frees a slot on finish only once', () => {
    const queue = new TierQueue({ tierDepthMax: 4, totalDepthMax: 4, inFlightMax: 2, quantumTokens: 10 });
    for (let i = 0; i < 3; i++) queue.enqueue({ tier: 'free', tenant: a, costTokens: 1 }, i);
    const first = queue.dequeue(0);
    expect(queue.dequeue(0)).toBeDefined();
    expect(queue.dequeue(0)).toBeUndefined();
    expect(queue.finish(first!.ticket)).toBe(true);
    expect(queue.finish(first!.ticket)).toBe(false);
    expect(queue.dequeue(0)).toBeDefined();
    expect(queue.dequeue(0)).toBeUndefined();
    expect(queue.inFlight).toBe(2);
  });

  it('refuses at the tier bound and at the total bound, naming which', () => {
    const queue = new TierQueue({ tierDepthMax: 2, totalDepthMax: 3, inFlightMax: 1, quantumTokens: 10 });
    expect(queue.enqueue({ tier: 'free', tenant: a, costTokens: 1 }, 0).ok).toBe(true);
    expect(queue.enqueue({ tier: 'free', tenant: b, costTokens: 1 }, 0).ok).toBe(true);
    expect(queue.enqueue({ tier: 'free', tenant: a, costTokens: 1 }, 0)).toMatchObject({
      ok: false,
      error: { kind: 'queue-full', scope: 'tier', tier: 'free' },
    });
    expect(queue.enqueue({ tier: 'paid', tenant: a, costTokens: 1 }, 0).ok).toBe(true);
    expect(queue.enqueue({ tier: 'vip', tenant: a, costTokens: 1 }, 0)).toMatchObject({
      ok: false,
      error: { kind: 'queue-full', scope: 'total', tier: 'vip' },
    });
    expect(queue.stats.refusedFull).toEqual({ vip: 1, paid: 0, free: 1 });
  });

  it('reports each tier depth and its oldest arrival, and forgets a cancelled request', () => {
    const queue = new TierQueue({ tierDepthMax: 4, totalDepthMax: 8, inFlightMax: 1, quantumTokens: 10 });
    const early = queue.enqueue({ tier: 'paid', tenant: a, costTokens: 1 }, 100);
    queue.enqueue({ tier: 'paid', tenant: b, costTokens: 1 }, 250);
    expect(queue.load()).toEqual({
      vip: { depth: 0, oldestEnqueuedAtMs: undefined },
      paid: { depth: 2, oldestEnqueuedAtMs: 100 },
      free: { depth: 0, oldestEnqueuedAtMs: undefined },
    });
    expect(early.ok && queue.cancel(early.value.ticket)).toBe(true);
    expect(queue.load().paid).toEqual({ depth: 1, oldestEnqueuedAtMs: 250 });
  });
});

/** Starts and finishes the next request. */
function drain1(queue: TierQueue, nowMs: number): QueuedRequest {
  const entry = queue.dequeue(nowMs);
  if (entry === undefined) throw new Error('nothing to start');
  queue.finish(entry.ticket);
  return entry;
}
