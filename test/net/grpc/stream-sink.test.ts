// Proves the stream sink's backpressure contract on a fake writable.
// It waits for drain exactly when a write reports the buffer full, is released with CallEndedError
// when the call ends, refuses overlapping sends and sends after finish, and writes the summary
// last.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../src/core/assert.js';
import { grpcStreamEventsBufferedMax } from '../../../src/core/limits.js';
import { CallEndedError } from '../../../src/net/grpc/carpool-handler.js';
import type { WireStreamEvent } from '../../../src/net/grpc/carpool-wire.js';
import { GrpcStreamSink, type WritableCall } from '../../../src/net/grpc/stream-sink.js';

/** A writable that reports full after `capacity` unflushed messages, like a Node object stream. */
class FakeWritable extends EventEmitter implements WritableCall {
  readonly written: WireStreamEvent[] = [];
  buffered = 0;
  constructor(
    readonly writableHighWaterMark: number = grpcStreamEventsBufferedMax,
    private readonly capacity: number = 2,
  ) {
    super();
  }
  write(message: WireStreamEvent): boolean {
    this.written.push(message);
    this.buffered++;
    return this.buffered < this.capacity;
  }
  flush(): void {
    this.buffered = 0;
    this.emit('drain');
  }
}

const event = { type: 'ping', dataJson: new Uint8Array([123, 125]) };
const summary = { requestId: 'r', usage: { inputTokens: 1, outputTokens: 2, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 }, servedRegion: 'eu' };

/** Whether `promise` settled within a few turns of the event loop. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('GrpcStreamSink', () => {
  it('resolves at once while the buffer has room, and waits for drain once a write reports it full', async () => {
    const call = new FakeWritable();
    const sink = new GrpcStreamSink(call, new AbortController().signal);
    expect(await settled(sink.send(event))).toBe(true);
    const second = sink.send(event);
    expect(await settled(second)).toBe(false);
    call.flush();
    expect(await settled(second)).toBe(true);
    expect(call.written).toHaveLength(2);
    expect(call.written[0]).toEqual({ event: { type: 'ping', data_json: event.dataJson } });
  });

  it('releases a waiting send with the reason of the call ending, and refuses later sends', async () => {
    const call = new FakeWritable(16, 1);
    const controller = new AbortController();
    const sink = new GrpcStreamSink(call, controller.signal);
    const waiting = sink.send(event);
    controller.abort(new CallEndedError('deadline'));
    await expect(waiting).rejects.toMatchObject({ reason: 'deadline' });
    await expect(sink.send(event)).rejects.toBeInstanceOf(CallEndedError);
    expect(call.written).toHaveLength(1);
    expect(call.listenerCount('drain')).toBe(0);
  });

  it('refuses a send while another waits: the buffer bound relies on one at a time', async () => {
    const call = new FakeWritable(16, 1);
    const sink = new GrpcStreamSink(call, new AbortController().signal);
    const first = sink.send(event);
    await expect(sink.send(event)).rejects.toBeInstanceOf(AssertionError);
    call.flush();
    await first;
  });

  it('writes the summary last on finish, none after the call ended, and refuses events after finish', async () => {
    const call = new FakeWritable();
    const sink = new GrpcStreamSink(call, new AbortController().signal);
    await sink.send(event);
    sink.finish(summary);
    expect(call.written.at(-1)).toEqual({
      summary: {
        request_id: 'r',
        usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
        served_region: 'eu',
      },
    });
    await expect(sink.send(event)).rejects.toMatchObject({ reason: 'finished' });

    const ended = new AbortController();
    const gone = new FakeWritable();
    ended.abort(new CallEndedError('cancelled'));
    new GrpcStreamSink(gone, ended.signal).finish(summary);
    expect(gone.written).toHaveLength(0);
  });

  it('refuses a writable whose buffer exceeds the named bound', () => {
    expect(() => new GrpcStreamSink(new FakeWritable(grpcStreamEventsBufferedMax + 1), new AbortController().signal)).toThrow(AssertionError);
  });
});
