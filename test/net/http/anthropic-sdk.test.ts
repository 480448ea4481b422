// Proves the official @anthropic-ai/sdk works against a region node's HTTP front door as against
// the real API: messages.create, messages.stream and `stream: true`, countTokens, models.list with
// its auto-pagination, typed errors (AuthenticationError, RateLimitError), and its own retries:
// honouring retry-after on a 429, retrying the 503 the node answers for upstream 529s, and a
// retry of a timed-out call with an Idempotency-Key charged once. Each completion test ends
// reconciling the tenant's counters with what the emulator counted.
import Anthropic, { AuthenticationError, NotFoundError, RateLimitError, ServiceUnavailableError } from '@anthropic-ai/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, type Harness, model, startHarness, weighted } from '../../node/gateway/gateway-harness.js';
import { until } from '../../support/wait.js';

afterEach(closeAll);

const request = { model, max_tokens: 64, messages: [{ role: 'user' as const, content: 'Tell me about carpools.' }] };

function sdk(h: Harness, options: { maxRetries?: number; timeout?: number; apiKey?: string } = {}): Anthropic {
  return new Anthropic({
    apiKey: options.apiKey ?? h.keys.get('acme') ?? '',
    baseURL: h.httpUrl,
    maxRetries: options.maxRetries ?? 0,
    timeout: options.timeout ?? 10_000,
  });
}

async function reconciled(h: Harness): Promise<void> {
  await until(
    () => h.runtime.reservations.openCount === 0 && h.emulator.stats().responsesInFlight === 0 && h.gateway.carpool.inFlight === 0,
    'every call settled',
    10_000,
  );
  const upstream = h.emulatorUsage();
  expect(h.tenantUsed('acme', 'requests')).toBe(upstream.requests);
  expect(h.tenantUsed('acme', 'output_tokens')).toBe(upstream.output);
  expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
}

describe('the official SDK against the front door', () => {
  it('creates, streams and counts, and lists the models page by page', async () => {
    const h = await startHarness({ http: { models: [{ id: model }, { id: 'claude-haiku-4-5' }, { id: 'claude-opus-4-1' }] } });
    const client = sdk(h);
    const message = await client.messages.create(request);
    expect(message).toMatchObject({ type: 'message', role: 'assistant', model });
    expect(message._request_id).toMatch(/^req_/);
    expect(message.usage.output_tokens).toBeGreaterThan(0);

    const stream = client.messages.stream(request);
    const texts: string[] = [];
    stream.on('text', (text) => texts.push(text));
    const final = await stream.finalMessage();
    expect(texts.join('')).toBe(final.content[0]?.type === 'text' ? final.content[0].text : '');
    expect(final.usage.output_tokens).toBeGreaterThan(0);

    const raw = await client.messages.create({ ...request, stream: true });
    const kinds: string[] = [];
    for await (const event of raw) kinds.push(event.type);
    expect(kinds[0]).toBe('message_start');
    expect(kinds.at(-1)).toBe('message_stop');

    const counted = await client.messages.countTokens({ model, messages: request.messages });
    expect(counted.input_tokens).toBeGreaterThan(0);

    const ids: string[] = [];
    for await (const entry of client.models.list({ limit: 2 })) ids.push(entry.id);
    expect(ids).toEqual([model, 'claude-haiku-4-5', 'claude-opus-4-1']);
    expect((await client.models.retrieve('claude-haiku-4-5')).id).toBe('claude-haiku-4-5');
    await expect(client.models.retrieve('claude-nope')).rejects.toBeInstanceOf(NotFoundError);
    await reconciled(h);
  });

  it('raises AuthenticationError for an unknown key and RateLimitError over the rate, with the hint', async () => {
    const h = await startHarness({
      http: {},
      settings: { rateLimits: { client: { rate: 1000, periodMs: 1000, burst: 1000 }, tenant: { rate: 1, periodMs: 2_000, burst: 1 } } },
    });
    const bad = sdk(h, { apiKey: 'cp_acme_0000000000000000000000000000000000000000' });
    const refused = await bad.messages.create(request).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AuthenticationError);
    expect((refused as AuthenticationError).error).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'missing or unknown API key' } });

    const client = sdk(h);
    await client.messages.create(request);
    const limited = await client.messages.create(request).catch((error: unknown) => error);
    expect(limited).toBeInstanceOf(RateLimitError);
    const headers = (limited as RateLimitError).headers;
    expect(Number(headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((limited as RateLimitError).requestID).toMatch(/^req_/);
    await reconciled(h);
  });

  it('retries a 429 after the retry-after it was told, and the retry passes', async () => {
    const h = await startHarness({
      http: {},
      settings: { rateLimits: { client: { rate: 1000, periodMs: 1000, burst: 1000 }, tenant: { rate: 1, periodMs: 1_500, burst: 1 } } },
    });
    const client = sdk(h, { maxRetries: 2 });
    await client.messages.create(request);
    const startedMs = Date.now();
    const message = await client.messages.create(request);
    const tookMs = Date.now() - startedMs;
    expect(message.type).toBe('message');
    // GCRA lets the next request through 1.5 s after the first; the SDK waited for retry-after-ms.
    expect(tookMs).toBeGreaterThanOrEqual(1_000);
    expect(h.gateway.carpool.stats.refused.rate).toBe(1);
    await reconciled(h);
  });

  it('retries the 503 answered when every account is overloaded (529), and raises ServiceUnavailableError when retries run out', async () => {
    const h = await startHarness({ http: {} });
    h.inject({ kind: 'overloaded', count: 3 });
    const message = await sdk(h, { maxRetries: 2 }).messages.create(request);
    expect(message.type).toBe('message');
    h.inject({ kind: 'overloaded', count: 'unlimited' });
    const failed = await sdk(h, { maxRetries: 1 })
      .messages.create(request)
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(ServiceUnavailableError);
    expect((failed as ServiceUnavailableError).status).toBe(503);
    expect((failed as ServiceUnavailableError).error).toMatchObject({ error: { type: 'overloaded_error' } });
    await reconciled(h);
  });

  it('charges once a call the SDK retried after its timeout, when the call carries an Idempotency-Key', async () => {
    // 150 output tokens at 100 a second: the first attempt outlives the SDK's 600 ms timeout.
    const h = await startHarness({ http: {}, emulator: { outputTokensMin: 150, outputTokensMax: 150, tokensPerSecond: 100 } });
    const client = sdk(h, { maxRetries: 4, timeout: 600 });
    const message = await client.messages.create({ ...request, max_tokens: 300 }, { headers: { 'Idempotency-Key': 'sdk-retry-1' } });
    expect(message.usage.output_tokens).toBe(150);
    expect(message._request_id).toBe('sdk-retry-1');
    expect(h.emulatorUsage().requests).toBe(1);
    expect(h.gateway.http?.server.stats().requests).toBeGreaterThan(1);
    await reconciled(h);
  });
});
