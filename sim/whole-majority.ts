import type { Fault, SlowLink } from './scenario.js';
import { partitionPairs } from './network.js';

/**
 * The strict availability checker's model: when must a quorum round succeed?
 *
 * A node's round needs W members (its own vote included) to ack its write and R to answer its
 * read (src/mesh/quorum.ts); with majorities, a majority of members that can all reach each
 * other is enough. We call a set of members **whole** over an interval when, from `quietMs`
 * before it to its end, none of its members was crashed, paused, skewed or strobed and no
 * partition separated two of them. The quiet lead-in covers the recovery windows the protocol
 * is allowed: a healed partition's links are redialed (backoff up to 500 ms, then a handshake
 * of a round trip or two), a restarted node recovers from its peers' whole state before it
 * answers reads, and a round started before the interval runs out its timeout
 * (`quorumRoundTimeoutMs`). Clock faults count as disturbances because a round's deadline is on
 * the node's own clock: a clock that jumps ahead times a round out early, by design.
 *
 * Then: a request that arrives at a node which belongs to a whole majority, and is decided while
 * that majority is still whole, is never refused for want of a quorum (`no-quorum`). Refusals
 * because the limit is reached are the quota checkers' business, not this one's.
 *
 * Everything here is read off the scenario's fault list, so the model does not depend on what
 * the code under test did.
 */
/** Extra round-trip delay on a pair beyond which its rounds may time out (a third of `quorumRoundTimeoutMs`). */
export const slowPairMsMax = 500;

export class WholeMajority {
  /** Per node: intervals in which it is disturbed (a fault on it is active). */
  private readonly disturbed: { fromMs: number; toMs: number }[][];
  /** Partitions: the interval and the directed pairs each blocks. */
  private readonly partitions: { fromMs: number; toMs: number; pairs: [number, number][] }[] = [];
  private readonly majorities: number[][];

  constructor(
    regions: number,
    faults: readonly Fault[],
    endMs: number,
    private readonly quietMs: number,
    slowLinks: readonly SlowLink[] | undefined,
  ) {
    this.disturbed = Array.from({ length: regions }, () => []);
    for (const fault of faults) {
      const interval = { fromMs: fault.atMs, toMs: Math.min(fault.atMs + fault.durationMs, endMs) };
      if (fault.kind === 'partition') this.partitions.push({ ...interval, pairs: partitionPairs(regions, fault.partition, fault.node) });
      else this.disturbed[fault.node]?.push(interval);
    }
    // A pair whose links are slowed by more than a round's timeout allows is never whole.
    const slow = (a: number, b: number): boolean =>
      (slowLinks ?? [])
        .filter((link) => (link.from === a && link.to === b) || (link.from === b && link.to === a))
        .reduce((sum, link) => sum + link.extraMs, 0) > slowPairMsMax;
    this.majorities = subsets(regions).filter((set) => set.length > regions / 2 && !set.some((a) => set.some((b) => a < b && slow(a, b))));
  }

  /** Whether `node` belonged to a majority that was whole from `quietMs` before `fromMs` until `toMs`. */
  holds(node: number, fromMs: number, toMs: number): boolean {
    const start = fromMs - this.quietMs;
    // The run's start is every node's start: links open and nodes recover then too.
    if (start < 0) return false;
    const overlaps = (interval: { fromMs: number; toMs: number }): boolean => interval.fromMs <= toMs && interval.toMs >= start;
    return this.majorities.some((members) => {
      if (!members.includes(node)) return false;
      if (members.some((member) => (this.disturbed[member] ?? []).some(overlaps))) return false;
      return !this.partitions.some((partition) => overlaps(partition) && partition.pairs.some(([a, b]) => members.includes(a) && members.includes(b)));
    });
  }
}

/** Every non-empty subset of 0 .. n−1 (n ≤ 5 regions: at most 31). */
function subsets(n: number): number[][] {
  const all: number[][] = [];
  for (let mask = 1; mask < 1 << n; mask++) all.push(Array.from({ length: n }, (_, i) => i).filter((i) => (mask & (1 << i)) !== 0));
  return all;
}
