import type { Clock } from '../core/clock.js';

/**
 * The wall clock, for the adapters that run a node for real. The cores never import this (they
 * take a `Clock` or a `nowMs` argument); the simulator and tests pass a `ManualClock` instead.
 */
export const systemClock: Clock = { nowMs: () => Date.now() };
