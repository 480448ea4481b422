// Proves the request path of one region node end to end over gRPC against the emulator.
// Completions and streams are answered and counted exactly once in the tenant's and the accounts'
// counters, refusals (quota, bad key, bad request) count nothing, a throttled account fails over,
// GetUsage reports the counters, and CountTokens answers the upstream's count.
import { afterEach, describe, expect, it } from 'vitest';
import { estimateWeightedTokens } from '../../../src/admission/estimate.js';
import { chargedKey } from '../../../src/admission/quota.js';
import { signRequest } from '../../../src/admission/request-signature.js';
import type { TenantId } from '../../../src/core/ids.js';
import { defaultTokenWeights, type LimitRule } from '../../../src/mesh/policy/policy-schema.js';
import type { StreamItem } from '../../../src/net/grpc/carpool-client.js';
import { carpoolMethodPaths } from '../../../src/net/grpc/carpool-handler.js';
import { inputTokensUpperBound } from '../../../src/node/gateway/request-amounts.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';
import { within } from '../../support/wait.js';
import { closeAll, completion, fromUtf8, model, region, roomyTenantLimits, rulesOf, startHarness, utf8, weighted } from './gateway-harness.js';

afterEach(closeAll);

async function collect(items: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('Complete and StreamComplete', () => {
  it('answers a completion with the emulator message and usage, counted once for the tenant and the account', async () => {
    const h = await startHarness();
    const result = await within(h.client('acme').complete(completion()), 'a completion', 5_000);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const message = JSON.parse(fromUtf8.decode(result.value.messageJson)) as {
      type: string;
      content: { type: string; text: string }[];
      usage: { output_tokens: number };
    };
    expect(message.type).toBe('message');
    expect(message.content[0]?.text.length).toBeGreaterThan(0);
    expect(result.value.servedRegion).toBe(region);
    const upstream = h.emulatorUsage();
    expect(upstream.requests).toBe(1);
    expect(result.value.usage).toEqual({
      inputTokens: upstream.input,
      outputTokens: upstream.output,
      cacheCreationInputTokens: upstream.cacheWrite,
      cacheReadInputTokens: upstream.cacheRead,
    });
    expect(message.usage.output_tokens).toBe(upstream.output);
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.tenantUsed('acme', 'output_tokens')).toBe(upstream.output);
    expect(h.accountsUsed('requests')).toBe(1);
    expect(h.accountsUsed('output_tokens')).toBe(upstream.output);
    // Nothing left running: queue slot, concurrency and reservation are all back.
    expect(h.gateway.carpool.scheduler.queue.inFlight).toBe(0);
    expect(h.gateway.carpool.concurrency.size).toBe(0);
    expect(h.runtime.reservations.openCount).toBe(0);
  });

  it('streams every upstream event in order, then the summary, and counts the stream once', async () => {
    const h = await startHarness();
    const items = await within(collect(h.client('acme').streamComplete(completion({ maxTokens: 200 }))), 'a stream', 5_000);
    const events = items.filter((item) => item.kind === 'event');
    const types = events.map((item) => item.event.type);
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types).toContain('content_block_delta');
    expect(types.indexOf('message_delta')).toBe(types.length - 2);
    // Each event's data is the upstream's JSON for that event, in the order it was sent.
    for (const item of events) expect((JSON.parse(fromUtf8.decode(item.event.dataJson)) as { type: string }).type).toBe(item.event.type);
    const last = items.at(-1);
    expect(last?.kind).toBe('summary');
    if (last?.kind !== 'summary') return;
    const upstream = h.emulatorUsage();
    expect(last.summary.usage.outputTokens).toBe(upstream.output);
    expect(last.summary.usage.inputTokens).toBe(upstream.input);
    expect(last.summary.servedRegion).toBe(region);
    const text = events
      .filter((item) => item.event.type === 'content_block_delta')
      .map((item) => (JSON.parse(fromUtf8.decode(item.event.dataJson)) as { delta: { text?: string } }).delta.text ?? '')
      .join('');
    expect(text.length).toBeGreaterThan(0);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
    expect(h.accountsUsed('output_tokens')).toBe(upstream.output);
  });

  it('moves a call an account refused with 429 to another account, and counts it once', async () => {
    const h = await startHarness();
    h.inject({ kind: 'rate-limit', retryAfterSeconds: 30, remaining: 0 });
    const result = await within(h.client('acme').complete(completion()), 'a completion after a 429', 5_000);
    expect(result.ok).toBe(true);
    const rows = Object.values(h.emulator.stats().keys);
    expect(rows.reduce((sum, row) => sum + row.rateLimited, 0)).toBe(1);
    expect(rows.filter((row) => row.messages === 1)).toHaveLength(1);
    const upstream = h.emulatorUsage();
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    // The refused attempt reached no model: only the serving account is charged.
    expect(h.accountsUsed('requests')).toBe(1);
  });
});

describe('signed requests', () => {
  it('accepts a signature over request_json and the method path, and refuses one over another body', async () => {
    const h = await startHarness();
    const apiKey = h.keys.get('acme')!;
    const request = completion();
    const signatureOf = (body: Uint8Array, nonce: string): Record<string, string> => {
      const fields = signRequest(nodeAuthCrypto, apiKey, { method: 'POST', path: carpoolMethodPaths.complete, body }, Date.now(), nonce);
      return {
        'x-carpool-key-id': fields.keyId,
        'x-carpool-timestamp': fields.timestamp,
        'x-carpool-nonce': fields.nonce,
        'x-carpool-signature': fields.signature,
      };
    };
    const signed = await h.client('acme').complete(request, { metadata: signatureOf(request.requestJson, 'nonce-0123456789abcdef') });
    expect(signed.ok).toBe(true);
    const tampered = await h.client('acme').complete(completion(), { metadata: signatureOf(utf8.encode('{"other":"body"}'), 'nonce-fedcba9876543210') });
    expect(tampered.ok === false && tampered.error.kind === 'status' && tampered.error.codeName).toBe('UNAUTHENTICATED');
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
  });
});

describe('refusals count nothing', () => {
  it('refuses a tenant over its quota with RESOURCE_EXHAUSTED and a pushback', async () => {
    // Room for one request's estimate, not for a second one beside the first's charge.
    const request = completion();
    const estimate = estimateWeightedTokens(inputTokensUpperBound(request.requestJson.length), 64, defaultTokenWeights);
    const h = await startHarness({ tenants: [{ id: 'tight', limits: rulesOf({ requests: 100, weighted_tokens: estimate + 1 }) }] });
    const first = await h.client('tight').complete(request);
    expect(first.ok).toBe(true);
    const result = await h.client('tight').complete(completion());
    expect(result.ok).toBe(false);
    if (result.ok || result.error.kind !== 'status') return;
    expect(result.error.codeName).toBe('RESOURCE_EXHAUSTED');
    expect(result.error.details).toContain('weighted_tokens');
    expect(result.error.pushbackMs).toBeGreaterThan(0);
    // Only the first is counted, as the emulator counted it.
    const upstream = h.emulatorUsage();
    expect(upstream.requests).toBe(1);
    expect(h.tenantUsed('tight', 'requests')).toBe(1);
    expect(h.tenantUsed('tight', 'weighted_tokens')).toBe(weighted(upstream));
  });

  it('refuses a wrong API key with UNAUTHENTICATED and no reason', async () => {
    const h = await startHarness();
    const result = await h.client('acme').complete(completion(), { metadata: { 'x-api-key': 'cp_acme_0123456789abcdef0123456789abcdef' } });
    expect(result.ok).toBe(false);
    if (result.ok || result.error.kind !== 'status') return;
    expect(result.error.codeName).toBe('UNAUTHENTICATED');
    expect(result.error.details).toBe('missing or unknown API key');
    expect(h.tenantUsed('acme', 'requests')).toBe(0);
    expect(h.emulator.stats().requests).toBe(0);
  });

  it('refuses malformed JSON and a missing max_tokens with INVALID_ARGUMENT naming the field', async () => {
    const h = await startHarness();
    const client = h.client('acme');
    const cases = [
      { request: completion({ requestJson: utf8.encode('{"model": ') }), field: 'request_json' },
      {
        request: completion({ requestJson: utf8.encode(JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] })) }),
        field: 'request_json.max_tokens',
      },
      { request: completion({ requestId: 'has space' }), field: 'request_id' },
    ];
    for (const { request, field } of cases) {
      const result = await client.complete(request);
      expect(result.ok).toBe(false);
      if (result.ok || result.error.kind !== 'status') continue;
      expect(result.error.codeName).toBe('INVALID_ARGUMENT');
      expect(result.error.details).toContain(`invalid ${field}:`);
    }
    expect(h.tenantUsed('acme', 'requests')).toBe(0);
    expect(h.emulator.stats().requests).toBe(0);
  });
});

describe('GetUsage and CountTokens', () => {
  it('shows used and remaining under each limit after a completion, locally and at quorum', async () => {
    const h = await startHarness();
    const client = h.client('acme');
    const done = await client.complete(completion());
    expect(done.ok).toBe(true);
    const upstream = h.emulatorUsage();
    for (const consistency of ['local', 'quorum'] as const) {
      const usage = await client.getUsage({ consistency, user: '' });
      expect(usage.ok).toBe(true);
      if (!usage.ok) return;
      expect(usage.value.tenant).toBe('acme');
      const byMetric = new Map(usage.value.limits.map((row) => [row.metric, row]));
      expect(byMetric.get('requests')).toMatchObject({
        scope: 'tenant',
        window: 'day30',
        sliding: false,
        mode: 'eventual',
        limit: roomyTenantLimits.requests,
        used: 1,
        remaining: roomyTenantLimits.requests - 1,
      });
      expect(byMetric.get('weighted_tokens')).toMatchObject({ used: weighted(upstream), remaining: roomyTenantLimits.weighted_tokens - weighted(upstream) });
      expect(byMetric.get('requests')?.resetsAtMs).toBeGreaterThan(Date.now());
      expect(usage.value.lastMinute).toEqual({
        inputTokens: upstream.input,
        outputTokens: upstream.output,
        cacheCreationInputTokens: upstream.cacheWrite,
        cacheReadInputTokens: upstream.cacheRead,
      });
    }
  });

  it('answers GetUsage for a tenant whose counter went below zero, in both consistencies', async () => {
    // Issue 13: an over-refund of 10^9 left a tenant at -999,999,999 and GetUsage failed with
    // INTERNAL (an assertion of the wire encoder) in every region. The reservation books never
    // refund more than they charged (test/admission/reservations.prop.test.ts), but the CRDT can
    // hold such a state (a replica's own entry with N > P, from a replica running other code),
    // so the read path must answer for any of them.
    const h = await startHarness({ tenants: [{ id: 'acme', limits: [...rulesOf({ requests: 2 }), ...rulesOf({ weighted_tokens: 1_000_000_000 })] }] });
    const rule = h.runtime.policy.tenant('acme' as TenantId)?.limits.find((r) => r.metric === 'requests') as LimitRule;
    h.runtime.counter.decrement(chargedKey('tenant', 'acme', rule, Date.now()), 1_000_000_000);
    for (const consistency of ['local', 'quorum'] as const) {
      const usage = await h.client('acme').getUsage({ consistency, user: '' });
      expect(usage.ok).toBe(true);
      if (!usage.ok) return;
      expect(usage.value.limits.find((row) => row.metric === 'requests')).toMatchObject({ limit: 2, used: 0, remaining: 2 });
    }
  });

  it('answers the upstream count_tokens count, and refuses a body without messages', async () => {
    const h = await startHarness();
    const body = utf8.encode(
      JSON.stringify({ model, messages: [{ role: 'user', content: 'How many tokens is a carpool of twelve words in one short sentence?' }] }),
    );
    const counted = await h.client('acme').countTokens({ requestJson: body, anthropicVersion: '', anthropicBeta: '' });
    const direct = await fetch(`${h.emulator.url}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'x-api-key': h.keyOf(h.accountIds[0]!), 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body,
    });
    const expected = (await direct.json()) as { input_tokens: number };
    expect(expected.input_tokens).toBeGreaterThan(0);
    expect(counted).toEqual({ ok: true, value: { inputTokens: expected.input_tokens } });
    const bad = await h.client('acme').countTokens({ requestJson: utf8.encode(JSON.stringify({ model })), anthropicVersion: '', anthropicBeta: '' });
    expect(bad.ok === false && bad.error.kind === 'status' && bad.error.details).toContain('request_json.messages');
    // A count charges nothing.
    expect(h.tenantUsed('acme', 'requests')).toBe(0);
  });
});
