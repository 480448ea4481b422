// Proves the emulator's HTTP and SSE wire format byte by byte with a raw client: event framing and
// order, cumulative usage, response headers, the API's error statuses and bodies, bounded bodies,
// rate limits under an injected clock, pacing, the control endpoints, and every mid-stream fault
// (error event, dropped connection, stall) together with close() ending what is still open.
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { defaultAccountLimits, type EmulatorAccount } from '../../../src/upstream/emulator/emulator-config.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../../../src/upstream/emulator/emulator-server.js';
import { MessageStream } from '../../../src/upstream/message-stream.js';
import { type SseEvent, SseParser } from '../../../src/upstream/sse-parser.js';
import { within } from '../../support/wait.js';

const key = 'sk-ant-api03-wire-test-key';
const oauthToken = 'sk-ant-oat01-wire-test-token';
const model = 'claude-sonnet-4-6';
const body = { model, max_tokens: 40, messages: [{ role: 'user', content: 'Hello, emulator' }] };
const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

const emulators: Emulator[] = [];
afterEach(async () => {
  for (const emulator of emulators.splice(0)) await emulator.close();
});

async function start(options: Partial<EmulatorOptions> = {}, account: Partial<EmulatorAccount> = {}): Promise<Emulator> {
  const emulator = await startEmulator({
    accounts: [
      { key, kind: 'api-key', limits: defaultAccountLimits, faults: [], ...account },
      { key: oauthToken, kind: 'oauth', limits: defaultAccountLimits, faults: [] },
    ],
    ...options,
  });
  emulators.push(emulator);
  return emulator;
}

function post(emulator: Emulator, path: string, payload: unknown, extra: Record<string, string> = headers, signal?: AbortSignal): Promise<Response> {
  return fetch(`${emulator.url}${path}`, {
    method: 'POST',
    headers: extra,
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
    signal: signal ?? null,
  });
}

async function errorOf(response: Response): Promise<{ status: number; type: string; message: string; requestId: string | null }> {
  const json = (await response.json()) as { type: string; error: { type: string; message: string }; request_id: string };
  expect(json.type).toBe('error');
  expect(json.request_id).toBe(response.headers.get('request-id'));
  return { status: response.status, type: json.error.type, message: json.error.message, requestId: json.request_id };
}

/** Reads an SSE body to its end or its failure, keeping the raw text and the parsed events. */
async function readStream(response: Response): Promise<{ raw: string; events: SseEvent[]; failed: boolean }> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let raw = '';
  let failed = false;
  let reads = 0;
  try {
    for await (const value of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (++reads > 100_000) throw new Error('a stream longer than any answer');
      raw += decoder.decode(value, { stream: true });
      const parsed = parser.push(value);
      if (parsed.ok) events.push(...parsed.value);
    }
  } catch {
    failed = true;
  }
  const ended = parser.end();
  if (ended.ok) events.push(...ended.value);
  return { raw, events, failed };
}

describe('the emulator on the wire', () => {
  it('frames a stream as event/data pairs in the real order with cumulative usage', async () => {
    const emulator = await start();
    const response = await post(emulator, '/v1/messages', { ...body, stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('request-id')).toMatch(/^req_01/);
    expect(response.headers.get('anthropic-ratelimit-requests-remaining')).toBe(String(defaultAccountLimits.requestsPerMinute - 1));
    const { raw, events, failed } = await readStream(response);
    expect(failed).toBe(false);
    expect(raw).toMatch(/^event: message_start\ndata: \{.*\}\n\n/);
    expect(
      raw
        .split('\n\n')
        .filter((frame) => frame !== '')
        .every((frame) => /^event: [a-z_]+\ndata: \{.*\}$/.test(frame)),
    ).toBe(true);
    const types = events.map((e) => e.event);
    expect(types.slice(0, 3)).toEqual(['message_start', 'content_block_start', 'ping']);
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    for (const event of events) expect((JSON.parse(event.data) as { type: string }).type).toBe(event.event);

    const start0 = JSON.parse(events[0]!.data) as { message: { usage: Record<string, number>; content: unknown[]; stop_reason: unknown } };
    expect(start0.message.content).toEqual([]);
    expect(start0.message.stop_reason).toBeNull();
    expect(start0.message.usage).toMatchObject({ output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    const delta = JSON.parse(events.at(-2)!.data) as { delta: { stop_reason: string }; usage: Record<string, number> };
    expect(delta.usage.input_tokens).toBe(start0.message.usage.input_tokens);

    const message = new MessageStream();
    for (const event of events) expect(message.onEvent(event).ok).toBe(true);
    const rebuilt = message.message()!;
    const whole = (await (await post(emulator, '/v1/messages', body)).json()) as {
      content: { text: string }[];
      usage: { output_tokens: number; input_tokens: number };
    };
    expect(rebuilt.content[0]!.text).toBe(whole.content[0]!.text);
    expect(rebuilt.usage).toEqual({ input: whole.usage.input_tokens, output: whole.usage.output_tokens, cacheWrite: 0, cacheRead: 0 });
    expect(delta.usage.output_tokens).toBe(whole.usage.output_tokens);
  });

  it('answers a fixed request, seed and clock with pinned bytes, JSON and streamed', async () => {
    // Pinned so that work on the emulator's speed cannot change what a client receives.
    const emulator = await start({ clock: new ManualClock(Date.UTC(2025, 0, 1)), seed: 7, outputTokensMin: 7, outputTokensMax: 7 });
    const pinned = { model, max_tokens: 40, messages: [{ role: 'user', content: 'Pin these bytes, "please".' }] };
    const usage =
      '"usage":{"input_tokens":16,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}';
    const json = await post(emulator, '/v1/messages', pinned);
    expect(await json.text()).toBe(
      '{"id":"msg_01j9vq93hY34LgQrwdOV7TKW","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Delta the then even fair a."}],' +
        `"stop_reason":"end_turn","stop_sequence":null,${usage},"output_tokens":7,"service_tier":"standard"}}`,
    );
    expect(Object.fromEntries([...json.headers].filter(([name]) => name.startsWith('anthropic-') || name.startsWith('content-')))).toEqual({
      'anthropic-ratelimit-requests-limit': '4000',
      'anthropic-ratelimit-requests-remaining': '3999',
      'anthropic-ratelimit-requests-reset': '2025-01-01T00:00:01Z',
      'anthropic-ratelimit-tokens-limit': '400000',
      'anthropic-ratelimit-tokens-remaining': '399993',
      'anthropic-ratelimit-tokens-reset': '2025-01-01T00:00:01Z',
      'anthropic-ratelimit-input-tokens-limit': '2000000',
      'anthropic-ratelimit-input-tokens-remaining': '1999984',
      'anthropic-ratelimit-input-tokens-reset': '2025-01-01T00:00:01Z',
      'anthropic-ratelimit-output-tokens-limit': '400000',
      'anthropic-ratelimit-output-tokens-remaining': '399993',
      'anthropic-ratelimit-output-tokens-reset': '2025-01-01T00:00:01Z',
      'content-length': '423',
      'content-type': 'application/json',
    });
    const delta = (text: string): string =>
      `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${text}"}}\n\n`;
    const { raw } = await readStream(await post(emulator, '/v1/messages', { ...pinned, stream: true }));
    expect(raw).toBe(
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01RoXF6LIpdls37oRTGVCjAh","type":"message","role":"assistant","model":"claude-sonnet-4-6",' +
        `"content":[],"stop_reason":null,"stop_sequence":null,${usage},"output_tokens":1,"service_tier":"standard"}}}\n\n` +
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n' +
        'event: ping\ndata: {"type":"ping"}\n\n' +
        delta('Delta the then') +
        delta(' even fair a') +
        delta('.') +
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n' +
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},' +
        '"usage":{"input_tokens":16,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}}\n\n' +
        'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    );
  });

  it('answers the API errors with their statuses and bodies', async () => {
    const emulator = await start({ models: [model] });
    expect(await errorOf(await post(emulator, '/v1/messages', body, { 'anthropic-version': '2023-06-01' }))).toMatchObject({
      status: 401,
      type: 'authentication_error',
      message: 'x-api-key header is required',
    });
    expect(await errorOf(await post(emulator, '/v1/messages', body, { ...headers, 'x-api-key': 'sk-ant-nope-0000' }))).toMatchObject({
      status: 401,
      type: 'authentication_error',
    });
    // An OAuth token is a bearer token only.
    expect(await errorOf(await post(emulator, '/v1/messages', body, { ...headers, 'x-api-key': oauthToken }))).toMatchObject({ status: 401 });
    const bearer = await post(emulator, '/v1/messages', body, { 'anthropic-version': '2023-06-01', authorization: `Bearer ${oauthToken}` });
    expect(bearer.status).toBe(200);
    const unversioned: Record<string, string> = { ...headers };
    delete unversioned['anthropic-version'];
    expect(await errorOf(await post(emulator, '/v1/messages', body, unversioned))).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      message: 'anthropic-version: header is required',
    });
    expect(await errorOf(await post(emulator, '/v1/messages', '{"model":'))).toMatchObject({ status: 400, type: 'invalid_request_error' });
    expect(await errorOf(await post(emulator, '/v1/messages', { ...body, messages: [{ role: 'bot', content: 'x' }] }))).toMatchObject({
      status: 400,
      message: "messages.0.role: Input should be 'user', 'assistant' or 'system'",
    });
    expect(await errorOf(await post(emulator, '/v1/messages', { ...body, model: 'claude-haiku-4-5' }))).toMatchObject({
      status: 404,
      type: 'not_found_error',
      message: 'model: claude-haiku-4-5',
    });
    expect(await errorOf(await post(emulator, '/v1/complete', body))).toMatchObject({ status: 404, type: 'not_found_error' });
    const counted = await post(emulator, '/v1/messages/count_tokens', { model, messages: body.messages });
    expect(await counted.json()).toEqual({ input_tokens: expect.any(Number) as number });
  });

  it('refuses a body over the bound, declared or not, without reading it all', async () => {
    const emulator = await start({ requestBytesMax: 1_024 });
    const big = { ...body, messages: [{ role: 'user', content: 'x'.repeat(2_000) }] };
    expect(await errorOf(await post(emulator, '/v1/messages', big))).toMatchObject({ status: 413, type: 'request_too_large' });
    // Chunked, with no declared length: refused once the count passes the bound.
    const status = await within(
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${emulator.url}/v1/messages`, { method: 'POST', headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        for (let i = 0; i < 8; i++) req.write('x'.repeat(512));
      }),
      'the 413 of a chunked body',
    );
    expect(status).toBe(413);
    expect(emulator.stats().statuses['413']).toBe(2);
  });

  it("reads anthropic-beta for what a body may hold: Claude Code's per-turn system message, streamed and counted", async () => {
    const emulator = await start();
    // The shape of Claude Code's first request (2.1.332): the environment as a system message after
    // the user's turn, carrying the turn's effort, under the per-turn-control beta.
    const turn = {
      ...body,
      stream: true,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Say hello' }] },
        { role: 'system', content: [{ type: 'text', text: '# Environment', cache_control: { type: 'ephemeral' } }], output_config: { effort: 'medium' } },
      ],
    };
    const betas = { ...headers, 'anthropic-beta': 'claude-code-20250219,per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01' };
    const streamed = await post(emulator, '/v1/messages?beta=true', turn, betas);
    expect(streamed.status).toBe(200);
    const { events, failed } = await readStream(streamed);
    expect(failed).toBe(false);
    expect(events.at(-1)?.event).toBe('message_stop');
    const counted = await post(emulator, '/v1/messages/count_tokens?beta=true', { model, messages: turn.messages }, betas);
    const alone = await post(emulator, '/v1/messages/count_tokens', { model, messages: turn.messages.slice(0, 1) });
    const tokens = ((await counted.json()) as { input_tokens: number }).input_tokens;
    expect(tokens).toBeGreaterThan(((await alone.json()) as { input_tokens: number }).input_tokens);
    // Without the beta, the effort on the system message is an input the API does not know.
    expect(await errorOf(await post(emulator, '/v1/messages', turn))).toMatchObject({
      status: 400,
      type: 'invalid_request_error',
      message: 'messages.1.output_config: Extra inputs are not permitted',
    });
    expect(emulator.stats().statuses).toEqual({ '200': 3, '400': 1 });
  });

  it('enforces the account limits on an injected clock, with the headers and retry-after of a 429', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const emulator = await start({ clock }, { limits: { requestsPerMinute: 2, inputTokensPerMinute: 100_000, outputTokensPerMinute: 100_000 } });
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    const refused = await post(emulator, '/v1/messages', body);
    expect(await errorOf(refused)).toMatchObject({ status: 429, type: 'rate_limit_error' });
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.headers.get('anthropic-ratelimit-requests-limit')).toBe('2');
    expect(refused.headers.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(refused.headers.get('anthropic-ratelimit-requests-reset')).toBe('2025-01-01T00:01:00Z');
    clock.advance(30_000);
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    expect(emulator.stats().keys[key]).toMatchObject({ requests: 4, messages: 3, rateLimited: 1 });
  });

  it('charges output tokens as produced and refuses while they are owed', async () => {
    const clock = new ManualClock(0);
    const emulator = await start(
      { clock, outputTokensMin: 30, outputTokensMax: 30 },
      { limits: { requestsPerMinute: 100, inputTokensPerMinute: 100_000, outputTokensPerMinute: 20 } },
    );
    const first = (await (await post(emulator, '/v1/messages', body)).json()) as { usage: { output_tokens: number } };
    expect(first.usage.output_tokens).toBe(30);
    const refused = await post(emulator, '/v1/messages', body);
    expect(refused.status).toBe(429);
    // 30 produced of 20 per minute: 11 tokens short of one, at a token every 3 s.
    expect(refused.headers.get('retry-after')).toBe('33');
    clock.advance(33_000);
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    expect(emulator.stats().keys[key]!.outputTokens).toBe(60);
  });

  it('paces the first token by ttftMs and the rest by tokensPerSecond', async () => {
    const emulator = await start({ ttftMs: 250, tokensPerSecond: 200, outputTokensMin: 30, outputTokensMax: 30 });
    const began = Date.now();
    const response = await post(emulator, '/v1/messages', { ...body, stream: true });
    const headersMs = Date.now() - began;
    const { events } = await readStream(response);
    const totalMs = Date.now() - began;
    expect(headersMs).toBeLessThan(250);
    expect(events.filter((e) => e.event === 'content_block_delta')).toHaveLength(10);
    // 250 ms to the first delta, then 9 more deltas of 3 tokens at 200 tokens/s: 135 ms.
    expect(totalMs).toBeGreaterThanOrEqual(380);
    const jsonBegan = Date.now();
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    expect(Date.now() - jsonBegan).toBeGreaterThanOrEqual(250 + 145);
  });

  it('holds a paced JSON answer in flight until it is sent, and charges it when the client leaves first', async () => {
    const emulator = await start({ ttftMs: 300, outputTokensMin: 10, outputTokensMax: 10 });
    const controller = new AbortController();
    const leaving = post(emulator, '/v1/messages', body, headers, controller.signal).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(emulator.stats().responsesInFlight).toBe(1);
    controller.abort();
    await leaving;
    for (let i = 0; i < 300 && emulator.stats().responsesInFlight !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(emulator.stats().responsesInFlight).toBe(0);
    expect(emulator.stats().keys[key]!.outputTokens).toBe(10);
    // An answer with no wait is sent at once and never counted in flight.
    const unpaced = await start({ outputTokensMin: 10, outputTokensMax: 10 });
    expect((await post(unpaced, '/v1/messages', body)).status).toBe(200);
    expect(unpaced.stats()).toMatchObject({ responsesInFlight: 0, keys: { [key]: { messages: 1, outputTokens: 10 } } });
  });

  it('takes fault plans at the control endpoint and reports stats there', async () => {
    const emulator = await start();
    const bad = await post(emulator, '/_emulator/faults', { faults: [{ kind: 'overloaded' }, { kind: 'melt' }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('faults[1].kind');
    const queued = await post(emulator, '/_emulator/faults', { faults: [{ kind: 'server-error', key }, { kind: 'overloaded' }] });
    expect(await queued.json()).toEqual({ queued: 2 });
    expect(((await (await fetch(`${emulator.url}/_emulator/faults`)).json()) as { faults: unknown[] }).faults).toHaveLength(2);
    expect(await errorOf(await post(emulator, '/v1/messages', body))).toMatchObject({ status: 500, type: 'api_error' });
    expect(await errorOf(await post(emulator, '/v1/messages', body))).toMatchObject({ status: 529, type: 'overloaded_error' });
    await post(emulator, '/_emulator/faults', { kind: 'overloaded', count: 'unlimited' });
    expect((await fetch(`${emulator.url}/_emulator/faults`, { method: 'DELETE' })).status).toBe(200);
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
    const stats = (await (await fetch(`${emulator.url}/_emulator/stats`)).json()) as { statuses: Record<string, number>; faultsInjected: number };
    expect(stats.statuses).toMatchObject({ '500': 1, '529': 1, '200': 1 });
    expect(stats.faultsInjected).toBe(2);
  });

  it('answers a 429 fault as a spent window or as a short throttle', async () => {
    const emulator = await start(
      {},
      {
        faults: [
          { key, count: 1, action: { kind: 'rate-limit', retryAfterSeconds: 7, remaining: 0 } },
          { key, count: 1, action: { kind: 'rate-limit', retryAfterSeconds: 2, remaining: 5 } },
        ],
      },
    );
    const spent = await post(emulator, '/v1/messages', body);
    expect(spent.status).toBe(429);
    expect(spent.headers.get('retry-after')).toBe('7');
    expect(spent.headers.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(spent.headers.get('anthropic-ratelimit-tokens-remaining')).toBe('0');
    const throttled = await post(emulator, '/v1/messages', body);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('2');
    expect(throttled.headers.get('anthropic-ratelimit-requests-remaining')).toBe('5');
    expect(Number(throttled.headers.get('anthropic-ratelimit-tokens-remaining'))).toBeGreaterThan(0);
  });

  it('ends a stream with an error event when asked', async () => {
    const emulator = await start();
    emulator.addFaults([{ key: undefined, count: 1, action: { kind: 'error-event', afterEvents: 4, errorType: 'api_error' } }]);
    const { raw, events, failed } = await readStream(await post(emulator, '/v1/messages', { ...body, stream: true }));
    expect(failed).toBe(false);
    expect(events.map((e) => e.event)).toEqual(['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error']);
    expect(raw.endsWith('event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal server error"}}\n\n')).toBe(true);
  });

  it('drops the connection after K events: the client gets those and then a failure', async () => {
    const emulator = await start();
    emulator.addFaults([{ key, count: 1, action: { kind: 'drop-mid-stream', afterEvents: 5 } }]);
    const { events, failed } = await within(readStream(await post(emulator, '/v1/messages', { ...body, stream: true })), 'the dropped stream');
    expect(failed).toBe(true);
    expect(events).toHaveLength(5);
    expect(emulator.stats().keys[key]!.outputTokens).toBe(6);
    await expect(post(emulator, '/v1/messages', body)).resolves.toHaveProperty('status', 200);
  });

  it('drops the connection before any headers', async () => {
    const emulator = await start();
    emulator.addFaults([{ key, count: 1, action: { kind: 'drop-before-headers' } }]);
    await expect(post(emulator, '/v1/messages', body)).rejects.toThrow();
    expect((await post(emulator, '/v1/messages', body)).status).toBe(200);
  });

  it('stalls a stream forever, counts it in flight, sheds past the bound, and close() ends it', async () => {
    const emulator = await start({ responsesInFlightMax: 1 });
    emulator.addFaults([{ key, count: 1, action: { kind: 'stall-mid-stream', afterEvents: 2 } }]);
    const response = await post(emulator, '/v1/messages', { ...body, stream: true });
    const reading = readStream(response);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(emulator.stats().responsesInFlight).toBe(1);
    expect(await errorOf(await post(emulator, '/v1/messages', body))).toMatchObject({ status: 529, type: 'overloaded_error' });
    await within(emulator.close(), 'close() with a stalled stream open');
    const { events } = await within(reading, 'the stalled stream to end');
    expect(events.map((e) => e.event)).toEqual(['message_start', 'content_block_start']);
    // The emulator ended it, not the client.
    expect(emulator.stats().keys[key]!.clientClosed).toBe(0);
  });

  it('counts the answers whose client hung up before the end, streamed or JSON, and not those that ended', async () => {
    const emulator = await start({ ttftMs: 50, tokensPerSecond: 100 });
    await readStream(await post(emulator, '/v1/messages', { ...body, stream: true }));
    expect(emulator.stats().keys[key]!.clientClosed).toBe(0);
    const leaving = new AbortController();
    const response = await post(emulator, '/v1/messages', { ...body, stream: true }, headers, leaving.signal);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    leaving.abort();
    const quitter = new AbortController();
    const json = post(emulator, '/v1/messages', body, headers, quitter.signal);
    setTimeout(() => quitter.abort(), 20);
    await expect(json).rejects.toThrow();
    const row = (): number => emulator.stats().keys[key]!.clientClosed;
    for (let waits = 0; waits < 100 && (row() < 2 || emulator.stats().responsesInFlight > 0); waits++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(row()).toBe(2);
    expect(emulator.stats().responsesInFlight).toBe(0);
  });
});
