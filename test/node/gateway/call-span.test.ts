// Proves a request's span: with a client deadline the upstream call ends by the deadline plus the
// drain grace and the lease is that plus the settle margin; without one, or with a deadline further
// than the longest call, the lease covers the waits and the upstream deadline, never past the bound.
import { describe, expect, it } from 'vitest';
import { gatewayAccountWaitMsMax, reservationLeaseMsMax, reservationSettleMarginMs, tierQueueWaitMsMax, upstreamDeadlineMs } from '../../../src/core/limits.js';
import { callSpanOf } from '../../../src/node/gateway/call-span.js';

const settings = { queueWaitMs: tierQueueWaitMsMax, accountWaitMs: gatewayAccountWaitMsMax, drainGraceMs: 30_000 };

describe('callSpanOf', () => {
  it("sizes the lease to the client's deadline plus the grace and the settle margin", () => {
    expect(callSpanOf(1_000, 3_000, settings)).toEqual({ upstreamEndByMs: 33_000, leaseMs: 32_000 + reservationSettleMarginMs });
  });

  it('covers the longest call without a client deadline, within the longest lease', () => {
    const span = callSpanOf(0, undefined, settings);
    expect(span.upstreamEndByMs).toBeUndefined();
    expect(span.leaseMs).toBe(tierQueueWaitMsMax + gatewayAccountWaitMsMax + upstreamDeadlineMs + reservationSettleMarginMs);
    expect(span.leaseMs).toBeLessThanOrEqual(reservationLeaseMsMax);
    // A deadline further out than any call can run is bounded by the longest call.
    expect(callSpanOf(0, 10 * reservationLeaseMsMax, settings)).toEqual({
      upstreamEndByMs: tierQueueWaitMsMax + gatewayAccountWaitMsMax + upstreamDeadlineMs,
      leaseMs: span.leaseMs,
    });
  });

  it('still gives a request whose deadline already passed the grace and the margin', () => {
    expect(callSpanOf(10_000, 9_000, settings)).toEqual({ upstreamEndByMs: 39_000, leaseMs: 29_000 + reservationSettleMarginMs });
  });
});
