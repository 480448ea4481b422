import { assert } from '../core/assert.js';
import type { AccountId } from '../core/ids.js';
import { policyAccountsMax } from '../core/limits.js';
import type { Random } from '../core/random.js';
import { rendezvousPick } from './rendezvous.js';

/**
 * How the pool picks one account among the candidates that can take a request now. The pool
 * filters first (health, VIP dedication, quota room, accounts this request already tried) and
 * calls a strategy only with accounts that qualify; a strategy never sees an account it must
 * not pick, so it cannot break isolation however it is written.
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
 *    ties are broken uniformly at random (from the injected Random), so idle accounts share
 *    the load instead of the first one in id order taking every burst.
 *
 * Stickiness sits on top of any of them: with a session key the pick is the rendezvous winner
 * among the candidates (see ./rendezvous.ts), which is the pinned account when it qualifies and
 * its predictable spill-over otherwise; without a key the base strategy decides.
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
    assert(candidates.length <= policyAccountsMax, 'candidates are accounts of the policy');
    if (keyHash !== undefined) return rendezvousPick(keyHash, candidates) as Candidate;
    switch (this.base) {
      case 'round-robin':
        return this.roundRobin(candidates);
      case 'weighted':
        return this.weighted(candidates);
      case 'least-loaded':
        return this.leastLoaded(candidates);
    }
  }

  /** Drops the state kept for an account that left the pool. */
  forget(id: AccountId): void {
    this.credits.delete(id);
    // The cursor is only a position in id order, valid whether or not that id still exists.
  }

  private roundRobin(candidates: readonly Candidate[]): Candidate {
    let next: Candidate | undefined;
    let first = candidates[0] as Candidate;
    for (const candidate of candidates) {
      if (candidate.id < first.id) first = candidate;
      if (this.cursor !== undefined && candidate.id > this.cursor && (next === undefined || candidate.id < next.id)) next = candidate;
    }
    const chosen = next ?? first;
    this.cursor = chosen.id;
    return chosen;
  }

  private weighted(candidates: readonly Candidate[]): Candidate {
    let total = 0;
    let best: Candidate | undefined;
    let bestCredit = -Infinity;
    for (const candidate of candidates) {
      const credit = (this.credits.get(candidate.id) ?? 0) + candidate.weight;
      this.credits.set(candidate.id, credit);
      total += candidate.weight;
      if (credit > bestCredit || (credit === bestCredit && best !== undefined && candidate.id < best.id)) {
        best = candidate;
        bestCredit = credit;
      }
    }
    const chosen = best as Candidate;
    this.credits.set(chosen.id, bestCredit - total);
    return chosen;
  }

  private leastLoaded(candidates: readonly Candidate[]): Candidate {
    let best = candidates[0] as Candidate;
    let ties = 1;
    for (let i = 1; i < candidates.length; i++) {
      const candidate = candidates[i] as Candidate;
      const order = compareLoad(candidate, best);
      if (order < 0) {
        best = candidate;
        ties = 1;
      } else if (order === 0) {
        // Reservoir sampling: each of the k tied candidates ends up chosen with probability 1/k.
        ties++;
        if (this.random.int(ties) === 0) best = candidate;
      }
    }
    return best;
  }
}
