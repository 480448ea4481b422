// Proves the degraded mode end to end: while the pool is short, a free tenant's request is served
// degraded (max_tokens cut, a cheaper model) and told so — the `carpool-degraded` header through
// the official SDK on the HTTP front door (JSON and a stream's head), response metadata on gRPC — while a paid tenant's
// request at the same moment is served in full and told nothing; with the pool idle again the
// free tenant gets full service. Every token reconciles with what the emulator counted.
import Anthropic from '@anthropic-ai/sdk';
import type { Metadata } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { degradedHeader } from '../../../src/schedule/degrade.js';
import { until } from '../../support/wait.js';
import { closeAll, completion, type Harness, model, startHarness, weighted } from './gateway-harness.js';

afterEach(closeAll);

const cheaper = 'claude-haiku-4-5';

function sdk(h: Harness, tenant: string): Anthropic {
  return new Anthropic({ apiKey: h.keys.get(tenant) ?? '', baseURL: h.httpUrl, maxRetries: 0, timeout: 20_000 });
}

async function reconciled(h: Harness): Promise<void> {
  await until(
    () => h.runtime.reservations.openCount === 0 && h.emulator.stats().responsesInFlight === 0 && h.gateway.carpool.inFlight === 0,
    'every call settled',
    15_000,
  );
  const upstream = h.emulatorUsage();
  const tenants = ['free-co', 'paid-co'];
  const charged = (metric: string): number => tenants.reduce((sum, tenant) => sum + h.tenantUsed(tenant, metric), 0);
  expect(charged('requests')).toBe(upstream.requests);
  expect(charged('output_tokens')).toBe(upstream.output);
  expect(charged('weighted_tokens')).toBe(weighted(upstream));
}

describe('the degraded mode', () => {
  it('serves a free tenant degraded, not refused, while the pool is short, and a paid tenant in full', async () => {
    // One account of 4 permits; calls of 300 output tokens at 150 a second hold one for 2 s.
    const h = await startHarness({
      accounts: 1,
      tenants: [
        { id: 'free-co', tier: 'free' },
        { id: 'paid-co', tier: 'paid' },
      ],
      emulator: { outputTokensMin: 300, outputTokensMax: 300, tokensPerSecond: 150 },
      http: {},
    });
    const updated = h.runtime.policy.updateSettings({
      degrade: { utilisationPercent: 50, pausedAccounts: 0, tiers: { free: { maxTokens: 32, models: { [model]: cheaper } } } },
    });
    expect(updated.ok).toBe(true);

    // Idle pool: the free tenant is served in full, and told nothing.
    const idle = await sdk(h, 'free-co')
      .messages.create({ model, max_tokens: 400, messages: [{ role: 'user', content: 'hello' }] })
      .withResponse();
    expect(idle.response.headers.get(degradedHeader)).toBeNull();
    expect(idle.data.model).toBe(model);
    expect(idle.data.usage.output_tokens).toBe(300);

    // Two paid calls hold half of the account's permits (for 2 s): the pool is short. Everything
    // below is sent at once, so each is judged while they hold.
    const holders = [0, 1].map(() => h.client('paid-co').complete(completion({ maxTokens: 400 })));
    await until(() => h.gateway.carpool.scheduler.queue.inFlight === 2, 'two calls to hold their permits');
    const ask = { model, max_tokens: 400, messages: [{ role: 'user' as const, content: 'hello' }] };
    let grpcHeaders: Metadata | undefined;
    const [free, streamed, grpcFree, paid] = await Promise.all([
      sdk(h, 'free-co').messages.create(ask).withResponse(),
      sdk(h, 'free-co')
        .messages.create({ ...ask, stream: true })
        .withResponse(),
      h.client('free-co').complete(completion({ maxTokens: 400 }), { onMetadata: (metadata) => (grpcHeaders = metadata) }),
      sdk(h, 'paid-co').messages.create(ask).withResponse(),
    ]);
    const told = `reason=utilisation; max-tokens=400->32; model=${model}->${cheaper}`;
    expect(free.response.headers.get(degradedHeader)).toBe(told);
    expect(free.data.model).toBe(cheaper);
    expect(free.data.usage.output_tokens).toBeLessThanOrEqual(32);
    // A stream's head carries it too.
    expect(streamed.response.headers.get(degradedHeader)).toBe(told);
    let streamedModel = '';
    for await (const event of streamed.data) if (event.type === 'message_start') streamedModel = event.message.model;
    expect(streamedModel).toBe(cheaper);
    expect(grpcFree.ok).toBe(true);
    expect(grpcHeaders?.get(degradedHeader)).toEqual([told]);
    // The paid tenant, at the same moment: in full, and told nothing.
    expect(paid.response.headers.get(degradedHeader)).toBeNull();
    expect(paid.data.model).toBe(model);
    expect(paid.data.usage.output_tokens).toBe(300);

    for (const held of await Promise.all(holders)) expect(held.ok).toBe(true);
    expect(h.gateway.carpool.stats.degradedRequests).toEqual({ free: 3, paid: 0 });
    expect(h.gateway.carpool.stats.degraded.free).toEqual({ 'max-tokens': 3, model: 3, wait: 0 });
    await reconciled(h);
  });

  it('never degrades a tier the policy names no rule for, and refuses a rule for vip', async () => {
    const h = await startHarness({
      accounts: 1,
      tenants: [
        { id: 'free-co', tier: 'free' },
        { id: 'paid-co', tier: 'paid' },
      ],
      emulator: { outputTokensMin: 64, outputTokensMax: 64, tokensPerSecond: 64 },
    });
    const vip = h.runtime.policy.updateSettings({ degrade: { utilisationPercent: 1, pausedAccounts: 0, tiers: { vip: { maxTokens: 1 } } } });
    expect(vip).toMatchObject({ ok: false, error: { field: 'settings.degrade.tiers.vip', reason: 'vip is never degraded' } });
    // Short as soon as one call holds a permit, and a rule for free only.
    expect(h.runtime.policy.updateSettings({ degrade: { utilisationPercent: 1, pausedAccounts: 0, tiers: { free: { maxTokens: 8 } } } }).ok).toBe(true);
    const holder = h.client('free-co').complete(completion({ maxTokens: 64 }));
    await until(() => h.gateway.carpool.scheduler.queue.inFlight === 1, 'a call to hold a permit');
    const headersOf = async (tenant: string): Promise<{ readonly degraded: string[]; readonly output: number }> => {
      let headers: Metadata | undefined;
      const answer = await h.client(tenant).complete(completion({ maxTokens: 64 }), { onMetadata: (metadata) => (headers = metadata) });
      if (!answer.ok) throw new Error(JSON.stringify(answer.error));
      return { degraded: (headers?.get(degradedHeader) ?? []).map(String), output: answer.value.usage.outputTokens };
    };
    const [paid, free] = await Promise.all([headersOf('paid-co'), headersOf('free-co')]);
    expect(paid).toEqual({ degraded: [], output: 64 });
    expect(free).toEqual({ degraded: ['reason=utilisation; max-tokens=64->8'], output: 8 });
    expect((await holder).ok).toBe(true);
    expect(h.gateway.carpool.stats.degradedRequests).toEqual({ free: 1, paid: 0 });
    await reconciled(h);
  });
});
