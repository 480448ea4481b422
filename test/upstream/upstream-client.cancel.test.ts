// Proves a call whose signal aborted before it was sent is never sent; once sent, the caller's
// abort drains it to its final usage by default, before the headers as after them (the server
// writes it to the end while the caller sees nothing more, even with a sink stuck on a write);
// in abort mode it cuts the connection at once, before the headers too, and a stream is charged
// its input and the output it relayed, flagged estimated.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import {
  countingTimers,
  type LocalUpstream,
  type RecordedRequest,
  recordedEvents,
  recordedMessage,
  sleep,
  sseHeaders,
  sseText,
  startUpstream,
} from './local-upstream.js';

let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const target = (upstream: LocalUpstream): UpstreamTarget => ({ baseUrl: upstream.baseUrl, credential: { kind: 'oauth', token: 'oauth-cancel' } });

/** Writes the recorded events 15 ms apart, stopping if the client goes away. */
async function paced(_req: RecordedRequest, res: ServerResponse): Promise<void> {
  res.writeHead(200, sseHeaders);
  for (const event of recordedEvents) {
    if (res.destroyed) return;
    res.write(sseText([event]));
    await sleep(15);
  }
  res.end();
}

describe('cancellation', () => {
  it('in abort mode, cancels before the headers: the request is aborted and the feedback is empty', async () => {
    server = await startUpstream(() => undefined);
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const controller = new AbortController();
    const pending = client.complete(target(server), request, { signal: controller.signal, onCancel: 'abort' });
    await sleep(50);
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, error: { kind: 'cancelled', feedback: undefined, usage: { input: 0, output: 0 }, estimated: false } });
    expect(await server.responseEnds[0]).toBe('closed-early');
    expect(await server.settleConnections()).toBe(0);
    expect(timers.pending()).toBe(0);
  });

  it('drains a call cancelled before its headers: the answer is read when it comes, for its usage', async () => {
    const controller = new AbortController();
    server = await startUpstream(async (_req, res) => {
      // The caller leaves while the upstream still generates the whole answer.
      await sleep(30);
      controller.abort();
      await sleep(30);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(recordedMessage));
    });
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const result = await client.complete(target(server), request, { signal: controller.signal });
    expect(result).toMatchObject({ ok: true, value: { cancelled: true, usage: { input: 30, output: 7 } } });
    expect(await server.responseEnds[0]).toBe('finished');
    expect(timers.pending()).toBe(0);
  });

  it('does not send a call whose signal is already aborted', async () => {
    server = await startUpstream((_req, res) => res.end(JSON.stringify(recordedMessage)));
    client = new UpstreamClient();
    const result = await client.stream(target(server), request, { signal: AbortSignal.abort(), onEvent: () => undefined });
    expect(result).toMatchObject({ ok: false, error: { kind: 'cancelled' } });
    await sleep(20);
    expect(server.requests.length).toBe(0);
  });

  it('drains a stream cancelled mid-way to its full usage, delivering nothing more', async () => {
    server = await startUpstream(paced);
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const controller = new AbortController();
    const seen: string[] = [];
    const result = await client.stream(target(server), request, {
      signal: controller.signal,
      onEvent: (event) => {
        seen.push(event.event);
        if (event.event === 'content_block_start') controller.abort();
      },
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.cancelled).toBe(true);
    expect(result.value.usage).toEqual({ input: 25, output: 42, cacheWrite: 100, cacheRead: 2000 });
    expect(seen).toEqual(['message_start', 'content_block_start']);
    // The server wrote the whole stream: the client read it rather than hang up.
    expect(await server.responseEnds[0]).toBe('finished');
    expect(timers.pending()).toBe(0);
  });

  it('drains even when the sink is stuck on a write that will never finish', async () => {
    server = await startUpstream(paced);
    client = new UpstreamClient();
    const controller = new AbortController();
    const result = await client.stream(target(server), request, {
      signal: controller.signal,
      onEvent: (event) => {
        if (event.event !== 'ping') return undefined;
        setTimeout(() => controller.abort(), 10);
        return new Promise<void>(() => undefined);
      },
    });
    expect(result).toMatchObject({ ok: true, value: { cancelled: true, usage: { output: 42 } } });
    expect(await server.responseEnds[0]).toBe('finished');
  });

  it('treats a sink that throws as the caller going away, and drains', async () => {
    server = await startUpstream(paced);
    client = new UpstreamClient();
    let calls = 0;
    const result = await client.stream(target(server), request, {
      onEvent: () => {
        calls++;
        throw new Error('the downstream socket is gone');
      },
    });
    expect(calls).toBe(1);
    expect(result).toMatchObject({ ok: true, value: { cancelled: true, usage: { output: 42 } } });
  });

  it('cuts the connection at once in hard-abort mode, charging the input and the output relayed, estimated', async () => {
    server = await startUpstream(paced);
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const controller = new AbortController();
    let relayedText = '';
    const result = await client.stream(target(server), request, {
      signal: controller.signal,
      onCancel: 'abort',
      onEvent: (event) => {
        const data = JSON.parse(event.data) as { delta?: { text?: string } };
        relayedText += data.delta?.text ?? '';
        if (event.event === 'content_block_delta') controller.abort();
      },
    });
    // message_start's output placeholder is not counted; the relayed delta's text is, at four bytes a token.
    expect(relayedText.length).toBeGreaterThan(0);
    expect(result).toMatchObject({
      ok: false,
      error: {
        kind: 'cancelled',
        usage: { input: 25, output: Math.ceil(new TextEncoder().encode(relayedText).length / 4), cacheWrite: 100, cacheRead: 2000 },
        estimated: true,
        feedback: { kind: 'success' },
        requestId: 'req_stream_1',
      },
    });
    expect(await server.responseEnds[0]).toBe('closed-early');
    expect(await server.settleConnections()).toBe(0);
    expect(timers.pending()).toBe(0);
  });

  it('reads a non-streaming body anyway when cancelled after its headers', async () => {
    const controller = new AbortController();
    server = await startUpstream(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify(recordedMessage).slice(0, 10));
      // By now the client has the headers: the cancel lands mid-body.
      await sleep(30);
      controller.abort();
      await sleep(30);
      res.end(JSON.stringify(recordedMessage).slice(10));
    });
    client = new UpstreamClient();
    const result = await client.complete(target(server), request, { signal: controller.signal });
    expect(result).toMatchObject({ ok: true, value: { cancelled: true, usage: { input: 30, output: 7 } } });
  });
});
