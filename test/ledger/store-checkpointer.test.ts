// Proves the checkpoints: the background thread copies the log into the database while the node
// commits (commits run none themselves), the store's catch-up lets the log start over under a
// steady stream of commits, a store reopens at once after close, and a commit checkpoints inline
// once the log passes its bound anyway.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeCheckpointEveryMs } from '../../src/core/limits.js';
import type { SqliteStore } from '../../src/ledger/sqlite-store.js';
import { batchOf, ledgerRow, openStore, storeOptions, tempFolder } from '../support/ledger.js';
import { sleep, until } from '../support/wait.js';

let folder: ReturnType<typeof tempFolder>;
let store: SqliteStore | undefined;
beforeEach(() => {
  folder = tempFolder();
});
afterEach(async () => {
  store?.close();
  await store?.closed();
  store = undefined;
  folder.remove();
});

function commitRows(target: SqliteStore, batches: number, from = 0): void {
  for (let b = 0; b < batches; b++) {
    const rows = Array.from({ length: 50 }, (_, i) => ledgerRow({ requestId: `r${from + b * 50 + i}`, tenant: `t${i}` }));
    expect(target.commit(batchOf({ ledgerRows: rows }))).toEqual({ ok: true });
  }
}

describe('store checkpoints', () => {
  it('run on their own thread, and the log starts over under a steady stream of commits', async () => {
    const walBytesKept = 1024 * 1024;
    store = openStore(join(folder.path, 'state.db'), { ...storeOptions, checkpoints: 'background', walBytesKept });
    commitRows(store, 200);
    // 200 commits of 50 rows write far more log than SQLite's own 1,000-page checkpoint point,
    // so no commit checkpointed by itself.
    expect(store.stats().walBytes).toBeGreaterThan(8 * 1024 * 1024);
    // A commit every 2 ms, as at 500 settlements a second: a checkpoint on the thread never finds
    // the whole log copied, so only the store's catch-up lets the log start over (and shrink).
    let shrank = false;
    let previous = store.stats().walBytes;
    let batch = 0;
    const deadline = Date.now() + 8 * storeCheckpointEveryMs;
    while (!shrank && Date.now() < deadline) {
      commitRows(store, 1, 100_000 + 50 * batch++);
      const now = store.stats().walBytes;
      shrank = now < previous;
      previous = now;
      await sleep(2);
    }
    expect(shrank).toBe(true);
    const stats = store.stats();
    expect(stats.checkpoint.checkpoints).toBeGreaterThanOrEqual(1);
    expect(stats.checkpoint).toMatchObject({ checkpointFailures: 0, lastCheckpointError: null });
    expect(stats.inlineCheckpoints).toBeGreaterThanOrEqual(1);
    expect(stats.inlineCheckpointFailures).toBe(0);
    store.close();
    await store.closed();
    store = openStore(join(folder.path, 'state.db'));
    expect(store.queryUsage({ filter: { side: 'tenant' } }).totals.requests).toBe(200 * 50 + 50 * batch);
  });

  it('catch up only when commits came in while the thread copied the log', async () => {
    store = openStore(join(folder.path, 'state.db'), { ...storeOptions, checkpoints: 'background', walBytesKept: 1024 * 1024 });
    commitRows(store, 200);
    expect(store.stats().walBytes).toBeGreaterThan(2 * 1024 * 1024);
    // No commits now: the thread copies the whole log, and the next commit starts it over alone.
    // (A checkpoint that ran during the commits above may have caught up once; from the first
    // quiet one on, none does.)
    const checkpointsAfter = (n: number): Promise<void> => {
      const target = store!.stats().checkpoint.checkpoints + n;
      return until(() => store!.stats().checkpoint.checkpoints >= target, `${n} checkpoints on the thread`, 10 * storeCheckpointEveryMs);
    };
    await checkpointsAfter(2);
    const caughtUp = store.stats().inlineCheckpoints;
    await checkpointsAfter(2);
    expect(store.stats().inlineCheckpoints).toBe(caughtUp);
    commitRows(store, 1, 100_000);
    expect(store.stats().walBytes).toBeLessThanOrEqual(1024 * 1024);
  });

  it('let a store reopen at once in the same process while the thread of the last one still checkpoints', async () => {
    const path = join(folder.path, 'state.db');
    const first = openStore(path, { ...storeOptions, checkpoints: 'background' });
    for (let b = 0; b < 20; b++)
      first.commit(batchOf({ ledgerRows: Array.from({ length: 10_000 }, (_, i) => ledgerRow({ requestId: `r${b}.${i}`, tenant: `t${i % 50}` })) }));
    first.close();
    // The closed store's thread now closes the last connection, which checkpoints the whole log
    // (some 50 MB of it) under an exclusive lock; the new store opens while that runs.
    await sleep(5);
    store = openStore(path, { ...storeOptions, checkpoints: 'background' });
    expect(store.commit(batchOf({ meta: [['reopened', 'yes']] }))).toEqual({ ok: true });
    expect(store.queryUsage({ filter: { side: 'tenant' } }).totals.requests).toBe(200_000);
    await first.closed();
  });

  it('checkpoint inline when the log passes its bound all the same', () => {
    store = openStore(join(folder.path, 'state.db'), { ...storeOptions, checkpoints: 'background', walBytesMax: 1024 * 1024 });
    commitRows(store, 600);
    expect(store.stats().inlineCheckpoints).toBeGreaterThanOrEqual(1);
    expect(store.stats().inlineCheckpointFailures).toBe(0);
  });
});
