import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { assert } from '../../core/assert.js';
import {
  httpBodyBytesMax,
  httpCallsInFlightMax,
  httpCallsInFlightRetryAfterMs,
  httpConnectionsMax,
  httpHeaderBytesMax,
  httpHeadersTimeoutMs,
  httpKeepAliveTimeoutMs,
  httpRequestTimeoutMs,
} from '../../core/limits.js';
import type { ListenAddress } from '../grpc/grpc-server.js';
import { internalMessage } from '../grpc/gateway-status.js';
import { anthropicErrorBody } from './anthropic-error.js';
import { ConnectionBound } from './connection-bound.js';
import { HttpExchange } from './http-exchange.js';

/**
 * The HTTP front door of a region node: a `node:http` server over a table of routes. It is an
 * adapter: routes translate requests into calls of the transport-neutral handler
 * (src/net/grpc/carpool-handler.ts) that the gRPC endpoint calls too, so every guarantee of the
 * request path holds on both. This file holds what every route shares; the Anthropic Messages
 * routes are ./anthropic-routes.ts.
 *
 * Per request:
 *
 *   connection      at `connectionsMax` the longest-idle connection is closed for a new one
 *                   (./connection-bound.ts); none idle: the new one is closed
 *   head            at most `httpHeaderBytesMax` bytes (431), within `headersTimeoutMs` (408):
 *                   Node's parser; such a client gets an Anthropic-shaped error and the close
 *   in-flight bound past `callsInFlightMax`: 503 overloaded_error + retry-after
 *   route           by method and path; the query string is accepted and ignored
 *                   (`/v1/messages?beta=true`); an unknown path is 404, a known path with another
 *                   method 405 with `allow`
 *   exchange        request id, context (peer IP, AbortSignal on the client's going away), the
 *                   body within `bodyBytesMax` (413) and within `requestTimeoutMs` (408)
 *   route handler   answers; one that throws is a bug: 500 api_error with a generic message,
 *                   reported to `onHandlerError`, and the server goes on serving
 *
 * Adding a route: pass it in `routes` (or `addRoute` before `start`): a method, a path whose
 * `{name}` segments match one segment each (given decoded in `exchange.params`), and a handler of
 * an `HttpExchange` (./http-exchange.ts). Paths are matched exactly, so `/v1/chat/completions`
 * sits beside `/v1/messages` without touching it.
 *
 * Keep-alive connections close after `keepAliveTimeoutMs` idle. `stop(graceMs)` stops listening,
 * closes idle connections, waits for running requests up to the grace, then closes every
 * connection: a stream's handler then sees its signal fire and the gateway drains and settles.
 */
export interface HttpRoute {
  readonly method: 'GET' | 'POST';
  /** `/v1/models/{id}`: literal segments and `{name}` parameters. */
  readonly path: string;
  handle(exchange: HttpExchange): Promise<void>;
}

export interface HttpBounds {
  /** At most `httpBodyBytesMax`. */
  readonly bodyBytesMax: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** At most `httpConnectionsMax`. */
  readonly connectionsMax: number;
}

export const defaultHttpBounds: HttpBounds = Object.freeze({
  bodyBytesMax: httpBodyBytesMax,
  headersTimeoutMs: httpHeadersTimeoutMs,
  requestTimeoutMs: httpRequestTimeoutMs,
  keepAliveTimeoutMs: httpKeepAliveTimeoutMs,
  connectionsMax: httpConnectionsMax,
});

export interface HttpFrontDoorOptions {
  readonly routes?: readonly HttpRoute[];
  readonly bounds?: Partial<HttpBounds>;
  /** Requests run at once, at most `httpCallsInFlightMax`. */
  readonly callsInFlightMax?: number;
  /** Headers on every response, such as `carpool-region`. */
  readonly serverHeaders?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
  /** Told of every route handler that threw, after the client got 500. Default: a log line. */
  readonly onHandlerError?: (error: unknown, path: string) => void;
}

export interface HttpFrontDoorStats {
  readonly requests: number;
  readonly inFlight: number;
  /** Requests refused at the in-flight bound. */
  readonly refusedInFlight: number;
  /** Requests for no route (404) or with a method the path does not take (405). */
  readonly unrouted: number;
  /** Requests Node's parser refused: malformed, head too large, too slow. */
  readonly clientErrors: number;
  readonly handlerFailures: number;
  readonly connections: number;
  readonly connectionsEvicted: number;
  readonly connectionsRefused: number;
}

interface CompiledRoute {
  readonly route: HttpRoute;
  readonly segments: readonly string[];
}

export class HttpFrontDoor {
  private readonly server: Server;
  private readonly routes: CompiledRoute[] = [];
  private readonly bounds: HttpBounds;
  private readonly connections: ConnectionBound;
  private readonly callsInFlightMax: number;
  private readonly serverHeaders: Readonly<Record<string, string>>;
  private readonly log: (line: string) => void;
  private readonly onHandlerError: (error: unknown, path: string) => void;
  private started = false;
  private stopping: Promise<void> | undefined;
  private requests = 0;
  private inFlight = 0;
  private refusedInFlight = 0;
  private unrouted = 0;
  private clientErrors = 0;
  private handlerFailures = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(options: HttpFrontDoorOptions = {}) {
    this.bounds = { ...defaultHttpBounds, ...options.bounds };
    const b = this.bounds;
    assert(Number.isSafeInteger(b.bodyBytesMax) && b.bodyBytesMax >= 1 && b.bodyBytesMax <= httpBodyBytesMax, 'bodyBytesMax is 1 to httpBodyBytesMax');
    assert(
      Number.isSafeInteger(b.connectionsMax) && b.connectionsMax >= 1 && b.connectionsMax <= httpConnectionsMax,
      'connectionsMax is 1 to httpConnectionsMax',
    );
    assert(b.headersTimeoutMs >= 1 && b.headersTimeoutMs <= b.requestTimeoutMs && b.keepAliveTimeoutMs >= 1, 'the head arrives within the request timeout');
    this.callsInFlightMax = options.callsInFlightMax ?? httpCallsInFlightMax;
    assert(this.callsInFlightMax >= 1 && this.callsInFlightMax <= httpCallsInFlightMax, 'callsInFlightMax is 1 to httpCallsInFlightMax');
    this.connections = new ConnectionBound(b.connectionsMax);
    this.serverHeaders = options.serverHeaders ?? {};
    this.log = options.log ?? ((line) => console.error(line));
    this.onHandlerError =
      options.onHandlerError ??
      ((error, path) => this.log(`http: ${path} handler failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`));
    for (const route of options.routes ?? []) this.addRoute(route);
    this.server = createServer(
      {
        maxHeaderSize: httpHeaderBytesMax,
        headersTimeout: b.headersTimeoutMs,
        requestTimeout: b.requestTimeoutMs,
        keepAliveTimeout: b.keepAliveTimeoutMs,
        // How often Node checks the two timeouts above; a slow head is cut within this of its bound.
        connectionsCheckingInterval: Math.min(1_000, b.headersTimeoutMs),
      },
      (req, res) => this.dispatch(req, res),
    );
    this.server.on('connection', (socket: Socket) => this.connections.opened(socket));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.clientError(error, socket));
  }

  /** Adds a route; only before `start`. A method and path already taken is a bug. */
  addRoute(route: HttpRoute): void {
    assert(!this.started, 'routes are added before the server starts');
    const segments = splitPath(route.path);
    assert(
      segments !== undefined && !segments.includes('') && !this.routes.some((r) => r.route.method === route.method && r.route.path === route.path),
      `one route per method and path: ${route.method} ${route.path}`,
    );
    this.routes.push({ route, segments });
  }

  async start(address: ListenAddress): Promise<number> {
    assert(!this.started, 'a server starts once');
    this.started = true;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops within `graceMs`; see the file comment. Idempotent. */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= this.shutDown(graceMs);
    return this.stopping;
  }

  stats(): HttpFrontDoorStats {
    return {
      requests: this.requests,
      inFlight: this.inFlight,
      refusedInFlight: this.refusedInFlight,
      unrouted: this.unrouted,
      clientErrors: this.clientErrors,
      handlerFailures: this.handlerFailures,
      connections: this.connections.size,
      connectionsEvicted: this.connections.evicted,
      connectionsRefused: this.connections.refused,
    };
  }

  private async shutDown(graceMs: number): Promise<void> {
    if (!this.started) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.connections.closeIdle();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.server.closeAllConnections();
    await closed;
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.connections.requestStarted(socket);
    res.once('close', () => this.connections.requestEnded(socket));
    this.requests++;
    let url: URL;
    let segments: string[] | undefined;
    try {
      url = new URL(req.url ?? '/', 'http://front-door.invalid');
      segments = splitPath(url.pathname);
    } catch {
      url = new URL('http://front-door.invalid/');
    }
    const match = segments === undefined ? undefined : this.match(req.method ?? 'GET', segments);
    const exchange = new HttpExchange(req, res, {
      bodyBytesMax: this.bounds.bodyBytesMax,
      routePath: match?.kind === 'route' ? match.route.path : url.pathname,
      params: match?.kind === 'route' ? match.params : {},
      url,
      serverHeaders: this.serverHeaders,
    });
    // A refusal before any route reads the body closes the connection, so the unread body is
    // never parsed as the next request.
    if (segments === undefined) return exchange.sendError(400, 'the request path is not valid percent-encoding', { connection: 'close' });
    if (match?.kind !== 'route') {
      this.unrouted++;
      if (match?.kind === 'method')
        return exchange.sendError(405, `${req.method ?? ''} is not allowed on ${url.pathname}; use ${match.allow.join(', ')}`, {
          allow: match.allow.join(', '),
          connection: 'close',
        });
      return exchange.sendError(404, `no route ${req.method ?? ''} ${url.pathname}; this endpoint serves ${this.routeList()}`, { connection: 'close' });
    }
    if (this.inFlight >= this.callsInFlightMax) {
      this.refusedInFlight++;
      const seconds = String(Math.ceil(httpCallsInFlightRetryAfterMs / 1000));
      return exchange.sendError(503, 'the region is overloaded', {
        'retry-after': seconds,
        'retry-after-ms': String(httpCallsInFlightRetryAfterMs),
        'x-should-retry': 'true',
        connection: 'close',
      });
    }
    this.inFlight++;
    void this.run(match.route, exchange);
  }

  private async run(route: HttpRoute, exchange: HttpExchange): Promise<void> {
    try {
      await route.handle(exchange);
    } catch (error) {
      this.handlerFailures++;
      try {
        this.onHandlerError(error, route.path);
      } catch (reportError) {
        this.log(`http: reporting a handler failure failed: ${String(reportError)}`);
      }
      if (exchange.res.headersSent) exchange.res.destroy();
      else exchange.sendJson(500, anthropicErrorBody(500, internalMessage), { 'x-should-retry': 'true', connection: 'close' });
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private match(
    method: string,
    segments: readonly string[],
  ): { kind: 'route'; route: HttpRoute; params: Record<string, string> } | { kind: 'method'; allow: string[] } | undefined {
    const allow: string[] = [];
    for (const { route, segments: pattern } of this.routes) {
      const params = matchSegments(pattern, segments);
      if (params === undefined) continue;
      if (route.method === method) return { kind: 'route', route, params };
      allow.push(route.method);
    }
    return allow.length > 0 ? { kind: 'method', allow } : undefined;
  }

  private routeList(): string {
    return this.routes.map(({ route }) => `${route.method} ${route.path}`).join(', ');
  }

  /**
   * What Node's parser refused (a malformed request, a head past `maxHeaderSize`, a head or body
   * too slow) gets an Anthropic-shaped answer when the socket can still take one, and is closed.
   */
  private clientError(error: NodeJS.ErrnoException, socket: Socket): void {
    this.clientErrors++;
    if (!socket.writable || (error.code === 'ECONNRESET' && socket.destroyed)) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', `the request head is over the bound of ${httpHeaderBytesMax} bytes`]
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'the request did not arrive in time']
          : [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
    const body = anthropicErrorBody(status, message);
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
}

/** A path's segments after its leading `/`, decoded; undefined for bad percent-encoding. */
function splitPath(path: string): string[] | undefined {
  const parts = path.split('/').slice(1);
  try {
    return parts.map((part) => decodeURIComponent(part));
  } catch {
    return undefined;
  }
}

function matchSegments(pattern: readonly string[], segments: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i] as string;
    const got = segments[i] as string;
    if (want.startsWith('{') && want.endsWith('}')) params[want.slice(1, -1)] = got;
    else if (want !== got) return undefined;
  }
  return params;
}
