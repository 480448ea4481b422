// Proves the front door's server holds whatever a client sends: routes by method and path (404,
// 405), a bound on connections that closes the longest-idle one first and refuses a new one when
// all are busy, heads too large (431) or too slow (slowloris, cut within bounded time), garbage
// and non-UTF-8 bytes, truncated bodies, a handler that throws (500, the server serves on), and a
// stop that fires the signal of a request still running. After each abuse the server still answers.
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpFrontDoor, type HttpRoute } from '../../../src/net/http/http-server.js';
import { sleep, until, within } from '../../support/wait.js';

const servers: HttpFrontDoor[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await server.stop(100);
});

/** A slow route (it holds its connection busy until released) and an echo of the body's length. */
function routes(held: { release?: () => void; signals: AbortSignal[] }): HttpRoute[] {
  return [
    {
      method: 'POST',
      path: '/echo',
      handle: async (exchange) => {
        const body = await exchange.readBody();
        if (body.kind === 'ok') exchange.sendJson(200, JSON.stringify({ bytes: body.bytes.length }));
      },
    },
    {
      method: 'GET',
      path: '/hold',
      handle: async (exchange) => {
        held.signals.push(exchange.context.signal);
        await new Promise<void>((resolve) => {
          held.release = resolve;
          exchange.context.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        exchange.sendJson(200, '{}');
      },
    },
    {
      method: 'GET',
      path: '/boom',
      handle: () => Promise.reject(new Error('a bug')),
    },
  ];
}

async function start(
  options: ConstructorParameters<typeof HttpFrontDoor>[0] = {},
): Promise<{ server: HttpFrontDoor; port: number; held: { release?: () => void; signals: AbortSignal[] } }> {
  const held: { release?: () => void; signals: AbortSignal[] } = { signals: [] };
  const server = new HttpFrontDoor({ routes: routes(held), log: () => {}, onHandlerError: () => {}, ...options });
  servers.push(server);
  const port = await server.start({ host: '127.0.0.1', port: 0 });
  return { server, port, held };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
    sockets.push(socket);
  });
}

/** Everything the server sends on `socket` until it closes it (or `timeoutMs`). */
function readAll(socket: Socket, timeoutMs = 5_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ text, closed: false }), timeoutMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

async function healthy(port: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: 'hello' });
  expect(await response.json()).toEqual({ bytes: 5 });
}

describe('routing', () => {
  it('answers an unknown path 404 and another method 405, in the Anthropic shape, and a handler that throws 500', async () => {
    const { port, server } = await start();
    const missing = await fetch(`http://127.0.0.1:${port}/v1/nothing?x=1`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const wrong = await fetch(`http://127.0.0.1:${port}/echo`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    const boom = await fetch(`http://127.0.0.1:${port}/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ type: 'error', error: { type: 'api_error', message: 'internal error' } });
    expect(server.stats()).toMatchObject({ unrouted: 2, handlerFailures: 1 });
    await healthy(port);
  });
});

describe('what a client sends cannot crash the server', () => {
  it('refuses a head over the bound (431), garbage and non-UTF-8 bytes (400), and serves on', async () => {
    const { port } = await start();
    const huge = await open(port);
    const hugeAnswer = readAll(huge);
    huge.write(`GET /echo HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(40 * 1024)}\r\n\r\n`);
    const answered = await hugeAnswer;
    expect(answered.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(answered.text).toContain('{"type":"error","error":{"type":"invalid_request_error","message":"the request head is over the bound of 32768 bytes"}}');

    for (const garbage of [
      Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0d, 0x0a, 0x0d, 0x0a]),
      Buffer.from('NOT HTTP AT ALL\r\n\r\n'),
      Buffer.from('POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n'),
    ]) {
      const socket = await open(port);
      const reply = readAll(socket);
      socket.write(garbage);
      const text = (await reply).text;
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
    }
    // Non-UTF-8 in a body is only bytes to the server; the gateway judges it (see the routes' tests).
    const binary = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: Buffer.from([0xc3, 0x28, 0xff]) });
    expect(await binary.json()).toEqual({ bytes: 3 });
    await healthy(port);
  });

  it('survives a truncated body and cuts a slow head (slowloris) within its timeout', async () => {
    const { port, server } = await start({ bounds: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
    const truncated = await open(port);
    truncated.write('POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789');
    truncated.destroy();

    const slow = await open(port);
    const startedMs = Date.now();
    const cut = readAll(slow, 5_000);
    // One header byte every 100 ms: never a whole head.
    const drip = setInterval(() => slow.writable && slow.write('x'), 100);
    slow.write('GET /echo HTTP/1.1\r\nhost: x\r\nx-slow: ');
    const result = await cut;
    clearInterval(drip);
    expect(result.closed).toBe(true);
    expect(Date.now() - startedMs).toBeLessThan(2_500);
    expect(result.text).toMatch(/^HTTP\/1\.1 408 /);
    await until(() => server.stats().inFlight === 0, 'the truncated request to end');
    await healthy(port);
  });
});

describe('the connection bound', () => {
  it('closes the longest-idle connection for a new one, and refuses a new one when every held one is busy', async () => {
    const { port, server, held } = await start({ bounds: { connectionsMax: 2 } });
    const first = await open(port);
    const firstClosed = readAll(first, 3_000);
    await sleep(20);
    const second = await open(port);
    second.write('GET /hold HTTP/1.1\r\nhost: x\r\n\r\n');
    await until(() => held.signals.length === 1, 'the held request to start');
    // At the bound: the idle `first` goes, the busy `second` stays.
    const third = await open(port);
    expect((await firstClosed).closed).toBe(true);
    expect(second.destroyed).toBe(false);
    third.write('GET /hold HTTP/1.1\r\nhost: x\r\n\r\n');
    await until(() => held.signals.length === 2, 'the second held request to start');
    const fourth = await open(port);
    expect((await readAll(fourth, 3_000)).closed).toBe(true);
    expect(server.stats()).toMatchObject({ connectionsEvicted: 1, connectionsRefused: 1 });
    held.release?.();
  });

  it('fires the signal of a request still running when the server stops', async () => {
    const { port, server, held } = await start();
    const socket = await open(port);
    readAll(socket).catch(() => {});
    socket.write('GET /hold HTTP/1.1\r\nhost: x\r\n\r\n');
    await until(() => held.signals.length === 1, 'the held request to start');
    await within(server.stop(200), 'the stop');
    await until(() => held.signals[0]?.aborted === true, 'the running request to hear of the stop');
  });
});
