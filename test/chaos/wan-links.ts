// The emulated WAN between region nodes: one userspace TCP proxy per directed pair of nodes and
// service, applying that pair's delay, jitter, loss and cuts, driven by the run's seeded schedule.
// The kernel here has no netem, so this stands in for it at the level TCP's users see:
//   - delay: each chunk arrives half the round trip (plus jitter) after it was sent, in order;
//   - loss: a lost segment is retransmitted by TCP, so the endpoints see it arrive one
//     retransmission timeout late, with everything behind it waiting (head-of-line blocking);
//   - a silent cut (`hold`): bytes wait, as TCP keeps retransmitting into a partition; they arrive
//     when it heals unless an endpoint gave up first (the mesh's ping timeout does);
//   - a loud cut (`reset`): every connection over the link is reset and new ones are refused, as a
//     firewall's REJECT or a dead route does.
// A one-way cut holds the bytes of one direction only. Bytes held are bounded per connection and
// direction: past the bound the sender is paused, as a full TCP window pauses it.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SeededRandom } from '../../src/core/random.js';

export type Cut = 'none' | 'hold' | 'reset';

export interface LinkConditions {
  /** One-way delay in ms, before jitter. */
  readonly delayMs: number;
  /** Uniform extra delay in [0, jitterMs]; chunks stay in order. */
  readonly jitterMs: number;
  /** Probability that a chunk is lost once and so arrives a retransmission timeout late. */
  readonly lossRate: number;
  readonly cut: Cut;
}

/** Linux's smallest TCP retransmission timeout. */
export const retransmitMinMs = 200;
/** Bytes held per connection and direction before its sender is paused. */
export const heldBytesMax = 4 * 1024 * 1024;

/** The conditions of every directed link between `size` nodes, changed by the schedule. */
export class WanLinks {
  private readonly conditions: LinkConditions[][];
  private readonly listeners = new Set<(from: number, to: number) => void>();
  private readonly random: SeededRandom;

  constructor(
    readonly size: number,
    rttMs: (from: number, to: number) => number,
    seed: number,
  ) {
    this.random = new SeededRandom(seed);
    this.conditions = Array.from({ length: size }, (_, from) =>
      Array.from({ length: size }, (_, to) => ({ delayMs: Math.round(rttMs(from, to) / 2), jitterMs: 0, lossRate: 0, cut: 'none' })),
    );
  }

  of(from: number, to: number): LinkConditions {
    return (this.conditions[from] as LinkConditions[])[to] as LinkConditions;
  }

  set(from: number, to: number, patch: Partial<LinkConditions>): void {
    const row = this.conditions[from] as LinkConditions[];
    row[to] = { ...(row[to] as LinkConditions), ...patch };
    for (const listener of this.listeners) listener(from, to);
  }

  onChange(listener: (from: number, to: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When a chunk sent now over from→to arrives, before ordering behind earlier chunks. */
  arrivalMs(from: number, to: number, nowMs: number): number {
    const link = this.of(from, to);
    const jitter = link.jitterMs > 0 ? this.random.float() * link.jitterMs : 0;
    const lost = link.lossRate > 0 && this.random.float() < link.lossRate;
    const retransmit = lost ? Math.max(retransmitMinMs, 4 * link.delayMs) : 0;
    return nowMs + link.delayMs + jitter + retransmit;
  }
}

export interface ProxyFigures {
  connections: number;
  /** Connections cut by a loud cut, or refused while one lasted. */
  resets: number;
  bytes: number;
  /** Chunks that were held by a silent cut at least once. */
  heldChunks: number;
  /** The shortest and longest time a chunk spent in the proxy (-1 before the first). */
  delayMsMin: number;
  delayMsMax: number;
}

/** A chunk, the sender's FIN (`end`), or its RST (`reset`): each arrives in order, delayed alike. */
type Item = { readonly atMs: number; readonly sentMs: number; readonly chunk: Buffer } | { readonly atMs: number; readonly end: 'fin' | 'reset' };

/** One direction of one proxied connection: a delay line that holds during a silent cut. */
class Pipe {
  private readonly queue: Item[] = [];
  private queuedBytes = 0;
  private lastAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private held = false;

  constructor(
    private readonly links: WanLinks,
    private readonly from: number,
    private readonly to: number,
    private readonly source: Socket,
    private readonly target: Socket,
    private readonly figures: ProxyFigures,
  ) {
    source.on('data', (chunk: Buffer) => this.push({ atMs: this.arrival(), sentMs: Date.now(), chunk }));
    source.on('end', () => this.push({ atMs: this.arrival(), end: 'fin' }));
    source.on('error', () => this.push({ atMs: this.arrival(), end: 'reset' }));
  }

  /** The link changed: deliver what is due, or keep holding. */
  wake(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private arrival(): number {
    // In order: a chunk never overtakes the one before it.
    this.lastAtMs = Math.max(this.links.arrivalMs(this.from, this.to, Date.now()), this.lastAtMs);
    return this.lastAtMs;
  }

  private push(item: Item): void {
    this.queue.push(item);
    if ('chunk' in item) {
      this.queuedBytes += item.chunk.length;
      if (this.queuedBytes > heldBytesMax) this.source.pause();
    }
    this.schedule();
  }

  private schedule(): void {
    const head = this.queue[0];
    if (this.timer !== undefined || head === undefined) return;
    if (this.links.of(this.from, this.to).cut !== 'none') {
      if (!this.held) this.figures.heldChunks += this.queue.length;
      this.held = true;
      return;
    }
    this.timer = setTimeout(() => this.wake(), Math.max(0, head.atMs - Date.now()));
  }

  private flush(): void {
    if (this.links.of(this.from, this.to).cut !== 'none') {
      this.schedule();
      return;
    }
    this.held = false;
    const nowMs = Date.now();
    while (this.queue.length > 0 && (this.queue[0] as Item).atMs <= nowMs) {
      const item = this.queue.shift() as Item;
      if ('end' in item) {
        if (item.end === 'fin') this.target.end();
        else if (!this.target.destroyed && this.target.readyState === 'open') this.target.resetAndDestroy();
        else this.target.destroy();
        continue;
      }
      this.queuedBytes -= item.chunk.length;
      this.figures.bytes += item.chunk.length;
      const tookMs = nowMs - item.sentMs;
      this.figures.delayMsMin = this.figures.delayMsMin < 0 ? tookMs : Math.min(this.figures.delayMsMin, tookMs);
      this.figures.delayMsMax = Math.max(this.figures.delayMsMax, tookMs);
      if (!this.target.destroyed) this.target.write(item.chunk);
    }
    if (this.queuedBytes <= heldBytesMax / 2 && this.source.isPaused()) this.source.resume();
    this.schedule();
  }
}

export interface LinkProxyOptions {
  readonly links: WanLinks;
  /** The node that dials through this proxy, and the node it reaches. */
  readonly from: number;
  readonly to: number;
  /** Where the proxy listens (reachable from `from`'s namespace only). */
  readonly listenHost: string;
  readonly targetHost: string;
  readonly targetPort: number;
}

/**
 * A TCP proxy for the connections node `from` opens to one port of node `to`: what `from` sends
 * crosses link from→to, the answers cross to→from.
 */
export class LinkProxy {
  readonly figures: ProxyFigures = { connections: 0, resets: 0, bytes: 0, heldChunks: 0, delayMsMin: -1, delayMsMax: 0 };
  private readonly server: Server;
  private readonly open = new Set<{ client: Socket; upstream: Socket; pipes: Pipe[] }>();
  private readonly unsubscribe: () => void;
  private port = 0;

  constructor(private readonly options: LinkProxyOptions) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => this.accept(client));
    this.unsubscribe = options.links.onChange((from, to) => this.onLinkChange(from, to));
  }

  /** Listens on a free port of `listenHost`; answers the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.options.listenHost, () => resolve());
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address');
    this.port = address.port;
    return this.port;
  }

  get listenPort(): number {
    return this.port;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const connection of this.open) this.destroy(connection);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const { links, from, to, targetHost, targetPort } = this.options;
    if (links.of(from, to).cut === 'reset' || links.of(to, from).cut === 'reset') {
      this.figures.resets++;
      client.resetAndDestroy();
      return;
    }
    this.figures.connections++;
    client.setNoDelay(true);
    const upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true, noDelay: true });
    const connection = {
      client,
      upstream,
      pipes: [new Pipe(links, from, to, client, upstream, this.figures), new Pipe(links, to, from, upstream, client, this.figures)],
    };
    this.open.add(connection);
    // Each side's FIN and RST travel through its pipe like its bytes; the connection is over once
    // both sockets have closed.
    let closed = 0;
    for (const socket of [client, upstream]) {
      socket.on('close', () => {
        if (++closed === 2) this.forget(connection);
      });
    }
  }

  private forget(connection: { client: Socket; upstream: Socket; pipes: Pipe[] }): void {
    if (!this.open.delete(connection)) return;
    for (const pipe of connection.pipes) pipe.close();
  }

  private onLinkChange(from: number, to: number): void {
    const { from: a, to: b, links } = this.options;
    const ours = (from === a && to === b) || (from === b && to === a);
    if (!ours) return;
    const reset = links.of(from, to).cut === 'reset';
    for (const connection of this.open) {
      if (reset) {
        this.figures.resets++;
        this.destroy(connection, true);
      } else for (const pipe of connection.pipes) pipe.wake();
    }
  }

  private destroy(connection: { client: Socket; upstream: Socket; pipes: Pipe[] }, reset = false): void {
    this.forget(connection);
    for (const socket of [connection.client, connection.upstream]) {
      if (reset && !socket.destroyed && socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}
