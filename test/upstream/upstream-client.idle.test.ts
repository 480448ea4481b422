// Proves complete() times out a JSON body that goes silent (before its first byte, after some
// bytes with or without a content-length) with an idle timeout, closing the connection and
// leaving no timer behind, and that a slow body whose every gap is under the idle timeout is
// read to its end: the timer starts over with each chunk rather than bounding the whole body.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import { countingTimers, type LocalUpstream, recordedMessage, sleep, startUpstream } from './local-upstream.js';

let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const messageText = JSON.stringify(recordedMessage);

const stalls: [string, (res: ServerResponse) => void][] = [
  [
    'before the first byte of the body',
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(messageText.length) });
      res.flushHeaders();
    },
  ],
  [
    'after its first bytes, with a content-length',
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(messageText.length) });
      res.write(messageText.slice(0, 10));
    },
  ],
  [
    'after its first bytes, chunked',
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(messageText.slice(0, 10));
    },
  ],
];

describe('UpstreamClient.complete idle timeout', () => {
  for (const [name, handler] of stalls) {
    it(`times out a body that goes silent ${name}`, async () => {
      server = await startUpstream((_req, res) => handler(res));
      const timers = countingTimers();
      client = new UpstreamClient({ timers });
      const started = Date.now();
      const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-idle' } }, request, {
        timeouts: { idleTimeoutMs: 150 },
      });
      expect(result).toMatchObject({ ok: false, error: { kind: 'timeout', phase: 'idle', feedback: { kind: 'network' } } });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(timers.pending()).toBe(0);
      expect(await server.settleConnections()).toBe(0);
    });
  }

  for (const withLength of [true, false]) {
    it(`reads a slow body whose gaps are each under the idle timeout (${withLength ? 'content-length' : 'chunked'})`, async () => {
      server = await startUpstream(async (_req, res) => {
        res.writeHead(
          200,
          withLength ? { 'content-type': 'application/json', 'content-length': String(messageText.length) } : { 'content-type': 'application/json' },
        );
        const pieces = 8;
        const size = Math.ceil(messageText.length / pieces);
        for (let i = 0; i < pieces; i++) {
          res.write(messageText.slice(i * size, (i + 1) * size));
          await sleep(60);
        }
        res.end();
      });
      const timers = countingTimers();
      client = new UpstreamClient({ timers });
      const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: 'sk-ant-idle' } }, request, {
        timeouts: { idleTimeoutMs: 300 },
      });
      expect(result).toMatchObject({ ok: true, value: { message: recordedMessage, usage: { input: 30, output: 7 } } });
      expect(timers.pending()).toBe(0);
    });
  }
});
