import { assert } from '../core/assert.js';
import { hashLanes, mix32 } from './stable-hash.js';

/**
 * Rendezvous (highest random weight) hashing for sticky sessions: every account gets a
 * pseudo-random score for the session key, and the session goes to the highest-scoring account
 * among those that can serve it. Any node computes the same order from the key alone, with no
 * shared table to replicate.
 *
 * Why rendezvous rather than a hash ring: the "next account" for a session is simply the next
 * score, so spill-over is "the best score among the accounts that have capacity". When the
 * pinned account is full, cooling down or removed, only its sessions move, each to its own
 * second choice, spreading them over the rest instead of piling them onto one ring neighbour;
 * when it recovers they all come back. Adding an account takes over only the sessions for which
 * it now scores highest: about 1/n of them.
 *
 * Weights follow the logarithmic method: a score is `weight / −ln(u)` with `u` the pair's hash
 * mapped into (0, 1). The winner is then account i with probability `weight_i / Σ weight`, and
 * changing one account's weight moves only sessions to or from that account.
 */

/** 2^-53: maps a 53-bit integer into [0, 1). */
const unitScale = 1 / 2 ** 53;

/**
 * The pair hash of a session key hash and an account id hash, uniform in (0, 1). Each lane
 * mixes one lane of the key with a finalized lane of the account, and the high lane also takes
 * the low one, so that keys differing in either lane reorder all accounts.
 */
export function rendezvousUniform(keyHash: number, accountHash: number): number {
  const [keyLo, keyHi] = hashLanes(keyHash);
  const [accountLo, accountHi] = hashLanes(accountHash);
  const lo = mix32(keyLo ^ mix32(accountLo ^ 0x9e3779b9));
  const hi = mix32(keyHi ^ mix32(accountHi ^ 0x7f4a7c15) ^ lo);
  // Adding a half keeps u away from 0 (where −ln u is infinite) and below 1 (where it is 0).
  return ((hi >>> 11) * 0x1_0000_0000 + lo + 0.5) * unitScale;
}

/** The score of an account of `weight` for a session: higher wins. */
export function rendezvousScore(keyHash: number, accountHash: number, weight: number): number {
  assert(weight > 0, 'rendezvous weights are positive');
  return weight / -Math.log(rendezvousUniform(keyHash, accountHash));
}

export interface RendezvousItem {
  /** Stable hash of the account id (`stableHash(id)`). */
  readonly idHash: number;
  readonly weight: number;
  /** Ties of score (vanishingly rare) go to the smaller id, so every node agrees. */
  readonly id: string;
}

/** Whether `a` ranks before `b` for the session. */
function ranksBefore(scoreA: number, a: RendezvousItem, scoreB: number, b: RendezvousItem): boolean {
  return scoreA > scoreB || (scoreA === scoreB && a.id < b.id);
}

/** The highest-scoring item for the session, or undefined for no items. One pass, no sorting. */
export function rendezvousPick<T extends RendezvousItem>(keyHash: number, items: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const item of items) {
    const score = rendezvousScore(keyHash, item.idHash, item.weight);
    if (best === undefined || ranksBefore(score, item, bestScore, best)) {
      best = item;
      bestScore = score;
    }
  }
  return best;
}

/** Every item in the session's preference order: for status pages and tests. */
export function rendezvousOrder<T extends RendezvousItem>(keyHash: number, items: readonly T[]): T[] {
  const scored = items.map((item) => ({ item, score: rendezvousScore(keyHash, item.idHash, item.weight) }));
  scored.sort((x, y) => (ranksBefore(x.score, x.item, y.score, y.item) ? -1 : 1));
  return scored.map(({ item }) => item);
}
