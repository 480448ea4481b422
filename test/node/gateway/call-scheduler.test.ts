// Proves the waiting side of the admission queue leaves nothing behind, however a wait ends.
// A parked request starts when a slot frees, leaves the queue when its signal aborts or its wait
// runs out, ends with `closed` on close, and in every case leaves no queued entry, timer or
// listener behind.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { TenantId } from '../../../src/core/ids.js';
import { CallScheduler } from '../../../src/node/gateway/call-scheduler.js';
import { TierQueue } from '../../../src/schedule/tier-queue.js';
import type { Timers } from '../../../src/upstream/call-guard.js';

const tenant = 'acme' as TenantId;

/** Timers that fire only when the test says so, and report how many are armed. */
class ManualTimers implements Timers {
  private next = 0;
  readonly armed = new Map<number, { readonly callback: () => void; readonly atMs: number }>();

  constructor(private readonly clock: ManualClock) {}

  start(callback: () => void, delayMs: number): unknown {
    const id = ++this.next;
    this.armed.set(id, { callback, atMs: this.clock.nowMs() + delayMs });
    return id;
  }

  cancel(handle: unknown): void {
    this.armed.delete(handle as number);
  }

  advance(ms: number): void {
    this.clock.advance(ms);
    for (const [id, timer] of [...this.armed]) {
      if (timer.atMs > this.clock.nowMs()) continue;
      this.armed.delete(id);
      timer.callback();
    }
  }
}

function setup(inFlightMax = 1): { scheduler: CallScheduler; queue: TierQueue; timers: ManualTimers } {
  const clock = new ManualClock(1_000);
  const timers = new ManualTimers(clock);
  const queue = new TierQueue({ tierDepthMax: 4, totalDepthMax: 8, inFlightMax, quantumTokens: 100 });
  return { scheduler: new CallScheduler({ queue, waitMs: 500, clock, timers }), queue, timers };
}

describe('CallScheduler', () => {
  it('starts a parked request when the running one releases its slot, once', async () => {
    const { scheduler, queue, timers } = setup();
    const first = await scheduler.acquire({ tier: 'paid', tenant, costTokens: 10 }, new AbortController().signal);
    expect(first.ok).toBe(true);
    const second = scheduler.acquire({ tier: 'paid', tenant, costTokens: 10 }, new AbortController().signal);
    expect(queue.depth).toBe(1);
    if (!first.ok) return;
    first.value.release();
    first.value.release();
    expect((await second).ok).toBe(true);
    expect(queue.inFlight).toBe(1);
    expect(scheduler.parkedCount).toBe(0);
    expect(timers.armed.size).toBe(0);
  });

  it('takes a request whose client left out of the queue, and one that waited too long', async () => {
    const { scheduler, queue, timers } = setup();
    const running = await scheduler.acquire({ tier: 'paid', tenant, costTokens: 10 }, new AbortController().signal);
    const controller = new AbortController();
    const cancelled = scheduler.acquire({ tier: 'free', tenant, costTokens: 10 }, controller.signal);
    const expiring = scheduler.acquire({ tier: 'free', tenant, costTokens: 10 }, new AbortController().signal);
    controller.abort();
    expect(await cancelled).toEqual({ ok: false, error: { kind: 'cancelled' } });
    timers.advance(500);
    expect(await expiring).toEqual({ ok: false, error: { kind: 'queue-timeout', waitedMs: 500 } });
    expect(queue.depth).toBe(0);
    expect(scheduler.parkedCount).toBe(0);
    expect(timers.armed.size).toBe(0);
    // The running slot is unaffected, and frees normally.
    expect(running.ok && queue.inFlight).toBe(1);
    if (running.ok) running.value.release();
    expect(queue.inFlight).toBe(0);
  });

  it('refuses an already aborted signal and a full queue without parking, and ends parked requests on close', async () => {
    const { scheduler, queue, timers } = setup();
    const aborted = new AbortController();
    aborted.abort();
    expect(await scheduler.acquire({ tier: 'vip', tenant, costTokens: 1 }, aborted.signal)).toEqual({ ok: false, error: { kind: 'cancelled' } });
    await scheduler.acquire({ tier: 'vip', tenant, costTokens: 1 }, new AbortController().signal);
    const parked = [1, 2, 3, 4].map(() => scheduler.acquire({ tier: 'vip', tenant, costTokens: 1 }, new AbortController().signal));
    expect(await scheduler.acquire({ tier: 'vip', tenant, costTokens: 1 }, new AbortController().signal)).toMatchObject({
      ok: false,
      error: { kind: 'queue-full', scope: 'tier' },
    });
    scheduler.close();
    for (const outcome of await Promise.all(parked)) expect(outcome).toEqual({ ok: false, error: { kind: 'closed' } });
    expect(await scheduler.acquire({ tier: 'vip', tenant, costTokens: 1 }, new AbortController().signal)).toEqual({ ok: false, error: { kind: 'closed' } });
    expect(queue.depth).toBe(0);
    expect(timers.armed.size).toBe(0);
  });
});
