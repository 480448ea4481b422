// A tiny stand-in for the Anthropic API on 127.0.0.1, for the upstream client's tests: each test
// says how to answer, and the server records requests, connections and how responses ended.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Timers } from '../../src/upstream/call-guard.js';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** How a response ended, seen from the server: written to its end, or cut by the client. */
export type ResponseEnd = 'finished' | 'closed-early';

/** Answers one request; whatever it returns is ignored, except a rejection, which hangs up. */
export type Handler = (request: RecordedRequest, res: ServerResponse) => unknown;

export interface LocalUpstream {
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** One promise per response, settled when it finished or its connection closed. */
  readonly responseEnds: Promise<ResponseEnd>[];
  connectionsTotal(): number;
  connectionsOpen(): number;
  /** Waits (at most `withinMs`) until no connection is open; returns how many still are. */
  settleConnections(withinMs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function startUpstream(handler: Handler): Promise<LocalUpstream> {
  const requests: RecordedRequest[] = [];
  const responseEnds: Promise<ResponseEnd>[] = [];
  const sockets = new Set<Socket>();
  let connectionsTotal = 0;
  const server = createServer((req, res) => {
    responseEnds.push(
      new Promise<ResponseEnd>((resolve) => {
        res.on('close', () => resolve(res.writableFinished ? 'finished' : 'closed-early'));
      }),
    );
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts).toString('utf8') };
      requests.push(request);
      new Promise<unknown>((resolve) => resolve(handler(request, res))).catch((error: unknown) => {
        // A handler that throws is a broken test, not a scenario: say so, and hang up.
        console.error('local upstream handler failed:', error);
        res.destroy();
      });
    });
  });
  server.on('connection', (socket: Socket) => {
    connectionsTotal++;
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    responseEnds,
    connectionsTotal: () => connectionsTotal,
    connectionsOpen: () => sockets.size,
    settleConnections: async (withinMs = 1_000) => {
      await eventually(() => sockets.size === 0, withinMs);
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Polls `condition` every 10 ms for at most `withinMs`; returns whether it became true. */
export async function eventually(condition: () => boolean, withinMs: number): Promise<boolean> {
  for (let waitedMs = 0; waitedMs <= withinMs; waitedMs += 10) {
    if (condition()) return true;
    await sleep(10);
  }
  return condition();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One turn of the event loop, I/O included. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Writes `bytes` in the given pieces, each flushed before the next, so the client sees them apart. */
export async function writePieces(res: ServerResponse, bytes: Uint8Array, cuts: readonly number[]): Promise<void> {
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= from) continue;
    await new Promise<void>((resolve, reject) => res.write(bytes.subarray(from, cut), (error) => (error ? reject(error) : resolve())));
    await new Promise((resolve) => setImmediate(resolve));
    from = cut;
  }
}

/** Timers that count what is pending, so a test can prove a call left none behind. */
export function countingTimers(): Timers & { pending(): number } {
  const live = new Set<ReturnType<typeof setTimeout>>();
  return {
    start: (callback, delayMs) => {
      const handle = setTimeout(() => {
        live.delete(handle);
        callback();
      }, delayMs);
      live.add(handle);
      return handle;
    },
    cancel: (handle) => {
      live.delete(handle as ReturnType<typeof setTimeout>);
      clearTimeout(handle as ReturnType<typeof setTimeout>);
    },
    pending: () => live.size,
  };
}

// ---- A recorded Messages API stream ----

export const recordedEvents: readonly { readonly event: string; readonly data: unknown }[] = [
  {
    event: 'message_start',
    data: {
      type: 'message_start',
      message: {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5',
        content: [],
        stop_reason: null,
        usage: { input_tokens: 25, output_tokens: 1, cache_creation_input_tokens: 100, cache_read_input_tokens: 2000 },
      },
    },
  },
  { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
  { event: 'ping', data: { type: 'ping' } },
  { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Bonjour, ' } } },
  { event: 'some_future_event', data: { type: 'some_future_event', note: 'ignored' } },
  { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'le monde \u00e9t\u00e9 \u{1F600}' } } },
  { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
  { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 12 } } },
  { event: 'message_delta', data: { type: 'message_delta', delta: {}, usage: { output_tokens: 42 } } },
  { event: 'message_stop', data: { type: 'message_stop' } },
];

export function sseText(events: readonly { readonly event: string; readonly data: unknown }[]): string {
  return events.map((e) => `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`).join('');
}

export const recordedStream: Uint8Array = new TextEncoder().encode(sseText(recordedEvents));

export const sseHeaders = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_stream_1' } as const;

/** A non-streaming response body with cache usage. */
export const recordedMessage = {
  id: 'msg_2',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5',
  content: [{ type: 'text', text: 'Hello' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 30, output_tokens: 7, cache_creation_input_tokens: 5, cache_read_input_tokens: 1200 },
};
