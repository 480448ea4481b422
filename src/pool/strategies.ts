import { assert } from '../core/assert.js';
import type { AccountId } from '../core/ids.js';
import { policyAccountsMax } from '../core/limits.js';
import type { Random } from '../core/random.js';
import type { UnifiedLimits } from './account-feedback.js';
import { unifiedWindowNames } from './account-feedback.js';
import { rendezvousFirst } from './rendezvous.js';

/**
 * How the pool picks one account among the candidates that can take a request now. The pool
 * filters first (health, VIP dedication, accounts this request already tried) and calls a
 * strategy only with accounts that qualify, and with a predicate for the last qualification,
 * quota room (below); a strategy never sees an account it must not pick, and never takes one the
 * predicate refused, so it cannot break isolation however it is written.
 *
 *  - `round-robin`: the next account after the last one picked, in id order. With a fixed set of
 *    candidates it cycles through them exactly; when the set changes, the cursor is an id, not
 *    an index, so it carries on from where it was.
 *  - `weighted`: smooth weighted round robin (the nginx scheme): every pick adds each
 *    candidate's weight to its running credit, takes the candidate with the most credit and
 *    charges it the sum of the weights. Shares are exact over every cycle of Σ weight picks and
 *    interleaved within it (weights 5, 1, 1 give a a b a c a a, not a a a a a b c). It needs no
 *    randomness, so it is deterministic outright.
 *  - `least-loaded`: the fewest permits in flight (and queued) relative to the account's cap;
 *    among equal loads, the most subscription window left (`headroom`, in tenths: accounts
 *    about as full are alike); remaining ties are broken uniformly at random (from the injected
 *    Random, one draw among the tied), so idle accounts share the load instead of the first one
 *    in id order taking every burst.
 *
 * Window headroom. A subscription reports how much of its 5-hour and 7-day windows is used; an
 * account near the end of a window should be spared while others have room, so the window lasts
 * and the pool does not run into a 429 it could see coming. Least loaded prefers the most headroom
 * among equal loads; weighted scales each account's weight by (headroom + 1) / 11, so a nearly
 * spent account still gets a trickle (and keeps reporting its windows); round robin and sticky
 * sessions keep their order (a session pinned for its prompt cache is worth more than the room).
 *
 * Stickiness sits on top of any of them: with a session key the pick is the rendezvous winner
 * among the candidates (see ./rendezvous.ts), which is the pinned account when it qualifies and
 * its predictable spill-over otherwise; without a key the base strategy decides.
 *
 * One qualification is costly to check: the account's quota room in the mesh counters. So the
 * pool hands it over as a predicate (`pickAdmitted`), and the strategy asks it only about the
 * accounts it would take, in its own order of preference, until one is admitted:
 *  - sticky: rendezvous order; round robin: id order from the cursor. The pick and the cursor
 *    are exactly those of `pick` over the admitted candidates alone.
 *  - least loaded: a draw among the least loaded; a refused one is dropped and the draw
 *    repeated among the rest of them, then among the next load. That is the same uniform
 *    choice among the least loaded admitted candidates as `pick` over those alone, though not
 *    the same draws from the Random.
 *  - weighted: smooth weighted round robin credits every candidate on every pick, so it asks
 *    about all of them, and credits only the admitted, exactly as `pick` over those would.
 */
export const baseStrategyNames = ['round-robin', 'weighted', 'least-loaded'] as const;
export type BaseStrategyName = (typeof baseStrategyNames)[number];

/** One account as a strategy sees it. */
export interface Candidate {
  readonly id: AccountId;
  /** Stable hash of the id, for rendezvous. */
  readonly idHash: number;
  readonly weight: number;
  readonly concurrencyMax: number;
  readonly inFlight: number;
  readonly queued: number;
  /** Tenths of the subscription window left, 0 to 10 (`headroomOf`); 10 for an account without windows. */
  readonly headroom: number;
}

export const headroomMax = 10;

/** Tenths of the tightest window left, from a subscription's last answer; full when unknown. */
export function headroomOf(unified: UnifiedLimits | undefined): number {
  if (unified === undefined) return headroomMax;
  let used = 0;
  for (const name of unifiedWindowNames) {
    const utilization = unified.windows[name]?.utilization;
    if (utilization !== undefined && utilization > used) used = utilization;
  }
  return Math.max(0, Math.min(headroomMax, Math.floor((1 - used) * headroomMax + 1e-9)));
}

/** Least loaded's order: load, then the most headroom. */
function compareLeastLoaded(a: Candidate, b: Candidate): number {
  return compareLoad(a, b) || b.headroom - a.headroom;
}

/** Compares the loads `a.inFlight+queued / a.max` and the same of `b` without dividing. */
function compareLoad(a: Candidate, b: Candidate): number {
  // Caps are positive here (a zero cap never qualifies), and counts stay far below 2^26, so
  // the products are exact.
  return (a.inFlight + a.queued) * b.concurrencyMax - (b.inFlight + b.queued) * a.concurrencyMax;
}

export class Selector {
  /** The id picked last by round robin. */
  private cursor: AccountId | undefined;
  /** Smooth weighted round robin credits; one per account the pool holds, dropped by `forget`. */
  private readonly credits = new Map<AccountId, number>();
  /** Rendezvous scores of the current pick's candidates: scratch, so a pick allocates nothing. */
  private readonly scores = new Float64Array(policyAccountsMax);
  /** Indices of the least loaded candidates of the current pick: scratch too. */
  private readonly tied = new Int32Array(policyAccountsMax);

  constructor(
    readonly base: BaseStrategyName,
    private readonly random: Random,
  ) {}

  /**
   * The candidate to take. `keyHash` is the stable hash of the request's session key when the
   * pool is sticky and the request has one. `candidates` must not be empty.
   */
  pick(candidates: readonly Candidate[], keyHash: number | undefined): Candidate {
    assert(candidates.length > 0, 'a strategy picks among at least one candidate');
    return this.pickAdmitted(candidates, candidates.length, keyHash, undefined) as Candidate;
  }

  /**
   * The pick among those of `candidates[0, count)` that `admits`, asking it lazily in the
   * strategy's order (see the file comment); without it every candidate is admitted, and the
   * answer is `pick`'s. Undefined when none is admitted, and then the strategy's state is left
   * as it was (a refused least-loaded draw has still used the Random).
   */
  pickAdmitted<T extends Candidate>(
    candidates: readonly T[],
    count: number,
    keyHash: number | undefined,
    admits: ((candidate: T) => boolean) | undefined,
  ): T | undefined {
    assert(count <= candidates.length, 'the count is within the candidates');
    assert(count <= policyAccountsMax, 'candidates are accounts of the policy');
    if (count === 0) return undefined;
    if (keyHash !== undefined) return rendezvousFirst(keyHash, candidates, count, admits, this.scores);
    switch (this.base) {
      case 'round-robin':
        return this.roundRobin(candidates, count, admits);
      case 'weighted':
        return this.weighted(candidates, count, admits);
      case 'least-loaded':
        return this.leastLoaded(candidates, count, admits);
    }
  }

  /** Drops the state kept for an account that left the pool. */
  forget(id: AccountId): void {
    this.credits.delete(id);
    // The cursor is only a position in id order, valid whether or not that id still exists.
  }

  /** Whether round robin takes `a` before `b`: ids after the cursor in id order, then from the start. */
  private cycleBefore(a: Candidate, b: Candidate): boolean {
    const aAfter = this.cursor !== undefined && a.id > this.cursor;
    const bAfter = this.cursor !== undefined && b.id > this.cursor;
    return aAfter === bAfter ? a.id < b.id : aAfter;
  }

  private roundRobin<T extends Candidate>(candidates: readonly T[], count: number, admits: ((candidate: T) => boolean) | undefined): T | undefined {
    let chosen = candidates[0] as T;
    for (let i = 1; i < count; i++) {
      const candidate = candidates[i] as T;
      if (this.cycleBefore(candidate, chosen)) chosen = candidate;
    }
    if (admits !== undefined && !admits(chosen)) {
      // Refused: the rest in cycle order, sorted once (see rendezvousFirst for why not searched).
      const rest: T[] = [];
      for (let i = 0; i < count; i++) if (candidates[i] !== chosen) rest.push(candidates[i] as T);
      rest.sort((a, b) => (this.cycleBefore(a, b) ? -1 : 1));
      const next = rest.find(admits);
      if (next === undefined) return undefined;
      chosen = next;
    }
    this.cursor = chosen.id;
    return chosen;
  }

  private weighted<T extends Candidate>(candidates: readonly T[], count: number, admits: ((candidate: T) => boolean) | undefined): T | undefined {
    let total = 0;
    let best: T | undefined;
    let bestCredit = -Infinity;
    for (let i = 0; i < count; i++) {
      const candidate = candidates[i] as T;
      // Every candidate's credit grows on every pick, so each one's room must be known.
      if (admits !== undefined && !admits(candidate)) continue;
      const weight = candidate.headroom >= headroomMax ? candidate.weight : (candidate.weight * (candidate.headroom + 1)) / (headroomMax + 1);
      const credit = (this.credits.get(candidate.id) ?? 0) + weight;
      this.credits.set(candidate.id, credit);
      total += weight;
      if (credit > bestCredit || (credit === bestCredit && best !== undefined && candidate.id < best.id)) {
        best = candidate;
        bestCredit = credit;
      }
    }
    if (best !== undefined) this.credits.set(best.id, bestCredit - total);
    return best;
  }

  private leastLoaded<T extends Candidate>(candidates: readonly T[], count: number, admits: ((candidate: T) => boolean) | undefined): T | undefined {
    // The least loaded candidates, in candidate order.
    const tied = this.tied;
    let ties = 0;
    let best: T | undefined;
    for (let i = 0; i < count; i++) {
      const candidate = candidates[i] as T;
      const order = best === undefined ? -1 : compareLeastLoaded(candidate, best);
      if (order < 0) {
        best = candidate;
        ties = 0;
      }
      if (order <= 0) tied[ties++] = i;
    }
    const chosen = this.drawAdmitted(candidates, ties, admits);
    if (chosen !== undefined || admits === undefined) return chosen;
    // Every least loaded candidate was refused: the others, one load at a time, lightest first.
    // A stable sort keeps candidate order within a load, as the first pass does.
    const rest: number[] = [];
    for (let i = 0; i < count; i++) if (compareLeastLoaded(candidates[i] as T, best as T) > 0) rest.push(i);
    rest.sort((a, b) => compareLeastLoaded(candidates[a] as T, candidates[b] as T));
    // Bounded by the candidates: each turn consumes one load's worth of them.
    for (let start = 0; start < rest.length;) {
      const first = candidates[rest[start] as number] as T;
      ties = 0;
      while (start < rest.length && compareLeastLoaded(candidates[rest[start] as number] as T, first) === 0) tied[ties++] = rest[start++] as number;
      const next = this.drawAdmitted(candidates, ties, admits);
      if (next !== undefined) return next;
    }
    return undefined;
  }

  /**
   * Draws among the candidates indexed by `tied[0, ties)` until one is admitted, dropping each
   * refused one (the last takes its place) before the next draw: a uniform choice among the
   * admitted ones, asking about as few as luck allows. One draw per try, none for a single one.
   */
  private drawAdmitted<T extends Candidate>(candidates: readonly T[], ties: number, admits: ((candidate: T) => boolean) | undefined): T | undefined {
    const tied = this.tied;
    // Bounded by `ties`: every refusal drops one.
    while (ties > 0) {
      const j = ties === 1 ? 0 : this.random.int(ties);
      const candidate = candidates[tied[j] as number] as T;
      if (admits === undefined || admits(candidate)) return candidate;
      tied[j] = tied[--ties] as number;
    }
    return undefined;
  }
}
