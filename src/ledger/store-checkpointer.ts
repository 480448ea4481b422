import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { storeCheckpointEveryMs } from '../core/limits.js';

/**
 * Checkpoints of a store's write-ahead log, mostly on a thread of their own.
 *
 * Why a thread. A commit appends pages to the log; a checkpoint copies them back into the
 * database file and flushes both to the disk (two fsyncs, from under a millisecond to 50 ms on a
 * busy cloud disk). Left to SQLite, the checkpoint runs inside whichever commit crosses 1,000 log
 * pages, on the event loop: at 500 requests/s that was one settlement in a hundred waiting 13 ms,
 * a p99 of 13 ms. Here a worker thread with its own connection runs a PASSIVE checkpoint every
 * `storeCheckpointEveryMs`; WAL mode lets it copy pages while the node keeps committing.
 *
 * Why a catch-up on the event loop all the same. A checkpoint copies the log up to where it
 * stood when the checkpoint began; the node appends meanwhile (every 2 ms at 500 requests/s,
 * while a checkpoint takes some 50 ms), so the thread alone never finds the log fully copied, and
 * SQLite starts the log over only then: it grew by 12 MB a second without end (found by
 * `npm run bench -- ledger`). So when the thread reports a checkpoint of a log longer than the
 * store keeps (`walBytesKept`) and commits came in meanwhile, the store checkpoints once more on
 * its own connection, between two commits: that copies only the pages of those commits, plus the
 * two fsyncs, and the next commit starts the log over. At 500 requests/s that is one short pause
 * every few seconds instead of one per hundred settlements.
 *
 * The worker runs plain JavaScript (no TypeScript loader is needed in the thread) and loads
 * better-sqlite3 from the path the main thread resolved. It reports each checkpoint and each
 * failure; a failure is counted, and the store checkpoints inline if the log grows past its
 * bound (sqlite-store.ts), so a stuck worker costs latency, never unbounded disk.
 */
export interface CheckpointStats {
  /** Checkpoints the thread ran. */
  readonly checkpoints: number;
  readonly checkpointFailures: number;
  /** The last failure's message, for the log; null when none failed. */
  readonly lastCheckpointError: string | null;
  /** How long the last checkpoint took on its thread, in milliseconds. */
  readonly lastCheckpointMs: number;
}

/** What the thread says after a checkpoint: how long the log was, in pages, when the checkpoint began (all of it copied). */
export type CheckpointReport =
  { readonly kind: 'checkpointed'; readonly ms: number; readonly logPages: number } | { readonly kind: 'failed'; readonly message: string };

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.modulePath);
// The worker may wait for SQLite's locks: it is not on the event loop that serves requests.
let db;
try {
  db = new Database(workerData.path, { timeout: 5000 });
} catch (cause) {
  parentPort.postMessage({ kind: 'failed', message: String(cause && cause.message || cause) });
}
const timer = db && setInterval(() => {
  const start = performance.now();
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ kind: 'checkpointed', ms: performance.now() - start, logPages: result.log });
  } catch (cause) {
    parentPort.postMessage({ kind: 'failed', message: String(cause && cause.message || cause) });
  }
}, workerData.everyMs);
parentPort.on('message', () => {
  if (timer) clearInterval(timer);
  if (db && db.open) db.close();
  parentPort.close();
});
`;

const betterSqlitePath = createRequire(import.meta.url).resolve('better-sqlite3');

export class StoreCheckpointer {
  private readonly worker: Worker;
  private stats: CheckpointStats = { checkpoints: 0, checkpointFailures: 0, lastCheckpointError: null, lastCheckpointMs: 0 };
  private readonly exited: Promise<void>;

  /** `onReport` hears each report after it is counted, on the event loop (the store's catch-up). */
  constructor(path: string, onReport: (report: CheckpointReport) => void, everyMs: number = storeCheckpointEveryMs) {
    this.worker = new Worker(workerSource, { eval: true, workerData: { path, modulePath: betterSqlitePath, everyMs } });
    // The node's process may exit while the thread sleeps between checkpoints.
    this.worker.unref();
    this.worker.on('message', (report: CheckpointReport) => {
      this.record(report);
      onReport(report);
    });
    this.worker.on('error', (cause) => this.record({ kind: 'failed', message: cause.message }));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  current(): CheckpointStats {
    return this.stats;
  }

  /**
   * Asks the thread to close its connection and end; resolves once it has. From here the thread
   * holds the process open, so a process that is ending waits for its last checkpoint (bounded by
   * the time that checkpoint takes) rather than leaving `closed()` unresolved.
   */
  stop(): Promise<void> {
    this.worker.ref();
    this.worker.postMessage('stop');
    return this.exited;
  }

  private record(report: CheckpointReport): void {
    const s = this.stats;
    this.stats =
      report.kind === 'checkpointed'
        ? { ...s, checkpoints: s.checkpoints + 1, lastCheckpointMs: report.ms }
        : { ...s, checkpointFailures: s.checkpointFailures + 1, lastCheckpointError: report.message };
  }
}
