// Proves close() lets calls in flight finish within its grace period, cuts the ones still running
// after it (with the usage they had seen), refuses new calls, leaves no connection or timer
// behind, and that the in-flight bound refuses calls rather than queue them.
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { countingTimers, type LocalUpstream, recordedEvents, recordedMessage, sleep, sseHeaders, sseText, startUpstream } from './local-upstream.js';

let server: LocalUpstream | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const target = (upstream: LocalUpstream): UpstreamTarget => ({ baseUrl: upstream.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-close' } });

describe('UpstreamClient.close', () => {
  it('waits for a call in flight, then refuses new calls and closes every connection', async () => {
    server = await startUpstream(async (_req, res) => {
      await sleep(100);
      res.end(JSON.stringify(recordedMessage));
    });
    const timers = countingTimers();
    const client = new UpstreamClient({ timers });
    const call = client.complete(target(server), request);
    await sleep(20);
    let closed = false;
    const closing = client.close(5_000).then(() => (closed = true));
    await sleep(20);
    expect(closed).toBe(false);
    expect(await client.complete(target(server), request)).toMatchObject({ ok: false, error: { kind: 'unavailable', reason: 'closed', feedback: undefined } });
    expect((await call).ok).toBe(true);
    await closing;
    expect(server.requests.length).toBe(1);
    expect(await server.settleConnections()).toBe(0);
    expect(timers.pending()).toBe(0);
  });

  it('cuts a stream still running when the grace period ends, keeping its usage', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, sseHeaders);
      res.write(sseText(recordedEvents.slice(0, 2)));
    });
    const timers = countingTimers();
    const client = new UpstreamClient({ timers });
    const seen: string[] = [];
    const call = client.stream(target(server), request, { onEvent: (event) => void seen.push(event.event) });
    await sleep(50);
    const started = Date.now();
    await client.close(100);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await call).toMatchObject({
      ok: false,
      error: { kind: 'unavailable', reason: 'closed', usage: { input: 25, output: 1, cacheWrite: 100, cacheRead: 2000 }, feedback: { kind: 'success' } },
    });
    expect(seen).toEqual(['message_start', 'content_block_start']);
    expect(await server.settleConnections()).toBe(0);
    expect(timers.pending()).toBe(0);
  });

  it('refuses calls past the in-flight bound instead of queueing them', async () => {
    server = await startUpstream(async (_req, res) => {
      await sleep(50);
      res.end(JSON.stringify(recordedMessage));
    });
    const client = new UpstreamClient({ callsInFlightMax: 1 });
    const first = client.complete(target(server), request);
    expect(await client.complete(target(server), request)).toMatchObject({ ok: false, error: { kind: 'unavailable', reason: 'calls-in-flight-max' } });
    expect((await first).ok).toBe(true);
    expect((await client.complete(target(server), request)).ok).toBe(true);
    await client.close(1_000);
  });
});
