import type { EscrowBook } from '../admission/escrow.js';
import { encodeOpenRequest } from '../admission/open-request-record.js';
import type { QuotaGate } from '../admission/quota-gate.js';
import { err, ok, type Result } from '../core/result.js';
import { windowEndMs } from '../crdt/window.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import type { PolicyDocument } from '../mesh/policy/policy-document.js';
import type { LedgerRow } from './ledger-row.js';
import type { AnswerBook, StateBatch, StateStore, StoreError, StoredAnswer, StoredCounterEntry, StoredRightsRow } from './node-state.js';
import { encodeRightsRow } from './stored-rights.js';

/**
 * The group commit of a durable node. Everything that changed since the last commit — the
 * counter's entries (its own, and the others' that joins raised), own rights rows, open requests, policy updates, answer-ledger entries
 * and the usage rows appended meanwhile — goes to the store in one transaction, and only then:
 *
 *   - the node's frames leave (the runtime flushes its outbox after `commit`), so no peer ever
 *     holds an own entry, a rights row or a policy struct the disk does not;
 *   - the callers waiting in `durable()` go on: the gateway waits once after admission (before
 *     the upstream call) and once after settlement (before the client's answer ends).
 *
 * One commit per pump of the runtime, however many requests it carries: a request waits for at
 * most one commit at each of its two points, never for a queue of them.
 *
 * A commit the store refuses (a full disk, a read-only or corrupt file) is kept and written
 * again, first, at the next commit; meanwhile `failing` says why, the waiters are told (so their
 * requests end with an error instead of an answer the disk does not hold), and the runtime sends
 * nothing and the gateway admits nothing. Sans-I/O: the store is an interface, the simulator
 * passes one in memory.
 */
/** Policy updates a store holds before they are compacted into one. */
const policyUpdatesStoredMax = 256;
/** The meta key of the counter's own version (src/crdt/windowed-counter.ts `restore`). */
export const counterVersionMeta = 'counterVersion';

export interface JournalParts {
  readonly counter: WindowedCounter;
  readonly escrow: EscrowBook;
  readonly gate: QuotaGate;
  readonly policy: PolicyDocument;
}

/** A journaled answer-ledger change (src/node/answer-ledger.ts `LedgerChange`). */
export type BookChange =
  | { readonly kind: 'put'; readonly key: string; readonly owner: string; readonly atMs: number; readonly json: string | undefined }
  | { readonly kind: 'delete'; readonly key: string };

export interface BookSource {
  takeChanges(): readonly BookChange[];
}

export class JournalStats {
  commits = 0;
  commitFailures = 0;
  rowsWritten = 0;
  /** Duration of the last successful commit. */
  lastCommitMs = 0;
  commitMsMax = 0;
  /** Policy compactions the store refused (retried at the next commit). */
  compactionFailures = 0;
}

export class DurableJournal {
  readonly stats = new JournalStats();
  private readonly books = new Map<AnswerBook, BookSource>();
  private rows: LedgerRow[] = [];
  private meta: (readonly [string, string])[] = [];
  /** A batch the store refused, written again first. */
  private retry: StateBatch | undefined;
  private waiters: ((result: Result<undefined, StoreError>) => void)[] = [];
  private failure: StoreError | undefined;
  /** Policy updates written since the store's policy was last compacted to one. */
  private policyWrites = 0;
  /** The counter's own version last put in a batch's meta (`counterVersion`, see `collect`). */
  private versionTaken = 0;

  constructor(
    private readonly store: StateStore,
    private readonly parts: JournalParts,
    /** Reads a monotonic clock in ms, for the commit timings only. */
    private readonly elapsedMs: () => number = () => 0,
  ) {
    parts.counter.keepDurable();
    parts.gate.keepDurable();
    parts.escrow.keepDurable();
    parts.policy.keepDurable();
  }

  /** Why the last commit failed, while the store refuses writes; undefined when healthy. */
  get failing(): StoreError | undefined {
    return this.failure;
  }

  /** Whether anything waits for the next commit. */
  get pending(): boolean {
    return this.waiters.length > 0 || this.rows.length > 0 || this.meta.length > 0 || this.retry !== undefined;
  }

  addBook(book: AnswerBook, source: BookSource): void {
    this.books.set(book, source);
  }

  appendRow(row: LedgerRow): void {
    this.rows.push(row);
  }

  setMeta(key: string, value: string): void {
    this.meta.push([key, value]);
  }

  /** Resolves once everything done before the call is on disk, or with the store's error if the next commit fails. */
  durable(): Promise<Result<undefined, StoreError>> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Writes what changed since the last commit (and a refused batch before it). Returns whether
   * the store holds everything now: only then may the caller send frames.
   */
  commit(): boolean {
    const fresh = this.collect();
    const batch = this.retry === undefined ? fresh : joinBatches(this.retry, fresh);
    const waiters = this.waiters;
    this.waiters = [];
    if (isEmpty(batch)) {
      for (const resolve of waiters) resolve(ok(undefined));
      return true;
    }
    const startedMs = this.elapsedMs();
    const written = this.store.commit(batch);
    if (!written.ok) {
      this.retry = batch;
      this.failure = written.error;
      this.stats.commitFailures++;
      for (const resolve of waiters) resolve(err(written.error));
      return false;
    }
    const tookMs = this.elapsedMs() - startedMs;
    this.retry = undefined;
    this.failure = undefined;
    this.stats.commits++;
    this.stats.rowsWritten += batch.ledgerRows.length;
    this.policyWrites += batch.policyUpdates.length;
    if (this.policyWrites > policyUpdatesStoredMax) {
      // The whole document as one update: the store's policy stays as small as the document. A
      // store that refuses it now keeps the updates it has, and the next commit tries again.
      try {
        this.store.compactPolicy(this.parts.policy.encodeState());
        this.policyWrites = 0;
      } catch {
        this.stats.compactionFailures++;
      }
    }
    this.stats.lastCommitMs = tookMs;
    this.stats.commitMsMax = Math.max(this.stats.commitMsMax, tookMs);
    for (const resolve of waiters) resolve(ok(undefined));
    return true;
  }

  private collect(): StateBatch {
    const { counter, escrow, gate, policy } = this.parts;
    const counterEntries: StoredCounterEntry[] = counter.takeUnsaved().map(({ key, replica, p, n, version }) => ({
      replica,
      scope: key.scope,
      subject: key.subject,
      metric: key.metric,
      unit: key.window.unit,
      index: key.window.index,
      endMs: windowEndMs(key.window),
      keyId: key.id,
      p,
      n,
      version,
    }));
    const rightsRows: StoredRightsRow[] = escrow
      .takeUnsaved()
      .map(({ key, row }) => ({ keyId: key.id, endMs: windowEndMs(key.window), json: encodeRightsRow(key, row) }));
    const open = gate.takeOpenChanges();
    const answersPut: StoredAnswer[] = [];
    const answersDeleted: { book: AnswerBook; key: string }[] = [];
    for (const [book, source] of this.books) {
      for (const change of source.takeChanges()) {
        if (change.kind === 'delete') answersDeleted.push({ book, key: change.key });
        else answersPut.push({ book, key: change.key, atMs: change.atMs, json: JSON.stringify({ o: change.owner, a: change.json ?? null }) });
      }
    }
    const rows = this.rows;
    this.rows = [];
    const meta = this.meta;
    this.meta = [];
    // The own version goes with the entries it numbers: an expired window may take the newest
    // entries off the disk, but peers saw their versions, and a restart must number above them.
    if (counter.version > this.versionTaken) {
      this.versionTaken = counter.version;
      meta.push([counterVersionMeta, String(this.versionTaken)]);
    }
    return {
      meta,
      counterEntries,
      rightsRows,
      openRequestsPut: open.put.map((record) => ({ requestId: record.requestId, json: encodeOpenRequest(record) })),
      openRequestsDeleted: open.deleted,
      policyUpdates: policy.takeUnsaved(),
      answersPut,
      answersDeleted,
      ledgerRows: rows,
    };
  }
}

/** A stored answer's owner and encoded answer (undefined: it was running), as `commit` wrote them. */
export function decodeStoredAnswer(answer: StoredAnswer): { readonly owner: string; readonly json: string | undefined } | undefined {
  try {
    const raw = JSON.parse(answer.json) as unknown;
    if (typeof raw !== 'object' || raw === null) return undefined;
    const { o, a } = raw as { o?: unknown; a?: unknown };
    if (typeof o !== 'string' || (a !== null && typeof a !== 'string')) return undefined;
    return { owner: o, json: a ?? undefined };
  } catch {
    return undefined;
  }
}

function isEmpty(batch: StateBatch): boolean {
  return (
    batch.meta.length === 0 &&
    batch.counterEntries.length === 0 &&
    batch.rightsRows.length === 0 &&
    batch.openRequestsPut.length === 0 &&
    batch.openRequestsDeleted.length === 0 &&
    batch.policyUpdates.length === 0 &&
    batch.answersPut.length === 0 &&
    batch.answersDeleted.length === 0 &&
    batch.ledgerRows.length === 0
  );
}

/**
 * An older batch then a newer one. The store applies puts in order (the newer wins per key), then
 * deletes: an older delete of a key the newer batch writes again is dropped, so it cannot undo it.
 */
function joinBatches(older: StateBatch, newer: StateBatch): StateBatch {
  const reopened = new Set(newer.openRequestsPut.map((put) => put.requestId));
  const rewritten = new Set(newer.answersPut.map((put) => `${put.book}\u001f${put.key}`));
  return {
    meta: [...older.meta, ...newer.meta],
    counterEntries: [...older.counterEntries, ...newer.counterEntries],
    rightsRows: [...older.rightsRows, ...newer.rightsRows],
    openRequestsPut: [...older.openRequestsPut, ...newer.openRequestsPut],
    openRequestsDeleted: [...older.openRequestsDeleted.filter((id) => !reopened.has(id)), ...newer.openRequestsDeleted],
    policyUpdates: [...older.policyUpdates, ...newer.policyUpdates],
    answersPut: [...older.answersPut, ...newer.answersPut],
    answersDeleted: [...older.answersDeleted.filter((d) => !rewritten.has(`${d.book}\u001f${d.key}`)), ...newer.answersDeleted],
    ledgerRows: [...older.ledgerRows, ...newer.ledgerRows],
  };
}
