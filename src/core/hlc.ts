import { assert } from './assert.js';
import type { NodeId } from './ids.js';
import { hlcAheadMsMax } from './limits.js';

/**
 * A hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014): stamps that
 * follow wall time where clocks agree and still order every write after every write its node
 * had seen, however the clocks are skewed. A last-writer-wins register (src/pool/health-register.ts)
 * compares them, so "the later word wins" means later in causal order first and in wall time
 * only among concurrent writes, with the node id breaking exact ties: every replica picks the
 * same winner from the same writes.
 *
 * A peer whose clock runs far ahead would drag every stamp with it, and a write made after it
 * could then never beat one of its writes. So a remote stamp more than `hlcAheadMsMax` ahead of
 * the local wall clock is not observed: the register still merges it (replicas must converge on
 * the same value whatever they observe), but local stamps do not leap after it.
 */
export interface HlcStamp {
  readonly wallMs: number;
  /** Orders stamps within one wall millisecond. */
  readonly logical: number;
  readonly node: NodeId;
}

/** Total order: wall time, then logical count, then node id. */
export function compareStamps(a: HlcStamp, b: HlcStamp): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

export function isStamp(value: HlcStamp): boolean {
  return Number.isSafeInteger(value.wallMs) && value.wallMs >= 0 && Number.isSafeInteger(value.logical) && value.logical >= 0;
}

export class HybridClock {
  private wallMs = 0;
  private logical = 0;

  constructor(readonly node: NodeId) {}

  /** A stamp for a write made at `nowMs`: after every stamp this clock made or observed. */
  now(nowMs: number): HlcStamp {
    const wall = Math.max(0, Math.floor(nowMs));
    if (wall > this.wallMs) {
      this.wallMs = wall;
      this.logical = 0;
    } else {
      this.logical++;
    }
    assert(Number.isSafeInteger(this.logical), 'the logical count stays an integer');
    return { wallMs: this.wallMs, logical: this.logical, node: this.node };
  }

  /** Takes in a stamp from another node, unless it runs too far ahead of `nowMs` (see above). */
  observe(stamp: HlcStamp, nowMs: number): void {
    if (stamp.wallMs > nowMs + hlcAheadMsMax) return;
    if (stamp.wallMs > this.wallMs) {
      this.wallMs = stamp.wallMs;
      this.logical = stamp.logical;
    } else if (stamp.wallMs === this.wallMs) {
      this.logical = Math.max(this.logical, stamp.logical);
    }
  }
}
