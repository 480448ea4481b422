// Proves the SQL window buckets of usage queries are the counter windows of src/crdt/window.ts:
// for every unit and any whole-millisecond time, before 1970 too, SQLite computes windowAt's index.
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { windowAt, windowLengthMs, windowOffsetMs, windowUnits } from '../../src/crdt/window.js';
import { groupColumn, isUsageGroupField, sqlFloorDiv } from '../../src/ledger/usage-sql.js';
import { checkProperty } from '../support/property.js';

const db = new Database(':memory:');
afterAll(() => db.close());
const statements = new Map(
  windowUnits.map((unit) => [unit, db.prepare(`SELECT ${groupColumn(`window:${unit}`).live} FROM (SELECT ? AS charged_at_ms)`).pluck()]),
);

describe('usage window buckets', () => {
  it('equal windowAt for every unit, at any time', () => {
    checkProperty(
      fc.property(fc.constantFrom(...windowUnits), fc.integer({ min: -4e12, max: 4e12 }), (unit, timeMs) => {
        expect(statements.get(unit)!.get(timeMs)).toBe(windowAt(unit, timeMs).index);
      }),
      2_000,
    );
  });

  it('equal windowAt on the edges of windows, where an off-by-one would show', () => {
    for (const unit of windowUnits) {
      for (const index of [-2, -1, 0, 1, 20_000]) {
        const startMs = index * windowLengthMs[unit] + windowOffsetMs[unit];
        for (const timeMs of [startMs - 1, startMs, startMs + 1])
          expect([unit, timeMs, statements.get(unit)!.get(timeMs)]).toEqual([unit, timeMs, windowAt(unit, timeMs).index]);
      }
    }
  });

  it('floor-divides negative values down, as Math.floor does', () => {
    const divide = db.prepare(`SELECT ${sqlFloorDiv('n', 7)} FROM (SELECT ? AS n)`).pluck();
    expect([-15, -14, -8, -7, -1, 0, 6, 7].map((n) => divide.get(n))).toEqual([-15, -14, -8, -7, -1, 0, 6, 7].map((n) => Math.floor(n / 7)));
  });

  it('accepts the group fields of usage-query.ts and no others', () => {
    expect(['tenant', 'user', 'apiKeyId', 'model', 'account', 'day', 'hour', 'window:sec10', 'window:day30'].filter(isUsageGroupField).length).toBe(9);
    expect(['', 'tenants', 'window:', 'window:year', 'window', 'Window:day'].filter(isUsageGroupField)).toEqual([]);
  });
});
