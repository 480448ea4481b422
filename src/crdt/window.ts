import { assert } from '../core/assert.js';

/**
 * Epoch-aligned fixed windows. Every replica derives the same bucket bounds from a timestamp
 * alone, so a key such as `tenant:acme / tokens / day:20418` names the same interval everywhere
 * and replicas never have to agree on when a window "started".
 *
 * `sec10` is the sub-bucket unit for sliding limits (requests or tokens per minute): a sliding
 * sum adds the sub-buckets that overlap the span, see `WindowedCounter.slidingSum`.
 */
export const windowUnits = ['sec10', 'minute', 'hour', 'hour5', 'day', 'week', 'day30'] as const;
export type WindowUnit = (typeof windowUnits)[number];

const minuteMs = 60_000;
const hourMs = 60 * minuteMs;
const dayMs = 24 * hourMs;

/** Length of each unit in milliseconds. */
export const windowLengthMs: Readonly<Record<WindowUnit, number>> = {
  sec10: 10_000,
  minute: minuteMs,
  hour: hourMs,
  hour5: 5 * hourMs,
  day: dayMs,
  week: 7 * dayMs,
  day30: 30 * dayMs,
};

/**
 * Where each unit's grid starts, relative to the Unix epoch. Weeks start on Monday 00:00 UTC
 * (1970-01-05 was the first Monday); every other unit starts at the epoch itself.
 */
export const windowOffsetMs: Readonly<Record<WindowUnit, number>> = {
  sec10: 0,
  minute: 0,
  hour: 0,
  hour5: 0,
  day: 0,
  week: 4 * dayMs,
  day30: 0,
};

/** One window: a unit and the number of whole units since the unit's grid origin. */
export interface Window {
  readonly unit: WindowUnit;
  readonly index: number;
}

/** The small integer that stands for each unit on the wire and in key ids (its index in `windowUnits`). */
export const windowUnitCodes: Readonly<Record<WindowUnit, number>> = {
  sec10: 0,
  minute: 1,
  hour: 2,
  hour5: 3,
  day: 4,
  week: 5,
  day30: 6,
};

export function windowUnitCode(unit: WindowUnit): number {
  const code = windowUnitCodes[unit];
  assert(windowUnits[code] === unit, `unknown window unit ${unit}`);
  return code;
}

export function windowUnitFromCode(code: number): WindowUnit | undefined {
  return windowUnits[code];
}

/** The window of `unit` that contains the instant `timeMs`. */
export function windowAt(unit: WindowUnit, timeMs: number): Window {
  return { unit, index: Math.floor((timeMs - windowOffsetMs[unit]) / windowLengthMs[unit]) };
}

export function windowStartMs(window: Window): number {
  return window.index * windowLengthMs[window.unit] + windowOffsetMs[window.unit];
}

/** The first instant after the window. */
export function windowEndMs(window: Window): number {
  return windowStartMs(window) + windowLengthMs[window.unit];
}

/** Human-readable form for logs and reports, e.g. `day:20418`. */
export function formatWindow(window: Window): string {
  return `${window.unit}:${window.index}`;
}
