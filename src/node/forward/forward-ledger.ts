import type { AccountId, NodeId, RequestId } from '../../core/ids.js';
import { forwardLedgerBytesMax, forwardLedgerEntriesMax, forwardLedgerTtlMs, forwardReplayBytesMax } from '../../core/limits.js';
import type { ForwardResult } from '../../net/grpc/forward-handler.js';
import type { SseEvent } from '../../upstream/sse-parser.js';

/**
 * The home node's memory of forwarded calls, by (request id, account id), so that a forward
 * repeated for any reason calls the upstream at most once (proto/carpool/mesh/v1/forward.proto):
 *
 *   begin(key)  new ─────────▶ the caller runs the call, then `finish` (or `abandon`)
 *               running ─────▶ refused: another forward of the same pair is at the upstream
 *               done ────────▶ replayed from what `finish` stored
 *
 * A done entry keeps the call's full result and, when they fit `forwardReplayBytesMax`, the
 * answer (a message, or a stream's events). Entries are kept in the order they were last
 * written, so the oldest done entry is the first past its time-to-live and the first evicted
 * when the table is full (by entries or by bytes). Running entries are never evicted; they are
 * bounded by the forwarded calls a node runs at once. Sans-I/O: time comes in as `nowMs`.
 */
export interface StoredAnswer {
  readonly result: ForwardResult;
  /** The events of a stream, in order, when they were kept. */
  readonly events: readonly SseEvent[] | undefined;
  /** Whether the answer itself (message or events) was kept; without it a replay carries the usage only. */
  readonly answerKept: boolean;
  readonly stream: boolean;
}

export type LedgerBegin =
  | { readonly kind: 'new' }
  | { readonly kind: 'running' }
  | { readonly kind: 'done'; readonly origin: NodeId; readonly answer: StoredAnswer }
  /** Every entry is a running call: the node is at its bound. */
  | { readonly kind: 'full' };

type Entry =
  | { readonly state: 'running'; readonly origin: NodeId }
  | { readonly state: 'done'; readonly origin: NodeId; readonly atMs: number; readonly answer: StoredAnswer; readonly bytes: number };

export class LedgerStats {
  begun = 0;
  replayed = 0;
  refusedRunning = 0;
  refusedFull = 0;
  expired = 0;
  evicted = 0;
  /** Answers too large to keep for a replay. */
  answersDropped = 0;
}

export class ForwardLedger {
  readonly stats = new LedgerStats();
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** Bytes running calls hold for answers they may store: counted against the same bound. */
  private heldBytes = 0;

  constructor(
    private readonly entriesMax: number = forwardLedgerEntriesMax,
    private readonly bytesMax: number = forwardLedgerBytesMax,
    private readonly ttlMs: number = forwardLedgerTtlMs,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get storedBytes(): number {
    return this.bytes;
  }

  begin(requestId: RequestId, accountId: AccountId, origin: NodeId, nowMs: number): LedgerBegin {
    this.expire(nowMs);
    const key = keyOf(requestId, accountId);
    const entry = this.entries.get(key);
    if (entry?.state === 'running') {
      this.stats.refusedRunning++;
      return { kind: 'running' };
    }
    if (entry?.state === 'done') {
      this.stats.replayed++;
      return { kind: 'done', origin: entry.origin, answer: entry.answer };
    }
    if (this.entries.size >= this.entriesMax && !this.evictOne()) {
      this.stats.refusedFull++;
      return { kind: 'full' };
    }
    this.entries.set(key, { state: 'running', origin });
    this.stats.begun++;
    return { kind: 'new' };
  }

  /** Stores how a begun call ended; the answer only when it fits the replay bound. */
  finish(requestId: RequestId, accountId: AccountId, answer: StoredAnswer, nowMs: number): void {
    const key = keyOf(requestId, accountId);
    const entry = this.entries.get(key);
    if (entry?.state !== 'running') return;
    let bytes = answerBytes(answer);
    let kept = answer;
    if (bytes > forwardReplayBytesMax || bytes > this.bytesMax) {
      this.stats.answersDropped++;
      kept = { result: { ...answer.result, messageJson: undefined }, events: undefined, answerKept: false, stream: answer.stream };
      bytes = 0;
    }
    // Re-inserted at the end: entries stay in the order they were last written.
    this.entries.delete(key);
    while (this.bytes + bytes > this.bytesMax && this.evictOne());
    this.entries.set(key, { state: 'done', origin: entry.origin, atMs: nowMs, answer: kept, bytes });
    this.bytes += bytes;
  }

  /**
   * Holds `bytes` of the bound for a running call's answer while it grows (a stream's events);
   * false when they do not fit, and the call should stop keeping its answer. Every byte held is
   * given back with `release` when the call ends, before `finish` stores what was kept.
   */
  hold(bytes: number): boolean {
    if (this.heldBytes + this.bytes + bytes > this.bytesMax) {
      // Room may come from evicting done entries; running calls' answers are worth more.
      while (this.heldBytes + this.bytes + bytes > this.bytesMax && this.evictOne());
      if (this.heldBytes + this.bytes + bytes > this.bytesMax) return false;
    }
    this.heldBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.heldBytes -= bytes;
  }

  /** Forgets a begun call that never reached the upstream, so a repeat may run it. */
  abandon(requestId: RequestId, accountId: AccountId): void {
    const key = keyOf(requestId, accountId);
    if (this.entries.get(key)?.state === 'running') this.entries.delete(key);
  }

  private expire(nowMs: number): void {
    // Bounded by the entries: each turn removes one, and done entries are in age order.
    for (const [key, entry] of this.entries) {
      if (entry.state === 'running') continue;
      if (nowMs - entry.atMs < this.ttlMs) return;
      this.remove(key, entry);
      this.stats.expired++;
    }
  }

  /** Drops the oldest done entry; false when every entry is running. */
  private evictOne(): boolean {
    for (const [key, entry] of this.entries) {
      if (entry.state === 'running') continue;
      this.remove(key, entry);
      this.stats.evicted++;
      return true;
    }
    return false;
  }

  private remove(key: string, entry: Entry & { readonly state: 'done' }): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}

function keyOf(requestId: RequestId, accountId: AccountId): string {
  return `${requestId}\u001f${accountId}`;
}

/** Bytes an answer holds, counting UTF-16 text at two bytes a character. */
function answerBytes(answer: StoredAnswer): number {
  let bytes = answer.result.messageJson?.length ?? 0;
  for (const event of answer.events ?? []) bytes += 2 * (event.event.length + event.data.length);
  return bytes;
}
