// Proves the checkpoints: the background thread copies the log into the database while the node
// commits (commits run none themselves), the log then starts over instead of growing, and a commit
// checkpoints inline once the log passes its bound anyway.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeCheckpointEveryMs, storeWalBytesKeptMax } from '../../src/core/limits.js';
import type { SqliteStore } from '../../src/ledger/sqlite-store.js';
import { batchOf, ledgerRow, openStore, storeOptions, tempFolder } from '../support/ledger.js';
import { until } from '../support/wait.js';

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
  it('run on their own thread, after which the log starts over instead of growing', async () => {
    store = openStore(join(folder.path, 'state.db'), { ...storeOptions, checkpoints: 'background' });
    commitRows(store, 200);
    const grown = store.stats().walBytes;
    // 200 commits of 50 rows write far more log pages than SQLite's own 1,000-page checkpoint
    // point: no commit checkpointed.
    expect(grown).toBeGreaterThan(8 * 1024 * 1024);
    await until(() => store!.stats().checkpoint.checkpoints >= 1, 'a checkpoint on the thread', 10 * storeCheckpointEveryMs);
    expect(store.stats().checkpoint).toMatchObject({ checkpointFailures: 0, lastCheckpointError: null });
    // Once a checkpoint copied the whole log, the next commit writes from its start and the log is
    // cut back to the size kept; keep committing until a checkpoint has seen it all.
    await until(
      () => {
        commitRows(store!, 1, 10_000);
        return store!.stats().walBytes <= storeWalBytesKeptMax;
      },
      'the log to start over',
      10 * storeCheckpointEveryMs,
    );
    expect(store.stats().inlineCheckpoints).toBe(0);
    store.close();
    await store.closed();
    store = openStore(join(folder.path, 'state.db'));
    expect(store.queryUsage({ filter: { side: 'tenant' } }).totals.requests).toBeGreaterThan(200 * 50);
  });

  it('checkpoint inline when the log passes its bound all the same', () => {
    store = openStore(join(folder.path, 'state.db'), { ...storeOptions, checkpoints: 'background', walBytesMax: 1024 * 1024 });
    commitRows(store, 600);
    expect(store.stats().inlineCheckpoints).toBeGreaterThanOrEqual(1);
    expect(store.stats().inlineCheckpointFailures).toBe(0);
  });
});
