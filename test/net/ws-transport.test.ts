// Proves the WebSocket transport's contract over real loopback sockets: links open with the right
// direction, binary frames arrive byte-exact, peers are redialed with backoff after a partition,
// protocol violations, silent peers and full send queues close links, onClose fires once per
// link, stop() leaves no handle behind, and wss:// works with a pinned CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { LinkId, LinkInfo, TransportHandler } from '../../src/net/transport.js';
import { fullJitterDelayMs, WsTransport, type WsTransportOptions } from '../../src/net/ws-transport.js';
import { LoopbackProxy } from '../support/loopback-proxy.js';
import { sleep, until, within } from '../support/wait.js';

/** A handler that records every event and lets a test wait for a condition on them. */
class Recorder implements TransportHandler {
  readonly opens: Array<{ link: LinkId; info: LinkInfo }> = [];
  readonly messages: Array<{ link: LinkId; bytes: Uint8Array }> = [];
  readonly closes: Array<{ link: LinkId; code: number; reason: string }> = [];

  onOpen(link: LinkId, info: LinkInfo): void {
    this.opens.push({ link, info });
  }

  onMessage(link: LinkId, bytes: Uint8Array): void {
    this.messages.push({ link, bytes });
  }

  onClose(link: LinkId, info: { readonly code: number; readonly reason: string }): void {
    this.closes.push({ link, ...info });
  }

  lastOpen(): LinkId {
    const open = this.opens.at(-1);
    if (open === undefined) throw new Error('no link opened');
    return open.link;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function baseOptions(): WsTransportOptions {
  return {
    listenHost: '127.0.0.1',
    listenPort: 0,
    peers: [],
    frameBytesMax: 64 * 1024,
    sendQueueBytesMax: 1024 * 1024,
    pingIntervalMs: 50,
    pongTimeoutMs: 150,
    backoffInitialMs: 10,
    backoffMaxMs: 80,
    random: () => 0.5,
  };
}

async function startTransport(overrides: Partial<WsTransportOptions> = {}): Promise<{ transport: WsTransport; recorder: Recorder; port: number }> {
  const recorder = new Recorder();
  const transport = new WsTransport({ ...baseOptions(), ...overrides }, recorder);
  cleanups.push(() => transport.stop());
  const { port } = await transport.start();
  return { transport, recorder, port };
}

/** A raw ws client (not a WsTransport), to misbehave in ways the transport never would. */
async function rawClient(port: number, autoPong = true): Promise<{ socket: WebSocket; closed: Promise<number> }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, autoPong });
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  cleanups.push(async () => {
    socket.terminate();
    await closed;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return { socket, closed };
}

describe('fullJitterDelayMs', () => {
  it('scales random() by a ceiling that doubles per attempt up to the maximum', () => {
    const half = (): number => 0.5;
    const delays = [0, 1, 2, 3, 4, 10, 2000].map((attempt) => fullJitterDelayMs(attempt, 10, 80, half));
    expect(delays).toEqual([5, 10, 20, 40, 40, 40, 40]);
    expect(fullJitterDelayMs(3, 10, 80, () => 0)).toBe(0);
  });
});

describe('WsTransport', () => {
  it('rejects a peer url that is not ws:// or wss:// at construction', () => {
    const peers = [{ peer: 'b', url: 'http://127.0.0.1:1' }];
    expect(() => new WsTransport({ ...baseOptions(), peers }, new Recorder())).toThrow(/not a ws/);
  });

  it('opens a link both ways and carries binary frames byte-exact', async () => {
    const b = await startTransport();
    const a = await startTransport({ peers: [{ peer: 'b', url: `ws://127.0.0.1:${b.port}` }] });
    await until(() => a.recorder.opens.length === 1 && b.recorder.opens.length === 1, 'both opens');

    expect(a.recorder.opens[0]!.info).toEqual({
      direction: 'outbound',
      dialedPeer: 'b',
      remoteAddress: `127.0.0.1:${b.port}`,
    });
    const inbound = b.recorder.opens[0]!.info;
    expect(inbound.direction).toBe('inbound');
    expect(inbound.dialedPeer).toBeUndefined();
    expect(inbound.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);

    const toB = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
    const toA = Uint8Array.of(0, 255, 1, 254);
    const empty = new Uint8Array(0);
    expect(a.transport.send(a.recorder.lastOpen(), toB, false)).toBe('sent');
    expect(a.transport.send(a.recorder.lastOpen(), empty, true)).toBe('sent');
    expect(b.transport.send(b.recorder.lastOpen(), toA, true)).toBe('sent');
    await until(() => b.recorder.messages.length === 2 && a.recorder.messages.length === 1, 'messages');

    expect(b.recorder.messages.map((m) => m.bytes)).toEqual([toB, empty]);
    expect(a.recorder.messages[0]!.bytes).toEqual(toA);
    // The handler gets a plain Uint8Array, whose slice() copies, not a Buffer, whose slice() aliases.
    expect(Object.getPrototypeOf(a.recorder.messages[0]!.bytes)).toBe(Uint8Array.prototype);

    expect(a.transport.stats()).toMatchObject({
      linksOpened: 1,
      framesSent: 2,
      bytesSent: 1000,
      framesReceived: 1,
      bytesReceived: 4,
    });
    expect(b.transport.stats()).toMatchObject({
      linksOpened: 1,
      framesSent: 1,
      bytesSent: 4,
      framesReceived: 2,
      bytesReceived: 1000,
    });

    // Both sides answer each other's pings: the link outlives several pong timeouts.
    await sleep(400);
    expect(a.recorder.closes).toEqual([]);
    expect(b.recorder.closes).toEqual([]);
    expect(a.transport.stats().pongTimeouts + b.transport.stats().pongTimeouts).toBe(0);
  });

  it('redials a peer after a partition heals, with backoff', async () => {
    const b = await startTransport();
    const proxy = await LoopbackProxy.start(b.port);
    cleanups.push(() => proxy.close());
    const a = await startTransport({ peers: [{ peer: 'b', url: `ws://127.0.0.1:${proxy.port}` }] });
    await until(() => a.recorder.opens.length === 1 && b.recorder.opens.length === 1, 'first link');

    proxy.cut();
    await until(() => a.recorder.closes.length === 1 && b.recorder.closes.length === 1, 'closes after cut');
    // While cut, every dial is refused and backed off; none of them opens a link.
    await until(() => a.transport.stats().reconnectAttempts >= 3, 'refused redials');
    expect(a.recorder.opens).toHaveLength(1);

    proxy.heal();
    await until(() => a.recorder.opens.length === 2 && b.recorder.opens.length === 2, 'second link');
    expect(a.recorder.opens[1]!.info.dialedPeer).toBe('b');
    expect(a.recorder.opens[1]!.link).not.toBe(a.recorder.opens[0]!.link);
    expect(a.transport.send(a.recorder.lastOpen(), Uint8Array.of(42), false)).toBe('sent');
    await until(() => b.recorder.messages.length === 1, 'message on the new link');
    expect(a.transport.stats()).toMatchObject({ linksOpened: 2, linksClosed: 1 });
  });

  it('closes a link with 1009 on an oversized message and 1003 on a text message', async () => {
    const b = await startTransport({ frameBytesMax: 1024 });

    const oversized = await rawClient(b.port);
    oversized.socket.send(new Uint8Array(1025));
    expect(await within(oversized.closed, 'close')).toBe(1009);

    const text = await rawClient(b.port);
    text.socket.send('hello');
    expect(await within(text.closed, 'close')).toBe(1003);

    // A frame of exactly frameBytesMax is fine.
    const fits = await rawClient(b.port);
    fits.socket.send(new Uint8Array(1024));
    await until(() => b.recorder.messages.length === 1, 'the largest allowed frame');

    await until(() => b.recorder.closes.length === 2, 'both closes');
    expect(b.recorder.messages.map((m) => m.bytes.length)).toEqual([1024]);
    expect(b.transport.stats()).toMatchObject({ protocolErrors: 2, linksOpened: 3, linksClosed: 2 });
  });

  it('terminates a peer that does not answer pings', async () => {
    const b = await startTransport({ pingIntervalMs: 20, pongTimeoutMs: 60 });
    const silent = await rawClient(b.port, false);
    // Terminated, not closed: the peer sees the connection drop without a close frame.
    expect(await within(silent.closed, 'termination')).toBe(1006);
    await until(() => b.recorder.closes.length === 1, 'onClose');
    expect(b.recorder.closes[0]!.code).toBe(1006);
    expect(b.transport.stats().pongTimeouts).toBe(1);
  });

  it('refuses sends on unknown links, drops droppable overflow, and closes on essential overflow', async () => {
    const b = await startTransport();
    const a = await startTransport({ sendQueueBytesMax: 0, peers: [{ peer: 'b', url: `ws://127.0.0.1:${b.port}` }] });
    await until(() => a.recorder.opens.length === 1 && b.recorder.opens.length === 1, 'link');
    const link = a.recorder.lastOpen();

    expect(a.transport.send(9999, Uint8Array.of(1), false)).toBe('closed');
    // bufferedAmount (0) + 1 byte exceeds a bound of 0.
    expect(a.transport.send(link, Uint8Array.of(1), true)).toBe('dropped');
    expect(a.transport.stats()).toMatchObject({ droppedSends: 1, framesSent: 0 });
    expect(a.recorder.closes).toEqual([]);

    expect(a.transport.send(link, Uint8Array.of(1), false)).toBe('closed');
    expect(a.transport.stats().queueOverflowCloses).toBe(1);
    expect(a.transport.send(link, Uint8Array.of(1), true)).toBe('closed');
    await until(() => b.recorder.closes.length === 1 && a.recorder.closes.length === 1, 'closes');
    expect(b.recorder.closes[0]).toMatchObject({ code: 1013, reason: 'send queue full' });
    expect(b.recorder.messages).toEqual([]);
  });

  it('refuses inbound connections past linksMax with 1013', async () => {
    const b = await startTransport({ linksMax: 1 });
    await rawClient(b.port);
    const extra = await rawClient(b.port);
    expect(await within(extra.closed, 'refusal')).toBe(1013);
    expect(b.recorder.opens).toHaveLength(1);
    expect(b.transport.stats().linksRefused).toBe(1);
  });

  it('stop() closes every link once, stops redialing and leaves no handles', async () => {
    const handles = (): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
      return counts;
    };
    const before = handles();
    const b = await startTransport();
    const c = await startTransport();
    const a = await startTransport({
      peers: [
        { peer: 'b', url: `ws://127.0.0.1:${b.port}` },
        { peer: 'c', url: `ws://127.0.0.1:${c.port}` },
      ],
    });
    await until(() => a.recorder.opens.length === 2 && b.recorder.opens.length === 1, 'links');

    // Stop c first: a's link to c closes and a starts redialing c, into a closed port.
    await within(c.transport.stop(), 'stop of c');
    expect(c.recorder.closes).toHaveLength(1);
    await until(() => a.transport.stats().reconnectAttempts >= 1, 'redial of c');

    const stopping = a.transport.stop();
    expect(a.transport.stop()).toBe(stopping);
    await within(stopping, 'stop of a');
    // onClose has been delivered for every link by the time stop() resolves.
    const byId = (x: LinkId, y: LinkId): number => x - y;
    const closed = a.recorder.closes.map((close) => close.link).sort(byId);
    expect(closed).toEqual(a.recorder.opens.map((open) => open.link).sort(byId));
    expect(a.recorder.closes.find((close) => close.code === 1001)).toBeDefined();
    await until(() => b.recorder.closes.length === 1, "b's close");
    expect(b.recorder.closes[0]).toMatchObject({ code: 1001, reason: 'transport stopping' });
    await within(b.transport.stop(), 'stop of b');

    // No redial after stop(), even with backoff timers that would have fired by now.
    const attempts = a.transport.stats().reconnectAttempts;
    await sleep(150);
    expect(a.transport.stats().reconnectAttempts).toBe(attempts);
    expect(a.recorder.opens).toHaveLength(2);
    expect(a.transport.send(a.recorder.lastOpen(), Uint8Array.of(1), true)).toBe('closed');

    const after = handles();
    for (const kind of ['Timeout', 'TCPSocketWrap', 'TCPServerWrap']) {
      expect(after[kind] ?? 0, kind).toBeLessThanOrEqual(before[kind] ?? 0);
    }
  });
});

const hasOpenssl = ((): boolean => {
  try {
    execFileSync('which', ['openssl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const describeWss = hasOpenssl ? describe : describe.skip;

describeWss(hasOpenssl ? 'WsTransport over wss' : 'WsTransport over wss (SKIPPED: openssl not found on PATH)', () => {
  let tls: { certPem: string; keyPem: string } | null = null;
  let dir = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'carpool-wss-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    tls = { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  });

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('dials wss:// trusting the given CA, and fails without it', async () => {
    const { certPem, keyPem } = tls!;
    const b = await startTransport({ tls: { certPem, keyPem } });
    const url = `wss://127.0.0.1:${b.port}`;

    const a = await startTransport({ tls: { certPem, keyPem, caPem: certPem }, peers: [{ peer: 'b', url }] });
    await until(() => a.recorder.opens.length === 1 && b.recorder.opens.length === 1, 'wss link');
    expect(a.transport.send(a.recorder.lastOpen(), Uint8Array.of(7, 8, 9), false)).toBe('sent');
    await until(() => b.recorder.messages.length === 1, 'message over wss');
    expect(b.recorder.messages[0]!.bytes).toEqual(Uint8Array.of(7, 8, 9));

    // Without the CA the self-signed certificate is rejected and the dialer keeps backing off.
    const untrusting = await startTransport({ peers: [{ peer: 'b', url }] });
    await until(() => untrusting.transport.stats().reconnectAttempts >= 2, 'rejected dials');
    expect(untrusting.recorder.opens).toEqual([]);
    expect(b.recorder.opens).toHaveLength(1);
  });
});
