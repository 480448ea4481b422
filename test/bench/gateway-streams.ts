// Held streams for the gateway benchmark: one streamed completion opened through the node's gRPC
// endpoint or straight at the emulator with undici, watched for its first text delta (time to
// first token) and kept open, reading, until the benchmark cancels it.
import { Client, credentials as grpcCredentials, Metadata, type ServiceError, status as grpcStatus } from '@grpc/grpc-js';
import type { Pool } from 'undici';
import { grpcSendMessageBytesMax } from '../../src/core/limits.js';
import { loadCarpoolProto } from '../../src/net/grpc/carpool-proto.js';
import { encodeCompleteRequest, type WireStreamEvent } from '../../src/net/grpc/carpool-wire.js';

export interface HeldStream {
  /** `performance.now()` when the call was started. */
  readonly sentAt: number;
  /** From `sentAt` to the first `content_block_delta`, in ms; undefined until it came. */
  ttftMs: number | undefined;
  /** `open` until it ends by itself, fails, or is cancelled. */
  state: 'open' | 'ended' | 'failed' | 'cancelled';
  /** The status (or error) of a failed stream. */
  failure: string | undefined;
  cancel(): void;
}

/** The SSE event line that carries the first token; its bytes may straddle two chunks. */
const deltaMarker = 'event: content_block_delta';

/**
 * A set of gRPC channels to one node, each with its own connection: grpc-js shares a connection
 * between channels with equal options unless told to keep a local subchannel pool, and the
 * endpoint runs at most `grpcStreamsPerConnectionMax` streams on one connection.
 */
export class GatewayChannels {
  private readonly clients: Client[];
  private readonly method = loadCarpoolProto().carpool.StreamComplete;
  private next = 0;

  constructor(
    port: number,
    count: number,
    private readonly apiKey: string,
  ) {
    this.clients = Array.from(
      { length: count },
      () =>
        new Client(`127.0.0.1:${port}`, grpcCredentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_receive_message_length': grpcSendMessageBytesMax,
        }),
    );
  }

  open(requestId: string, requestJson: Uint8Array): HeldStream {
    const client = this.clients[this.next++ % this.clients.length]!;
    const metadata = new Metadata();
    metadata.set('x-api-key', this.apiKey);
    const request = encodeCompleteRequest({ requestId, requestJson, anthropicVersion: '', anthropicBeta: '', user: '' });
    const sentAt = performance.now();
    const call = client.makeServerStreamRequest(this.method.path, this.method.requestSerialize, this.method.responseDeserialize, request, metadata, {});
    const held: HeldStream = {
      sentAt,
      ttftMs: undefined,
      state: 'open',
      failure: undefined,
      cancel: () => {
        if (held.state !== 'open') return;
        held.state = 'cancelled';
        call.cancel();
      },
    };
    call.on('data', (wire: WireStreamEvent) => {
      if (held.ttftMs === undefined && wire.body === 'event' && wire.event?.type === 'content_block_delta') held.ttftMs = performance.now() - sentAt;
    });
    call.on('error', (error: ServiceError) => {
      if (held.state !== 'open') return;
      held.state = 'failed';
      held.failure = `${grpcStatus[error.code] ?? error.code}: ${error.details}`;
    });
    call.on('end', () => {
      if (held.state === 'open') held.state = 'ended';
    });
    return held;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

/** The same streamed request straight at the emulator, read as bytes and scanned for the first delta. */
export function openDirectStream(pool: Pool, key: string, body: string): HeldStream {
  const controller = new AbortController();
  const sentAt = performance.now();
  const held: HeldStream = {
    sentAt,
    ttftMs: undefined,
    state: 'open',
    failure: undefined,
    cancel: () => {
      if (held.state !== 'open') return;
      held.state = 'cancelled';
      controller.abort();
    },
  };
  const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
  void (async () => {
    try {
      const res = await pool.request({ method: 'POST', path: '/v1/messages', headers, body, signal: controller.signal });
      if (res.statusCode !== 200) {
        held.state = 'failed';
        held.failure = `HTTP ${res.statusCode}`;
        await res.body.dump();
        return;
      }
      let tail = '';
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (held.ttftMs !== undefined) continue;
        const text = tail + chunk.toString('latin1');
        if (text.includes(deltaMarker)) held.ttftMs = performance.now() - sentAt;
        tail = text.slice(-deltaMarker.length);
      }
      if (held.state === 'open') held.state = 'ended';
    } catch (error) {
      if (held.state !== 'open') return;
      held.state = 'failed';
      held.failure = (error as Error).message;
    }
  })();
  return held;
}

/**
 * Opens `count` streams at `ratePerSecond` (an open-loop schedule on a 1 ms timer), then waits
 * until every one has its first token or has ended, or until `waitMs` after the last was
 * opened. The streams are left open: the caller measures, then cancels them.
 */
export async function openStreams(count: number, ratePerSecond: number, waitMs: number, open: (i: number) => HeldStream): Promise<HeldStream[]> {
  const streams: HeldStream[] = [];
  const intervalMs = 1000 / ratePerSecond;
  const start = performance.now();
  // Bounded by `count`: every pass opens every stream due by now.
  while (streams.length < count) {
    const due = Math.min(count, Math.floor((performance.now() - start) / intervalMs) + 1);
    while (streams.length < due) streams.push(open(streams.length));
    if (streams.length < count) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const deadline = performance.now() + waitMs;
  // Bounded by the deadline.
  while (performance.now() < deadline && streams.some((s) => s.state === 'open' && s.ttftMs === undefined)) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return streams;
}
