import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { storeCheckpointEveryMs } from '../core/limits.js';

/**
 * Checkpoints of a store's write-ahead log, on a thread of their own.
 *
 * Why. A commit appends pages to the log; a checkpoint copies them back into the database file
 * and flushes both to the disk (two fsyncs, 5 to 20 ms on a cloud disk). Left to SQLite, the
 * checkpoint runs inside whichever commit crosses 1,000 log pages, on the event loop: at 500
 * requests/s that was one settlement in a hundred waiting 13 ms, a p99 of 13 ms. Here a worker
 * thread with its own connection runs a PASSIVE checkpoint every `storeCheckpointEveryMs`; WAL
 * mode lets it copy pages while the node keeps committing, and the node's commits never flush.
 *
 * The worker runs plain JavaScript (no TypeScript loader is needed in the thread) and loads
 * better-sqlite3 from the path the main thread resolved. It reports each checkpoint and each
 * failure; a failure is counted, and the store checkpoints inline if the log grows past its
 * bound (sqlite-store.ts), so a stuck worker costs latency, never unbounded disk.
 */
export interface CheckpointStats {
  readonly checkpoints: number;
  readonly checkpointFailures: number;
  /** The last failure's message, for the log; null when none failed. */
  readonly lastCheckpointError: string | null;
  /** How long the last checkpoint took on its thread, in milliseconds. */
  readonly lastCheckpointMs: number;
}

type WorkerReport = { readonly kind: 'checkpointed'; readonly ms: number } | { readonly kind: 'failed'; readonly message: string };

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
    db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ kind: 'checkpointed', ms: performance.now() - start });
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

  constructor(path: string, everyMs: number = storeCheckpointEveryMs) {
    this.worker = new Worker(workerSource, { eval: true, workerData: { path, modulePath: betterSqlitePath, everyMs } });
    // The node's process may exit while the thread sleeps between checkpoints.
    this.worker.unref();
    this.worker.on('message', (report: WorkerReport) => this.record(report));
    this.worker.on('error', (cause) => this.record({ kind: 'failed', message: cause.message }));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  current(): CheckpointStats {
    return this.stats;
  }

  /** Asks the thread to close its connection and end; resolves once it has. */
  stop(): Promise<void> {
    this.worker.postMessage('stop');
    return this.exited;
  }

  private record(report: WorkerReport): void {
    const s = this.stats;
    this.stats =
      report.kind === 'checkpointed'
        ? { ...s, checkpoints: s.checkpoints + 1, lastCheckpointMs: report.ms }
        : { ...s, checkpointFailures: s.checkpointFailures + 1, lastCheckpointError: report.message };
  }
}
