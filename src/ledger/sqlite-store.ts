import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import {
  ledgerRetentionMsDefault,
  ledgerRetentionMsMin,
  storeBytesMin,
  storePageBytes,
  storeWalBytesKeptMax,
  storeBusyWaitMsMax,
  storeWalBytesMax,
  storeWalCheckEveryCommits,
} from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { LedgerRetention } from './ledger-retention.js';
import type { LedgerRow } from './ledger-row.js';
import type { NodeSnapshot, StateBatch, StateStore, StoreError } from './node-state.js';
import { SqliteUsageReader } from './sqlite-usage-reader.js';
import { type CheckpointReport, type CheckpointStats, StoreCheckpointer } from './store-checkpointer.js';
import { StateTables } from './state-tables.js';
import { folderErrorOf, StoreFailure, storeErrorOf } from './store-error.js';
import { migrate, schemaVersion, userVersion } from './store-schema.js';
import type { UsageAnswer, UsageFilter, UsageQuery, UsageReader } from './usage-query.js';

/**
 * A node's durable state and usage ledger in one SQLite file (better-sqlite3, synchronous calls on
 * the event loop: a group commit of a few hundred rows takes well under a millisecond).
 *
 * Durability. The file is always in WAL mode. A commit that returned ok is in the write-ahead
 * log; with `sync: 'normal'` the log is written but not flushed to the disk at each commit, which
 * survives the death of the process (kill -9: the kernel holds the written pages and the next open
 * replays the log) but may lose the last commits in a power cut or a kernel crash, never the file's
 * consistency. `sync: 'full'` flushes the log at every commit (fsync), so a commit that returned ok
 * also survives a power cut, at the cost of one flush per group commit.
 *
 * One writer per file. The store holds an exclusive SQLite lock on a companion file, `<path>-lock`,
 * from open to close: a second process (or a second store in this one) opening the same file gets
 * a `locked` error at once instead of two nodes writing one replica's state. The kernel drops the
 * lock with the process, so a killed node leaves none behind. (The database itself stays in
 * SQLite's normal locking mode so that the checkpoint thread can work beside the node.)
 *
 * Checkpoints. With `checkpoints: 'background'` (the default) a worker thread copies the log back
 * into the file every `storeCheckpointEveryMs`, so commits never wait for a flush, and the store
 * lets the log start over every `walBytesKept` with a short catch-up between two commits
 * (store-checkpointer.ts); `'inline'` leaves it to SQLite, inside the commit that crosses 1,000
 * log pages (no thread, and a commit now and then that takes the flushes' time: tests, tools).
 *
 * Bounds. `maxBytes` caps the database (SQLite's max_page_count): a commit that would grow it
 * past the bound fails whole with `full`, as does one on a full disk. The log starts over at
 * `walBytesKept` and is cut back to that size, and a commit checkpoints inline when the log has
 * grown past `walBytesMax` all the same (a checkpoint thread that failed or fell behind).
 * Ledger rows older than `retentionMs` roll up into daily aggregates through `rollUp`
 * (ledger-retention.ts).
 *
 * Failures. open, commit and rollUp return expected failures (a full, read-only, corrupt, locked
 * or failing file) as StoreErrors with a message for the operator (store-error.ts). open reads
 * the node's state once, so a damaged table is found there rather than in a later load().
 */
export interface StoreOptions {
  readonly sync: 'normal' | 'full';
  /** The disk bound of the database file in bytes (the log comes on top, up to `walBytesKept` in steady state). */
  readonly maxBytes: number;
  /** How long ledger rows stay rows before `rollUp` folds them into daily aggregates. */
  readonly retentionMs?: number;
  /** Where checkpoints run (see above); 'background' unless set. */
  readonly checkpoints?: 'background' | 'inline';
  /** The log a store lets stand before it has the log start over; `storeWalBytesKeptMax` unless set. */
  readonly walBytesKept?: number;
  /** The log size past which a commit checkpoints inline; `storeWalBytesMax` unless set. */
  readonly walBytesMax?: number;
}

/** What the store reports to metrics. */
export interface StoreStats {
  /** The database's pages and the write-ahead log, in bytes: what the store takes on disk. */
  readonly fileBytes: number;
  readonly walBytes: number;
  readonly maxBytes: number;
  readonly ledgerRows: number;
  readonly aggregateRows: number;
  readonly counterEntries: number;
  /** How long the last commit took, in milliseconds (0 before the first). */
  readonly lastCommitMs: number;
  readonly commits: number;
  readonly commitFailures: number;
  /**
   * Checkpoints run on the event loop: the catch-ups after the thread's checkpoints that let the
   * log start over, and any a commit ran because the log passed `walBytesMax`.
   */
  readonly inlineCheckpoints: number;
  readonly inlineCheckpointFailures: number;
  /** How long the last of them held the event loop, in milliseconds. */
  readonly lastInlineCheckpointMs: number;
  readonly checkpoint: CheckpointStats;
}

/** One row of the `credentials` table (store-schema.ts, version 4). `json` holds secrets. */
export interface StoredCredentialRow {
  readonly account: string;
  readonly kind: string;
  readonly json: string;
  readonly origin: string;
  readonly updatedMs: number;
}

export type CommitResult = { readonly ok: true } | { readonly ok: false; readonly error: StoreError };

const committed: CommitResult = Object.freeze({ ok: true });

export class SqliteStore implements StateStore, UsageReader {
  private readonly tables: StateTables;
  private readonly usage: SqliteUsageReader;
  private readonly retention: LedgerRetention;
  private readonly countLedger: Database.Statement;
  private readonly countAggregates: Database.Statement;
  private readonly countCounters: Database.Statement;
  private readonly pageBytes: number;
  /** The state as open() read it, handed over by the first load() unless a commit made it stale. */
  private opened: NodeSnapshot | null = null;
  /** Live ledger rows, counted on first use and then kept up to date; null until then. */
  private ledgerRows: number | null = null;
  private lastCommitMs = 0;
  private commits = 0;
  private commitFailures = 0;
  private inlineCheckpoints = 0;
  private inlineCheckpointFailures = 0;
  private lastInlineCheckpointMs = 0;
  /** Started once open() has read the state, so a file refused there leaves no thread behind. */
  private checkpointer: StoreCheckpointer | null = null;
  private stopped: Promise<void> = Promise.resolve();

  private constructor(
    private readonly db: Database.Database,
    private readonly lock: Database.Database,
    readonly path: string,
    private readonly options: StoreOptions,
  ) {
    this.tables = new StateTables(db);
    this.usage = new SqliteUsageReader(db);
    this.retention = new LedgerRetention(db, options.retentionMs ?? ledgerRetentionMsDefault);
    this.countLedger = db.prepare('SELECT count(*) FROM ledger').pluck();
    this.countAggregates = db.prepare('SELECT count(*) FROM ledger_daily').pluck();
    this.countCounters = db.prepare('SELECT count(*) FROM counter_entries').pluck();
    this.pageBytes = db.pragma('page_size', { simple: true }) as number;
  }

  /**
   * Opens (creating it and its folder if missing) the store at `path`, takes its lock, brings its
   * schema to this build's version and reads the node's state. Expected failures are values.
   */
  static open(path: string, options: StoreOptions): Result<SqliteStore, StoreError> {
    assert(Number.isSafeInteger(options.maxBytes) && options.maxBytes >= storeBytesMin, 'maxBytes is at least storeBytesMin');
    const retentionMs = options.retentionMs ?? ledgerRetentionMsDefault;
    assert(Number.isSafeInteger(retentionMs) && retentionMs >= ledgerRetentionMsMin, 'retentionMs is at least ledgerRetentionMsMin');
    const folder = dirname(path);
    try {
      mkdirSync(folder, { recursive: true });
    } catch (cause) {
      const error = folderErrorOf(cause, folder, path);
      if (error === undefined) throw cause;
      return err(error);
    }
    let lock: Database.Database | undefined;
    let db: Database.Database | undefined;
    try {
      lock = takeLock(path);
      // The lock above keeps other stores out; what can still hold the file a moment is the
      // checkpoint thread of a store closed in this process just before (its last checkpoint).
      db = new Database(path, { timeout: storeBusyWaitMsMax });
      const refused = prepareDatabase(db, path, options);
      if (refused !== undefined) {
        db.close();
        lock.close();
        return err(refused);
      }
      const store = new SqliteStore(db, lock, path, options);
      store.opened = store.tables.read();
      if (options.checkpoints !== 'inline') store.checkpointer = new StoreCheckpointer(path, (report) => store.afterThreadCheckpoint(report));
      return ok(store);
    } catch (cause) {
      db?.close();
      lock?.close();
      const error = storeErrorOf(cause, path);
      if (error === undefined) throw cause;
      return err(error);
    }
  }

  load(): NodeSnapshot {
    const opened = this.opened;
    this.opened = null;
    return opened ?? this.tables.read();
  }

  commit(batch: StateBatch): CommitResult {
    const start = performance.now();
    this.opened = null;
    try {
      this.tables.apply(batch);
    } catch (cause) {
      const error = storeErrorOf(cause, this.path);
      if (error === undefined) throw cause;
      this.commitFailures++;
      return { ok: false, error };
    }
    this.commits++;
    if (this.ledgerRows !== null) this.ledgerRows += batch.ledgerRows.length;
    if (this.commits % storeWalCheckEveryCommits === 0 && walFileBytes(this.path) > (this.options.walBytesMax ?? storeWalBytesMax)) this.checkpointInline();
    this.lastCommitMs = performance.now() - start;
    return committed;
  }

  /** Throws StoreFailure for an expected SQLite failure (the interface returns a plain count). */
  dropExpired(beforeMs: number): number {
    this.opened = null;
    return this.housekeeping(() => this.tables.dropExpired(beforeMs));
  }

  /** Throws StoreFailure for an expected SQLite failure (a full disk, say). */
  compactPolicy(state: Uint8Array): void {
    this.opened = null;
    this.housekeeping(() => this.tables.compactPolicy(state));
  }

  /**
   * Folds at most `ledgerRollUpRowsMax` ledger rows past retention into the daily aggregates and
   * returns how many; a caller repeats (yielding between calls) until it gets fewer than the bound.
   */
  rollUp(nowMs: number): Result<number, StoreError> {
    try {
      const rolled = this.retention.rollUp(nowMs);
      if (this.ledgerRows !== null) this.ledgerRows -= rolled;
      return ok(rolled);
    } catch (cause) {
      const error = storeErrorOf(cause, this.path);
      if (error === undefined) throw cause;
      return err(error);
    }
  }

  /**
   * Keeps one account's upstream credential (src/node/credentials/credential-vault.ts), committed
   * at once in a transaction of its own: a rotated refresh token must be on disk before the
   * access token that came with it is used, since the one it replaced is void.
   */
  putCredential(row: StoredCredentialRow): Result<undefined, StoreError> {
    try {
      this.db
        .prepare(
          'INSERT INTO credentials (account, kind, json, origin, updated_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET kind = excluded.kind, json = excluded.json, origin = excluded.origin, updated_ms = excluded.updated_ms',
        )
        .run(row.account, row.kind, row.json, row.origin, row.updatedMs);
      return ok(undefined);
    } catch (cause) {
      const error = storeErrorOf(cause, this.path);
      if (error === undefined) throw cause;
      return err(error);
    }
  }

  /** The credential kept for one account, if any. */
  credential(account: string): Result<StoredCredentialRow | undefined, StoreError> {
    try {
      const row = this.db.prepare('SELECT account, kind, json, origin, updated_ms AS updatedMs FROM credentials WHERE account = ?').get(account) as
        StoredCredentialRow | undefined;
      return ok(row);
    } catch (cause) {
      const error = storeErrorOf(cause, this.path);
      if (error === undefined) throw cause;
      return err(error);
    }
  }

  queryUsage(query: UsageQuery): UsageAnswer {
    return this.usage.queryUsage(query);
  }

  eachRow(filter: UsageFilter, visit: (row: LedgerRow) => void): number {
    return this.usage.eachRow(filter, visit);
  }

  stats(): StoreStats {
    this.ledgerRows ??= this.countLedger.get() as number;
    const databaseBytes = (this.db.pragma('page_count', { simple: true }) as number) * this.pageBytes;
    const walBytes = walFileBytes(this.path);
    return {
      fileBytes: databaseBytes + walBytes,
      walBytes,
      maxBytes: this.options.maxBytes,
      ledgerRows: this.ledgerRows,
      aggregateRows: this.countAggregates.get() as number,
      counterEntries: this.countCounters.get() as number,
      lastCommitMs: this.lastCommitMs,
      commits: this.commits,
      commitFailures: this.commitFailures,
      inlineCheckpoints: this.inlineCheckpoints,
      inlineCheckpointFailures: this.inlineCheckpointFailures,
      lastInlineCheckpointMs: this.lastInlineCheckpointMs,
      checkpoint: this.checkpointer?.current() ?? { checkpoints: 0, checkpointFailures: 0, lastCheckpointError: null, lastCheckpointMs: 0 },
    };
  }

  /**
   * Releases the file and its lock; the store is unusable afterwards. The checkpoint thread ends
   * on its own a moment later (its last checkpoint may still run); `closed()` waits for it.
   */
  close(): void {
    if (!this.db.open) return;
    this.db.close();
    this.lock.close();
    if (this.checkpointer !== null) this.stopped = this.checkpointer.stop();
  }

  /** Resolves once close() is done and the checkpoint thread has ended. */
  closed(): Promise<void> {
    return this.stopped;
  }

  /**
   * After the thread's checkpoint: when the log holds more than the store lets stand and commits
   * came in while the thread copied, copy those so the next commit starts the log over (see
   * store-checkpointer.ts for why the thread alone cannot).
   */
  private afterThreadCheckpoint(report: CheckpointReport): void {
    if (report.kind !== 'checkpointed' || !this.db.open) return;
    if (report.logPages * this.pageBytes <= (this.options.walBytesKept ?? storeWalBytesKeptMax)) return;
    // The thread copied the log as it stood when it began. If no commit came since, the next
    // commit starts the log over by itself (and then the file is cut back below that length).
    const walPages = Math.floor((walFileBytes(this.path) - walHeaderBytes) / (this.pageBytes + walFrameHeaderBytes));
    if (walPages > report.logPages) this.checkpointInline();
  }

  /**
   * A checkpoint on this connection, on the event loop. Whatever batch came before is already
   * committed, so a failure here is only counted (the next report or look retries).
   */
  private checkpointInline(): void {
    const start = performance.now();
    this.inlineCheckpoints++;
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch (cause) {
      if (storeErrorOf(cause, this.path) === undefined) throw cause;
      this.inlineCheckpointFailures++;
    }
    this.lastInlineCheckpointMs = performance.now() - start;
  }

  private housekeeping<T>(work: () => T): T {
    try {
      return work();
    } catch (cause) {
      const error = storeErrorOf(cause, this.path);
      if (error === undefined) throw cause;
      throw new StoreFailure(error);
    }
  }
}

/**
 * Pragmas, the version check and the migrations of a freshly opened connection.
 * Returns the refusal of a file this build cannot use; SQLite errors propagate to open().
 */
function prepareDatabase(db: Database.Database, path: string, options: StoreOptions): StoreError | undefined {
  // Takes effect on a new file only (before its first write); an existing file keeps its size.
  db.pragma(`page_size = ${storePageBytes}`);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') return { kind: 'io', message: `the database file ${path} could not be switched to WAL mode (it stayed in ${String(mode)} mode)` };
  db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('temp_store = MEMORY');
  const version = userVersion(db);
  if (version > schemaVersion) {
    return {
      kind: 'io',
      message: `the database file ${path} is at schema version ${version}, newer than this build knows (${schemaVersion}): run the carpool version that wrote it, or a newer one`,
    };
  }
  migrate(db);
  const pageBytes = db.pragma('page_size', { simple: true }) as number;
  db.pragma(`max_page_count = ${Math.floor(options.maxBytes / pageBytes)}`);
  db.pragma(`journal_size_limit = ${options.walBytesKept ?? storeWalBytesKeptMax}`);
  // Checkpoints belong to the checkpoint thread unless the store was asked to run them inline.
  if (options.checkpoints !== 'inline') db.pragma('wal_autocheckpoint = 0');
  return undefined;
}

/**
 * The one-writer lock: `<path>-lock`, a small SQLite file whose exclusive lock this connection
 * takes with an empty write transaction and, in exclusive locking mode, keeps until it is closed.
 * A second taker gets SQLITE_BUSY, which store-error.ts reports as `locked`.
 */
function takeLock(path: string): Database.Database {
  const lock = new Database(`${path}-lock`, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE; COMMIT');
    return lock;
  } catch (cause) {
    lock.close();
    throw cause;
  }
}

/** SQLite's WAL format: a 32-byte file header, then frames of a 24-byte header and one page. */
const walHeaderBytes = 32;
const walFrameHeaderBytes = 24;

function walFileBytes(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
