// Proves the gRPC endpoint's behaviour around the handler.
// Cancellation and deadlines fire the handler's signal and end a waiting sink; a throwing handler
// becomes INTERNAL while the server keeps serving; grpc-js enforces the message bounds; the
// in-flight bound refuses with pushback; a slow reader makes the sink wait instead of buffering;
// stop() cancels stragglers; and health and reflection answer over the wire.
import { fileURLToPath } from 'node:url';
import { Client, credentials as grpcCredentials, Metadata, type MethodDefinition, type ServiceError, status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../src/core/result.js';
import { grpcStreamEventsBufferedMax } from '../../../src/core/limits.js';
import { type AdminServiceHandler, CallEndedError, type StreamSink } from '../../../src/net/grpc/carpool-handler.js';
import type { StreamItem } from '../../../src/net/grpc/carpool-client.js';
import { sleep, until, within } from '../../support/wait.js';
import { cannedEvents, cannedUsage, completeRequest, fakeCarpoolHandler, type Running, startLoopback } from './fake-carpool-handler.js';

let running: Running | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** Resolves with the signal's reason once it fires; the caller bounds the wait with `within`. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

function statusOf(item: StreamItem | undefined): string | undefined {
  return item?.kind === 'error' && item.error.kind === 'status' ? item.error.codeName : undefined;
}

describe('cancellation and deadlines', () => {
  it("a client that leaves mid-stream fires the handler's signal, and the sink refuses further events", async () => {
    let reason: unknown;
    let sendAfterCancel: unknown;
    const handler = fakeCarpoolHandler({
      streamComplete: async (call, sink) => {
        await sink.send(cannedEvents[0]!);
        reason = await within(aborted(call.signal), 'the handler signal');
        sendAfterCancel = await sink.send(cannedEvents[1]!).then(
          () => 'sent',
          (error: unknown) => error,
        );
        return ok({ requestId: 'x', usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    for await (const item of running.client.streamComplete(completeRequest())) {
      expect(item.kind).toBe('event');
      break;
    }
    await until(() => sendAfterCancel !== undefined, 'the handler to finish');
    expect(reason).toBeInstanceOf(CallEndedError);
    expect((reason as CallEndedError).reason).toBe('cancelled');
    expect(sendAfterCancel).toBeInstanceOf(CallEndedError);
    await until(() => running!.server.stats().callsInFlight === 0, 'the call to leave');
  });

  it("a unary call cancelled by the client's AbortSignal fires the handler's signal", async () => {
    let reason: unknown;
    const handler = fakeCarpoolHandler({
      complete: async (call) => {
        reason = await within(aborted(call.signal), 'the handler signal');
        return ok({ requestId: 'x', messageJson: new Uint8Array(), usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    const controller = new AbortController();
    const pending = running.client.complete(completeRequest(), { signal: controller.signal });
    await until(() => handler.calls.length === 1, 'the call to reach the handler');
    controller.abort();
    const result = await pending;
    expect(!result.ok && result.error.kind === 'status' && result.error.codeName).toBe('CANCELLED');
    await until(() => reason !== undefined, 'the handler to see the cancellation');
    expect((reason as CallEndedError).reason).toBe('cancelled');
  });

  it("the deadline fires the handler's signal, and the client gets DEADLINE_EXCEEDED", async () => {
    let reason: unknown;
    const handler = fakeCarpoolHandler({
      complete: async (call) => {
        reason = await within(aborted(call.signal), 'the handler signal');
        return ok({ requestId: 'x', messageJson: new Uint8Array(), usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    const started = Date.now();
    const result = await running.client.complete(completeRequest(), { deadlineMs: started + 200 });
    expect(!result.ok && result.error.kind === 'status' && result.error.codeName).toBe('DEADLINE_EXCEEDED');
    await until(() => reason !== undefined, 'the handler to see the deadline');
    expect((reason as CallEndedError).reason).toBe('deadline');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('a sink blocked by a reader that never reads is released, rejected, at the deadline', async () => {
    let outcome: unknown;
    const payload = new Uint8Array(64 * 1024);
    const handler = fakeCarpoolHandler({
      streamComplete: async (_call, sink) => {
        try {
          for (let i = 0; i < 10_000; i++) await sink.send({ type: 'content_block_delta', dataJson: payload });
          outcome = 'all sent';
        } catch (error) {
          outcome = error;
        }
        return ok({ requestId: 'x', usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    const iterator = running.client.streamComplete(completeRequest(), { deadlineMs: Date.now() + 300 })[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.kind).toBe('event');
    await until(() => outcome !== undefined, 'the sink to be released');
    expect(outcome).toBeInstanceOf(CallEndedError);
    expect((outcome as CallEndedError).reason).toBe('deadline');
    await iterator.return(undefined);
  });

  it('a sink kept after the handler returned refuses events as finished', async () => {
    let kept: StreamSink | undefined;
    const handler = fakeCarpoolHandler({
      streamComplete: (call, sink) => {
        kept = sink;
        return Promise.resolve(ok({ requestId: call.request.requestId, usage: cannedUsage, servedRegion: 'eu' }));
      },
    });
    running = await startLoopback({ carpool: handler });
    const items: StreamItem[] = [];
    for await (const item of running.client.streamComplete(completeRequest())) items.push(item);
    expect(items.map((item) => item.kind)).toEqual(['summary']);
    await expect(kept!.send(cannedEvents[0]!)).rejects.toMatchObject({ kind: 'call-ended', reason: 'finished' });
  });
});

describe('handler failures', () => {
  it('a handler that throws or rejects becomes INTERNAL with a generic message and a log line, and the server keeps serving', async () => {
    let mode: 'throw' | 'reject' | 'fine' = 'throw';
    const handler = fakeCarpoolHandler({
      complete: (call) => {
        if (mode === 'throw') throw new Error('boom: secret detail');
        if (mode === 'reject') return Promise.reject(new TypeError('rejected: secret detail'));
        return Promise.resolve(ok({ requestId: call.request.requestId, messageJson: new Uint8Array([1]), usage: cannedUsage, servedRegion: 'eu' }));
      },
      streamComplete: async (_call, sink) => {
        await sink.send(cannedEvents[0]!);
        throw new Error('stream boom');
      },
    });
    running = await startLoopback({ carpool: handler });

    for (const next of ['throw', 'reject'] as const) {
      mode = next;
      const result = await running.client.complete(completeRequest());
      expect(result.ok).toBe(false);
      if (result.ok || result.error.kind !== 'status') throw new Error('expected a status');
      expect(result.error.codeName).toBe('INTERNAL');
      expect(result.error.details).toBe('internal error');
    }
    const items: StreamItem[] = [];
    for await (const item of running.client.streamComplete(completeRequest())) items.push(item);
    expect(items.map((item) => item.kind)).toEqual(['event', 'error']);
    expect(statusOf(items[1])).toBe('INTERNAL');

    mode = 'fine';
    expect((await running.client.complete(completeRequest())).ok).toBe(true);
    expect(running.server.stats().handlerFailures).toBe(3);
    expect(running.logs.filter((line) => line.includes('/carpool.v1.Carpool/Complete handler failed'))).toHaveLength(2);
    expect(running.logs.some((line) => line.includes('boom: secret detail'))).toBe(true);
    expect(running.logs.some((line) => line.includes('stream boom'))).toBe(true);
  });

  it('a response the handler built wrong (a negative count) is INTERNAL, not garbage on the wire', async () => {
    const handler = fakeCarpoolHandler({
      countTokens: () => Promise.resolve(ok({ inputTokens: -1 })),
    });
    running = await startLoopback({ carpool: handler });
    const result = await running.client.countTokens({ requestJson: new Uint8Array(), anthropicVersion: '', anthropicBeta: '' });
    expect(!result.ok && result.error.kind === 'status' && result.error.codeName).toBe('INTERNAL');
    expect(running.logs.some((line) => line.includes('input_tokens is a non-negative safe integer'))).toBe(true);
  });
});

describe('bounds', () => {
  it('grpc-js refuses a request over the receive bound with RESOURCE_EXHAUSTED before the handler, then serves on', async () => {
    const handler = fakeCarpoolHandler();
    running = await startLoopback({ carpool: handler, receiveMessageBytesMax: 64 * 1024 });
    const result = await running.client.complete(completeRequest({ requestJson: new Uint8Array(100 * 1024) }));
    expect(!result.ok && result.error.kind === 'status' && result.error.codeName).toBe('RESOURCE_EXHAUSTED');
    expect(handler.calls).toHaveLength(0);
    expect((await running.client.complete(completeRequest())).ok).toBe(true);
  });

  it('grpc-js refuses a response over the send bound with RESOURCE_EXHAUSTED', async () => {
    const handler = fakeCarpoolHandler({
      complete: () => Promise.resolve(ok({ requestId: 'x', messageJson: new Uint8Array(100 * 1024), usage: cannedUsage, servedRegion: 'eu' })),
    });
    running = await startLoopback({ carpool: handler, sendMessageBytesMax: 64 * 1024 });
    const result = await running.client.complete(completeRequest());
    expect(!result.ok && result.error.kind === 'status' && result.error.codeName).toBe('RESOURCE_EXHAUSTED');
  });

  it('refuses calls past the in-flight bound with UNAVAILABLE and pushback, and takes them again once one leaves', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const handler = fakeCarpoolHandler({
      complete: async (call) => {
        await within(held, 'the test to release the held call');
        return ok({ requestId: call.request.requestId, messageJson: new Uint8Array(), usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler, callsInFlightMax: 1 });
    const first = running.client.complete(completeRequest());
    await until(() => handler.calls.length === 1, 'the first call to be held');
    const second = await running.client.complete(completeRequest());
    expect(second.ok).toBe(false);
    if (second.ok || second.error.kind !== 'status') throw new Error('expected a status');
    expect(second.error.codeName).toBe('UNAVAILABLE');
    expect(second.error.pushbackMs).toBe(1_000);
    expect(running.server.stats()).toMatchObject({ callsInFlight: 1, callsRefusedInFlight: 1 });
    release();
    expect((await first).ok).toBe(true);
    expect((await running.client.complete(completeRequest())).ok).toBe(true);
  });

  it('a reader that stops reading makes the sink wait instead of buffering, and nothing is lost once it reads again', async () => {
    const eventsTotal = 400;
    const eventBytes = 32 * 1024;
    let sent = 0;
    let waiting = false;
    const handler = fakeCarpoolHandler({
      streamComplete: async (call, sink) => {
        for (let i = 0; i < eventsTotal; i++) {
          const dataJson = new Uint8Array(eventBytes);
          new DataView(dataJson.buffer).setUint32(0, i);
          waiting = true;
          await sink.send({ type: 'content_block_delta', dataJson });
          waiting = false;
          sent = i + 1;
        }
        return ok({ requestId: call.request.requestId, usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    const iterator = running.client.streamComplete(completeRequest())[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.kind).toBe('event');

    // Wait until the handler makes no more progress: it must be parked in a send.
    let last = -1;
    for (let round = 0; round < 50 && sent !== last; round++) {
      last = sent;
      await sleep(100);
    }
    const stalledAt = sent;
    expect(waiting).toBe(true);
    expect(stalledAt).toBeLessThan(eventsTotal / 4);
    // What is in flight: the sink's writable (its high-water mark), the HTTP/2 windows (about
    // 64 KiB each way, two events) and the client's readable (16), far from the 400 events.
    expect(stalledAt).toBeLessThanOrEqual(4 * grpcStreamEventsBufferedMax);

    const indexOf = (bytes: Uint8Array): number => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
    const indexes: number[] = first.value?.kind === 'event' ? [indexOf(first.value.event.dataJson)] : [];
    let summaries = 0;
    for (let step = 0; step < eventsTotal + 2; step++) {
      const next = await iterator.next();
      if (next.done === true) break;
      if (next.value.kind === 'event') {
        const bytes = next.value.event.dataJson;
        expect(bytes.length).toBe(eventBytes);
        indexes.push(indexOf(bytes));
      } else {
        expect(next.value.kind).toBe('summary');
        summaries++;
      }
    }
    expect(indexes).toEqual(Array.from({ length: eventsTotal }, (_, i) => i));
    expect(summaries).toBe(1);
    expect(sent).toBe(eventsTotal);
  });
});

describe('lifecycle, health and reflection', () => {
  it('stop() waits out its grace, then cancels a call that would not end, firing its signal', async () => {
    let reason: unknown;
    const handler = fakeCarpoolHandler({
      complete: async (call) => {
        reason = await within(aborted(call.signal), 'the handler signal', 5_000);
        return ok({ requestId: 'x', messageJson: new Uint8Array(), usage: cannedUsage, servedRegion: 'eu' });
      },
    });
    running = await startLoopback({ carpool: handler });
    const pending = running.client.complete(completeRequest());
    await until(() => handler.calls.length === 1, 'the call to reach the handler');
    const started = Date.now();
    await within(running.server.stop(150), 'stop');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const result = await pending;
    expect(result.ok).toBe(false);
    await until(() => reason !== undefined, 'the handler to be cancelled');
    expect((reason as CallEndedError).reason).toBe('cancelled');
  });

  it('answers health checks NOT_SERVING until told otherwise, and follows setServing', async () => {
    running = await startLoopback({ carpool: fakeCarpoolHandler() });
    const check = healthService.Check as MethodDefinition<{ service: string }, { status: string }>;
    const health = new Client(`127.0.0.1:${running.port}`, grpcCredentials.createInsecure());
    const ask = (name: string): Promise<string> =>
      new Promise((resolve) => {
        health.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service: name }, new Metadata(), {}, (error, response) =>
          resolve(error !== null ? status[error.code] : String(response?.status)),
        );
      });
    try {
      expect(await ask('')).toBe('NOT_SERVING');
      expect(await ask('carpool.v1.Carpool')).toBe('NOT_SERVING');
      running.server.setServing(true);
      expect(await ask('')).toBe('SERVING');
      expect(await ask('carpool.v1.Carpool')).toBe('SERVING');
      expect(await ask('no.such.Service')).toBe('NOT_FOUND');
      running.server.setServing(false);
      expect(await ask('carpool.v1.Carpool')).toBe('NOT_SERVING');
    } finally {
      health.close();
    }
  });

  async function reflect(port: number, requests: readonly object[]): Promise<ReflectionResponse[]> {
    const reflectionProto = fileURLToPath(new URL('../../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', import.meta.url));
    const definition = loadSync(reflectionProto, { keepCase: true, defaults: true, oneofs: true });
    const info = (definition['grpc.reflection.v1.ServerReflection'] as Record<string, MethodDefinition<object, ReflectionResponse>>).ServerReflectionInfo!;
    const client = new Client(`127.0.0.1:${port}`, grpcCredentials.createInsecure());
    const call = client.makeBidiStreamRequest(info.path, info.requestSerialize, info.responseDeserialize, new Metadata(), {});
    const responses: ReflectionResponse[] = [];
    call.on('data', (response: ReflectionResponse) => responses.push(response));
    const ended = new Promise<ServiceError | undefined>((resolve) => {
      call.on('error', resolve);
      call.on('end', () => resolve(undefined));
    });
    for (const request of requests) call.write(request);
    call.end();
    expect(await within(ended, 'the reflection stream')).toBeUndefined();
    client.close();
    return responses;
  }

  it('serves reflection: the served services are listed and descriptors keep the .proto field names', async () => {
    running = await startLoopback({ carpool: fakeCarpoolHandler() });
    const responses = await reflect(running.port, [{ list_services: '*' }, { file_containing_symbol: 'carpool.v1.CompleteRequest' }]);
    const services = responses[0]?.list_services_response?.service.map((entry) => entry.name) ?? [];
    expect(services.sort()).toEqual(['carpool.v1.Carpool', 'grpc.health.v1.Health']);
    const files = responses[1]?.file_descriptor_response?.file_descriptor_proto ?? [];
    expect(files.length).toBeGreaterThan(0);
    const text = Buffer.concat(files).toString('latin1');
    expect(text).toContain('request_id');
    expect(text).not.toContain('requestId');
  });

  it('lists the Admin service in reflection when it is served', async () => {
    const admin = new Proxy({}, { get: () => () => Promise.reject(new Error('not called')) }) as AdminServiceHandler;
    running = await startLoopback({ carpool: fakeCarpoolHandler(), admin });
    const responses = await reflect(running.port, [{ list_services: '*' }]);
    const services = responses[0]?.list_services_response?.service.map((entry) => entry.name) ?? [];
    expect(services.sort()).toEqual(['carpool.v1.Admin', 'carpool.v1.Carpool', 'grpc.health.v1.Health']);
  });
});

interface ReflectionResponse {
  readonly list_services_response?: { readonly service: ReadonlyArray<{ readonly name: string }> } | null;
  readonly file_descriptor_response?: { readonly file_descriptor_proto: readonly Buffer[] } | null;
}
