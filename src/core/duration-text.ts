import { assert } from './assert.js';

/**
 * Durations as people read them, for messages: `250 ms`, `1.5 s`, `20 min`, `3 h`, `2 d`. A retry
 * hint of 1218008 ms tells a reader nothing at a glance; "retry in 20 min" does. Machine-readable
 * hints (`grpc-retry-pushback-ms`, `Retry-After`) stay numeric and exact; this text is rounded to
 * the nearest tenth below ten of a unit and to whole units above, so it may read a little early
 * or late.
 *
 * A unit is used from one whole of it up: 59 s stays in seconds, 90 min reads `1.5 h`, and days
 * start at 48 hours so that "36 h" is not shortened to "1.5 d".
 */
const units: readonly { readonly name: string; readonly ms: number; readonly from: number }[] = [
  { name: 'd', ms: 86_400_000, from: 48 * 3_600_000 },
  { name: 'h', ms: 3_600_000, from: 3_600_000 },
  { name: 'min', ms: 60_000, from: 60_000 },
  { name: 's', ms: 1_000, from: 1_000 },
];

export function formatDurationMs(ms: number): string {
  assert(Number.isFinite(ms), 'a duration is a finite number of milliseconds');
  const whole = Math.max(0, Math.round(ms));
  for (const unit of units) {
    if (whole < unit.from) continue;
    const value = whole / unit.ms;
    const rounded = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
    return `${rounded} ${unit.name}`;
  }
  return `${whole} ms`;
}
