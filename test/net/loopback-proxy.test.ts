// Proves the test proxy forwards bytes both ways, cuts open connections, refuses new ones while
// cut, forwards again after heal(), and releases everything on close().
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LoopbackProxy } from '../support/loopback-proxy.js';
import { until, within } from '../support/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP echo server on an ephemeral loopback port. */
async function startEcho(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as { port: number }).port;
}

/** A client that records what it reads and whether it has closed. */
function dial(port: number): { socket: Socket; received: () => string; closed: Promise<void> } {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  cleanups.push(() => {
    socket.destroy();
  });
  return { socket, received: () => text, closed };
}

describe('LoopbackProxy', () => {
  it('forwards both ways, cuts, refuses while cut, and heals', async () => {
    const proxy = await LoopbackProxy.start(await startEcho());
    cleanups.push(() => proxy.close());

    const first = dial(proxy.port);
    first.socket.write('hello');
    await until(() => first.received() === 'hello', 'the proxy');

    proxy.cut();
    await within(first.closed, 'the cut');

    const refused = dial(proxy.port);
    refused.socket.write('lost');
    await within(refused.closed, 'the refusal');
    expect(refused.received()).toBe('');

    proxy.heal();
    const second = dial(proxy.port);
    second.socket.write('again');
    await until(() => second.received() === 'again', 'the proxy');
  });

  it('closes open connections and stops listening on close()', async () => {
    const proxy = await LoopbackProxy.start(await startEcho());
    const client = dial(proxy.port);
    client.socket.write('x');
    await until(() => client.received() === 'x', 'the proxy');

    await proxy.close();
    await within(client.closed, 'close()');
    const late = connect({ host: '127.0.0.1', port: proxy.port });
    const error = await within(new Promise<NodeJS.ErrnoException>((resolve) => late.once('error', resolve)), 'refused connect');
    expect(error.code).toBe('ECONNREFUSED');
  });
});
