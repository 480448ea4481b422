// Proves the gRPC adapter over loopback.
// Every Carpool method round-trips with bytes intact and the call context filled in, streams keep
// event order with the summary last, each GatewayError kind reaches the client with the table's
// status, message and pushback, credentials are read from metadata, and the Admin service
// translates too.
import { Client, credentials as grpcCredentials, Metadata, type MethodDefinition, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rejection } from '../../../src/admission/outcome.js';
import { err, ok } from '../../../src/core/result.js';
import type {
  AdminCall,
  AdminServiceHandler,
  ApiKeyInfo,
  CarpoolCall,
  CompleteRequest,
  GatewayError,
  StreamEvent,
} from '../../../src/net/grpc/carpool-handler.js';
import type { StreamItem } from '../../../src/net/grpc/carpool-client.js';
import { type AdminServiceMethods, loadCarpoolProto } from '../../../src/net/grpc/carpool-proto.js';
import {
  cannedEvents,
  cannedUsage,
  completeRequest,
  fakeCarpoolHandler,
  fromUtf8,
  type Running,
  startLoopback,
  testApiKey,
  utf8,
} from './fake-carpool-handler.js';
import { ledgerRow } from '../../support/memory-usage-reader.js';

let running: Running | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function collect(items: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Every byte value, so a lossy text conversion anywhere would show. */
const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('Carpool round trips', () => {
  it('Complete: the handler sees the request, credentials, signed content and context; the client gets the response', async () => {
    const handler = fakeCarpoolHandler({
      complete: (call) =>
        Promise.resolve(ok({ requestId: call.request.requestId, messageJson: call.request.requestJson, usage: cannedUsage, servedRegion: 'us-east' })),
    });
    running = await startLoopback({ carpool: handler });
    const deadlineMs = Date.now() + 10_000;
    const result = await running.client.complete(completeRequest({ requestJson: allBytes, anthropicBeta: 'tools-2024', user: 'bob' }), { deadlineMs });

    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Buffer.from(result.value.messageJson).equals(Buffer.from(allBytes))).toBe(true);
    expect(result.value).toMatchObject({ requestId: 'req-1', usage: cannedUsage, servedRegion: 'us-east' });

    expect(handler.calls).toHaveLength(1);
    const seen = handler.calls[0]!.call as CarpoolCall<CompleteRequest>;
    expect(seen.request).toMatchObject({ requestId: 'req-1', anthropicVersion: '2023-06-01', anthropicBeta: 'tools-2024', user: 'bob' });
    expect(Buffer.from(seen.request.requestJson).equals(Buffer.from(allBytes))).toBe(true);
    expect(seen.credentials).toEqual({ apiKey: testApiKey, signature: undefined });
    expect(seen.methodPath).toBe('/carpool.v1.Carpool/Complete');
    expect(seen.signedContent.method).toBe('POST');
    expect(seen.signedContent.path).toBe('/carpool.v1.Carpool/Complete');
    expect(Buffer.from(seen.signedContent.body).equals(Buffer.from(allBytes))).toBe(true);
    expect(seen.peerIp).toBe('127.0.0.1');
    // grpc-js sends the remaining time, so the server's deadline lands near the client's.
    expect(Math.abs(seen.deadlineMs! - deadlineMs)).toBeLessThan(1_000);
    expect(seen.signal.aborted).toBe(false);
  });

  it('Complete without a deadline gives the handler none', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    expect((await running.client.complete(completeRequest())).ok).toBe(true);
    expect(handler.calls[0]!.call.deadlineMs).toBeUndefined();
  });

  it('StreamComplete: events arrive in order with their bytes, and the summary comes last', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    const items = await collect(running.client.streamComplete(completeRequest({ requestId: 'req-stream' })));

    const expected: StreamEvent[] = [
      ...cannedEvents.map((event): StreamEvent => ({ kind: 'event', event })),
      { kind: 'summary', summary: { requestId: 'req-stream', usage: cannedUsage, servedRegion: 'eu-west' } },
    ];
    expect(items.map((item) => item.kind)).toEqual(expected.map((item) => item.kind));
    for (const [index, item] of items.entries()) {
      const want = expected[index]!;
      if (item.kind === 'event' && want.kind === 'event') {
        expect(item.event.type).toBe(want.event.type);
        expect(fromUtf8.decode(item.event.dataJson)).toBe(fromUtf8.decode(want.event.dataJson));
      } else {
        expect(item).toEqual(want);
      }
    }
    expect(handler.calls[0]!.call.methodPath).toBe('/carpool.v1.Carpool/StreamComplete');
  });

  it('CountTokens signs its request body; GetUsage signs an empty body and passes the consistency', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    const body = utf8.encode('{"model":"m","messages":[]}');
    const counted = await running.client.countTokens({ requestJson: body, anthropicVersion: '', anthropicBeta: '' });
    expect(counted).toEqual(ok({ inputTokens: body.length }));
    const usage = await running.client.getUsage({ consistency: 'quorum', user: 'carol' });
    expect(usage.ok && usage.value).toEqual({
      tenant: 'acme',
      limits: [
        {
          scope: 'tenant',
          metric: 'weighted_tokens',
          window: 'day',
          sliding: false,
          mode: 'quorum',
          limit: 1_000_000,
          used: 250,
          remaining: 999_750,
          resetsAtMs: 1_800_000_000_000,
        },
      ],
      lastMinute: cannedUsage,
    });
    const [countCall, usageCall] = handler.calls.map((recorded) => recorded.call);
    expect(Buffer.from(countCall!.signedContent.body).equals(Buffer.from(body))).toBe(true);
    expect(countCall!.signedContent.path).toBe('/carpool.v1.Carpool/CountTokens');
    expect(usageCall!.signedContent.body).toHaveLength(0);
    expect(usageCall!.request).toEqual({ consistency: 'quorum', user: 'carol' });
  });

  it('refuses a consistency value this version does not know, naming the field', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    // A raw client, since the typed one cannot send an unknown enum value.
    const method = loadCarpoolProto().carpool.GetUsage;
    const raw = new Client(`127.0.0.1:${running.port}`, grpcCredentials.createInsecure());
    const error = await new Promise<ServiceError | null>((resolve) => {
      const metadata = new Metadata();
      metadata.set('x-api-key', testApiKey);
      raw.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, { consistency: 7, user: '' }, metadata, {}, (e) => resolve(e));
    });
    raw.close();
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toContain('consistency');
    expect(handler.calls).toHaveLength(0);
  });
});

describe('credentials from metadata', () => {
  it('takes a Bearer key, and all four signature fields', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    await running.client.complete(completeRequest(), { metadata: { authorization: `Bearer ${testApiKey}` } });
    const signature = {
      'x-carpool-key-id': 'acme:0123abcd',
      'x-carpool-timestamp': '1700000000000',
      'x-carpool-nonce': 'nonce-0123456789abcdef',
      'x-carpool-signature': 'ab'.repeat(32),
    };
    await running.client.complete(completeRequest(), { metadata: signature });
    expect(handler.calls.map((recorded) => recorded.call.credentials)).toEqual([
      { apiKey: testApiKey, signature: undefined },
      { apiKey: undefined, signature: { keyId: 'acme:0123abcd', timestamp: '1700000000000', nonce: 'nonce-0123456789abcdef', signature: 'ab'.repeat(32) } },
    ]);
  });

  it('passes a partial signature on with empty fields, so the authenticator refuses it', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    await running.client.complete(completeRequest(), { metadata: { 'x-carpool-key-id': 'acme:0123abcd' } });
    expect(handler.calls[0]!.call.credentials.signature).toEqual({ keyId: 'acme:0123abcd', timestamp: '', nonce: '', signature: '' });
  });

  it('refuses two different keys as unauthenticated before the handler, without saying why', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler });
    const result = await running.client.complete(completeRequest(), {
      metadata: { 'x-api-key': testApiKey, authorization: 'Bearer cp_acme_ffffffffffffffffffffffffffffffff' },
    });
    expect(result.ok).toBe(false);
    if (result.ok || result.error.kind !== 'status') return;
    expect(result.error.codeName).toBe('UNAUTHENTICATED');
    expect(result.error.details).toBe('missing or unknown API key');
    expect(handler.calls).toHaveLength(0);
    expect(running.server.stats().credentialsRefused['conflicting-keys']).toBe(1);
  });
});

interface ErrorCase {
  readonly name: string;
  readonly error: GatewayError;
  readonly codeName: string;
  readonly details: (details: string) => void;
  readonly pushbackMs: number | undefined;
}

const rejected = (rejection: Rejection): GatewayError => ({ kind: 'rejected', rejection });
const upstream = (statusCode: number, errorType: string, message: string, retryAfterMs?: number): GatewayError => ({
  kind: 'upstream',
  status: statusCode,
  errorType,
  message,
  retryAfterMs,
});

const errorCases: readonly ErrorCase[] = [
  {
    name: 'quota',
    error: rejected({ kind: 'quota', metric: 'weighted_tokens', limit: 5_000, window: 'day', retryAfterMs: 3_600_000 }),
    codeName: 'RESOURCE_EXHAUSTED',
    details: (details) => expect(details).toContain('weighted_tokens'),
    pushbackMs: 3_600_000,
  },
  { name: 'rate', error: rejected({ kind: 'rate', retryAfterMs: 120.4 }), codeName: 'RESOURCE_EXHAUSTED', details: () => {}, pushbackMs: 121 },
  { name: 'concurrency', error: rejected({ kind: 'concurrency', retryAfterMs: 1_000 }), codeName: 'RESOURCE_EXHAUSTED', details: () => {}, pushbackMs: 1_000 },
  { name: 'shed', error: rejected({ kind: 'shed', retryAfterMs: 750 }), codeName: 'UNAVAILABLE', details: () => {}, pushbackMs: 750 },
  {
    name: 'no quorum',
    error: rejected({ kind: 'no-quorum', operation: 'admission', retryAfterMs: 250 }),
    codeName: 'UNAVAILABLE',
    details: () => {},
    pushbackMs: 250,
  },
  {
    name: 'unauthenticated',
    error: rejected({ kind: 'unauthenticated', reason: 'bad-signature' }),
    codeName: 'UNAUTHENTICATED',
    details: (details) => expect(details).toBe('missing or unknown API key'),
    pushbackMs: undefined,
  },
  {
    name: 'invalid (gateway)',
    error: { kind: 'invalid', field: 'request_id', reason: 'must be 1 to 64 characters' },
    codeName: 'INVALID_ARGUMENT',
    details: (details) => expect(details).toBe('invalid request_id: must be 1 to 64 characters'),
    pushbackMs: undefined,
  },
  {
    name: 'invalid (admission)',
    error: rejected({ kind: 'invalid', field: 'max_tokens', reason: 'must be positive' }),
    codeName: 'INVALID_ARGUMENT',
    details: (details) => expect(details).toContain('max_tokens'),
    pushbackMs: undefined,
  },
  {
    name: 'upstream 429',
    error: upstream(429, 'rate_limit_error', 'org org_123 is over 40000 input tokens per minute', 30_000),
    codeName: 'RESOURCE_EXHAUSTED',
    details: (details) => expect(details).not.toContain('org_123'),
    pushbackMs: 30_000,
  },
  { name: 'upstream 529', error: upstream(529, 'overloaded_error', 'Overloaded'), codeName: 'UNAVAILABLE', details: () => {}, pushbackMs: undefined },
  {
    name: 'upstream 400',
    error: upstream(400, 'invalid_request_error', 'max_tokens: Field required'),
    codeName: 'INVALID_ARGUMENT',
    details: (details) => expect(details).toBe('upstream 400 invalid_request_error: max_tokens: Field required'),
    pushbackMs: undefined,
  },
  {
    name: 'upstream 500',
    error: upstream(500, 'api_error', 'Internal server error at shard 7', 2_000),
    codeName: 'UNAVAILABLE',
    details: (details) => expect(details).not.toContain('shard'),
    pushbackMs: 2_000,
  },
  {
    name: 'upstream 401',
    error: upstream(401, 'authentication_error', 'invalid x-api-key sk-ant-xyz'),
    codeName: 'UNAVAILABLE',
    details: (details) => expect(details).not.toContain('x-api-key'),
    pushbackMs: undefined,
  },
];

describe('GatewayError to status', () => {
  for (const errorCase of errorCases) {
    it(`maps ${errorCase.name} for a unary call and a stream`, async () => {
      const handler = fakeCarpoolHandler({
        complete: () => Promise.resolve(err(errorCase.error)),
        streamComplete: async (_call, sink) => {
          await sink.send(cannedEvents[0]!);
          return err(errorCase.error);
        },
      });
      running = await startLoopback({ carpool: handler });

      const unary = await running.client.complete(completeRequest());
      expect(unary.ok).toBe(false);
      if (unary.ok || unary.error.kind !== 'status') throw new Error('expected a status');
      expect(unary.error.codeName).toBe(errorCase.codeName);
      errorCase.details(unary.error.details);
      expect(unary.error.pushbackMs).toBe(errorCase.pushbackMs);

      // A stream keeps the events sent before the failure and ends with the same status.
      const items = await collect(running.client.streamComplete(completeRequest()));
      expect(items.map((item) => item.kind)).toEqual(['event', 'error']);
      const last = items[1]!;
      if (last.kind !== 'error' || last.error.kind !== 'status') throw new Error('expected a status');
      expect(last.error.codeName).toBe(errorCase.codeName);
      expect(last.error.pushbackMs).toBe(errorCase.pushbackMs);
    });
  }
});

describe('Admin service', () => {
  const keyInfo: ApiKeyInfo = { keyId: 'acme:0badf00d', name: 'ci', createdAtMs: 1, expiresAtMs: 0, revokedAtMs: 0, state: 'active' };
  const recorded: Array<AdminCall<unknown>> = [];
  const admin: AdminServiceHandler = {
    getPolicy: (call) => (recorded.push(call), Promise.resolve(ok({ json: utf8.encode('{"tenants":{}}') }))),
    getPool: (call) => (recorded.push(call), Promise.resolve(ok({ json: utf8.encode('{"accounts":[]}') }))),
    putTenant: (call) => (recorded.push(call), Promise.resolve(ok({ json: call.request.json }))),
    removeTenant: (call) => (recorded.push(call), Promise.resolve(ok({ removed: call.request.id === 'acme' }))),
    putAccount: (call) => (recorded.push(call), Promise.resolve(err({ kind: 'invalid', field: 'json.limits', reason: 'not a list' }))),
    removeAccount: (call) => (recorded.push(call), Promise.resolve(ok({ removed: false }))),
    createApiKey: (call) => (
      recorded.push(call),
      Promise.resolve(
        ok({
          apiKey: `cp_${call.request.tenant}_secret`,
          keyId: `${call.request.tenant}:0badf00d`,
          key: { ...keyInfo, keyId: `${call.request.tenant}:0badf00d`, name: call.request.name },
        }),
      )
    ),
    listApiKeys: (call) => (recorded.push(call), Promise.resolve(ok({ keys: [keyInfo] }))),
    revokeApiKey: (call) => (recorded.push(call), Promise.resolve(err({ kind: 'not-found', field: 'keyId', reason: 'names no key of tenant acme' }))),
    rotateApiKey: (call) => (
      recorded.push(call),
      Promise.resolve(ok({ apiKey: 'cp_acme_new', key: keyInfo, previous: { ...keyInfo, revokedAtMs: 5, state: 'revoked' } }))
    ),
    enableAccount: (call) => (recorded.push(call), Promise.resolve(ok({ enabled: true }))),
    adjustUsage: (call) => (
      recorded.push(call),
      Promise.resolve(ok({ key: 'tenant/acme/requests/day:1', kind: call.request.kind, amount: call.request.amount, before: 3, after: -1, node: 'n1' }))
    ),
    getAudit: (call) => (
      recorded.push(call),
      Promise.resolve(err({ kind: 'forbidden', reason: 'the token grafana has the role viewer; this method needs admin' }))
    ),
    queryUsage: (call) => {
      recorded.push(call);
      if (call.request.tenant === 'ghost') return Promise.resolve(err({ kind: 'no-ledger', reason: 'this node keeps no usage ledger (no dataDir)' }));
      const totals = { requests: 1, inputTokens: 10, outputTokens: 20, cacheWriteTokens: 3, cacheReadTokens: 4, weightedTokens: 115, costMicros: 0 };
      return Promise.resolve(
        ok({
          node: 'n1',
          side: 'tenant',
          totals,
          groups: [{ key: { model: 'claude-sonnet-4-6' }, totals }],
          groupsTruncated: false,
          rows: [ledgerRow({ requestId: 'r1', costMicros: null })],
          fromAggregates: 0,
        }),
      );
    },
  };

  function adminCall(
    port: number,
    method: keyof AdminServiceMethods,
    request: object,
    metadata: Record<string, string>,
  ): Promise<{ error: ServiceError | null; response: unknown }> {
    const definition = loadCarpoolProto().admin[method] as MethodDefinition<object, unknown>;
    const raw = new Client(`127.0.0.1:${port}`, grpcCredentials.createInsecure());
    const md = new Metadata();
    for (const [name, value] of Object.entries(metadata)) md.set(name, value);
    return new Promise((resolve) => {
      raw.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, md, {}, (error, response) => {
        raw.close();
        resolve({ error, response });
      });
    });
  }

  it('passes the admin token and the request, and maps results and errors', async () => {
    recorded.length = 0;
    running = await startLoopback({ carpool: fakeCarpoolHandler(), admin });
    const put = await adminCall(running.port, 'PutTenant', { id: 'acme', json: Buffer.from('{"tier":"paid"}') }, { authorization: 'Bearer admin-token-1' });
    expect(put.error).toBeNull();
    expect(fromUtf8.decode((put.response as { json: Uint8Array }).json)).toBe('{"tier":"paid"}');
    expect(recorded[0]).toMatchObject({ adminToken: 'admin-token-1', methodPath: '/carpool.v1.Admin/PutTenant', request: { id: 'acme' } });

    const key = await adminCall(running.port, 'CreateApiKey', { tenant: 'acme', name: 'ci' }, { authorization: 'Bearer admin-token-1' });
    expect(key.response).toEqual({
      api_key: 'cp_acme_secret',
      key_id: 'acme:0badf00d',
      key: { key_id: 'acme:0badf00d', name: 'ci', created_at_ms: 1, expires_at_ms: 0, revoked_at_ms: 0, state: 'active' },
    });
    const adjusted = await adminCall(running.port, 'AdjustUsage', { kind: 'credit', amount: 4 }, { authorization: 'Bearer admin-token-1' });
    // `after` is an int64: a counter may read below zero.
    expect(adjusted.response).toMatchObject({ kind: 'credit', amount: 4, before: 3, after: -1 });
    const missing = await adminCall(running.port, 'RevokeApiKey', { key_id: 'acme:00000000' }, { authorization: 'Bearer admin-token-1' });
    expect([missing.error?.code, missing.error?.details]).toEqual([status.NOT_FOUND, 'keyId: names no key of tenant acme']);
    const denied = await adminCall(running.port, 'GetAudit', {}, { authorization: 'Bearer admin-token-1' });
    expect(denied.error?.code).toBe(status.PERMISSION_DENIED);

    const usage = await adminCall(
      running.port,
      'QueryUsage',
      { tenant: 'acme', group_by: ['model'], since_ms: 5, rows: 1 },
      { authorization: 'Bearer admin-token-1' },
    );
    expect(recorded.at(-1)?.request).toEqual({
      side: '',
      tenant: 'acme',
      user: '',
      apiKeyId: '',
      model: '',
      account: '',
      sinceMs: 5,
      untilMs: 0,
      groupBy: ['model'],
      rows: 1,
    });
    const wireTotals = { requests: 1, input_tokens: 10, output_tokens: 20, cache_write_tokens: 3, cache_read_tokens: 4, weighted_tokens: 115, cost_micros: 0 };
    expect(usage.response).toMatchObject({
      node: 'n1',
      side: 'tenant',
      totals: wireTotals,
      groups: [{ key: { model: 'claude-sonnet-4-6' }, totals: wireTotals }],
      from_aggregates: 0,
    });
    // proto3 has no null: a row without a user, key or price says so with '' and -1.
    expect((usage.response as { rows: unknown[] }).rows[0]).toMatchObject({
      request_id: 'r1',
      role: 'local',
      user: '',
      api_key_id: '',
      account: 'acct-1',
      cost_micros: -1,
      estimated: false,
    });
    const noLedger = await adminCall(running.port, 'QueryUsage', { tenant: 'ghost' }, { authorization: 'Bearer admin-token-1' });
    expect([noLedger.error?.code, noLedger.error?.details]).toEqual([status.FAILED_PRECONDITION, 'this node keeps no usage ledger (no dataDir)']);

    const bad = await adminCall(running.port, 'PutAccount', { id: 'a1', json: Buffer.from('{}') }, {});
    expect(bad.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.error?.details).toBe('invalid json.limits: not a list');
    expect(recorded.at(-1)?.adminToken).toBeUndefined();
  });

  it("refuses a tenant's key before the handler", async () => {
    recorded.length = 0;
    running = await startLoopback({ carpool: fakeCarpoolHandler(), admin });
    const refused = await adminCall(running.port, 'PutTenant', { id: 'acme', json: Buffer.from('{}') }, { 'x-api-key': testApiKey });
    expect(refused.error?.code).toBe(status.UNAUTHENTICATED);
    expect(refused.error?.details).toBe('missing or unknown admin token');
    expect(recorded).toHaveLength(0);
  });

  it('is not served when no admin handler is given', async () => {
    running = await startLoopback({ carpool: fakeCarpoolHandler() });
    const result = await adminCall(running.port, 'CreateApiKey', { tenant: 'acme' }, { authorization: 'Bearer t' });
    expect(result.error?.code).toBe(status.UNIMPLEMENTED);
  });
});
