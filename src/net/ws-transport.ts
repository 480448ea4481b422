/**
 * The mesh transport over WebSockets (`ws`). It owns sockets, timers and reconnection, and
 * nothing else: frames are opaque bytes, and which member is at the other end of a link is
 * settled above it by the mesh handshake.
 *
 * Lifecycle of a link:
 *
 *   outbound: start() ── dial(peer) ──► open ──► onOpen ─┬─► onMessage* ─► close ─► onClose
 *                  ▲        │ error/refused              │                            │
 *                  └─ backoff (full jitter) ◄────────────┴────────────────────────────┘
 *   inbound:  server 'connection' ──► (over linksMax? close 1013) ──► onOpen ─► … ─► onClose
 *
 * Every link runs its own heartbeat: a ping each `pingIntervalMs`; a link whose peer has not
 * answered a ping within `pongTimeoutMs` is terminated, because a partitioned TCP connection can
 * stay silent, neither open nor closed, for minutes. Closing is bounded too: a peer that does not
 * finish the closing handshake within `pongTimeoutMs` is terminated.
 *
 * Expected failures (peer gone, queue full, bad frame) are values and counters, never throws;
 * an `'error'` listener sits on every socket and on the server so nothing a peer does can crash
 * the process.
 */
import { Buffer } from 'node:buffer';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { assert } from '../core/assert.js';
import { frameBytesMax, linkSendQueueBytesMax, linksMax, meshMembersMax } from '../core/limits.js';
import type { LinkId, LinkInfo, SendResult, Transport, TransportHandler } from './transport.js';

export interface WsTransportOptions {
  /** Address the server binds, e.g. '127.0.0.1'. */
  readonly listenHost: string;
  /** Port the server binds; 0 picks an ephemeral port, which `start()` resolves with. */
  readonly listenPort: number;
  /**
   * Server side: serve wss with `certPem`/`keyPem`. Client side: trust `caPem` (in place of the
   * system roots) when dialing wss:// urls.
   */
  readonly tls?: { readonly certPem: string; readonly keyPem: string; readonly caPem?: string };
  /** Peers this node dials, by ws:// or wss:// url. Peers that dial us are not listed. */
  readonly peers: ReadonlyArray<{ readonly peer: string; readonly url: string }>;
  /** Largest message accepted, server and client side (ws `maxPayload`); at most `limits.frameBytesMax`. */
  readonly frameBytesMax: number;
  /** Per-link bound on `socket.bufferedAmount`; at most `limits.linkSendQueueBytesMax`. */
  readonly sendQueueBytesMax: number;
  readonly pingIntervalMs: number;
  /** A link whose peer leaves a ping unanswered this long is terminated. */
  readonly pongTimeoutMs: number;
  /** Reconnect delay = random() * min(backoffMaxMs, backoffInitialMs * 2^attempt). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  readonly random: () => number;
  /**
   * Links (open, or outbound and connecting) held at once; inbound connections past it are
   * closed with 1013. Defaults to `limits.linksMax` and may only be lowered (tests do).
   */
  readonly linksMax?: number;
}

export interface WsTransportStats {
  readonly linksOpened: number;
  readonly linksClosed: number;
  /** Dials after the first one to a peer (each follows a backoff delay). */
  readonly reconnectAttempts: number;
  readonly framesSent: number;
  readonly bytesSent: number;
  readonly framesReceived: number;
  readonly bytesReceived: number;
  /** Droppable sends refused because the link's send queue was over its bound. */
  readonly droppedSends: number;
  /** Links closed (1013) because an essential send did not fit the send queue. */
  readonly queueOverflowCloses: number;
  /** Links terminated because a ping went unanswered for `pongTimeoutMs`. */
  readonly pongTimeouts: number;
  /** Links closed for a peer's protocol violation: text messages, oversized messages, bad frames. */
  readonly protocolErrors: number;
  /** Inbound connections closed (1013) because the node already held `linksMax` links. */
  readonly linksRefused: number;
}

type MutableStats = { -readonly [K in keyof WsTransportStats]: WsTransportStats[K] };

/** WebSocket close codes this transport sends (RFC 6455 §7.4.1 and the IANA registry). */
const closeGoingAway = 1001;
const closeUnsupportedData = 1003;
const closeTryAgainLater = 1013;

/**
 * The full-jitter backoff delay before dial number `attempt + 1` (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"): uniform in [0, min(maxMs, initialMs * 2^attempt)). Full
 * jitter spreads the reconnects of every node that lost the same peer at the same moment.
 */
export function fullJitterDelayMs(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const r = random();
  assert(r >= 0 && r < 1, `random() must be in [0, 1), got ${r}`);
  return r * Math.min(maxMs, initialMs * 2 ** attempt);
}

interface Link {
  readonly id: LinkId;
  readonly socket: WebSocket;
  /** Monotonic time of the open, for the backoff reset rule. */
  readonly openedAtMs: number;
  pingTimer: NodeJS.Timeout | null;
  /** Armed by the oldest unanswered ping; any pong disarms it (pongs answer pings in order). */
  pongTimer: NodeJS.Timeout | null;
}

interface Dialer {
  readonly peer: string;
  readonly url: string;
  /** Exponent of the next backoff ceiling; stops growing once the ceiling reaches backoffMaxMs. */
  attempt: number;
  /** The connecting or open socket: while it exists the peer is not dialed again. */
  socket: WebSocket | null;
  retryTimer: NodeJS.Timeout | null;
}

export class WsTransport implements Transport {
  private readonly options: WsTransportOptions;
  private readonly handler: TransportHandler;
  private readonly linksMax: number;
  private readonly dialers: Dialer[];
  private readonly links = new Map<LinkId, Link>();
  /** Every socket not yet closed, in any state, so stop() can wait for each one. */
  private readonly sockets = new Set<WebSocket>();
  /** Outbound sockets still in their opening handshake; they count against linksMax. */
  private dialsPending = 0;
  private nextLinkId: LinkId = 1;
  private server: HttpServer | null = null;
  private wss: WebSocketServer | null = null;
  private starting: Promise<{ port: number }> | null = null;
  private stopping: Promise<void> | null = null;
  private stopped = false;
  private readonly counters: MutableStats = {
    linksOpened: 0,
    linksClosed: 0,
    reconnectAttempts: 0,
    framesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    droppedSends: 0,
    queueOverflowCloses: 0,
    pongTimeouts: 0,
    protocolErrors: 0,
    linksRefused: 0,
  };

  constructor(options: WsTransportOptions, handler: TransportHandler) {
    const { listenPort } = options;
    assert(Number.isSafeInteger(listenPort) && listenPort >= 0 && listenPort <= 0xffff, 'bad listenPort');
    assert(options.peers.length <= meshMembersMax, `at most ${meshMembersMax} peers`);
    assert(new Set(options.peers.map((p) => p.peer)).size === options.peers.length, 'peer ids must be distinct');
    for (const { peer, url } of options.peers) {
      // A bad url is a configuration error: fail at construction, not later inside a timer.
      assert(URL.canParse(url) && /^wss?:$/.test(new URL(url).protocol), `peer ${peer}: not a ws:// or wss:// url: ${url}`);
    }
    assert(options.frameBytesMax >= 1 && options.frameBytesMax <= frameBytesMax, 'frameBytesMax out of range');
    assert(options.sendQueueBytesMax >= 0 && options.sendQueueBytesMax <= linkSendQueueBytesMax, 'sendQueueBytesMax out of range');
    assert(options.pingIntervalMs > 0 && options.pongTimeoutMs > 0, 'heartbeat intervals must be positive');
    assert(options.backoffInitialMs > 0 && options.backoffMaxMs >= options.backoffInitialMs, 'bad backoff bounds');
    this.linksMax = options.linksMax ?? linksMax;
    assert(Number.isSafeInteger(this.linksMax) && this.linksMax >= 1 && this.linksMax <= linksMax, 'bad linksMax');
    this.options = options;
    this.handler = handler;
    this.dialers = options.peers.map(({ peer, url }) => ({ peer, url, attempt: 0, socket: null, retryTimer: null }));
  }

  /** Listens, then dials every configured peer. Rejects if the port cannot be bound. */
  start(): Promise<{ port: number }> {
    assert(this.starting === null, 'start() may be called once');
    assert(!this.stopped, 'start() after stop()');
    this.starting = this.listen().then((port) => {
      // stop() may have run while the server was binding; it must not be followed by dials.
      if (!this.stopped) for (const dialer of this.dialers) this.dial(dialer);
      return { port };
    });
    return this.starting;
  }

  /**
   * Closes every link (1001), stops reconnecting and closes the server. Resolves once every
   * socket is closed and every `onClose` has been delivered, with no timer left behind.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /**
   * Queues one binary message. The transport keeps a reference to `bytes` until the socket has
   * written it, so the caller must not reuse the buffer afterwards (encoders return fresh ones).
   */
  send(link: LinkId, bytes: Uint8Array, droppable: boolean): SendResult {
    const entry = this.links.get(link);
    if (entry === undefined || entry.socket.readyState !== WebSocket.OPEN) return 'closed';
    if (entry.socket.bufferedAmount + bytes.length > this.options.sendQueueBytesMax) {
      if (droppable) {
        this.counters.droppedSends++;
        return 'dropped';
      }
      // An essential frame that cannot be queued cannot be skipped either: a fresh connection
      // restarts with a digest exchange, which repairs whatever this one would have carried.
      this.counters.queueOverflowCloses++;
      this.closeGracefully(entry.socket, closeTryAgainLater, 'send queue full');
      return 'closed';
    }
    entry.socket.send(bytes, { binary: true });
    this.counters.framesSent++;
    this.counters.bytesSent += bytes.length;
    return 'sent';
  }

  /**
   * Starts the closing handshake; `onClose` follows once the socket is closed. `code` and `reason`
   * must be valid for a close frame (ws throws on 1005, 1006 or a reason over 123 bytes, which are
   * programmer errors). Unknown or already closing links are ignored.
   */
  close(link: LinkId, code: number, reason: string): void {
    const entry = this.links.get(link);
    if (entry !== undefined) this.closeGracefully(entry.socket, code, reason);
  }

  stats(): WsTransportStats {
    return { ...this.counters };
  }

  // ---- Server side ----

  private listen(): Promise<number> {
    const { tls } = this.options;
    // Plain HTTP requests get 426, as ws's own server answers; the mesh speaks only WebSocket.
    const onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(426, { 'Content-Type': 'text/plain' });
      res.end('Upgrade Required');
    };
    const server: HttpServer = tls === undefined ? createHttpServer(onRequest) : createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, onRequest);
    const wss = new WebSocketServer({
      server,
      perMessageDeflate: false,
      maxPayload: this.options.frameBytesMax,
      // The transport tracks its own sockets; ws's set would be a second, unbounded copy.
      clientTracking: false,
    });
    // ws re-emits server errors on the WebSocketServer; without a listener one would crash the
    // process. A listen error rejects start() below; later ones (EMFILE on accept) leave the
    // server running, and the node keeps the links it has.
    wss.on('error', () => undefined);
    wss.on('connection', (socket, req) => this.accept(socket, req));
    this.server = server;
    this.wss = wss;
    return new Promise<number>((resolve, reject) => {
      const onListenError = (error: Error): void => reject(error);
      server.once('error', onListenError);
      server.listen(this.options.listenPort, this.options.listenHost, () => {
        server.removeListener('error', onListenError);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  private accept(socket: WebSocket, req: IncomingMessage): void {
    this.track(socket);
    socket.on('error', (error) => this.onSocketError(error));
    if (this.stopped) {
      socket.terminate();
      return;
    }
    if (this.links.size + this.dialsPending >= this.linksMax) {
      this.counters.linksRefused++;
      this.closeGracefully(socket, closeTryAgainLater, 'too many links');
      return;
    }
    const remoteAddress = formatAddress(req.socket.remoteAddress, req.socket.remotePort) ?? 'unknown';
    const link = this.openLink(socket, { direction: 'inbound', remoteAddress });
    socket.once('close', (code, reason) => this.finishLink(link, code, reason));
  }

  // ---- Client side ----

  private dial(dialer: Dialer): void {
    if (this.stopped) return;
    assert(dialer.socket === null && dialer.retryTimer === null, 'one dialer per peer');
    if (this.links.size + this.dialsPending >= this.linksMax) {
      this.scheduleRedial(dialer);
      return;
    }
    const caPem = this.options.tls?.caPem;
    const socket = new WebSocket(dialer.url, {
      perMessageDeflate: false,
      maxPayload: this.options.frameBytesMax,
      // A peer that cannot finish the upgrade in the time a live link has to answer a ping is
      // treated as unreachable, so a blackholed address does not stall the dialer for the OS
      // connect timeout (minutes).
      handshakeTimeout: this.options.pingIntervalMs + this.options.pongTimeoutMs,
      ...(caPem === undefined ? {} : { ca: caPem }),
    });
    dialer.socket = socket;
    this.dialsPending++;
    this.track(socket);
    let remoteAddress = new URL(dialer.url).host;
    let link: Link | null = null;
    socket.on('error', (error) => this.onSocketError(error));
    socket.once('upgrade', (response) => {
      remoteAddress = formatAddress(response.socket.remoteAddress, response.socket.remotePort) ?? remoteAddress;
    });
    socket.once('open', () => {
      this.dialsPending--;
      link = this.openLink(socket, { direction: 'outbound', dialedPeer: dialer.peer, remoteAddress });
    });
    socket.once('close', (code, reason) => {
      if (link === null) {
        this.dialsPending--;
      } else {
        this.finishLink(link, code, reason);
        // Reset only after a link that stayed up for a full backoff ceiling: a peer that accepts
        // and then drops us at once (failed mesh handshake, crash loop) keeps backing off
        // instead of being redialed in a tight loop.
        if (performance.now() - link.openedAtMs >= this.options.backoffMaxMs) dialer.attempt = 0;
      }
      dialer.socket = null;
      this.scheduleRedial(dialer);
    });
  }

  /** Schedules the next dial; the dialer retries forever (a member must rejoin) at bounded intervals. */
  private scheduleRedial(dialer: Dialer): void {
    if (this.stopped) return;
    const { backoffInitialMs, backoffMaxMs, random } = this.options;
    const delayMs = fullJitterDelayMs(dialer.attempt, backoffInitialMs, backoffMaxMs, random);
    if (backoffInitialMs * 2 ** dialer.attempt < backoffMaxMs) dialer.attempt++;
    dialer.retryTimer = setTimeout(() => {
      dialer.retryTimer = null;
      this.counters.reconnectAttempts++;
      this.dial(dialer);
    }, delayMs);
  }

  // ---- Both sides ----

  private track(socket: WebSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private openLink(socket: WebSocket, info: LinkInfo): Link {
    const link: Link = {
      id: this.nextLinkId++,
      socket,
      openedAtMs: performance.now(),
      pingTimer: null,
      pongTimer: null,
    };
    this.links.set(link.id, link);
    this.counters.linksOpened++;
    socket.on('message', (data, isBinary) => this.onSocketMessage(link, data, isBinary));
    socket.on('pong', () => {
      if (link.pongTimer !== null) clearTimeout(link.pongTimer);
      link.pongTimer = null;
    });
    link.pingTimer = setInterval(() => this.ping(link), this.options.pingIntervalMs);
    this.handler.onOpen(link.id, info);
    return link;
  }

  private finishLink(link: Link, code: number, reason: Buffer): void {
    if (link.pingTimer !== null) clearInterval(link.pingTimer);
    if (link.pongTimer !== null) clearTimeout(link.pongTimer);
    link.pingTimer = null;
    link.pongTimer = null;
    // ws emits 'close' once per socket, so this runs once per opened link.
    assert(this.links.delete(link.id), `link ${link.id} closed twice`);
    this.counters.linksClosed++;
    this.handler.onClose(link.id, { code, reason: reason.toString('utf8') });
  }

  private ping(link: Link): void {
    if (link.socket.readyState !== WebSocket.OPEN) return;
    link.socket.ping();
    link.pongTimer ??= setTimeout(() => {
      link.pongTimer = null;
      this.counters.pongTimeouts++;
      link.socket.terminate();
    }, this.options.pongTimeoutMs);
  }

  private onSocketMessage(link: Link, data: RawData, isBinary: boolean): void {
    // Once a close has begun (by either side, or for a protocol error) the link delivers
    // nothing more: the handler has been told, or is about to be, that the link is going.
    if (link.socket.readyState !== WebSocket.OPEN) return;
    if (!isBinary) {
      this.counters.protocolErrors++;
      this.closeGracefully(link.socket, closeUnsupportedData, 'binary frames only');
      return;
    }
    // binaryType is left at 'nodebuffer', so ws hands over one Buffer per message.
    assert(Buffer.isBuffer(data), 'ws delivers binary messages as Buffers');
    this.counters.framesReceived++;
    this.counters.bytesReceived += data.length;
    // A plain Uint8Array view, without copying: Buffer's `slice` shares memory where
    // Uint8Array's copies, a difference decoders should not have to know about. The view may
    // share its ArrayBuffer with neighbouring data, so `bytes.buffer` is not the message.
    this.handler.onMessage(link.id, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  private onSocketError(error: Error): void {
    // ws's receiver errors carry a WS_ERR_* code (oversized message, bad opcode, invalid UTF-8
    // in a close frame) and ws closes the link itself, 1009 for an oversized message. Connection
    // errors (refused, reset, TLS) are followed by 'close', which schedules the redial.
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('WS_ERR_')) this.counters.protocolErrors++;
  }

  /**
   * Starts the closing handshake and bounds it: a peer that does not answer within
   * `pongTimeoutMs` (the time it has to answer a ping) is terminated, instead of holding a
   * link slot for ws's default 30 s.
   */
  private closeGracefully(socket: WebSocket, code: number, reason: string): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.close(code, reason);
    const timer = setTimeout(() => socket.terminate(), this.options.pongTimeoutMs);
    socket.once('close', () => clearTimeout(timer));
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    // A start() still binding finishes first, so its server is closed below and not leaked.
    await this.starting?.catch(() => undefined);
    for (const dialer of this.dialers) {
      if (dialer.retryTimer !== null) clearTimeout(dialer.retryTimer);
      dialer.retryTimer = null;
    }
    const closed = [...this.sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) resolve();
          else socket.once('close', () => resolve());
        }),
    );
    for (const socket of this.sockets) {
      // Open links get a closing handshake, so the peer sees 1001 and not a reset; sockets still
      // connecting or already closing have nothing to say and are cut.
      if (socket.readyState === WebSocket.OPEN) this.closeGracefully(socket, closeGoingAway, 'transport stopping');
      else socket.terminate();
    }
    await Promise.all(closed);
    const server = this.server;
    if (server !== null) {
      this.wss?.close();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Plain HTTP keep-alive connections (someone probing the port) would hold close() open.
      server.closeAllConnections();
      await serverClosed;
    }
  }
}

/** `host:port`, with IPv6 hosts bracketed as in a URL; undefined once the socket has closed. */
function formatAddress(host: string | undefined, port: number | undefined): string | undefined {
  if (host === undefined || port === undefined) return undefined;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
