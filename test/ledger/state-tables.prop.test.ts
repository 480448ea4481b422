// Proves that what a store loads is the fold of the batches it committed (last write wins per
// key, puts before deletes within a batch, policy updates and ledger rows appended in order),
// also across a close and reopen at a random point.
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { NodeSnapshot, StateBatch, StoredAnswer, StoredCounterEntry, StoredOpenRequest, StoredRightsRow } from '../../src/ledger/node-state.js';
import { arbBatch, openStore, tempFolder } from '../support/ledger.js';
import { checkProperty } from '../support/property.js';

/** The reference: each table as a plain map folded batch by batch, the way node-state.ts defines a batch. */
function fold(batches: readonly StateBatch[]): { snapshot: NodeSnapshot; rows: LedgerRow[] } {
  const meta = new Map<string, string>();
  const counters = new Map<string, StoredCounterEntry>();
  const rights = new Map<string, StoredRightsRow>();
  const open = new Map<string, StoredOpenRequest>();
  const answers = new Map<string, StoredAnswer>();
  const policy: Uint8Array[] = [];
  const rows: LedgerRow[] = [];
  for (const batch of batches) {
    for (const [key, value] of batch.meta) meta.set(key, value);
    for (const e of batch.counterEntries) counters.set(JSON.stringify([e.replica, e.scope, e.subject, e.metric, e.unit, e.index]), e);
    for (const r of batch.rightsRows) rights.set(r.keyId, r);
    for (const o of batch.openRequestsPut) open.set(o.requestId, o);
    for (const a of batch.answersPut) answers.set(JSON.stringify([a.book, a.key]), a);
    for (const id of batch.openRequestsDeleted) open.delete(id);
    for (const a of batch.answersDeleted) answers.delete(JSON.stringify([a.book, a.key]));
    policy.push(...batch.policyUpdates);
    rows.push(...batch.ledgerRows);
  }
  return {
    snapshot: {
      meta,
      counterEntries: [...counters.values()],
      rightsRows: [...rights.values()],
      openRequests: [...open.values()],
      policyUpdates: policy,
      answers: [...answers.values()],
    },
    rows,
  };
}

/** Tables in one order on both sides: the store reads them in key order, the fold in insertion order. */
function canonical(snapshot: NodeSnapshot): unknown {
  const sorted = <T>(items: readonly T[]): string[] => items.map((item) => JSON.stringify(item)).sort();
  return {
    meta: [...snapshot.meta.entries()].sort(),
    counterEntries: sorted(snapshot.counterEntries),
    rightsRows: sorted(snapshot.rightsRows),
    openRequests: sorted(snapshot.openRequests),
    policyUpdates: snapshot.policyUpdates.map((u) => [...u]),
    answers: sorted(snapshot.answers),
  };
}

describe('SqliteStore commit and load', () => {
  let folder: ReturnType<typeof tempFolder>;
  let run = 0;
  beforeAll(() => {
    folder = tempFolder();
  });
  afterAll(() => folder.remove());

  it('loads the fold of the committed batches, before and after a reopen', () => {
    checkProperty(
      fc.property(fc.array(arbBatch, { maxLength: 8 }), fc.nat(), (batches, reopenAt) => {
        const path = join(folder.path, `run-${run++}.db`);
        let store = openStore(path);
        try {
          const split = batches.length === 0 ? 0 : reopenAt % (batches.length + 1);
          batches.forEach((batch, i) => {
            if (i === split) {
              store.close();
              store = openStore(path);
            }
            expect(store.commit(batch)).toEqual({ ok: true });
          });
          const expected = fold(batches);
          expect(canonical(store.load())).toEqual(canonical(expected.snapshot));
          const rows: LedgerRow[] = [];
          store.eachRow({ side: 'tenant' }, (row) => rows.push(row));
          store.eachRow({ side: 'account' }, (row) => row.role === 'home' && rows.push(row));
          const order = (a: LedgerRow, b: LedgerRow): number => JSON.stringify(a).localeCompare(JSON.stringify(b));
          expect(rows.sort(order)).toEqual([...expected.rows].sort(order));
          store.close();
          store = openStore(path);
          expect(canonical(store.load())).toEqual(canonical(expected.snapshot));
        } finally {
          store.close();
        }
      }),
      60,
    );
  });
});
