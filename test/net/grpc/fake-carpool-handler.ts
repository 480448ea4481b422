// An in-memory CarpoolHandler for the gRPC adapter's tests: it records every call and answers
// with canned results that any test can override per method.
import { ok } from '../../../src/core/result.js';
import type { CarpoolCall, CarpoolHandler, CompleteRequest, SseEvent, StreamSink, Usage } from '../../../src/net/grpc/carpool-handler.js';
import { CarpoolGrpcServer, type CarpoolGrpcServerOptions } from '../../../src/net/grpc/grpc-server.js';
import { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';

export const utf8 = new TextEncoder();
export const fromUtf8 = new TextDecoder();

export const cannedUsage: Usage = { inputTokens: 11, outputTokens: 22, cacheCreationInputTokens: 33, cacheReadInputTokens: 44 };

/** The events the default StreamComplete sends, in order, as an upstream would. */
export const cannedEvents: readonly SseEvent[] = [
  { type: 'message_start', dataJson: utf8.encode('{"type":"message_start","message":{"id":"msg_1"}}') },
  { type: 'content_block_start', dataJson: utf8.encode('{"type":"content_block_start","index":0}') },
  { type: 'content_block_delta', dataJson: utf8.encode('{"type":"content_block_delta","delta":{"text":"héllo ✓"}}') },
  { type: 'content_block_stop', dataJson: utf8.encode('{"type":"content_block_stop","index":0}') },
  { type: 'message_delta', dataJson: utf8.encode('{"type":"message_delta","usage":{"output_tokens":22}}') },
  { type: 'message_stop', dataJson: utf8.encode('{"type":"message_stop"}') },
];

export interface RecordedCall {
  readonly method: keyof CarpoolHandler;
  readonly call: CarpoolCall<unknown>;
}

export type FakeCarpoolHandler = CarpoolHandler & { readonly calls: RecordedCall[] };

/** A handler that answers every method with canned values unless `overrides` replaces it. */
export function fakeCarpoolHandler(overrides: Partial<CarpoolHandler> = {}): FakeCarpoolHandler {
  const calls: RecordedCall[] = [];
  const defaults: CarpoolHandler = {
    complete: (call) =>
      Promise.resolve(
        ok({
          requestId: call.request.requestId,
          messageJson: utf8.encode(JSON.stringify({ type: 'message', id: `msg_${call.request.requestId}` })),
          usage: cannedUsage,
          servedRegion: 'eu-west',
        }),
      ),
    streamComplete: async (call: CarpoolCall<CompleteRequest>, sink: StreamSink) => {
      for (const event of cannedEvents) await sink.send(event);
      return ok({ requestId: call.request.requestId, usage: cannedUsage, servedRegion: 'eu-west' });
    },
    countTokens: (call) => Promise.resolve(ok({ inputTokens: call.request.requestJson.length })),
    getUsage: (call) =>
      Promise.resolve(
        ok({
          tenant: 'acme',
          limits: [
            {
              scope: 'tenant',
              metric: 'weighted_tokens',
              window: 'day',
              sliding: false,
              mode: call.request.consistency,
              limit: 1_000_000,
              used: 250,
              remaining: 999_750,
              resetsAtMs: 1_800_000_000_000,
            },
          ],
          lastMinute: cannedUsage,
        }),
      ),
  };
  const pick = { ...defaults, ...overrides };
  return {
    calls,
    complete: (call) => {
      calls.push({ method: 'complete', call });
      return pick.complete(call);
    },
    streamComplete: (call, sink) => {
      calls.push({ method: 'streamComplete', call });
      return pick.streamComplete(call, sink);
    },
    countTokens: (call) => {
      calls.push({ method: 'countTokens', call });
      return pick.countTokens(call);
    },
    getUsage: (call) => {
      calls.push({ method: 'getUsage', call });
      return pick.getUsage(call);
    },
  };
}

export interface Running {
  readonly server: CarpoolGrpcServer;
  readonly port: number;
  readonly client: CarpoolClient;
  readonly logs: string[];
  close(): Promise<void>;
}

export const testApiKey = 'cp_acme_0123456789abcdef0123456789abcdef';

/** A server on 127.0.0.1 with a free port, and a client for it that sends `testApiKey`. */
export async function startLoopback(options: Partial<CarpoolGrpcServerOptions> & Pick<CarpoolGrpcServerOptions, 'carpool'>): Promise<Running> {
  const logs: string[] = [];
  const server = new CarpoolGrpcServer({ log: (line) => logs.push(line), ...options });
  const port = await server.start({ host: '127.0.0.1', port: 0 });
  const client = new CarpoolClient({ target: `127.0.0.1:${port}`, apiKey: testApiKey });
  return {
    server,
    port,
    client,
    logs,
    async close() {
      client.close();
      await server.stop(0);
    },
  };
}

export function completeRequest(overrides: Partial<CompleteRequest> = {}): CompleteRequest {
  return {
    requestId: 'req-1',
    requestJson: utf8.encode('{"model":"claude-test","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'),
    anthropicVersion: '2023-06-01',
    anthropicBeta: '',
    user: 'alice',
    ...overrides,
  };
}
