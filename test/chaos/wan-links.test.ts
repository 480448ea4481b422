// The WAN link proxy on loopback: delay, order, silent and loud cuts, one-way cuts and FIN order.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkProxy, WanLinks } from './wan-links.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An echo server, or one that answers `reply` and closes at once; answers its port. */
async function server(mode: 'echo' | { reply: string }): Promise<number> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (mode === 'echo') socket.pipe(socket);
    else socket.end(mode.reply);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        srv.close(() => resolve());
      }),
  );
  return (srv.address() as { port: number }).port;
}

async function proxyTo(links: WanLinks, port: number): Promise<number> {
  const proxy = new LinkProxy({ links, from: 0, to: 1, listenHost: '127.0.0.1', targetHost: '127.0.0.1', targetPort: port });
  cleanups.push(() => proxy.close());
  return proxy.listen();
}

/** A client that collects what it receives and how it ended. */
function client(port: number): { socket: Socket; received: () => string; ended: Promise<'end' | 'error'> } {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const ended = new Promise<'end' | 'error'>((resolve) => {
    socket.on('end', () => resolve('end'));
    socket.on('error', () => resolve('error'));
    socket.on('close', () => resolve('end'));
  });
  cleanups.push(() => void socket.destroy());
  return { socket, received: () => text, ended };
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

const rtt100 = (): number => 100;

describe('the WAN link proxy', () => {
  it('delays each direction by half the round trip and keeps the bytes in order', async () => {
    const links = new WanLinks(2, rtt100, 1);
    links.set(0, 1, { jitterMs: 30 });
    const port = await proxyTo(links, await server('echo'));
    const { socket, received } = client(port);
    const startedMs = Date.now();
    const sent = Array.from({ length: 50 }, (_, i) => `<${i}>`);
    for (const piece of sent) socket.write(piece);
    expect(await until(() => received() === sent.join(''), 2_000)).toBe(true);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(100);
  });

  it('holds the bytes of a silent cut and delivers them when it heals', async () => {
    const links = new WanLinks(2, () => 2, 1);
    const port = await proxyTo(links, await server('echo'));
    const { socket, received } = client(port);
    socket.write('a');
    expect(await until(() => received() === 'a', 1_000)).toBe(true);
    links.set(0, 1, { cut: 'hold' });
    socket.write('b');
    expect(await until(() => received() !== 'a', 200)).toBe(false);
    links.set(0, 1, { cut: 'none' });
    expect(await until(() => received() === 'ab', 1_000)).toBe(true);
  });

  it('passes one direction of a one-way cut and holds the other', async () => {
    const links = new WanLinks(2, () => 2, 1);
    const port = await proxyTo(links, await server('echo'));
    const { socket, received } = client(port);
    links.set(1, 0, { cut: 'hold' });
    socket.write('x');
    // The server got it (the echo is what is held): no answer until the way back heals.
    expect(await until(() => received() === 'x', 200)).toBe(false);
    links.set(1, 0, { cut: 'none' });
    expect(await until(() => received() === 'x', 1_000)).toBe(true);
  });

  it('resets the connections of a loud cut and refuses new ones until it heals', async () => {
    const links = new WanLinks(2, () => 2, 1);
    const port = await proxyTo(links, await server('echo'));
    const first = client(port);
    first.socket.write('1');
    expect(await until(() => first.received() === '1', 1_000)).toBe(true);
    links.set(1, 0, { cut: 'reset' });
    expect(await first.ended).toBe('error');
    const refused = client(port);
    refused.socket.write('2');
    await refused.ended;
    expect(refused.received()).toBe('');
    links.set(1, 0, { cut: 'none' });
    const healed = client(port);
    healed.socket.write('3');
    expect(await until(() => healed.received() === '3', 1_000)).toBe(true);
  });

  it("delivers a server's last bytes before its FIN, however late", async () => {
    const links = new WanLinks(2, () => 160, 1);
    const reply = 'x'.repeat(100_000);
    const port = await proxyTo(links, await server({ reply }));
    const { received, ended } = client(port);
    expect(await ended).toBe('end');
    expect(received()).toBe(reply);
  });

  it('makes a lost chunk late by a retransmission timeout, never lost or reordered', async () => {
    const links = new WanLinks(2, () => 2, 7);
    links.set(0, 1, { lossRate: 0.5 });
    const port = await proxyTo(links, await server('echo'));
    const { socket, received } = client(port);
    const startedMs = Date.now();
    const sent = Array.from({ length: 20 }, (_, i) => `[${i}]`);
    for (const piece of sent) {
      socket.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(await until(() => received() === sent.join(''), 3_000)).toBe(true);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(200);
  });
});
