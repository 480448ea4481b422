// Proves retry hints and other durations read as people say them.
// Milliseconds below a second, then seconds, minutes, hours and days, with one decimal below ten of
// a unit.
import { describe, expect, it } from 'vitest';
import { formatDurationMs } from '../../src/core/duration-text.js';

describe('formatDurationMs', () => {
  it.each([
    [0, '0 ms'],
    [250.4, '250 ms'],
    [999, '999 ms'],
    [1_000, '1 s'],
    [1_500, '1.5 s'],
    [42_000, '42 s'],
    [90_000, '1.5 min'],
    [1_218_008, '20 min'],
    [3_600_000, '1 h'],
    [5_400_000, '1.5 h'],
    [36 * 3_600_000, '36 h'],
    [48 * 3_600_000, '2 d'],
    [30 * 86_400_000, '30 d'],
    [-5, '0 ms'],
  ])('%d ms reads %s', (ms, text) => {
    expect(formatDurationMs(ms)).toBe(text);
  });
});
