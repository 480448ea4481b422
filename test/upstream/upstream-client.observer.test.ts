// Proves the upstream client reports each dispatched call's timings to its observer once.
// They come in the order they happen: the time to the headers, a stream's time to its first
// content_block_delta (after the headers, not before the delay the server put before that event),
// and the whole call with its outcome. A call refused before dispatch is not timed.
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamMode, UpstreamObserver, UpstreamOutcome } from '../../src/observe/gateway-observer.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { type LocalUpstream, recordedEvents, recordedMessage, sleep, sseHeaders, sseText, startUpstream } from './local-upstream.js';

let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

type Seen =
  | { readonly what: 'headers'; readonly mode: UpstreamMode; readonly ms: number }
  | { readonly what: 'first-token'; readonly ms: number }
  | { readonly what: 'call'; readonly mode: UpstreamMode; readonly outcome: UpstreamOutcome; readonly ms: number };

/** Records what it is told, on the real monotonic clock. */
function recordingObserver(): UpstreamObserver & { readonly seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    seen,
    nowMs: () => performance.now(),
    upstreamHeaders: (mode, ms) => void seen.push({ what: 'headers', mode, ms }),
    upstreamFirstToken: (ms) => void seen.push({ what: 'first-token', ms }),
    upstreamCall: (mode, outcome, ms) => void seen.push({ what: 'call', mode, outcome, ms }),
  };
}

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const target = (upstream: LocalUpstream): UpstreamTarget => ({ baseUrl: upstream.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-observed' } });
const firstDelta = recordedEvents.findIndex((e) => e.event === 'content_block_delta');

describe('UpstreamClient timings', () => {
  it('times a stream: headers, then the first content_block_delta after the pause before it, then the whole call', async () => {
    const pauseMs = 60;
    server = await startUpstream(async (_req, res) => {
      res.writeHead(200, sseHeaders);
      res.write(sseText(recordedEvents.slice(0, firstDelta)));
      await sleep(pauseMs);
      res.end(sseText(recordedEvents.slice(firstDelta)));
    });
    const observer = recordingObserver();
    client = new UpstreamClient({ observer });
    const result = await client.stream(target(server), request, { onEvent: () => {} });
    expect(result.ok).toBe(true);
    expect(observer.seen.map((s) => s.what)).toEqual(['headers', 'first-token', 'call']);
    const [headers, firstToken, call] = observer.seen as [Seen & { what: 'headers' }, Seen, Seen & { what: 'call' }];
    expect(headers.mode).toBe('stream');
    expect(call).toMatchObject({ mode: 'stream', outcome: 'ok' });
    // The first token came after the server's pause; the headers did not wait for it.
    expect(firstToken.ms).toBeGreaterThanOrEqual(pauseMs - 5);
    expect(headers.ms).toBeLessThan(firstToken.ms);
    expect(call.ms).toBeGreaterThanOrEqual(firstToken.ms);
  });

  it('times a completion (no first token) and an error status with its kind as the outcome', async () => {
    let answer = 0;
    server = await startUpstream((_req, res) => {
      if (answer++ === 0) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(recordedMessage));
        return;
      }
      res.writeHead(529, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    });
    const observer = recordingObserver();
    client = new UpstreamClient({ observer });
    expect((await client.complete(target(server), request)).ok).toBe(true);
    const failed = await client.complete(target(server), request);
    expect(failed.ok).toBe(false);
    expect(observer.seen.map((s) => (s.what === 'call' ? `call:${s.mode}:${s.outcome}` : s.what === 'headers' ? `headers:${s.mode}` : s.what))).toEqual([
      'headers:complete',
      'call:complete:ok',
      'headers:complete',
      'call:complete:http-status',
    ]);
    for (const seen of observer.seen) expect(seen.ms).toBeGreaterThanOrEqual(0);
  });

  it('does not time a call refused before dispatch', async () => {
    server = await startUpstream((_req, res) => res.end(JSON.stringify(recordedMessage)));
    const observer = recordingObserver();
    client = new UpstreamClient({ observer });
    await client.close(1);
    const refused = await client.complete(target(server), request);
    expect(refused.ok ? 'ok' : refused.error.kind).toBe('unavailable');
    expect(observer.seen).toEqual([]);
  });
});
