import type { Rejection } from '../../admission/outcome.js';
import type { TenantId } from '../../core/ids.js';
import { accountBusyRetryAfterMs, answerStoreAnswerBytesMax, answerStoreBytesMax, answerStoreEntriesMax, answerStoreTtlMs } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CompleteResponse, StreamSink, StreamSummary } from '../../net/grpc/carpool-handler.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import { type AnswerCodec, AnswerLedger, type AnswerLedgerBounds } from '../answer-ledger.js';
import { decodeStored, encodeStored, isRecord } from '../stored-json.js';

/**
 * The answers this node's gateway served, by request id, so that a client retrying an id gets
 * the answer of its first request (its deadline passed, its connection broke) and never a second
 * upstream call. It rides on the answer ledger (src/node/answer-ledger.ts), whose bounds it takes
 * from `answerStore*` of src/core/limits.ts; the owner of an entry is its tenant.
 *
 *   begin(id, tenant)
 *     new       the request runs; a stream's `record.read(event)` for every event read from the
 *               upstream (delivered or not: a call drains after its client left), then one of
 *               `record.answered` / `record.failed` once it is settled, or `record.withdraw()`
 *               when it reached no model (nothing was charged, and the id may run again)
 *     running   the first request is still running; `done` resolves when it ends
 *     done      its answer: a message, a stream's events and summary, a failure's status, or
 *               `not-kept` (it was too large)
 *     other     the id belongs to another tenant's request: never shown to this one
 *     full      every entry is a running request
 *
 * Request ids are one namespace per node, as the reservations that settle them are.
 */
export type ServedMethod = 'complete' | 'stream';

export type ServedAnswer =
  | { readonly kind: 'message'; readonly response: CompleteResponse }
  | { readonly kind: 'stream'; readonly events: readonly SseEvent[]; readonly summary: StreamSummary }
  /** The request ran (it was charged) and ended with this status message. */
  | { readonly kind: 'failed'; readonly method: ServedMethod; readonly status: string }
  /** The request ran and answered, but the answer was too large to keep. */
  | { readonly kind: 'not-kept'; readonly method: ServedMethod };

export type StoreBegin =
  | { readonly kind: 'new'; readonly record: AnswerRecord }
  | { readonly kind: 'running'; readonly done: Promise<void> }
  | { readonly kind: 'done'; readonly answer: ServedAnswer }
  | { readonly kind: 'other' }
  | { readonly kind: 'full' };

export const answerStoreBounds: AnswerLedgerBounds = Object.freeze({
  entriesMax: answerStoreEntriesMax,
  bytesMax: answerStoreBytesMax,
  ttlMs: answerStoreTtlMs,
  answerBytesMax: answerStoreAnswerBytesMax,
});

/** Bytes an event holds while kept: its two strings, at two bytes a UTF-16 unit. */
function eventBytes(event: SseEvent): number {
  return 2 * (event.event.length + event.data.length);
}

/**
 * How a durable node keeps served answers on disk. A request that was running when the node died
 * comes back as `failed`: its retry is told it ran (it was charged its estimate at the restart,
 * src/admission/quota-gate.ts) and is never run a second time.
 */
export const servedAnswerCodec: AnswerCodec<ServedAnswer> = {
  encode: (answer) => encodeStored(answer),
  decode: (json) => {
    const raw = decodeStored(json);
    if (!isRecord(raw)) return undefined;
    switch (raw.kind) {
      case 'message':
        return isRecord(raw.response) && raw.response.messageJson instanceof Uint8Array && isRecord(raw.response.usage) ? (raw as ServedAnswer) : undefined;
      case 'stream':
        return Array.isArray(raw.events) && isRecord(raw.summary) ? (raw as ServedAnswer) : undefined;
      case 'failed':
      case 'not-kept':
        return raw.method === 'complete' || raw.method === 'stream' ? (raw as ServedAnswer) : undefined;
      default:
        return undefined;
    }
  },
  interrupted: () => ({ kind: 'failed', method: 'complete', status: 'the node restarted while this request ran; it was charged its reserved estimate' }),
};

export class AnswerStore {
  readonly ledger: AnswerLedger<ServedAnswer>;
  /** The running requests' ends, for retries that wait; bounded by the ledger's running entries. */
  private readonly running = new Map<string, { readonly done: Promise<void>; readonly end: () => void }>();

  constructor(bounds: AnswerLedgerBounds = answerStoreBounds) {
    this.ledger = new AnswerLedger<ServedAnswer>(
      {
        bytesOf: (answer) => {
          switch (answer.kind) {
            case 'message':
              return answer.response.messageJson.length;
            case 'stream':
              return answer.events.reduce((sum, event) => sum + eventBytes(event), 0);
            case 'failed':
              return 2 * answer.status.length;
            case 'not-kept':
              return 0;
          }
        },
        withoutAnswer: (answer) => ({
          kind: 'not-kept',
          method: answer.kind === 'failed' || answer.kind === 'not-kept' ? answer.method : answer.kind === 'message' ? 'complete' : 'stream',
        }),
      },
      bounds,
    );
  }

  begin(requestId: string, tenant: TenantId, nowMs: number): StoreBegin {
    const begun = this.ledger.begin(requestId, tenant, nowMs);
    switch (begun.kind) {
      case 'new': {
        let end = (): void => {};
        const done = new Promise<void>((resolve) => {
          end = resolve;
        });
        this.running.set(requestId, { done, end });
        return { kind: 'new', record: new AnswerRecord(this, requestId) };
      }
      case 'running':
        if (begun.owner !== tenant) return { kind: 'other' };
        return { kind: 'running', done: this.running.get(requestId)?.done ?? Promise.resolve() };
      case 'done':
        return begun.owner === tenant ? { kind: 'done', answer: begun.answer } : { kind: 'other' };
      case 'full':
        return { kind: 'full' };
    }
  }

  /**
   * A record for a request whose id no client can send again (an id the transport assigned): it
   * takes no entry and keeps nothing, so such requests never evict the answers of ids a client
   * may retry, and a stream holds none of its events for a replay that cannot come.
   */
  unkept(requestId: string): AnswerRecord {
    return new AnswerRecord(this, requestId, false);
  }

  /** @internal The record's end: the entry is done or forgotten, and waiting retries go on. */
  ended(requestId: string): void {
    const running = this.running.get(requestId);
    this.running.delete(requestId);
    running?.end();
  }
}

/** One running request's entry: what it read, and how it ends. Every record ends exactly once. */
export class AnswerRecord {
  private events: SseEvent[] | undefined = [];
  private heldBytes = 0;
  private open = true;

  constructor(
    private readonly store: AnswerStore,
    private readonly requestId: string,
    /** False for `AnswerStore.unkept`: the record has no entry in the ledger and keeps nothing. */
    private readonly kept = true,
  ) {
    if (!kept) this.events = undefined;
  }

  /** One event a stream read; kept while it fits the bounds, and none are once one does not. */
  read(event: SseEvent): void {
    if (this.events === undefined || !this.open) return;
    const bytes = eventBytes(event);
    if (this.heldBytes + bytes <= this.store.ledger.bounds.answerBytesMax && this.store.ledger.hold(bytes)) {
      this.heldBytes += bytes;
      this.events.push(event);
      return;
    }
    this.store.ledger.release(this.heldBytes);
    this.heldBytes = 0;
    this.events = undefined;
  }

  /** A completed non-streamed request: its response is the answer. */
  answeredMessage(response: CompleteResponse, nowMs: number): void {
    this.end({ kind: 'message', response }, nowMs);
  }

  /** A completed stream: the events it read, then its summary; `not-kept` if they did not fit. */
  answeredStream(summary: StreamSummary, nowMs: number): void {
    const events = this.events;
    this.end(events === undefined ? { kind: 'not-kept', method: 'stream' } : { kind: 'stream', events, summary }, nowMs);
  }

  /** A request that ran (and was charged) but failed, with the status message its client got. */
  failed(method: ServedMethod, status: string, nowMs: number): void {
    this.end({ kind: 'failed', method, status }, nowMs);
  }

  /** A request that reached no model: forgotten, so its id may run again. Idempotent, and a no-op once ended. */
  withdraw(): void {
    if (!this.open) return;
    this.open = false;
    if (!this.kept) return;
    this.release();
    this.store.ledger.abandon(this.requestId);
    this.store.ended(this.requestId);
  }

  private end(answer: ServedAnswer, nowMs: number): void {
    if (!this.open) return;
    this.open = false;
    if (!this.kept) return;
    this.release();
    this.store.ledger.finish(this.requestId, answer, nowMs);
    this.store.ended(this.requestId);
  }

  private release(): void {
    this.store.ledger.release(this.heldBytes);
    this.heldBytes = 0;
    this.events = undefined;
  }
}

/** A kept answer as served again: a message or a stream's summary. */
export type Replayed = { readonly kind: 'message'; readonly response: CompleteResponse } | { readonly kind: 'stream'; readonly summary: StreamSummary };

const utf8 = new TextEncoder();
const methodNames: Readonly<Record<ServedMethod, string>> = { complete: 'Complete', stream: 'StreamComplete' };

/**
 * A retry of an id whose request ran: its answer again, with nothing charged and no upstream
 * call, or the `request-done` status that says why there is none to give. A stream's events go
 * through `sink` with backpressure, like the first time, and then its summary; a client that
 * leaves meanwhile ends the replay (shed, which nobody reads).
 */
export async function replayAnswer(answer: ServedAnswer, method: ServedMethod, sink: StreamSink | undefined): Promise<Result<Replayed, Rejection>> {
  const done = (reason: string): Result<never, Rejection> => err({ kind: 'request-done', reason });
  switch (answer.kind) {
    case 'message':
      if (method !== 'complete')
        return done(`this request id already completed as ${methodNames.complete}; retry it with ${methodNames.complete} for its answer`);
      return ok({ kind: 'message', response: answer.response });
    case 'stream':
      if (method !== 'stream' || sink === undefined)
        return done(`this request id already completed as ${methodNames.stream}; retry it with ${methodNames.stream} for its answer`);
      // Bounded by the kept events, at most answerBytesMax of them.
      for (const event of answer.events) {
        try {
          await sink.send({ type: event.event, dataJson: utf8.encode(event.data) });
        } catch {
          return err({ kind: 'shed', retryAfterMs: accountBusyRetryAfterMs });
        }
      }
      return ok({ kind: 'stream', summary: answer.summary });
    case 'failed':
      return done(`this request id already ran and failed (${answer.status}); it was charged what it used, and a new request needs a new id`);
    case 'not-kept':
      return done('this request id already completed; its answer was too large to keep, and a new request needs a new id');
  }
}
