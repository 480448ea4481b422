/**
 * A TCP proxy on 127.0.0.1 that a test can cut and heal, to put a partition between two mesh
 * nodes without touching either node. It forwards bytes untouched, so it works for ws:// and
 * wss:// alike (TLS runs end to end through it).
 *
 *   const proxy = await LoopbackProxy.start(targetPort);
 *   // dial ws://127.0.0.1:${proxy.port}
 *   proxy.cut();   // every open connection is destroyed; new ones are destroyed on arrival
 *   proxy.heal();  // new connections are forwarded again
 *   await proxy.close();
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class LoopbackProxy {
  /** Both halves of every forwarded connection, so cut() and close() can reach them all. */
  private readonly sockets = new Set<Socket>();
  private isCut = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<LoopbackProxy> {
    // The connection listener needs the instance, which needs the bound port: wire it after.
    let proxy: LoopbackProxy | null = null;
    const server = createServer((client) => {
      if (proxy === null) client.destroy();
      else proxy.forward(client, targetPort);
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.removeListener('error', reject);
        const address = server.address();
        if (address === null || typeof address === 'string') reject(new Error('proxy has no TCP address'));
        else resolve(address.port);
      });
    });
    proxy = new LoopbackProxy(server, port);
    return proxy;
  }

  /** Destroys every open connection and refuses new ones until heal(). */
  cut(): void {
    this.isCut = true;
    this.destroyAll();
  }

  heal(): void {
    this.isCut = false;
  }

  /** Destroys every connection and stops listening. */
  async close(): Promise<void> {
    this.isCut = true;
    this.destroyAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(client: Socket, targetPort: number): void {
    if (this.isCut) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    // Either half failing or closing takes the other with it, as a broken path would.
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(socket);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        this.sockets.delete(socket);
        other.destroy();
      });
      socket.pipe(other);
    }
  }

  private destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}
