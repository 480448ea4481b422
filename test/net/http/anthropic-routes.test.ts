// Proves the HTTP front door's Anthropic routes over a real node in one process (the gateway
// harness: MeshRuntime, emulator, RegionGateway with HTTP): JSON and SSE completions relayed in
// the upstream's bytes with the client's quota headers and none of the upstream's; request ids
// (assigned and not claimed, Idempotency-Key claimed and charged once); count_tokens and models;
// every refusal in the Anthropic error shape with the table's status and hints, charging nothing;
// a failure mid-stream as an SSE error event; a client that leaves mid-stream charged in full.
// Completions end reconciling the tenant's counters with what the emulator counted.
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { rulesOf } from '../../node/gateway/gateway-harness.js';
import { closeAll, type Harness, model, startHarness, weighted } from '../../node/gateway/gateway-harness.js';
import { until } from '../../support/wait.js';

afterEach(closeAll);

const body = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model,
  max_tokens: 64,
  messages: [{ role: 'user', content: 'Share a ride to the station?' }],
  ...extra,
});

function post(h: Harness, path: string, json: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-api-key': h.keys.get('acme') ?? '', ...headers },
    body: typeof json === 'string' ? json : JSON.stringify(json),
  });
}

async function settled(h: Harness): Promise<void> {
  await until(
    () => h.runtime.reservations.openCount === 0 && h.emulator.stats().responsesInFlight === 0 && h.gateway.carpool.inFlight === 0,
    'every call settled',
    10_000,
  );
}

/** The tenant's counters hold exactly what the emulator counted. */
function expectReconciled(h: Harness, tenant = 'acme'): void {
  const upstream = h.emulatorUsage();
  expect(h.tenantUsed(tenant, 'requests')).toBe(upstream.requests);
  expect(h.tenantUsed(tenant, 'output_tokens')).toBe(upstream.output);
  expect(h.tenantUsed(tenant, 'weighted_tokens')).toBe(weighted(upstream));
}

async function errorOf(response: Response): Promise<{ status: number; type: string; message: string }> {
  const json = (await response.json()) as { type: string; error: { type: string; message: string } };
  expect(json.type).toBe('error');
  return { status: response.status, type: json.error.type, message: json.error.message };
}

interface SseFrame {
  readonly event: string;
  readonly data: string;
}

function framesOf(text: string): SseFrame[] {
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      const lines = block.split('\n');
      return {
        event: (lines[0] ?? '').replace(/^event: /, ''),
        data: lines
          .slice(1)
          .map((line) => line.replace(/^data: /, ''))
          .join('\n'),
      };
    });
}

describe('POST /v1/messages', () => {
  it('answers JSON with a node-assigned request id that is not claimed, the quota headers, and nothing of the upstream head', async () => {
    const h = await startHarness({ http: {} });
    const response = await post(h, '/v1/messages?beta=true', body({ metadata: { user_id: 'user_'.padEnd(120, 'a') } }), {
      'x-app': 'cli',
      'user-agent': 'claude-cli/2.1 (external, cli)',
      'anthropic-beta': 'oauth-2025-04-20',
    });
    expect(response.status).toBe(200);
    const message = (await response.json()) as { type: string; content: { text: string }[]; usage: { output_tokens: number } };
    expect(message.type).toBe('message');
    expect(response.headers.get('request-id')).toMatch(/^req_[A-Za-z0-9_-]{24}$/);
    expect(response.headers.get('carpool-region')).toBe('us-east');
    expect(response.headers.get('carpool-ratelimit-requests-limit')).toBe('1000000');
    expect(Number(response.headers.get('carpool-ratelimit-requests-remaining'))).toBe(999_999);
    expect(response.headers.get('carpool-ratelimit-weighted-tokens-reset')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(response.headers.get('carpool-ratelimit-requests-window')).toBe('day30');
    for (const name of response.headers.keys()) expect(name).not.toMatch(/^anthropic-ratelimit|^x-should-retry$/);
    await settled(h);
    expect(h.runtime.claims.stats.claims).toBe(0);
    expect(h.gateway.carpool.answers.ledger.size).toBe(0);
    expectReconciled(h);
  });

  it('relays a stream event by event in the upstream bytes, with anthropic-beta passed through', async () => {
    const h = await startHarness({ http: {} });
    const response = await post(h, '/v1/messages', body({ stream: true }), { 'anthropic-beta': 'a-2025, b-2025' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const frames = framesOf(await response.text());
    expect(frames[0]?.event).toBe('message_start');
    expect(frames.at(-1)?.event).toBe('message_stop');
    for (const frame of frames) expect(() => JSON.parse(frame.data) as unknown).not.toThrow();
    const last = frames.filter((frame) => frame.event === 'message_delta').at(-1);
    await settled(h);
    expect((JSON.parse(last?.data ?? '{}') as { usage: { output_tokens: number } }).usage.output_tokens).toBe(h.emulatorUsage().output);
    expect(h.runtime.claims.stats.claims).toBe(0);
    expectReconciled(h);
  });

  it('takes Idempotency-Key as the request id: claimed once, the retry answered from the store and charged once', async () => {
    const h = await startHarness({ http: {} });
    const first = await post(h, '/v1/messages', body(), { 'idempotency-key': 'retry-me-1' });
    const again = await post(h, '/v1/messages', body(), { 'idempotency-key': 'retry-me-1' });
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers.get('request-id')).toBe('retry-me-1');
    expect(await again.text()).toBe(await first.text());
    const streamed = await post(h, '/v1/messages', body({ stream: true }), { 'idempotency-key': 'retry-me-1' });
    expect(await errorOf(streamed)).toMatchObject({ status: 409, type: 'invalid_request_error' });
    expect(streamed.headers.get('x-should-retry')).toBe('false');
    await settled(h);
    expect(h.emulatorUsage().requests).toBe(1);
    expect(h.runtime.claims.stats.claims).toBe(1);
    expectReconciled(h);
  });

  it('makes metadata.user_id the user of per-user limits, hashed when it does not fit an id', async () => {
    const h = await startHarness({ http: {}, tenants: [{ id: 'acme', userLimits: rulesOf({ requests: 10 }) }] });
    const longId = `user_${'f'.repeat(64)}_account__session_0f0f0f0f-0000-4000-8000-000000000000`;
    const response = await post(h, '/v1/messages', body({ metadata: { user_id: longId } }));
    expect(response.status).toBe(200);
    expect(response.headers.get('carpool-ratelimit-requests-limit')).toBe('10');
    expect(response.headers.get('carpool-ratelimit-requests-remaining')).toBe('9');
    const short = await post(h, '/v1/messages', body({ metadata: { user_id: 'bob' } }));
    expect(short.headers.get('carpool-ratelimit-requests-remaining')).toBe('9');
    await settled(h);
    expectReconciled(h);
  });

  it('ends a stream that fails after its first event with an SSE error event, charged the request and its input', async () => {
    const h = await startHarness({ http: {} });
    h.inject({ kind: 'error-event', afterEvents: 3, errorType: 'overloaded_error', count: 'unlimited' });
    const response = await post(h, '/v1/messages', body({ stream: true }));
    expect(response.status).toBe(200);
    const frames = framesOf(await response.text());
    const last = frames.at(-1);
    expect(last?.event).toBe('error');
    expect(JSON.parse(last?.data ?? '{}')).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'the upstream is overloaded' } });
    await settled(h);
    // The emulator bills the first output token at message_start while the usage the stream
    // reported before its error has none; requests and input reconcile (see the report).
    expect(h.tenantUsed('acme', 'requests')).toBe(h.emulatorUsage().requests);
    expect(h.settled[0]?.usage.input).toBe(h.emulatorUsage().input);
  });

  it('drains a stream whose client leaves after two deltas and charges it in full', async () => {
    const h = await startHarness({ http: {}, emulator: { outputTokensMin: 120, outputTokensMax: 120, tokensPerSecond: 200 } });
    const seen = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${h.httpUrl}/v1/messages`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': h.keys.get('acme') ?? '' } },
        (res) => {
          let deltas = 0;
          res.on('data', (chunk: Buffer) => {
            deltas += chunk.toString().split('event: content_block_delta').length - 1;
            if (deltas >= 2) {
              req.destroy();
              resolve(deltas);
            }
          });
        },
      );
      req.on('error', () => {});
      req.once('error', reject);
      req.end(JSON.stringify(body({ stream: true, max_tokens: 200 })));
    });
    expect(seen).toBeGreaterThanOrEqual(2);
    await settled(h);
    expect(h.gateway.carpool.stats.cancelled).toBe(1);
    expect(h.settled[0]).toMatchObject({ clientLeft: true, estimated: false });
    expect(h.emulatorUsage().output).toBe(120);
    expectReconciled(h);
  });
});

describe('count_tokens and models', () => {
  it('counts tokens, lists the models and one of them, and asks for a key on each', async () => {
    const h = await startHarness({ http: { models: [{ id: model, displayName: 'Sonnet' }, { id: 'claude-haiku-4-5' }] } });
    const counted = await post(h, '/v1/messages/count_tokens?beta=true', { model, messages: [{ role: 'user', content: 'hello there' }] });
    expect(counted.status).toBe(200);
    expect(((await counted.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(0);
    const key = { 'x-api-key': h.keys.get('acme') ?? '' };
    const list = await fetch(`${h.httpUrl}/v1/models?limit=1`, { headers: key });
    expect(await list.json()).toEqual({
      data: [{ type: 'model', id: model, display_name: 'Sonnet', created_at: '1970-01-01T00:00:00Z' }],
      has_more: true,
      first_id: model,
      last_id: model,
    });
    const next = await fetch(`${h.httpUrl}/v1/models?limit=1&after_id=${model}`, { headers: { authorization: `Bearer ${h.keys.get('acme') ?? ''}` } });
    expect(((await next.json()) as { data: { id: string }[]; has_more: boolean }).data.map((m) => m.id)).toEqual(['claude-haiku-4-5']);
    const one = await fetch(`${h.httpUrl}/v1/models/claude-haiku-4-5`, { headers: key });
    expect(one.status).toBe(200);
    expect(await errorOf(await fetch(`${h.httpUrl}/v1/models/claude-nope`, { headers: key }))).toMatchObject({ status: 404, type: 'not_found_error' });
    expect(await errorOf(await fetch(`${h.httpUrl}/v1/models`))).toEqual({ status: 401, type: 'authentication_error', message: 'missing or unknown API key' });
    expect(
      await errorOf(await post(h, '/v1/messages/count_tokens', { model, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': 'cp_acme_nope' })),
    ).toMatchObject({ status: 401 });
    expect(h.emulatorUsage().requests).toBe(0);
  });
});

describe('refusals', () => {
  it('answers bad input in the Anthropic shape with a clear status and charges nothing', async () => {
    const h = await startHarness({ http: { models: [{ id: model }], bounds: { bodyBytesMax: 4096 } } });
    const cases: [Promise<Response>, number, string, RegExp][] = [
      [post(h, '/v1/messages', '{"model": "x", '), 400, 'invalid_request_error', /request body: is not JSON/],
      [post(h, '/v1/messages', body(), { 'content-type': 'text/plain' }), 415, 'invalid_request_error', /application\/json/],
      [post(h, '/v1/messages', body({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] })), 413, 'request_too_large', /4096 bytes/],
      [post(h, '/v1/messages', body({ model: undefined })), 400, 'invalid_request_error', /^invalid model: is required/],
      [post(h, '/v1/messages', body({ model: 'claude-unknown-9' })), 404, 'not_found_error', /claude-unknown-9 is not served here/],
      [post(h, '/v1/messages', body({ max_tokens: 0 })), 400, 'invalid_request_error', /max_tokens/],
      [post(h, '/v1/messages', body({ max_tokens: 10_000_000 })), 400, 'invalid_request_error', /over the bound/],
      [post(h, '/v1/messages', body({ metadata: { user_id: 7 } })), 400, 'invalid_request_error', /metadata.user_id/],
      [post(h, '/v1/messages', body(), { 'idempotency-key': 'has space' }), 400, 'invalid_request_error', /Idempotency-Key/],
      [post(h, '/v1/messages', body(), { 'idempotency-key': 'req_mine' }), 400, 'invalid_request_error', /assigned by the node/],
      [post(h, '/v1/messages', body(), { 'x-api-key': 'cp_acme_wrong' }), 401, 'authentication_error', /missing or unknown API key/],
      [post(h, '/v1/messages', body(), { authorization: 'Basic abc' }), 401, 'authentication_error', /missing or unknown API key/],
      [post(h, '/v1/complete', body()), 404, 'not_found_error', /no route POST \/v1\/complete/],
      [fetch(`${h.httpUrl}/v1/messages`), 405, 'invalid_request_error', /GET is not allowed/],
      [fetch(`${h.httpUrl}/%zz`), 400, 'invalid_request_error', /percent-encoding/],
    ];
    for (const [pending, status, type, message] of cases) {
      const response = await pending;
      const error = await errorOf(response);
      expect(error, error.message).toMatchObject({ status, type });
      expect(error.message).toMatch(message);
      expect(response.headers.get('request-id')).toMatch(/^req_/);
      expect(response.headers.get('x-should-retry')).toBe('false');
    }
    expect(h.emulatorUsage().requests).toBe(0);
    expect(h.tenantUsed('acme', 'requests')).toBe(0);
    expect(h.runtime.claims.stats.claims).toBe(0);
  });

  it('answers quota, rate and no-quorum refusals with the table status, retry-after and the remaining quota', async () => {
    const h = await startHarness({ http: {}, tenants: [{ id: 'acme', limits: rulesOf({ requests: 1, output_tokens: 1e9, weighted_tokens: 1e9 }) }] });
    expect((await post(h, '/v1/messages', body())).status).toBe(200);
    const over = await post(h, '/v1/messages', body());
    expect(await errorOf(over)).toMatchObject({ status: 429, type: 'rate_limit_error' });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(over.headers.get('retry-after-ms'))).toBeGreaterThan(0);
    expect(over.headers.get('x-should-retry')).toBe('true');
    expect(over.headers.get('carpool-ratelimit-requests-remaining')).toBe('0');
    await settled(h);
    expectReconciled(h);

    const cut = await startHarness({ http: {}, absentMembers: 2, tenants: [{ id: 'acme', limits: rulesOf({ requests: 100 }, 'strict') }] });
    const refused = await post(cut, '/v1/messages', body(), { 'idempotency-key': 'no-quorum-1' });
    expect(await errorOf(refused)).toMatchObject({ status: 503, type: 'overloaded_error' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('x-should-retry')).toBe('true');
    expect(cut.emulatorUsage().requests).toBe(0);
  });
});
