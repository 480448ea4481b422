// Proves the in-memory usage reader of the readers' tests answers as the SQLite store does.
// The reader is test/support/memory-usage-reader.ts. For any rows and any query (side, filters,
// range, groups, rows listed) both give the same totals, groups in the same order with the same
// keys, the same newest rows, and the same rows in the same order for an export; so what the admin
// routes, the export and the audit are tested against is what a node serves.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { UsageGroupField, UsageQuery } from '../../src/ledger/usage-query.js';
import { MemoryUsageReader } from '../support/memory-usage-reader.js';
import { checkProperty } from '../support/property.js';
import { arbLedgerRowWithin, batchOf, day0Ms, openStore, tempFolder } from '../support/ledger.js';

const folder = tempFolder('carpool-usage-contract-');
afterAll(() => folder.remove());

const dayMs = 86_400_000;
const groupFields: UsageGroupField[] = [
  'tenant',
  'user',
  'apiKeyId',
  'model',
  'account',
  'day',
  'hour',
  'window:day',
  'window:week',
  'window:hour5',
  'window:minute',
];

const queryArbitrary: fc.Arbitrary<UsageQuery> = fc
  .record({
    side: fc.constantFrom('tenant' as const, 'account' as const),
    tenant: fc.option(fc.constantFrom('acme', 'globex'), { nil: undefined }),
    user: fc.option(fc.constantFrom('ada', 'bob'), { nil: undefined }),
    account: fc.option(fc.constantFrom('acct-1', 'acct-2'), { nil: undefined }),
    model: fc.option(fc.constantFrom('claude-sonnet-4-6'), { nil: undefined }),
    sinceMs: fc.option(fc.integer({ min: day0Ms - 3 * dayMs, max: day0Ms + 3 * dayMs }), { nil: undefined }),
    spanMs: fc.option(fc.integer({ min: 1, max: 4 * dayMs }), { nil: undefined }),
    groupBy: fc.subarray(groupFields, { maxLength: 3 }),
    rowsLimit: fc.integer({ min: 0, max: 30 }),
  })
  .map(({ side, tenant, user, account, model, sinceMs, spanMs, groupBy, rowsLimit }) => {
    const untilMs = spanMs === undefined ? undefined : (sinceMs ?? day0Ms) + spanMs;
    const filter = {
      side,
      ...(tenant === undefined ? {} : { tenant }),
      ...(user === undefined ? {} : { user }),
      ...(account === undefined ? {} : { account }),
      ...(model === undefined ? {} : { model }),
      ...(sinceMs === undefined ? {} : { sinceMs }),
      ...(untilMs === undefined ? {} : { untilMs }),
    };
    return { filter, ...(groupBy.length === 0 ? {} : { groupBy }), rowsLimit };
  });

describe('the memory usage reader', () => {
  it('answers every query as the SQLite store does', () => {
    let run = 0;
    checkProperty(
      fc.property(
        fc.array(arbLedgerRowWithin(3), { minLength: 5, maxLength: 40 }),
        fc.array(queryArbitrary, { minLength: 4, maxLength: 12 }),
        (rows, queries) => {
          const store = openStore(`${folder.path}/contract-${run++}.sqlite`);
          try {
            expect(store.commit(batchOf({ ledgerRows: rows })).ok).toBe(true);
            const memory = new MemoryUsageReader(rows);
            for (const query of queries) {
              expect(memory.queryUsage(query)).toEqual({ groupsTruncated: false, ...store.queryUsage(query) });
              const fromStore: LedgerRow[] = [];
              const fromMemory: LedgerRow[] = [];
              store.eachRow(query.filter, (row) => fromStore.push(row));
              memory.eachRow(query.filter, (row) => fromMemory.push(row));
              expect(fromMemory).toEqual(fromStore);
            }
          } finally {
            store.close();
          }
        },
      ),
      60,
    );
  });
});
