import { assert } from '../core/assert.js';
import { hashLaneHi, hashLaneLo, mix32 } from './stable-hash.js';

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
  return uniformOfLanes(hashLaneLo(keyHash), hashLaneHi(keyHash), accountHash);
}

/** `rendezvousUniform` with the key's lanes split once, for a loop over accounts. */
function uniformOfLanes(keyLo: number, keyHi: number, accountHash: number): number {
  // Lane by lane rather than through `hashLanes`: this runs once per account per sticky pick,
  // and the pairs that function returns would be garbage on every call.
  const lo = mix32(keyLo ^ mix32(hashLaneLo(accountHash) ^ 0x9e3779b9));
  const hi = mix32(keyHi ^ mix32(hashLaneHi(accountHash) ^ 0x7f4a7c15) ^ lo);
  // Adding a half keeps u away from 0 (where −ln u is infinite) and below 1 (where it is 0).
  return ((hi >>> 11) * 0x1_0000_0000 + lo + 0.5) * unitScale;
}

/** The score of an account of `weight` for a session: higher wins. */
export function rendezvousScore(keyHash: number, accountHash: number, weight: number): number {
  assert(weight > 0, 'rendezvous weights are positive');
  return weight / -Math.log(rendezvousUniform(keyHash, accountHash));
}

/**
 * A score bound below this fraction of the best score so far proves an item loses, whatever the
 * rounding: the bound and the score are each within a few units in the last place (2^-52) of
 * their exact values, far inside this margin.
 */
const boundMargin = 1 - 2 ** -20;

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

/**
 * The item `rendezvousPick` would choose among those of `items[0, count)` that `admits`, asking
 * `admits` in the session's preference order and stopping at the first it accepts; undefined
 * when it accepts none. This is how the pool checks quota room only for the accounts a sticky
 * session would actually take: usually just its pinned one. Without `admits`, every item is
 * accepted. `scores` is scratch space for at least `count` scores, so a pick allocates nothing
 * unless the first choice is refused.
 */
export function rendezvousFirst<T extends RendezvousItem>(
  keyHash: number,
  items: readonly T[],
  count: number,
  admits: ((item: T) => boolean) | undefined,
  scores: Float64Array,
): T | undefined {
  assert(count <= items.length && count <= scores.length, 'the scores scratch holds every item');
  const keyLo = hashLaneLo(keyHash);
  const keyHi = hashLaneHi(keyHash);
  let best = -1;
  let bestScore = -Infinity;
  for (let i = 0; i < count; i++) {
    const item = items[i] as T;
    assert(item.weight > 0, 'rendezvous weights are positive');
    const u = uniformOfLanes(keyLo, keyHi, item.idHash);
    // The logarithm is most of a score's cost, and most items cannot win: −ln u ≥ 1 − u, so
    // weight / (1 − u) bounds the score from above, and an item whose bound falls short of the
    // best score so far is passed over unscored (NaN, scored only if the spill-over needs it).
    if (item.weight < bestScore * (1 - u) * boundMargin) {
      scores[i] = NaN;
      continue;
    }
    const score = item.weight / -Math.log(u);
    scores[i] = score;
    if (best < 0 || ranksBefore(score, item, bestScore, items[best] as T)) {
      best = i;
      bestScore = score;
    }
  }
  if (best < 0) return undefined;
  const first = items[best] as T;
  if (admits === undefined || admits(first)) return first;
  // Spill-over: sort the rest once rather than search for the next best after every refusal, so
  // a pool whose accounts are mostly out of room costs n log n here, not n².
  const rest: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i === best) continue;
    if (Number.isNaN(scores[i])) scores[i] = rendezvousScore(keyHash, (items[i] as T).idHash, (items[i] as T).weight);
    rest.push(i);
  }
  rest.sort((a, b) => (ranksBefore(scores[a] as number, items[a] as T, scores[b] as number, items[b] as T) ? -1 : 1));
  for (const i of rest) {
    const item = items[i] as T;
    if (admits(item)) return item;
  }
  return undefined;
}

/** Every item in the session's preference order: for status pages and tests. */
export function rendezvousOrder<T extends RendezvousItem>(keyHash: number, items: readonly T[]): T[] {
  const scored = items.map((item) => ({ item, score: rendezvousScore(keyHash, item.idHash, item.weight) }));
  scored.sort((x, y) => (ranksBefore(x.score, x.item, y.score, y.item) ? -1 : 1));
  return scored.map(({ item }) => item);
}
