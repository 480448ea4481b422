import { assert } from '../core/assert.js';

/**
 * When the local-mesh launcher restarts a child that died: after `delayMsInitial`, doubling with
 * each death that follows a short run, capped at `delayMsMax`; a child that stayed up for
 * `stableMs` starts over at the initial delay. Pure: the caller says how long the child had run.
 *
 * Why these numbers. Half a second lets a port the dead process held be bound again and keeps a
 * one-off crash (an OOM kill, a kill -9) short; the doubling makes a child that fails at start
 * (a broken config, a port taken by something else) cost one start every 30 s at most instead of
 * a CPU spinning on tsx compiles; 60 s of uptime is far longer than a start takes (a few seconds),
 * so a crash after it is a new failure, not the same one repeating.
 *
 * There is no cap on the number of restarts: the launcher's job is to keep each region serving,
 * and the delay cap already bounds what a crash loop costs (one start and one line per 30 s).
 */
export const childRestartDelayMsInitial = 500;
export const childRestartDelayMsMax = 30_000;
export const childStableMs = 60_000;

export interface RestartPolicy {
  readonly delayMsInitial: number;
  readonly delayMsMax: number;
  /** A run at least this long resets the delay to `delayMsInitial`. */
  readonly stableMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  delayMsInitial: childRestartDelayMsInitial,
  delayMsMax: childRestartDelayMsMax,
  stableMs: childStableMs,
};

export class RestartBackoff {
  /** Deaths since the last stable run. */
  private failures = 0;

  constructor(private readonly policy: RestartPolicy = defaultRestartPolicy) {
    assert(policy.delayMsInitial > 0 && policy.delayMsInitial <= policy.delayMsMax, 'the first restart delay is positive and within the cap');
    assert(policy.stableMs > 0, 'a stable run has a positive length');
  }

  /** Deaths counted toward the current delay (0 after a stable run). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /**
   * The child died after running `upMs` (0 when it never became ready); the delay before the
   * next start.
   */
  onExit(upMs: number): number {
    if (upMs >= this.policy.stableMs) this.failures = 0;
    // The exponent stops growing once the cap is reached, so a long crash loop cannot overflow it.
    const delayMs = Math.min(this.policy.delayMsInitial * 2 ** Math.min(this.failures, 30), this.policy.delayMsMax);
    this.failures++;
    return delayMs;
  }
}
