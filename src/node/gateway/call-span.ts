import { reservationLeaseMsMax, reservationSettleMarginMs, upstreamDeadlineMs } from '../../core/limits.js';

/**
 * How long one admitted request may hold what it takes, decided once at admission from the
 * client's gRPC deadline:
 *
 *   upstreamEndByMs  when its upstream call must have ended: the client's deadline plus the drain
 *                    grace (a call the client left runs on to be charged, a stalled one is cut
 *                    there), or undefined without a client deadline, when the upstream client's
 *                    own timeouts apply
 *   leaseMs          its reservation's lease: from now to the latest the call can end (the
 *                    waits before dispatch and the upstream deadline, or `upstreamEndByMs`), plus
 *                    `reservationSettleMarginMs` for the result to be settled, and never past
 *                    `reservationLeaseMsMax`. A node that dies holds the reservation that long.
 *
 * Pure: time comes in as `nowMs`, on the gateway's clock, like the client's deadline.
 */
export interface CallSpan {
  readonly upstreamEndByMs: number | undefined;
  readonly leaseMs: number;
}

export interface SpanSettings {
  /** Longest wait in the admission queue. */
  readonly queueWaitMs: number;
  /** Longest wait for an account's permit. */
  readonly accountWaitMs: number;
  /** How long an upstream call may run past its client's deadline. */
  readonly drainGraceMs: number;
}

export function callSpanOf(nowMs: number, clientDeadlineMs: number | undefined, settings: SpanSettings): CallSpan {
  // Everything before dispatch ends by the client's deadline (the queue and the permit wait with
  // the call's signal), so a dispatched call ends by that deadline plus the grace at the latest.
  const longestEndMs = nowMs + settings.queueWaitMs + settings.accountWaitMs + upstreamDeadlineMs;
  const upstreamEndByMs = clientDeadlineMs === undefined ? undefined : Math.min(longestEndMs, clientDeadlineMs + settings.drainGraceMs);
  const endMs = upstreamEndByMs ?? longestEndMs;
  const leaseMs = Math.min(reservationLeaseMsMax, Math.ceil(Math.max(0, endMs - nowMs)) + reservationSettleMarginMs);
  return { upstreamEndByMs, leaseMs };
}
