import { assert } from '../core/assert.js';

/**
 * Answers kept by a key, so that a request repeated for any reason reaches the upstream at most
 * once and the repeat gets the first answer. Two parts of a node keep one:
 *
 *   - the home node of an account, by (request id, account id), for forwarded calls and its own
 *     calls on its accounts (src/node/forward/forward-executor.ts);
 *   - the gateway, by (tenant, request id), for every completion it served to a client, so that a
 *     client retrying an id gets the answer it missed (src/node/gateway/answer-store.ts).
 *
 *   begin(key)  new ─────▶ the caller runs the request, then `finish` (or `abandon`)
 *               running ─▶ the caller refuses the repeat, or waits for the first
 *               done ────▶ what `finish` stored, with the owner that began it
 *               full ────▶ every entry is a running request: the caller refuses
 *
 * A done entry keeps the answer when it fits `answerBytesMax` (and the whole bound); otherwise
 * `shape.withoutAnswer` of it, which keeps the outcome and says the answer was not kept. Entries
 * are kept in the order they were last written, so the oldest done entry is the first past its
 * time to live and the first evicted when the ledger is full (by entries or by bytes); both are
 * counted. Running entries are never evicted: the caller bounds them by the requests it runs at
 * once. Sans-I/O: time comes in as `nowMs`.
 *
 * Durability. On a node with a durable store (`keepDurable`), every entry begun, finished or
 * dropped is journaled and written in the node's next group commit, which the caller awaits
 * before it calls the upstream. A restart puts the entries back (`restore`); one that was still
 * running when the node died becomes done with the codec's `interrupted` answer, so a repeat of
 * its key is refused, never run a second time.
 */
export interface AnswerShape<Answer> {
  /** Bytes an answer holds (UTF-16 text at two bytes a character, byte arrays as they are). */
  bytesOf(answer: Answer): number;
  /** The answer's outcome without the answer itself, kept when the answer is too large; 0 bytes. */
  withoutAnswer(answer: Answer): Answer;
}

export interface AnswerLedgerBounds {
  readonly entriesMax: number;
  /** All kept answers, and bytes held for running ones, together. */
  readonly bytesMax: number;
  readonly ttlMs: number;
  /** Largest single answer kept. */
  readonly answerBytesMax: number;
}

/** How a durable node writes an answer to disk and reads it back (JSON; the decoder checks what it reads). */
export interface AnswerCodec<Answer> {
  encode(answer: Answer): string;
  decode(json: string): Answer | undefined;
  /** The answer of a request that was running when the node died. */
  interrupted(): Answer;
}

/** One journaled change: an entry to write (`json` undefined for a running one) or to delete. */
export type LedgerChange =
  | { readonly kind: 'put'; readonly key: string; readonly owner: string; readonly atMs: number; readonly json: string | undefined }
  | { readonly kind: 'delete'; readonly key: string };

/** An entry as a durable store kept it. */
export interface KeptEntry {
  readonly key: string;
  readonly owner: string;
  readonly atMs: number;
  /** The encoded answer; undefined for a request that was running. */
  readonly json: string | undefined;
}

export type LedgerBegin<Answer> =
  | { readonly kind: 'new' }
  | { readonly kind: 'running'; readonly owner: string }
  | { readonly kind: 'done'; readonly owner: string; readonly answer: Answer }
  /** Every entry is a running request: the owner is at its bound. */
  | { readonly kind: 'full' };

type Entry<Answer> =
  | { readonly state: 'running'; readonly owner: string }
  | { readonly state: 'done'; readonly owner: string; readonly atMs: number; readonly answer: Answer; readonly bytes: number };

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

export class AnswerLedger<Answer> {
  readonly stats = new LedgerStats();
  private readonly entries = new Map<string, Entry<Answer>>();
  private bytes = 0;
  /** Bytes running requests hold for answers they may store: counted against the same bound. */
  private heldBytes = 0;
  private codec: AnswerCodec<Answer> | undefined;
  /** Changes since `takeChanges`, the latest per key; kept only once `keepDurable` was called. */
  private changes = new Map<string, LedgerChange>();

  constructor(
    private readonly shape: AnswerShape<Answer>,
    readonly bounds: AnswerLedgerBounds,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Journals every change from now on (see "Durability"); the owner must take them every commit. */
  keepDurable(codec: AnswerCodec<Answer>): void {
    this.codec = codec;
  }

  /** The changes since the last call, at most one per key. */
  takeChanges(): LedgerChange[] {
    if (this.changes.size === 0) return [];
    const taken = [...this.changes.values()];
    this.changes = new Map();
    return taken;
  }

  /**
   * Puts back entries a durable store kept, before any `begin`, oldest first; a running one
   * becomes done with the codec's `interrupted` answer (and is journaled so). Entries past their
   * time to live or the bounds are dropped. Returns how many running entries were interrupted.
   */
  restore(kept: readonly KeptEntry[], nowMs: number): number {
    const codec = this.codec;
    assert(codec !== undefined && this.entries.size === 0, 'restore once, on a durable ledger, before any begin');
    let interrupted = 0;
    for (const entry of [...kept].sort((a, b) => a.atMs - b.atMs)) {
      if (nowMs - entry.atMs >= this.bounds.ttlMs) {
        this.journal({ kind: 'delete', key: entry.key });
        continue;
      }
      let answer = entry.json === undefined ? undefined : codec.decode(entry.json);
      if (answer === undefined) {
        answer = codec.interrupted();
        interrupted++;
      }
      const bytes = Math.min(this.shape.bytesOf(answer), this.bounds.answerBytesMax);
      while ((this.entries.size >= this.bounds.entriesMax || this.bytes + bytes > this.bounds.bytesMax) && this.evictOne());
      this.entries.set(entry.key, { state: 'done', owner: entry.owner, atMs: entry.atMs, answer, bytes });
      this.bytes += bytes;
      if (entry.json === undefined) this.journal({ kind: 'put', key: entry.key, owner: entry.owner, atMs: entry.atMs, json: codec.encode(answer) });
    }
    return interrupted;
  }

  get storedBytes(): number {
    return this.bytes;
  }

  begin(key: string, owner: string, nowMs: number): LedgerBegin<Answer> {
    this.expire(nowMs);
    const entry = this.entries.get(key);
    if (entry?.state === 'running') {
      this.stats.refusedRunning++;
      return { kind: 'running', owner: entry.owner };
    }
    if (entry?.state === 'done') {
      this.stats.replayed++;
      return { kind: 'done', owner: entry.owner, answer: entry.answer };
    }
    if (this.entries.size >= this.bounds.entriesMax && !this.evictOne()) {
      this.stats.refusedFull++;
      return { kind: 'full' };
    }
    this.entries.set(key, { state: 'running', owner });
    this.journal({ kind: 'put', key, owner, atMs: nowMs, json: undefined });
    this.stats.begun++;
    return { kind: 'new' };
  }

  /** Stores how a begun request ended; the answer only when it fits the bounds. */
  finish(key: string, answer: Answer, nowMs: number): void {
    const entry = this.entries.get(key);
    if (entry?.state !== 'running') return;
    let bytes = this.shape.bytesOf(answer);
    let kept = answer;
    if (bytes > this.bounds.answerBytesMax || bytes > this.bounds.bytesMax) {
      this.stats.answersDropped++;
      kept = this.shape.withoutAnswer(answer);
      bytes = 0;
    }
    // Re-inserted at the end: entries stay in the order they were last written.
    this.entries.delete(key);
    while (this.bytes + this.heldBytes + bytes > this.bounds.bytesMax && this.evictOne());
    this.entries.set(key, { state: 'done', owner: entry.owner, atMs: nowMs, answer: kept, bytes });
    this.bytes += bytes;
    if (this.codec !== undefined) this.journal({ kind: 'put', key, owner: entry.owner, atMs: nowMs, json: this.codec.encode(kept) });
  }

  /**
   * Holds `bytes` of the bound for a running request's answer while it grows (a stream's events);
   * false when they do not fit, and the request should stop keeping its answer. Every byte held
   * is given back with `release` when the request ends, before `finish` stores what was kept.
   */
  hold(bytes: number): boolean {
    if (this.heldBytes + this.bytes + bytes > this.bounds.bytesMax) {
      // Room may come from evicting done entries; running requests' answers are worth more.
      while (this.heldBytes + this.bytes + bytes > this.bounds.bytesMax && this.evictOne());
      if (this.heldBytes + this.bytes + bytes > this.bounds.bytesMax) return false;
    }
    this.heldBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.heldBytes -= bytes;
  }

  /** Forgets a begun request that never reached the upstream, so a repeat may run it. */
  abandon(key: string): void {
    if (this.entries.get(key)?.state === 'running') {
      this.entries.delete(key);
      this.journal({ kind: 'delete', key });
    }
  }

  private journal(change: LedgerChange): void {
    if (this.codec === undefined) return;
    // Bounded by the entries: one change per key.
    this.changes.delete(change.key);
    this.changes.set(change.key, change);
  }

  private expire(nowMs: number): void {
    // Bounded by the entries: each turn removes one, and done entries are in age order.
    for (const [key, entry] of this.entries) {
      if (entry.state === 'running') continue;
      if (nowMs - entry.atMs < this.bounds.ttlMs) return;
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

  private remove(key: string, entry: Entry<Answer> & { readonly state: 'done' }): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    this.journal({ kind: 'delete', key });
  }
}
