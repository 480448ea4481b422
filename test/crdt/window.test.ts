// Proves windows are epoch-aligned: every instant falls in exactly one window per unit.
// Weeks start on Monday UTC.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { windowAt, windowEndMs, windowStartMs, windowUnits, windowUnitCode, windowUnitFromCode } from '../../src/crdt/window.js';
import { checkProperty } from '../support/property.js';

describe('windows', () => {
  it('puts 2026-11-26T10:00Z in the expected day, hour and week', () => {
    const t = Date.UTC(2026, 10, 26, 10, 0, 0);
    expect(windowStartMs(windowAt('day', t))).toBe(Date.UTC(2026, 10, 26));
    expect(windowStartMs(windowAt('hour', t))).toBe(t);
    // 2026-11-26 is a Thursday; its week starts on Monday 2026-11-23.
    expect(windowStartMs(windowAt('week', t))).toBe(Date.UTC(2026, 10, 23));
    expect(new Date(windowStartMs(windowAt('week', t))).getUTCDay()).toBe(1);
  });

  it('gives each unit a stable wire code', () => {
    for (const unit of windowUnits) expect(windowUnitFromCode(windowUnitCode(unit))).toBe(unit);
    expect(windowUnitFromCode(99)).toBeUndefined();
  });

  it('contains every instant in its window, and windows tile the time line', () => {
    checkProperty(
      fc.property(fc.constantFrom(...windowUnits), fc.integer({ min: 0, max: 4_000_000_000_000 }), (unit, t) => {
        const w = windowAt(unit, t);
        expect(windowStartMs(w)).toBeLessThanOrEqual(t);
        expect(windowEndMs(w)).toBeGreaterThan(t);
        expect(windowAt(unit, windowEndMs(w)).index).toBe(w.index + 1);
      }),
    );
  });
});
