// Proves the node's admission queue in the running gateway.
// With one call slot, a waiting paid request starts before a free one that waited longer; in
// dynamic mode work beyond the accounts' permits waits in the priority queue (a paid request sent
// last starts before queued free ones), in fifo mode at the pool's permits; a client
// that cancels mid-stream frees its slot at once while the drained call is still settled with its
// full usage; and the policy's shedding thresholds replace the node's own while set.
import { afterEach, describe, expect, it } from 'vitest';
import type { Result } from '../../../src/core/result.js';
import type { ClientError } from '../../../src/net/grpc/carpool-client.js';
import type { CompleteResponse } from '../../../src/net/grpc/carpool-handler.js';
import { defaultTierQueueLimits } from '../../../src/schedule/tier-queue.js';
import { until, within } from '../../support/wait.js';
import { closeAll, completion, startHarness, weighted } from './gateway-harness.js';

afterEach(closeAll);

/** One call slot for the whole node, so requests visibly wait for each other. */
const oneSlot = { queue: { ...defaultTierQueueLimits, inFlightMax: 1 } };

describe('the admission queue in the gateway', () => {
  it('starts a waiting paid request before a free one that queued first', async () => {
    // 150 output tokens at 500 a second: every call holds the slot for about 300 ms, time enough
    // to queue the next two behind it on a loaded machine.
    const h = await startHarness({
      tenants: [
        { id: 'free-co', tier: 'free' },
        { id: 'paid-co', tier: 'paid' },
      ],
      emulator: { outputTokensMin: 150, outputTokensMax: 150, tokensPerSecond: 500 },
      settings: oneSlot,
    });
    const queue = h.gateway.carpool.scheduler.queue;
    const finished: string[] = [];
    const track = (name: string, call: Promise<Result<CompleteResponse, ClientError>>): Promise<void> =>
      call.then((result) => {
        expect(result.ok).toBe(true);
        finished.push(name);
      });
    const first = track('free-1', h.client('free-co').complete(completion({ maxTokens: 300 })));
    await until(() => queue.inFlight === 1, 'the first call to hold the slot');
    const second = track('free-2', h.client('free-co').complete(completion({ maxTokens: 300 })));
    await until(() => queue.depthOf('free') === 1, 'the free request to queue');
    const third = track('paid-1', h.client('paid-co').complete(completion({ maxTokens: 300 })));
    await until(() => queue.depthOf('paid') === 1, 'the paid request to queue');
    await within(Promise.all([first, second, third]), 'all three calls', 5_000);
    expect(finished).toEqual(['free-1', 'paid-1', 'free-2']);
    expect(queue.stats.dequeued).toMatchObject({ paid: 1, free: 2 });
  });

  it('holds work beyond what the accounts take in its priority queue, not in the pool, in dynamic mode, and not in fifo mode', async () => {
    // One account of 4 permits; 200 output tokens at 400 a second hold a permit for ~500 ms.
    const h = await startHarness({
      accounts: 1,
      tenants: [
        { id: 'free-co', tier: 'free' },
        { id: 'paid-co', tier: 'paid' },
      ],
      emulator: { outputTokensMin: 200, outputTokensMax: 200, tokensPerSecond: 400 },
    });
    const queue = h.gateway.carpool.scheduler.queue;
    const pool = h.runtime.pool;
    const finished: string[] = [];
    const send = (tenant: string, name: string): Promise<void> =>
      h
        .client(tenant)
        .complete(completion({ maxTokens: 300 }))
        .then((result) => {
          expect(result.ok).toBe(true);
          finished.push(name);
        });
    // The order requests start in, as the queue hands them out.
    const started: string[] = [];
    const dequeue = queue.dequeue.bind(queue);
    queue.dequeue = (nowMs) => {
      const entry = dequeue(nowMs);
      if (entry !== undefined) started.push(entry.tier);
      return entry;
    };
    const calls = [0, 1, 2, 3, 4, 5].map((i) => send('free-co', `free-${i}`));
    await until(() => queue.inFlight === 4 && queue.depthOf('free') === 2, 'four running, two queued');
    expect(pool.totals().waiting).toBe(0);
    // A paid request arriving last starts before the two free ones queued ahead of it.
    calls.push(send('paid-co', 'paid'));
    await until(() => queue.depthOf('paid') === 1, 'the paid request to queue');
    await within(Promise.all(calls), 'all calls', 10_000);
    expect(started).toEqual(['free', 'free', 'free', 'free', 'paid', 'free', 'free']);
    expect(finished).toHaveLength(7);

    // fifo mode: no cap, the extra requests wait for the account's permits instead.
    expect(h.runtime.policy.updateSettings({ schedule: { mode: 'fifo' } }).ok).toBe(true);
    const fifo = [0, 1, 2, 3, 4, 5].map((i) => send('free-co', `fifo-${i}`));
    await until(() => queue.inFlight === 6 && pool.totals().waiting === 2, 'six running, two of them waiting for a permit');
    await within(Promise.all(fifo), 'the fifo calls', 10_000);
    await until(() => h.runtime.reservations.openCount === 0, 'every call settled', 3_000);
    const upstream = h.emulatorUsage();
    expect(h.tenantUsed('free-co', 'weighted_tokens') + h.tenantUsed('paid-co', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.tenantUsed('free-co', 'requests') + h.tenantUsed('paid-co', 'requests')).toBe(upstream.requests);
  });

  it('frees the slot of a client that cancels mid-stream, and settles the drained call with its full usage', async () => {
    // 300 output tokens at 1,000 a second: the upstream stream runs some 300 ms after the first delta.
    const h = await startHarness({ emulator: { outputTokensMin: 300, outputTokensMax: 300, tokensPerSecond: 1_000 }, settings: oneSlot });
    const queue = h.gateway.carpool.scheduler.queue;
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const item of h.client('acme').streamComplete(completion({ maxTokens: 600 }), { signal: controller.signal })) {
      if (item.kind === 'event') seen.push(item.event.type);
      if (item.kind === 'event' && item.event.type === 'content_block_delta') controller.abort();
      if (item.kind !== 'event') break;
    }
    expect(seen).toContain('content_block_delta');
    expect(seen).not.toContain('message_stop');
    // The slot comes back while the upstream stream is still being drained.
    await until(() => queue.inFlight === 0, 'the cancelled call to free its slot', 1_000);
    expect(h.emulator.stats().responsesInFlight).toBe(1);
    // Another request can take the slot at once.
    const next = await within(h.client('acme').complete(completion({ maxTokens: 300 })), 'the next call', 5_000);
    expect(next.ok).toBe(true);
    // Both calls are settled with what the emulator produced: the cancelled one in full (300 tokens).
    await until(() => h.runtime.reservations.openCount === 0, 'both calls to settle', 3_000);
    const upstream = h.emulatorUsage();
    expect(upstream.output).toBe(600);
    expect(h.tenantUsed('acme', 'output_tokens')).toBe(600);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.tenantUsed('acme', 'requests')).toBe(2);
    expect(h.accountsUsed('output_tokens')).toBe(600);
    expect(h.gateway.carpool.stats.cancelled).toBe(1);
  });

  it("sheds by the policy's thresholds while the policy sets them, and by the node's own again once they are removed", async () => {
    // 300 output tokens at 500 a second: every call holds the slot for about 600 ms, long enough
    // for the requests below to find the second one still queued.
    const h = await startHarness({
      tenants: [{ id: 'free-co', tier: 'free' }],
      emulator: { outputTokensMin: 300, outputTokensMax: 300, tokensPerSecond: 500 },
      settings: oneSlot,
    });
    const queue = h.gateway.carpool.scheduler.queue;
    // The node's own thresholds let a free tier queue hundreds; the policy's shed it at one queued request.
    const updated = h.runtime.policy.updateSettings({
      shed: { vip: { depthMax: 8, waitMsMax: 30_000 }, paid: { depthMax: 4, waitMsMax: 30_000 }, free: { depthMax: 1, waitMsMax: 30_000 } },
    });
    expect(updated.ok).toBe(true);
    const first = h.client('free-co').complete(completion({ maxTokens: 300 }));
    await until(() => queue.inFlight === 1, 'the first call to hold the slot');
    const second = h.client('free-co').complete(completion({ maxTokens: 300 }));
    await until(() => queue.depthOf('free') === 1, 'the second request to queue');
    const third = await within(h.client('free-co').complete(completion({ maxTokens: 300 })), 'the third request', 5_000);
    expect(third).toMatchObject({ ok: false, error: { kind: 'status', codeName: 'UNAVAILABLE' } });
    expect(h.gateway.carpool.stats.refused.shed).toBe(1);
    // Removed from the policy: the node's own thresholds apply again, and the next request queues.
    expect(h.runtime.policy.updateSettings({ shed: null }).ok).toBe(true);
    expect(queue.depthOf('free')).toBe(1);
    const fourth = h.client('free-co').complete(completion({ maxTokens: 300 }));
    await until(() => queue.depthOf('free') === 2, 'the fourth request to queue');
    const results = await within(Promise.all([first, second, fourth]), 'the three admitted calls', 10_000);
    for (const result of results) expect(result.ok).toBe(true);
    expect(h.gateway.carpool.stats.refused.shed).toBe(1);
    // The shed request reached no upstream and was charged nothing: the tenant paid what the emulator produced.
    await until(() => h.runtime.reservations.openCount === 0, 'the calls to settle', 3_000);
    const upstream = h.emulatorUsage();
    expect(upstream.requests).toBe(3);
    expect(h.tenantUsed('free-co', 'requests')).toBe(3);
    expect(h.tenantUsed('free-co', 'output_tokens')).toBe(upstream.output);
    expect(h.tenantUsed('free-co', 'weighted_tokens')).toBe(weighted(upstream));
  });
});
