// Proves the gateway's answer store: an id runs once per node, a retry by its tenant gets the
// kept answer (a stream's events in order, then its summary), another tenant never sees it, a
// waiting retry hears when the first ends, a withdrawn id may run again, an answer too large is
// remembered as done without it, and a retry by the other method is told which one to use.
import { describe, expect, it } from 'vitest';
import type { TenantId } from '../../../src/core/ids.js';
import type { SseEvent as WireEvent, StreamSink } from '../../../src/net/grpc/carpool-handler.js';
import { AnswerStore, answerStoreBounds, replayAnswer } from '../../../src/node/gateway/answer-store.js';
import type { SseEvent } from '../../../src/upstream/sse-parser.js';

const acme = 'acme' as TenantId;
const other = 'other' as TenantId;
const usage = { inputTokens: 10, outputTokens: 3, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 };
const summary = { requestId: 'r1', usage, servedRegion: 'us-east' };
const event = (name: string, data: string): SseEvent => ({ event: name, data, id: undefined });

function sinkInto(out: WireEvent[]): StreamSink {
  return { send: (e) => Promise.resolve(void out.push(e)) };
}

describe('AnswerStore', () => {
  it('keeps a stream read whole and replays it to its tenant only', async () => {
    const store = new AnswerStore();
    const begun = store.begin('r1', acme, 0);
    expect(begun.kind).toBe('new');
    if (begun.kind !== 'new') return;
    const running = store.begin('r1', acme, 1);
    expect(running.kind).toBe('running');
    expect(store.begin('r1', other, 1).kind).toBe('other');
    const events = [event('message_start', '{"a":1}'), event('content_block_delta', '{"b":2}'), event('message_stop', '{}')];
    for (const e of events) begun.record.read(e);
    begun.record.answeredStream(summary, 5);
    // A retry that waited hears the end.
    if (running.kind === 'running') await running.done;
    const done = store.begin('r1', acme, 6);
    expect(done.kind).toBe('done');
    if (done.kind !== 'done') return;
    const sent: WireEvent[] = [];
    expect(await replayAnswer(done.answer, 'stream', sinkInto(sent))).toEqual({ ok: true, value: { kind: 'stream', summary } });
    expect(sent.map((e) => [e.type, new TextDecoder().decode(e.dataJson)])).toEqual(events.map((e) => [e.event, e.data]));
    expect(store.begin('r1', other, 7).kind).toBe('other');
    // The same id as a unary call is told to use the method it ran with.
    expect(await replayAnswer(done.answer, 'complete', undefined)).toEqual({
      ok: false,
      error: { kind: 'request-done', reason: 'this request id already completed as StreamComplete; retry it with StreamComplete for its answer' },
    });
  });

  it('forgets a withdrawn id, so that it may run again, and ends a record once', () => {
    const store = new AnswerStore();
    const begun = store.begin('r2', acme, 0);
    if (begun.kind !== 'new') throw new Error(begun.kind);
    begun.record.withdraw();
    begun.record.failed('complete', 'too late', 1);
    expect(store.begin('r2', acme, 2).kind).toBe('new');
    expect(store.ledger.size).toBe(1);
  });

  it('remembers an answer too large as done without it, and says so on a retry', async () => {
    const store = new AnswerStore({ ...answerStoreBounds, answerBytesMax: 100 });
    const begun = store.begin('r3', acme, 0);
    if (begun.kind !== 'new') throw new Error(begun.kind);
    begun.record.read(event('content_block_delta', 'x'.repeat(200)));
    begun.record.answeredStream(summary, 1);
    expect(store.ledger.storedBytes).toBe(0);
    const done = store.begin('r3', acme, 2);
    expect(done.kind === 'done' && done.answer).toEqual({ kind: 'not-kept', method: 'stream' });
    if (done.kind !== 'done') return;
    expect(await replayAnswer(done.answer, 'stream', sinkInto([]))).toEqual({
      ok: false,
      error: { kind: 'request-done', reason: 'this request id already completed; its answer was too large to keep, and a new request needs a new id' },
    });
  });

  it('tells a retry of a request that failed after using tokens what it failed with', async () => {
    const store = new AnswerStore();
    const begun = store.begin('r4', acme, 0);
    if (begun.kind !== 'new') throw new Error(begun.kind);
    begun.record.failed('complete', 'upstream 529 overloaded_error: Overloaded', 1);
    const done = store.begin('r4', acme, 2);
    if (done.kind !== 'done') throw new Error(done.kind);
    expect(await replayAnswer(done.answer, 'complete', undefined)).toEqual({
      ok: false,
      error: {
        kind: 'request-done',
        reason:
          'this request id already ran and failed (upstream 529 overloaded_error: Overloaded); it was charged what it used, and a new request needs a new id',
      },
    });
  });
});
