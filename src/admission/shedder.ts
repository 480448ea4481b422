import { assert } from '../core/assert.js';
import { shedRetryAfterMsMax, shedRetryAfterMsMin } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { tiers, type Tier, validateShedSettings } from '../mesh/policy/policy-schema.js';
import type { Rejection } from './outcome.js';

/**
 * Load shedding by priority: refuse a request early, with a retry hint, when the queues it would
 * wait behind are already too deep or too slow, instead of letting every queue grow until all
 * requests time out.
 *
 * Priorities are the policy tiers, `vip` > `paid` > `free`. The scheduler serves higher tiers
 * first, so a request waits behind the queues of its own tier and every tier above it, and is
 * judged by that load: the summed depth of those queues and the longest wait at their heads.
 * Each tier has thresholds, and lower tiers must have thresholds no higher than the tiers above
 * them. Then whenever a tier is shed, every lower tier is shed too (it sees at least the same load
 * against at most the same thresholds): under rising load free traffic goes first, then paid,
 * and vip last. Load on the free queue alone never sheds vip or paid traffic.
 *
 * The wait is measured at decision time from the oldest request's enqueue time, which the
 * scheduler passes in with each queue's depth; a snapshot of wait times would go stale between
 * scheduler ticks.
 *
 * The retry hint estimates how long the overload takes to clear, and rises with it:
 *   - wait over its threshold: the excess wait itself;
 *   - depth over its threshold: the excess requests times the time each took to serve, which
 *     Little's law estimates as the oldest wait divided by the depth.
 * The larger of the two applies, clamped to [`shedRetryAfterMsMin`, `shedRetryAfterMsMax`]. It
 * is deterministic; spreading retries with jitter is the client's job.
 */

/** The load of one priority's queue, as the scheduler reports it. */
export interface QueueLoad {
  /** Requests queued at this priority. */
  readonly depth: number;
  /** When the oldest request still queued at this priority was enqueued; `undefined` if none is. */
  readonly oldestEnqueuedAtMs: number | undefined;
}

export type ShedLoad = Readonly<Record<Tier, QueueLoad>>;

export interface ShedThreshold {
  /** Shed once this many requests are queued at this priority and above (at least 1). */
  readonly depthMax: number;
  /** Shed once the oldest of those has waited longer than this. */
  readonly waitMsMax: number;
}

export type ShedThresholds = Readonly<Record<Tier, ShedThreshold>>;

export type ShedReason = 'queue-depth' | 'queue-wait';
export const shedReasons: readonly ShedReason[] = ['queue-depth', 'queue-wait'];

export type ShedDecision = { readonly admit: true } | { readonly admit: false; readonly retryAfterMs: number; readonly reason: ShedReason };

export type ShedThresholdError = Extract<Rejection, { kind: 'invalid' }>;

const admitted: ShedDecision = Object.freeze({ admit: true });

/**
 * Checks thresholds from configuration or the policy: whole numbers within a tier queue's bounds,
 * a depth of at least one (zero would shed a tier entirely, which is a policy decision and not a
 * load threshold), and no tier above the tier before it in `tiers` order. The rules are the
 * policy schema's (`validateShedSettings`), so a node's own thresholds and the policy's agree.
 */
export function checkShedThresholds(thresholds: ShedThresholds): Result<ShedThresholds, ShedThresholdError> {
  const checked = validateShedSettings(thresholds, 'shed');
  return checked.ok ? ok(checked.value) : err({ kind: 'invalid', field: checked.error.field, reason: checked.error.reason });
}

/** Plain counters for the metrics binding: labels come from the tier and reason sets. */
export class ShedStats {
  readonly admitted: Record<Tier, number> = { vip: 0, paid: 0, free: 0 };
  readonly shed: Record<Tier, Record<ShedReason, number>> = {
    vip: { 'queue-depth': 0, 'queue-wait': 0 },
    paid: { 'queue-depth': 0, 'queue-wait': 0 },
    free: { 'queue-depth': 0, 'queue-wait': 0 },
  };
}

export class Shedder {
  private current: ShedThresholds;
  readonly stats = new ShedStats();

  /** `thresholds` must pass `checkShedThresholds`; the configuration loader checks them first. */
  constructor(thresholds: ShedThresholds) {
    this.current = checkedCopy(thresholds);
  }

  get thresholds(): ShedThresholds {
    return this.current;
  }

  /**
   * Replaces the thresholds (an operator changed the policy's), keeping the counts. They must
   * pass `checkShedThresholds`, as the constructor's must: the policy validated them already.
   */
  setThresholds(thresholds: ShedThresholds): void {
    this.current = checkedCopy(thresholds);
  }

  /**
   * Admits or sheds a request of `priority` given the queues' load at `nowMs`. A degraded request
   * (src/schedule/degrade.ts) may wait up to `waitMs`, when longer than its tier's threshold: the
   * policy chose a longer wait for it over a refusal; its depth threshold still holds.
   */
  decide(priority: Tier, load: ShedLoad, nowMs: number, waitMs?: number): ShedDecision {
    let depthAhead = 0;
    let waitAheadMs = 0;
    // `tiers` runs from the highest priority down: sum the queues served before or with this one.
    for (const tier of tiers) {
      const queue = load[tier];
      assert(Number.isSafeInteger(queue.depth) && queue.depth >= 0, 'a queue depth is a count');
      depthAhead += queue.depth;
      // A request stamped after `nowMs` (the clock stepped back) has waited for nothing yet.
      if (queue.oldestEnqueuedAtMs !== undefined) waitAheadMs = Math.max(waitAheadMs, nowMs - queue.oldestEnqueuedAtMs);
      if (tier === priority) break;
    }
    const { depthMax } = this.current[priority];
    const waitMsMax = Math.max(this.current[priority].waitMsMax, waitMs ?? 0);
    const overWait = waitAheadMs > waitMsMax;
    const overDepth = depthAhead >= depthMax;
    if (!overWait && !overDepth) {
      this.stats.admitted[priority]++;
      return admitted;
    }
    const waitHintMs = overWait ? waitAheadMs - waitMsMax : 0;
    // depthAhead ≥ depthMax ≥ 1 here, so the division is safe.
    const depthHintMs = overDepth ? ((depthAhead - depthMax + 1) * waitAheadMs) / depthAhead : 0;
    const retryAfterMs = Math.min(shedRetryAfterMsMax, Math.max(shedRetryAfterMsMin, Math.ceil(Math.max(waitHintMs, depthHintMs))));
    // The wait is the direct measure of harm; depth is its early warning. Name the former when both hold.
    const reason: ShedReason = overWait ? 'queue-wait' : 'queue-depth';
    this.stats.shed[priority][reason]++;
    return { admit: false, retryAfterMs, reason };
  }
}

function checkedCopy(thresholds: ShedThresholds): ShedThresholds {
  const checked = checkShedThresholds(thresholds);
  assert(checked.ok, checked.ok ? '' : `shed thresholds: ${checked.error.field} ${checked.error.reason}`);
  return Object.freeze({
    vip: Object.freeze({ ...thresholds.vip }),
    paid: Object.freeze({ ...thresholds.paid }),
    free: Object.freeze({ ...thresholds.free }),
  });
}
