// The eventual overshoot figure and its bound, on ledger rows made for each case.
import { describe, expect, it } from 'vitest';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import { ledgerRow } from '../support/memory-usage-reader.js';
import { eventualOvershoot, propagationDelayMs } from './wan-books.js';

const minute = Date.UTC(2027, 0, 4, 12, 0, 0);
const limit = { tenant: 'eventual-co', window: 'minute' as const, limit: 4 };

function admitted(n: number, region: string, fields: Partial<LedgerRow> = {}): LedgerRow {
  return ledgerRow({ requestId: `${region}-${n}`, tenant: 'eventual-co', originRegion: region, chargedAtMs: minute + n * 1_000, ...fields });
}

describe('the eventual overshoot figure', () => {
  it('is zero within the limit and counts only the tenant side of the tenant', () => {
    const rows = [admitted(0, 'us-east'), admitted(1, 'eu-west'), admitted(2, 'us-east', { role: 'home' }), admitted(3, 'us-east', { tenant: 'riders' })];
    const [figure] = eventualOvershoot(rows, limit, () => 1_000);
    expect(figure?.admitted).toBe(2);
    expect(figure?.overshoot).toBe(0);
  });

  it('is what was admitted beyond the limit, beside Σ rate × delay up to the limit', () => {
    // Two regions each admit one a second; the fourth admission (3 s in) reaches the limit.
    const rows = [0, 1, 2, 3].flatMap((n) => [admitted(n, 'us-east'), admitted(n, 'eu-west', { requestId: `w-${n}` })]);
    const [figure] = eventualOvershoot(rows, limit, (startMs, endMs) => {
      expect([startMs, endMs]).toEqual([minute, minute + 3_000]);
      return 2_000;
    });
    expect(figure?.admitted).toBe(8);
    expect(figure?.overshoot).toBe(4);
    // The limit was reached 1 s in (the 4th row by time); each region admitted 2 in that second.
    expect(figure?.ratePerSecond).toEqual({ 'us-east': 2, 'eu-west': 2 });
    expect(figure?.bound).toBe(8);
  });

  it('keeps one figure per window', () => {
    const rows = [admitted(0, 'us-east'), admitted(70, 'us-east')];
    expect(eventualOvershoot(rows, limit, () => 0).map((figure) => figure.admitted)).toEqual([1, 1]);
  });
});

describe('the propagation delay', () => {
  it('adds the worst overlapping span to the base, and ignores spans outside', () => {
    const spans = [
      { startMs: 0, endMs: 10, lateMs: 500 },
      { startMs: 5, endMs: 20, lateMs: 900 },
      { startMs: 30, endMs: 40, lateMs: 5_000 },
    ];
    expect(propagationDelayMs(100, spans, 8, 25)).toBe(1_000);
    expect(propagationDelayMs(100, spans, 21, 29)).toBe(100);
  });
});
