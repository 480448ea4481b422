// Proves the official Anthropic SDK works against the emulator as against the real API: JSON and
// streamed messages with matching text and usage, token counting, prompt caching, typed errors,
// its own retries on 429, 529 and dropped connections, OAuth tokens, and mid-stream errors.
import Anthropic, { APIError, AuthenticationError, BadRequestError, NotFoundError, PermissionDeniedError, RateLimitError } from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EmulatorAccount } from '../../../src/upstream/emulator/emulator-config.js';
import { defaultAccountLimits } from '../../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../../src/upstream/emulator/emulator-server.js';
import { parseFaults } from '../../../src/upstream/emulator/fault-plan.js';

const apiKey = 'sk-ant-api03-emulator-test-key';
const oauthToken = 'sk-ant-oat01-emulator-test-token';
const accounts: EmulatorAccount[] = [
  { key: apiKey, kind: 'api-key', limits: defaultAccountLimits, faults: [] },
  { key: oauthToken, kind: 'oauth', limits: defaultAccountLimits, faults: [] },
];
const model = 'claude-sonnet-4-6';
const request = { model, max_tokens: 64, messages: [{ role: 'user' as const, content: 'Tell me about carpools.' }] };

let emulator: Emulator;
let client: Anthropic;

function inject(plan: unknown): void {
  const faults = parseFaults(plan);
  if (!faults.ok) throw new Error(JSON.stringify(faults.error));
  const added = emulator.addFaults(faults.value);
  if (!added.ok) throw new Error(JSON.stringify(added.error));
}

beforeAll(async () => {
  emulator = await startEmulator({ accounts, seed: 11, models: [model, 'claude-haiku-4-5'] });
  client = new Anthropic({ apiKey, baseURL: emulator.url, maxRetries: 2, timeout: 10_000 });
});

afterAll(async () => {
  await emulator.close();
});

beforeEach(() => {
  emulator.clearFaults();
  emulator.resetStats();
});

describe('the SDK against the emulator', () => {
  it('creates a message and gets the same one again for the same request', async () => {
    const message = await client.messages.create(request);
    expect(message).toMatchObject({ type: 'message', role: 'assistant', model, stop_sequence: null });
    expect(message.id).toMatch(/^msg_01[0-9A-Za-z]{22}$/);
    expect(message._request_id).toMatch(/^req_01[0-9A-Za-z]{22}$/);
    expect(message.content[0]?.type).toBe('text');
    expect(['end_turn', 'max_tokens']).toContain(message.stop_reason);
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeLessThanOrEqual(64);
    const again = await client.messages.create(request);
    expect(again.content).toEqual(message.content);
    expect(again.usage).toEqual(message.usage);
    expect(again.id).not.toBe(message.id);
  });

  it('streams the same text and final usage as the JSON answer', async () => {
    const whole = await client.messages.create(request);
    const stream = client.messages.stream(request);
    const deltas: string[] = [];
    stream.on('text', (text) => deltas.push(text));
    const final = await stream.finalMessage();
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe((whole.content[0] as { text: string }).text);
    expect(final.content).toEqual(whole.content);
    expect(final.usage).toMatchObject({
      input_tokens: whole.usage.input_tokens,
      output_tokens: whole.usage.output_tokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    });
    expect(final.stop_reason).toBe(whole.stop_reason);
  });

  it('streams raw events with create({stream: true}) in the real order', async () => {
    const stream = await client.messages.create({ ...request, stream: true });
    const types: string[] = [];
    let outputTokens = 0;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'message_delta') outputTokens = event.usage.output_tokens;
    }
    expect(types.slice(0, 2)).toEqual(['message_start', 'content_block_start']);
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    expect(types.slice(2, -3).every((t) => t === 'content_block_delta')).toBe(true);
    expect(outputTokens).toBe((await client.messages.create(request)).usage.output_tokens);
  });

  it('counts tokens as the messages endpoint bills them', async () => {
    const counted = await client.messages.countTokens({ model, messages: request.messages });
    const message = await client.messages.create(request);
    expect(counted.input_tokens).toBe(message.usage.input_tokens);
    const longer = await client.messages.countTokens({ model, messages: [{ role: 'user', content: 'Tell me about carpools, and meshes.' }] });
    expect(longer.input_tokens).toBeGreaterThan(counted.input_tokens);
  });

  it('writes a marked prefix to the cache, then reads it', async () => {
    const system = [{ type: 'text' as const, text: 'Share every ride. '.repeat(400), cache_control: { type: 'ephemeral' as const } }];
    const first = await client.messages.create({ ...request, system });
    const second = await client.messages.create({ ...request, system, messages: [{ role: 'user', content: 'And meshes?' }] });
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(1_024);
    expect(first.usage.cache_read_input_tokens).toBe(0);
    expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens);
    expect(second.usage.cache_creation_input_tokens).toBe(0);
  });

  it('stops at a stop sequence, streamed or not, billing the tokens that produced it', async () => {
    const stopped = { ...request, max_tokens: 200, stop_sequences: ['.'] };
    const message = await client.messages.create(stopped);
    expect(message.stop_reason).toBe('stop_sequence');
    expect(message.stop_sequence).toBe('.');
    expect((message.content[0] as { text: string }).text).not.toContain('.');
    const streamed = await client.messages.stream(stopped).finalMessage();
    expect(streamed.content).toEqual(message.content);
    expect(streamed.usage.output_tokens).toBe(message.usage.output_tokens);
    expect(streamed.stop_sequence).toBe('.');
    expect(emulator.stats().keys[apiKey]!.outputTokens).toBe(2 * message.usage.output_tokens);
  });

  it('raises the typed errors', async () => {
    const badKey = new Anthropic({ apiKey: 'sk-ant-api03-wrong', baseURL: emulator.url, maxRetries: 0 });
    await expect(badKey.messages.create(request)).rejects.toBeInstanceOf(AuthenticationError);
    const badBody = client.messages.create({ ...request, max_tokens: 0 });
    await expect(badBody).rejects.toBeInstanceOf(BadRequestError);
    await expect(badBody).rejects.toMatchObject({ status: 400, type: 'invalid_request_error' });
    await expect(badBody).rejects.toHaveProperty('apiMessage', 'max_tokens: Input should be greater than or equal to 1');
    await expect(client.messages.create({ ...request, model: 'claude-nonexistent-1' })).rejects.toBeInstanceOf(NotFoundError);
    inject({ kind: 'forbidden', key: apiKey });
    await expect(client.messages.create(request)).rejects.toBeInstanceOf(PermissionDeniedError);
    const error = await client.messages.create({ ...request, messages: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).requestID).toMatch(/^req_/);
  });

  it('retries a 429 by itself and succeeds; the emulator saw the retry', async () => {
    inject({ kind: 'rate-limit', key: apiKey, retryAfterSeconds: 0 });
    const message = await client.messages.create(request);
    expect(message.type).toBe('message');
    const stats = emulator.stats().keys[apiKey]!;
    expect(stats).toMatchObject({ requests: 2, retries: 1, rateLimited: 1, faults: 1, messages: 1 });
    expect(emulator.stats().statuses).toEqual({ '200': 1, '429': 1 });
    expect(emulator.stats().faultsInjected).toBe(1);
  });

  it('retries 529s by itself and succeeds', async () => {
    inject({ kind: 'overloaded', count: 2 });
    const message = await client.messages.create(request);
    expect(message.type).toBe('message');
    expect(emulator.stats().keys[apiKey]).toMatchObject({ requests: 3, retries: 2, faults: 2 });
    expect(emulator.stats().statuses).toEqual({ '200': 1, '529': 2 });
    expect(emulator.stats().faultsInjected).toBe(2);
  });

  it('gives up with RateLimitError when the 429s outlast its retries', async () => {
    inject({ kind: 'rate-limit', count: 'unlimited', retryAfterSeconds: 0 });
    const noRetry = client.withOptions({ maxRetries: 0 });
    const error = await noRetry.messages.create(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers.get('retry-after')).toBe('0');
  });

  it('retries a connection dropped before the headers', async () => {
    inject({ kind: 'drop-before-headers' });
    const message = await client.messages.create(request);
    expect(message.type).toBe('message');
    expect(emulator.stats().keys[apiKey]).toMatchObject({ requests: 2, retries: 1 });
  });

  it('accepts an OAuth token as a bearer token', async () => {
    const oauth = new Anthropic({ authToken: oauthToken, baseURL: emulator.url, maxRetries: 0 });
    const message = await oauth.messages.create(request);
    expect(message.type).toBe('message');
    expect(emulator.stats().keys[oauthToken]).toMatchObject({ requests: 1, messages: 1 });
  });

  it('surfaces an error event mid-stream as an APIError of its type', async () => {
    inject({ kind: 'error-event', afterEvents: 4, errorType: 'overloaded_error' });
    const stream = client.messages.stream(request);
    const error = await stream.finalMessage().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).type).toBe('overloaded_error');
  });
});
