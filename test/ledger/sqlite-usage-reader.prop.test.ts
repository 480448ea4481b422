// Differential test of usage queries: for random rows, a random roll-up and random questions, the
// store's totals, groups, listings and exports equal a straightforward in-memory reading of the
// rules in src/ledger/usage-query.ts and usage-sql.ts over the same rows.
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { windowAt, windowLengthMs, windowOffsetMs, windowUnits, type WindowUnit } from '../../src/crdt/window.js';
import type { LedgerRow, UsageTotals } from '../../src/ledger/ledger-row.js';
import type { UsageAnswer, UsageFilter, UsageGroupField, UsageQuery } from '../../src/ledger/usage-query.js';
import { rolledUpGroupValue } from '../../src/ledger/usage-sql.js';
import { arbLedgerRowWithin, batchOf, day0Ms, openStore, storeOptions, tempFolder } from '../support/ledger.js';
import { checkProperty } from '../support/property.js';

const dayMs = 86_400_000;
// Rows over 13 days, questions and roll-ups over 15, retention of 2: the edges of days, of the
// cut and of the ranges fall among the rows often, where an off-by-one would show.
const spanDays = 6;
const retentionMs = 2 * dayMs;

interface Held {
  readonly row: LedgerRow;
  /** Insertion order: the store's row id. */
  readonly seq: number;
  readonly aggregated: boolean;
}

const zero: UsageTotals = { requests: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0, weightedTokens: 0, costMicros: 0 };

function add(t: UsageTotals, r: LedgerRow): UsageTotals {
  return {
    requests: t.requests + 1,
    inputTokens: t.inputTokens + r.inputTokens,
    outputTokens: t.outputTokens + r.outputTokens,
    cacheWriteTokens: t.cacheWriteTokens + r.cacheWriteTokens,
    cacheReadTokens: t.cacheReadTokens + r.cacheReadTokens,
    weightedTokens: t.weightedTokens + r.weightedTokens,
    costMicros: t.costMicros + (r.costMicros ?? 0),
  };
}

/** An aggregated row counts as charged at the start of its UTC day. */
function effectiveMs(h: Held): number {
  return h.aggregated ? Math.floor(h.row.chargedAtMs / dayMs) * dayMs : h.row.chargedAtMs;
}

function matches(h: Held, f: UsageFilter): boolean {
  const r = h.row;
  const sides = f.side === 'tenant' ? ['local', 'origin'] : ['local', 'home'];
  const t = effectiveMs(h);
  return (
    sides.includes(r.role) &&
    (f.tenant === undefined || r.tenant === f.tenant) &&
    (f.user === undefined || r.user === f.user) &&
    (f.apiKeyId === undefined || r.apiKeyId === f.apiKeyId) &&
    (f.model === undefined || r.model === f.model) &&
    (f.account === undefined || r.account === f.account) &&
    (f.sinceMs === undefined || t >= f.sinceMs) &&
    (f.untilMs === undefined || t < f.untilMs)
  );
}

function groupValue(h: Held, field: UsageGroupField): string {
  const r = h.row;
  switch (field) {
    case 'tenant':
      return r.tenant;
    case 'user':
      return r.user ?? '';
    case 'apiKeyId':
      return r.apiKeyId ?? '';
    case 'model':
      return r.model;
    case 'account':
      return r.account ?? '';
    case 'day':
      return new Date(r.chargedAtMs).toISOString().slice(0, 10);
    case 'hour':
      return h.aggregated ? rolledUpGroupValue : `${new Date(r.chargedAtMs).toISOString().slice(0, 13)}:00Z`;
    default: {
      const unit = field.slice('window:'.length) as WindowUnit;
      const dayAligned = windowLengthMs[unit] % dayMs === 0 && windowOffsetMs[unit] % dayMs === 0;
      if (h.aggregated && !dayAligned) return rolledUpGroupValue;
      return `${unit}:${windowAt(unit, effectiveMs(h)).index}`;
    }
  }
}

function reference(held: readonly Held[], query: UsageQuery): UsageAnswer {
  const hits = held.filter((h) => matches(h, query.filter));
  const groups = new Map<string, { key: Record<string, string>; totals: UsageTotals }>();
  for (const h of hits) {
    if ((query.groupBy ?? []).length === 0) break;
    const key = Object.fromEntries((query.groupBy ?? []).map((field) => [field, groupValue(h, field)]));
    const id = JSON.stringify(key);
    groups.set(id, { key, totals: add(groups.get(id)?.totals ?? zero, h.row) });
  }
  const live = hits.filter((h) => !h.aggregated).sort((a, b) => b.row.chargedAtMs - a.row.chargedAtMs || b.seq - a.seq);
  return {
    totals: hits.reduce((t, h) => add(t, h.row), zero),
    groups: [...groups.values()],
    rows: live.slice(0, query.rowsLimit ?? 0).map((h) => h.row),
    fromAggregates: hits.filter((h) => h.aggregated).length,
  };
}

/** The query with its range widened to whole UTC days. */
function overWholeDays(query: UsageQuery): UsageQuery {
  const { sinceMs, untilMs, ...rest } = query.filter;
  const day = (ms: number): number => Math.floor(ms / dayMs) * dayMs;
  return {
    ...query,
    filter: { ...rest, ...(sinceMs === undefined ? {} : { sinceMs: day(sinceMs) }), ...(untilMs === undefined ? {} : { untilMs: day(untilMs) }) },
  };
}

const byKey = (a: { key: Record<string, string> }, b: { key: Record<string, string> }): number => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key));

const arbTime = fc.integer({ min: day0Ms - (spanDays + 1) * dayMs, max: day0Ms + (spanDays + 1) * dayMs });
const arbField: fc.Arbitrary<UsageGroupField> = fc.constantFrom<UsageGroupField>(
  'tenant',
  'user',
  'apiKeyId',
  'model',
  'account',
  'day',
  'hour',
  ...windowUnits.map((u) => `window:${u}` as const),
);
const arbQuery: fc.Arbitrary<UsageQuery> = fc.record(
  {
    filter: fc.record(
      {
        side: fc.constantFrom('tenant' as const, 'account' as const),
        tenant: fc.constantFrom('acme', 'globex', 'nobody'),
        user: fc.constantFrom('ada', 'bob'),
        apiKeyId: fc.constantFrom('acme.k1', 'globex.k2'),
        model: fc.constantFrom('claude-sonnet-4-6', 'claude-haiku-4-5'),
        account: fc.constantFrom('acct-1', 'acct-2'),
        sinceMs: arbTime,
        untilMs: arbTime,
      },
      { requiredKeys: ['side'] },
    ),
    groupBy: fc.uniqueArray(arbField, { maxLength: 3 }),
    rowsLimit: fc.integer({ min: 0, max: 20 }),
  },
  { requiredKeys: ['filter'] },
);

describe('SqliteStore usage queries', () => {
  let folder: ReturnType<typeof tempFolder>;
  let run = 0;
  beforeAll(() => {
    folder = tempFolder();
  });
  afterAll(() => folder.remove());

  it('answer as an in-memory reading of the same rows, with and without a roll-up', () => {
    checkProperty(
      fc.property(
        fc.array(arbLedgerRowWithin(spanDays), { maxLength: 60, size: 'max' }),
        fc.option(arbTime, { nil: undefined }),
        fc.array(arbQuery, { minLength: 1, maxLength: 6 }),
        (rows, rollUpAt, queries) => {
          const store = openStore(join(folder.path, `run-${run++}.db`), { ...storeOptions, retentionMs });
          try {
            expect(store.commit(batchOf({ ledgerRows: rows.slice(0, 30) }))).toEqual({ ok: true });
            expect(store.commit(batchOf({ ledgerRows: rows.slice(30) }))).toEqual({ ok: true });
            // Totals over whole days (or no range) are the same before and after a roll-up.
            const wholeDays = queries.map(overWholeDays);
            const totalsBefore = wholeDays.map((q) => store.queryUsage(q).totals);
            let cutoffMs = Number.NEGATIVE_INFINITY;
            if (rollUpAt !== undefined) {
              const rolled = store.rollUp(rollUpAt);
              cutoffMs = Math.floor((rollUpAt - retentionMs) / dayMs) * dayMs;
              expect(rolled).toEqual({ ok: true, value: rows.filter((r) => r.chargedAtMs < cutoffMs).length });
            }
            expect(wholeDays.map((q) => store.queryUsage(q).totals)).toEqual(totalsBefore);
            const held = rows.map((row, seq) => ({ row, seq, aggregated: row.chargedAtMs < cutoffMs }));
            for (const query of queries) {
              const got = store.queryUsage(query);
              const want = reference(held, query);
              expect(got.totals).toEqual(want.totals);
              expect(got.fromAggregates).toBe(want.fromAggregates);
              expect([...got.groups].sort(byKey)).toEqual([...want.groups].sort(byKey));
              expect(got.rows).toEqual(want.rows);
              expect(got.groupsTruncated).toBe(false);
              const exported: LedgerRow[] = [];
              expect(store.eachRow(query.filter, (row) => exported.push(row))).toBe(exported.length);
              const live = held.filter((h) => !h.aggregated && matches(h, query.filter));
              expect(exported).toEqual(live.sort((a, b) => a.row.chargedAtMs - b.row.chargedAtMs || a.seq - b.seq).map((h) => h.row));
            }
          } finally {
            store.close();
          }
        },
      ),
      100,
    );
  });
});
