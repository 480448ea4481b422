// Proves the tier queue's rules on small cases.
// Paid before free, fair turns by estimated tokens between tenants of one tier, the call slot
// bound, refusals at the tier and total bounds, and the load the Shedder reads.
import { describe, expect, it } from 'vitest';
import type { TenantId } from '../../src/core/ids.js';
import { type QueuedRequest, TierQueue } from '../../src/schedule/tier-queue.js';

const a = 'tenant-a' as TenantId;
const b = 'tenant-b' as TenantId;

function drain(queue: TierQueue): QueuedRequest[] {
  const out: QueuedRequest[] = [];
  // Bounded: each turn starts and finishes one queued request.
  for (let i = 0; i < 1_000; i++) {
    const entry = queue.dequeue();
    if (entry === undefined) return out;
    out.push(entry);
    queue.finish(entry.ticket);
  }
  throw new Error('the queue did not drain');
}

describe('TierQueue', () => {
  it('starts paid before free and vip before both, whatever the arrival order', () => {
    const queue = new TierQueue({ tierDepthMax: 8, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 });
    queue.enqueue({ tier: 'free', tenant: a, costTokens: 10 }, 1);
    queue.enqueue({ tier: 'paid', tenant: b, costTokens: 10 }, 2);
    queue.enqueue({ tier: 'vip', tenant: a, costTokens: 10 }, 3);
    expect(drain(queue).map((entry) => entry.tier)).toEqual(['vip', 'paid', 'free']);
  });

  it('shares a tier by estimated tokens: a tenant of small requests starts several per turn of one large request', () => {
    const queue = new TierQueue({ tierDepthMax: 16, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 1_000 });
    for (let i = 0; i < 4; i++) queue.enqueue({ tier: 'paid', tenant: a, costTokens: 1_000 }, i);
    for (let i = 0; i < 8; i++) queue.enqueue({ tier: 'paid', tenant: b, costTokens: 250 }, 10 + i);
    const order = drain(queue).map((entry) => (entry.tenant === a ? 'A' : 'b'));
    expect(order.join('')).toBe('AbbbbAbbbbAA');
  });

  it('holds requests while every call slot is taken, and frees a slot on finish only once', () => {
    const queue = new TierQueue({ tierDepthMax: 4, totalDepthMax: 4, inFlightMax: 2, quantumTokens: 10 });
    for (let i = 0; i < 3; i++) queue.enqueue({ tier: 'free', tenant: a, costTokens: 1 }, i);
    const first = queue.dequeue();
    expect(queue.dequeue()).toBeDefined();
    expect(queue.dequeue()).toBeUndefined();
    expect(queue.finish(first!.ticket)).toBe(true);
    expect(queue.finish(first!.ticket)).toBe(false);
    expect(queue.dequeue()).toBeDefined();
    expect(queue.dequeue()).toBeUndefined();
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
