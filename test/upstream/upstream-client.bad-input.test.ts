// Proves every kind of broken upstream answer ends in a clear error value with the right account
// feedback and the usage seen so far, with no throw, no timer left pending, and no connection
// left open when the body was not read to its end.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Handler } from './local-upstream.js';
import { countingTimers, type LocalUpstream, recordedEvents, recordedMessage, sleep, sseHeaders, sseText, startUpstream } from './local-upstream.js';
import { type CallTimeouts, UpstreamClient } from '../../src/upstream/upstream-client.js';

let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const noUsage = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
const startUsage = { input: 25, output: 1, cacheWrite: 100, cacheRead: 2000 };

/** Writes `next()` until the client hangs up or `writesMax` writes were made, honouring backpressure. */
async function writeUntilClosed(res: ServerResponse, next: () => string, writesMax: number): Promise<void> {
  for (let i = 0; i < writesMax && !res.destroyed; i++) {
    if (!res.write(next())) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
    else await sleep(1);
  }
  res.end();
}

function streamStart(res: ServerResponse): void {
  res.writeHead(200, sseHeaders);
  res.write(sseText(recordedEvents.slice(0, 2)));
}

interface Case {
  readonly name: string;
  readonly call: 'complete' | 'stream';
  readonly handler: Handler;
  readonly timeouts?: Partial<CallTimeouts>;
  readonly error: Record<string, unknown>;
  readonly feedback: Record<string, unknown>;
  /** Whether the client must have closed the connection rather than keep it for reuse. */
  readonly connectionClosed: boolean;
}

const cases: readonly Case[] = [
  {
    name: 'malformed JSON body',
    call: 'complete',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"msg_1","usage":');
    },
    error: { kind: 'bad-response', usage: noUsage },
    feedback: { kind: 'network' },
    connectionClosed: false,
  },
  {
    name: 'a JSON body without usage',
    call: 'complete',
    handler: (_req, res) => res.end(JSON.stringify({ ...recordedMessage, usage: { input_tokens: -4 } })),
    error: { kind: 'bad-response' },
    feedback: { kind: 'network' },
    connectionClosed: false,
  },
  {
    name: 'a wrong status with an HTML body',
    call: 'complete',
    handler: (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
    },
    error: { kind: 'http-status', status: 502, errorType: undefined, message: '<html><body><h1>502 Bad Gateway</h1></body></html>' },
    feedback: { kind: 'server-error', status: 502 },
    connectionClosed: false,
  },
  {
    name: 'an error body past its bound',
    call: 'complete',
    handler: (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      void writeUntilClosed(res, () => 'x'.repeat(16 * 1024), 64);
    },
    error: { kind: 'http-status', status: 500 },
    feedback: { kind: 'server-error', status: 500 },
    connectionClosed: true,
  },
  {
    name: 'huge response headers',
    call: 'complete',
    handler: (_req, res) => {
      res.setHeader('x-padding', 'a'.repeat(100_000));
      res.end(JSON.stringify(recordedMessage));
    },
    error: { kind: 'bad-response' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a connection reset before the headers',
    call: 'complete',
    handler: (_req, res) => void res.socket?.destroy(),
    error: { kind: 'network' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a body cut short',
    call: 'complete',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"id":');
      setTimeout(() => res.socket?.destroy(), 20);
    },
    error: { kind: 'network' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a body that says it is over the bound',
    call: 'complete',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(100 * 1024 * 1024) });
      res.write('{"id":');
    },
    error: { kind: 'bad-response' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'headers that never come',
    call: 'complete',
    handler: () => undefined,
    timeouts: { headersTimeoutMs: 150 },
    error: { kind: 'timeout', phase: 'headers' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a truncated stream: the connection closes mid-event',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      res.write(sseText(recordedEvents.slice(2, 4)).slice(0, 40));
      setTimeout(() => res.socket?.destroy(), 20);
    },
    error: { kind: 'truncated', usage: startUsage, requestId: 'req_stream_1' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a stream that ends cleanly without message_stop',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      res.end(sseText(recordedEvents.slice(2, 8)));
    },
    error: { kind: 'truncated', usage: { ...startUsage, output: 12 } },
    feedback: { kind: 'network' },
    connectionClosed: false,
  },
  {
    name: 'a stalled stream',
    call: 'stream',
    handler: (_req, res) => streamStart(res),
    timeouts: { idleTimeoutMs: 150 },
    error: { kind: 'timeout', phase: 'idle', usage: startUsage },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a never-ending stream of pings',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      void writeUntilClosed(res, () => sseText([{ event: 'ping', data: { type: 'ping' } }]), 2_000);
    },
    timeouts: { deadlineMs: 300 },
    error: { kind: 'timeout', phase: 'deadline', usage: startUsage },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a never-ending message',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      const delta = sseText([
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'z'.repeat(256 * 1024) } } },
      ]);
      void writeUntilClosed(res, () => delta, 200);
    },
    error: { kind: 'bad-response', usage: startUsage },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'an SSE line too long',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      void writeUntilClosed(res, () => 'a'.repeat(64 * 1024), 40);
    },
    error: { kind: 'bad-response', usage: startUsage },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'an event whose data is not JSON',
    call: 'stream',
    handler: (_req, res) => {
      streamStart(res);
      res.write('event: content_block_delta\ndata: {"type":"content_block_del\n\n');
    },
    error: { kind: 'bad-response', usage: startUsage },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a stream request answered with JSON',
    call: 'stream',
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify(recordedMessage));
    },
    error: { kind: 'bad-response' },
    feedback: { kind: 'network' },
    connectionClosed: true,
  },
  {
    name: 'a stream request answered with an HTML error page',
    call: 'stream',
    handler: (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html>Service Unavailable</html>');
    },
    error: { kind: 'http-status', status: 503, errorType: undefined },
    feedback: { kind: 'server-error', status: 503 },
    connectionClosed: false,
  },
];

describe('bad upstream input', () => {
  for (const c of cases) {
    it(`gives ${String(c.error.kind)} for ${c.name}`, async () => {
      server = await startUpstream(c.handler);
      const timers = countingTimers();
      client = new UpstreamClient({ timers });
      const target = { baseUrl: server.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-bad-input' } } as const;
      const options = c.timeouts === undefined ? {} : { timeouts: c.timeouts };
      const result =
        c.call === 'complete'
          ? await client.complete(target, request, options)
          : await client.stream(target, request, { ...options, onEvent: () => undefined });
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.error).toMatchObject(c.error);
      expect(result.error.feedback).toMatchObject(c.feedback);
      expect(JSON.stringify(result.error)).not.toContain('sk-ant-bad-input');
      expect(timers.pending()).toBe(0);
      expect(client.stats().callsInFlight).toBe(0);
      if (c.connectionClosed) {
        expect(await server.settleConnections()).toBe(0);
        expect(client.stats().connectionsOpen).toBe(0);
      }
      // Whatever was kept for reuse is closed with the client.
      await client.close(1_000);
      expect(await server.settleConnections()).toBe(0);
    });
  }
});
