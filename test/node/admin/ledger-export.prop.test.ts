// Proves an export's slices hold every row of the side and range exactly once, oldest first.
// This holds for any rows and any slice bound, and each slice stays within the bound unless it is a
// single millisecond.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../../src/ledger/ledger-row.js';
import { ledgerSlices } from '../../../src/node/admin/ledger-export.js';
import { ledgerRow, MemoryUsageReader } from '../../support/memory-usage-reader.js';
import { checkProperty } from '../../support/property.js';

const rowArbitrary = fc.record({ chargedAtMs: fc.integer({ min: 0, max: 2_000 }), role: fc.constantFrom<LedgerRow['role']>('local', 'origin', 'home') });

describe('export slices', () => {
  it('cover the range once, in time order, within the bound', () => {
    checkProperty(
      fc.property(
        fc.array(rowArbitrary, { maxLength: 200 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 1, max: 2_500 }),
        fc.constantFrom<'tenant' | 'account'>('tenant', 'account'),
        (specs, sliceRowsMax, sinceMs, spanMs, side) => {
          const rows = specs.map((spec, i) => ledgerRow({ requestId: `r${i}`, ...spec }));
          const reader = new MemoryUsageReader(rows);
          const untilMs = sinceMs + spanMs;
          const slices = [...ledgerSlices(reader, { side, sinceMs, untilMs }, sliceRowsMax)];
          const roles = side === 'tenant' ? ['local', 'origin'] : ['local', 'home'];
          const expected = rows
            .filter((row) => roles.includes(row.role) && row.chargedAtMs >= sinceMs && row.chargedAtMs < untilMs)
            .sort((a, b) => a.chargedAtMs - b.chargedAtMs);
          expect(slices.flat().map((row) => row.requestId)).toEqual(expected.map((row) => row.requestId));
          for (const slice of slices) {
            expect(slice.length).toBeGreaterThan(0);
            if (slice.length > sliceRowsMax) expect(new Set(slice.map((row) => row.chargedAtMs)).size).toBe(1);
          }
        },
      ),
    );
  });
});
