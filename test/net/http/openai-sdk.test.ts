// Proves the official `openai` SDK works against a region node's OpenAI-compatible route.
// The route is POST /v1/chat/completions, through the same gateway as the Anthropic routes: a chat
// completion with a system prompt and several turns, a stream with its usage chunk rebuilt by the
// SDK's own accumulator, a request with tools and an image, the SDK's typed errors (a refused
// parameter names it, an unknown key, a quota) and a retry carrying an Idempotency-Key header
// charged once (the SDK sends none of its own). Each completion test ends reconciling the tenant's
// counters with what the emulator counted, and the usage the SDK saw with both.
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError, RateLimitError } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, type Harness, model, rulesOf, startHarness, weighted } from '../../node/gateway/gateway-harness.js';
import { until } from '../../support/wait.js';

afterEach(closeAll);

function sdk(h: Harness, apiKey = h.keys.get('acme') ?? ''): OpenAI {
  return new OpenAI({ apiKey, baseURL: `${h.httpUrl}/v1`, maxRetries: 0, timeout: 10_000 });
}

async function settled(h: Harness): Promise<void> {
  await until(
    () => h.runtime.reservations.openCount === 0 && h.emulator.stats().responsesInFlight === 0 && h.gateway.carpool.inFlight === 0,
    'every call settled',
    10_000,
  );
}

async function reconciled(h: Harness): Promise<void> {
  await settled(h);
  const upstream = h.emulatorUsage();
  expect(h.tenantUsed('acme', 'requests')).toBe(upstream.requests);
  expect(h.tenantUsed('acme', 'output_tokens')).toBe(upstream.output);
  expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
}

// A 1×1 PNG.
const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('the official openai SDK against the front door', () => {
  it('answers a chat completion and a stream with usage, charged as the emulator counted', async () => {
    const h = await startHarness({ http: {} });
    const client = sdk(h);
    const answer = await client.chat.completions.create({
      model,
      max_completion_tokens: 64,
      messages: [
        { role: 'system', content: 'You answer briefly.' },
        { role: 'user', content: 'Is a carpool cheaper?' },
        { role: 'assistant', content: 'Usually.' },
        { role: 'user', content: 'Why?' },
      ],
    });
    expect(answer.object).toBe('chat.completion');
    expect(answer.id).toMatch(/^chatcmpl-req_/);
    expect(answer._request_id).toBe(answer.id.slice('chatcmpl-'.length));
    expect(answer.choices[0]?.message.role).toBe('assistant');
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(answer.choices[0]?.finish_reason);
    const first = h.emulatorUsage();
    expect(answer.usage).toMatchObject({ prompt_tokens: first.input + first.cacheWrite + first.cacheRead, completion_tokens: first.output });

    const stream = client.chat.completions.stream({
      model,
      max_completion_tokens: 64,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Stream me a sentence.' }],
    });
    const deltas: string[] = [];
    stream.on('content.delta', ({ delta }) => deltas.push(delta));
    const final = await stream.finalChatCompletion();
    expect(deltas.join('')).toBe(final.choices[0]?.message.content);
    await settled(h);
    const both = h.emulatorUsage();
    expect(final.usage?.completion_tokens).toBe(both.output - first.output);
    await reconciled(h);
  });

  it('translates tools and images; the refused parameter is named in a BadRequestError and nothing is charged', async () => {
    const h = await startHarness({ http: {} });
    const client = sdk(h);
    const answer = await client.chat.completions.create({
      model,
      max_tokens: 64,
      tools: [
        {
          type: 'function',
          function: {
            name: 'seats',
            description: 'Free seats of a ride',
            parameters: { type: 'object', properties: { ride: { type: 'string' } }, required: ['ride'] },
          },
        },
      ],
      tool_choice: 'auto',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'How many seats are free in this car?' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
          ],
        },
      ],
    });
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const refused = await client.chat.completions
      .create({ model, max_tokens: 16, n: 2, messages: [{ role: 'user', content: 'Twice, please.' }] })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BadRequestError);
    expect((refused as BadRequestError).param).toBe('n');
    expect((refused as BadRequestError).code).toBe('unsupported_parameter');
    const unknown = await client.chat.completions
      .create({ model: 'gpt-4o', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] })
      .catch((error: unknown) => error);
    // Without an exact model list every name goes on to the upstream, which refuses a non-Claude one.
    expect(unknown).toBeInstanceOf(NotFoundError);
    expect(h.emulatorUsage().requests).toBe(1);
    await reconciled(h);
  });

  it('raises AuthenticationError for an unknown key, RateLimitError at the quota, and charges an Idempotency-Key retry once', async () => {
    const h = await startHarness({
      http: {},
      tenants: [{ id: 'acme', limits: [...rulesOf({ requests: 2 }), ...rulesOf({ weighted_tokens: 1_000_000_000, output_tokens: 1_000_000_000 })] }],
    });
    const bad = await sdk(h, 'cp_acme_0000000000000000000000000000000000000000')
      .chat.completions.create({ model, max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] })
      .catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(AuthenticationError);
    expect((bad as AuthenticationError).message).toContain('missing or unknown API key');

    const client = sdk(h);
    const body = { model, max_tokens: 16, messages: [{ role: 'user' as const, content: 'Once only.' }] };
    const once = await client.chat.completions.create(body, { headers: { 'Idempotency-Key': 'chat-retry-1' } });
    const again = await client.chat.completions.create(body, { headers: { 'Idempotency-Key': 'chat-retry-1' } });
    expect(again.choices[0]?.message.content).toBe(once.choices[0]?.message.content);
    expect(h.emulatorUsage().requests).toBe(1);
    await client.chat.completions.create(body);
    const limited = await client.chat.completions.create(body).catch((error: unknown) => error);
    expect(limited).toBeInstanceOf(RateLimitError);
    expect((limited as RateLimitError).code).toBe('insufficient_quota');
    expect(Number((limited as RateLimitError).headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await reconciled(h);
  });
});
