import { assert } from '../../core/assert.js';
import { oauthRefreshBackoffMsMax, oauthRefreshBackoffMsMin } from '../../core/limits.js';

/**
 * When the next refresh of a renewable credential runs: pure arithmetic, no clock of its own.
 *
 *   no failure yet     `leadMs` before the access token expires (at once if that is past)
 *   after n failures   `oauthRefreshBackoffMsMin` doubled n - 1 times, capped at
 *                      `oauthRefreshBackoffMsMax`; while the token still lives, never later than
 *                      its expiry, so the last try comes before the calls start failing
 *
 * Failures here are the passing kind (the network, a 5xx, a 429): a refusal ends the schedule.
 */
export function refreshDelayMs(expiresAtMs: number, nowMs: number, leadMs: number, failures: number): number {
  assert(Number.isInteger(failures) && failures >= 0, 'failures is a count');
  const untilExpiryMs = expiresAtMs - nowMs;
  if (failures === 0) return Math.max(0, untilExpiryMs - leadMs);
  const backoff = backoffMs(failures);
  return untilExpiryMs > oauthRefreshBackoffMsMin ? Math.min(backoff, untilExpiryMs) : backoff;
}

/** The wait after the `failures`-th failure in a row (1 or more). */
export function backoffMs(failures: number): number {
  assert(Number.isInteger(failures) && failures >= 1, 'a backoff follows a failure');
  // 2^7 * 500 ms is past the cap already; the exponent stays small.
  return Math.min(oauthRefreshBackoffMsMax, oauthRefreshBackoffMsMin * 2 ** Math.min(failures - 1, 16));
}
