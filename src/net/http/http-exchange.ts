import { degradedHeader } from '../../schedule/degrade.js';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Result } from '../../core/result.js';
import { type CallContext, CallEndedError, type CarpoolCall, type CarpoolCredentials, type GatewayError, type LimitUsage } from '../grpc/carpool-handler.js';
import { peerIpOf } from '../grpc/call-context.js';
import type { CredentialsProblem } from '../grpc/metadata-credentials.js';
import { anthropicErrorBody } from './anthropic-error.js';
import { httpCredentialsOf } from './http-credentials.js';
import { httpStatusOf } from './http-status.js';
import { quotaHeadersOf } from './quota-headers.js';
import { idempotencyKeyHeader, type RequestIdChoice, requestIdOf } from './request-id.js';
import { SseWriter } from './sse-writer.js';

/**
 * One HTTP request and its response, as a route sees them: the request id, the call context (the
 * client's IP, an AbortSignal that fires when the client goes away), the bounded body, the
 * credentials, and the answers every route gives the same way. Every response carries
 * `request-id`; errors carry `x-should-retry` (whether the table calls them retryable, which the
 * official SDKs obey) and, with a hint, `retry-after` and `retry-after-ms`.
 *
 * A route that adds a surface (an OpenAI-compatible route) builds its call with `carpoolCall`,
 * takes statuses from `httpStatusOf` (./http-status.ts), and writes its own body shape with
 * `send`, or its own SSE frames with `sse()`.
 */
export type BodyRead =
  | { readonly kind: 'ok'; readonly bytes: Uint8Array }
  /** Past the bound: already answered 413, and the connection closes after it. */
  | { readonly kind: 'too-large' }
  /** The client went away before the body ended: nobody to answer. */
  | { readonly kind: 'gone' };

export interface ExchangeOptions {
  readonly bodyBytesMax: number;
  /** The route's path pattern, the call's `methodPath`. */
  readonly routePath: string;
  /** Path parameters of the route (`{id}`), decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly url: URL;
  /** Headers every response of this server carries (`carpool-region`). */
  readonly serverHeaders: Readonly<Record<string, string>>;
}

export class HttpExchange {
  readonly requestId: RequestIdChoice;
  readonly context: CallContext;
  readonly params: Readonly<Record<string, string>>;
  readonly url: URL;
  private readonly controller = new AbortController();
  private readonly headers: Record<string, string>;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly options: ExchangeOptions,
  ) {
    this.params = options.params;
    this.url = options.url;
    this.requestId = requestIdOf(req.headersDistinct[idempotencyKeyHeader]);
    this.headers = { ...options.serverHeaders, 'request-id': this.requestId.id };
    // The response closes before it finished only when the connection broke: the client left (or
    // the server was stopped), which a handler hears as gRPC's cancel.
    res.once('close', () => {
      if (!res.writableFinished) this.controller.abort(new CallEndedError('cancelled'));
    });
    const socket = req.socket;
    const peerIp = socket.remoteAddress === undefined ? undefined : peerIpOf(`[${socket.remoteAddress}]:${socket.remotePort ?? 0}`);
    this.context = { methodPath: options.routePath, peerIp, signal: this.controller.signal, deadlineMs: undefined };
  }

  /** Reads the body, at most `bodyBytesMax` bytes; past it answers 413 itself. */
  readBody(): Promise<BodyRead> {
    const req = this.req;
    const max = this.options.bodyBytesMax;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) return Promise.resolve(this.tooLarge(max));
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (read: BodyRead): void => {
        if (done) return;
        done = true;
        req.off('data', onData);
        resolve(read);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > max) {
          finish(this.tooLarge(max));
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => finish({ kind: 'ok', bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) }));
      // A body cut short (the client closed, or the request timeout destroyed the socket).
      req.once('error', () => finish({ kind: 'gone' }));
      req.once('close', () => finish({ kind: 'gone' }));
    });
  }

  credentials(): Result<CarpoolCredentials, CredentialsProblem> {
    return httpCredentialsOf(this.req.headersDistinct);
  }

  /**
   * The call the gateway takes: this exchange's context, the credentials, what a signature covers
   * (the method, the request target as received, the body), and the quota headers once admission
   * reports them.
   */
  carpoolCall<Request>(request: Request, body: Uint8Array, credentials: CarpoolCredentials): CarpoolCall<Request> {
    return {
      ...this.context,
      request,
      credentials,
      signedContent: { method: this.req.method ?? 'GET', path: this.req.url ?? '/', body },
      onLimits: (limits: readonly LimitUsage[]) => Object.assign(this.headers, quotaHeadersOf(limits)),
      onDegraded: (value: string) => Object.assign(this.headers, { [degradedHeader]: value }),
    };
  }

  /** Adds headers to the response, before it is sent. */
  setHeaders(headers: Readonly<Record<string, string>>): void {
    Object.assign(this.headers, headers);
  }

  /** A whole response. Does nothing once the client is gone or a response was sent. */
  send(status: number, body: string | Uint8Array, contentType: string, headers: OutgoingHttpHeaders = {}): void {
    const res = this.res;
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, {
      ...this.headers,
      ...headers,
      'content-type': contentType,
      'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.length,
    });
    res.end(body);
  }

  sendJson(status: number, body: string | Uint8Array, headers: OutgoingHttpHeaders = {}): void {
    this.send(status, body, 'application/json', headers);
  }

  /** An Anthropic-shaped error that no table row describes: a bad route, method, body or header. */
  sendError(status: number, message: string, headers: OutgoingHttpHeaders = {}): void {
    this.sendJson(status, anthropicErrorBody(status, message), { 'x-should-retry': 'false', ...headers });
  }

  /** A gateway error in the Anthropic shape, with the status and hints of the one table. */
  sendGatewayError(error: GatewayError): void {
    const status = httpStatusOf(error);
    this.sendJson(status.status, anthropicErrorBody(status.status, status.message), errorHeadersOf(status));
  }

  /** The credentials could not be read one way: the generic authentication refusal. */
  sendCredentialsRefusal(problem: CredentialsProblem): void {
    this.sendGatewayError({ kind: 'rejected', rejection: { kind: 'unauthenticated', reason: problem } });
  }

  /** An SSE response whose headers go out with the first frame. */
  sse(): SseWriter {
    return new SseWriter(this.res, this.context.signal, () => {
      this.res.writeHead(200, { ...this.headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    });
  }

  /** Ends a response whose head was written (an SSE stream); does nothing once the client is gone. */
  end(): void {
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  private tooLarge(max: number): BodyRead {
    // The rest of the body is not read: the connection closes after the answer.
    this.sendError(413, `the request body is over the bound of ${max} bytes`, { connection: 'close' });
    return { kind: 'too-large' };
  }
}

/** `x-should-retry`, `retry-after` and `retry-after-ms` of an error status. */
export function errorHeadersOf(status: ReturnType<typeof httpStatusOf>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { 'x-should-retry': String(status.retryable) };
  if (status.retryAfterSeconds !== undefined) headers['retry-after'] = status.retryAfterSeconds;
  if (status.retryAfterMs !== undefined) headers['retry-after-ms'] = status.retryAfterMs;
  return headers;
}
