// Proves stream() delivers events in order as they arrive even when the server writes one byte
// at a time, tolerates unknown events, waits for the sink before reading on (backpressure),
// rebuilds the message with usage from the cumulative message_delta, and ends an upstream error
// event with a stream-error carrying the right feedback and the usage so far.
import { afterEach, describe, expect, it } from 'vitest';
import type { SseEvent } from '../../src/upstream/sse-parser.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { upstreamIdleTimeoutMs } from '../../src/core/limits.js';
import {
  countingTimers,
  type LocalUpstream,
  nextTurn,
  recordedEvents,
  recordedStream,
  sleep,
  sseHeaders,
  sseText,
  startUpstream,
  writePieces,
} from './local-upstream.js';

let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const target = (upstream: LocalUpstream): UpstreamTarget => ({ baseUrl: upstream.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-stream' } });

describe('UpstreamClient.stream', () => {
  it('delivers every event in order from a server that writes byte by byte, and rebuilds the message', async () => {
    server = await startUpstream(async (_req, res) => {
      res.writeHead(200, sseHeaders);
      await writePieces(res, recordedStream, Array.from(recordedStream.keys()));
      res.end();
    });
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const seen: SseEvent[] = [];
    const result = await client.stream(target(server), request, { onEvent: (event) => void seen.push(event) });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    // Unknown events (and pings) pass through to the sink; MessageStream ignores them.
    expect(seen.map((e) => e.event)).toEqual(recordedEvents.map((e) => e.event));
    expect(seen.map((e) => JSON.parse(e.data) as unknown)).toEqual(recordedEvents.map((e) => e.data));
    expect(result.value.message.content.map((b) => b.text)).toEqual(['Bonjour, le monde \u00e9t\u00e9 \u{1F600}']);
    expect(result.value.message.stopReason).toBe('end_turn');
    // Output tokens from the last cumulative message_delta; the rest from message_start.
    expect(result.value.usage).toEqual({ input: 25, output: 42, cacheWrite: 100, cacheRead: 2000 });
    expect(result.value).toMatchObject({ requestId: 'req_stream_1', cancelled: false, feedback: { kind: 'success' } });
    expect(JSON.parse(server.requests[0]?.body ?? '')).toMatchObject({ stream: true });
    expect(server.requests[0]?.headers.accept).toBe('text/event-stream');
    expect(timers.pending()).toBe(0);
  });

  it('waits for the sink before delivering the next event', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, sseHeaders);
      res.end(recordedStream);
    });
    client = new UpstreamClient();
    let busy = false;
    let overlapped = false;
    let delivered = 0;
    const result = await client.stream(target(server), request, {
      onEvent: async () => {
        overlapped ||= busy;
        busy = true;
        await sleep(2);
        busy = false;
        delivered++;
      },
    });
    expect(result.ok).toBe(true);
    expect(delivered).toBe(recordedEvents.length);
    expect(overlapped).toBe(false);
  });

  it('ends an overloaded_error event mid-stream with a stream-error, overloaded feedback and the usage so far', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, sseHeaders);
      res.end(
        sseText([...recordedEvents.slice(0, 4), { event: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }]),
      );
    });
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const seen: string[] = [];
    const result = await client.stream(target(server), request, { onEvent: (event) => void seen.push(event.event) });
    expect(result).toMatchObject({
      ok: false,
      error: {
        kind: 'stream-error',
        errorType: 'overloaded_error',
        message: 'Overloaded',
        feedback: { kind: 'overloaded' },
        usage: { input: 25, output: 1, cacheWrite: 100, cacheRead: 2000 },
        requestId: 'req_stream_1',
      },
    });
    // The error event itself is reported by the result, not delivered.
    expect(seen).toEqual(recordedEvents.slice(0, 4).map((e) => e.event));
    expect(timers.pending()).toBe(0);
  });

  it('returns the connection of a finished stream to the pool for the next call', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, sseHeaders);
      res.end(recordedStream);
    });
    client = new UpstreamClient();
    for (let i = 0; i < 3; i++) {
      expect((await client.stream(target(server), request, { onEvent: () => undefined })).ok).toBe(true);
      await nextTurn();
    }
    expect(server.connectionsTotal()).toBe(1);
  });

  it('succeeds when the upstream keeps the body open after message_stop, ignoring what follows', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, sseHeaders);
      res.write(recordedStream);
      res.write(sseText([{ event: 'ping', data: { type: 'ping' } }]));
    });
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const seen: string[] = [];
    const started = Date.now();
    const result = await client.stream(target(server), request, { onEvent: (event) => void seen.push(event.event) });
    expect(result).toMatchObject({ ok: true, value: { usage: { output: 42 } } });
    expect(seen.at(-1)).toBe('message_stop');
    // Cut after the short after-stop grace, not the idle timeout; the connection is not reused.
    expect(Date.now() - started).toBeLessThan(upstreamIdleTimeoutMs);
    expect(await server.settleConnections(2_000)).toBe(0);
    expect(timers.pending()).toBe(0);
  });

  it('reads an error status on a stream request like complete() does', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(529, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    });
    client = new UpstreamClient();
    const result = await client.stream(target(server), request, { onEvent: () => undefined });
    expect(result).toMatchObject({ ok: false, error: { kind: 'http-status', status: 529, errorType: 'overloaded_error', feedback: { kind: 'overloaded' } } });
  });
});
