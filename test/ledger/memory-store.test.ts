// Proves the in-memory store keeps one entry per replica and key, with or without the key's id.
import { describe, expect, it } from 'vitest';
import { counterKey } from '../../src/crdt/counter-key.js';
import { MemoryStore } from '../../src/ledger/memory-store.js';
import type { StateBatch, StoredCounterEntry } from '../../src/ledger/node-state.js';

const key = counterKey('tenant', 'acme', 'weighted_tokens', { unit: 'day', index: 20418 });
const parts = { scope: key.scope, subject: key.subject, metric: key.metric, unit: key.window.unit, index: key.window.index, endMs: 1 };

function batchOf(counterEntries: StoredCounterEntry[]): StateBatch {
  return {
    meta: [],
    counterEntries,
    rightsRows: [],
    openRequestsPut: [],
    openRequestsDeleted: [],
    policyUpdates: [],
    answersPut: [],
    answersDeleted: [],
    ledgerRows: [],
  };
}

describe('MemoryStore counter entries', () => {
  it('replaces an entry written without its key id by one written with it, per replica', () => {
    const store = new MemoryStore();
    store.commit(
      batchOf([
        { replica: 'a~0', ...parts, p: 1, n: 0, version: 1 },
        { replica: 'b~0', ...parts, p: 5, n: 0, version: 1 },
      ]),
    );
    store.commit(batchOf([{ replica: 'a~0', ...parts, keyId: key.id, p: 2, n: 0, version: 2 }]));
    expect(store.load().counterEntries.map((e) => [e.replica, e.p])).toEqual([
      ['a~0', 2],
      ['b~0', 5],
    ]);
    expect(store.dropExpired(2)).toBe(2);
    expect(store.load().counterEntries).toEqual([]);
  });
});
