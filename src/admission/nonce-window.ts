import { assert } from '../core/assert.js';
import { nonceEvictionsPerCallMax } from '../core/limits.js';
import { PriorityHeap } from '../core/priority-heap.js';

/**
 * The nonces of recently accepted signed requests, kept to refuse replays.
 *
 * A nonce needs keeping only while a request carrying it could still pass the timestamp check.
 * The verifier accepts a timestamp no lower than its floor (the latest clock reading minus the
 * skew window) and never lowers the floor, so a nonce whose timestamp is below the floor can be
 * forgotten for good: a replay of it is refused as stale. Entries are therefore ordered by their
 * request's timestamp and dropped from the oldest whenever the floor rises. Timestamps arrive out
 * of order (client clocks differ by up to the skew in both directions), hence a heap, not a queue.
 *
 * Forgetting is spread out: one call forgets at most `nonceEvictionsPerCallMax` aged-out nonces,
 * oldest first, so a cache that ages out all at once (after an idle spell or a clock step) does
 * not stall one request. An aged-out nonce not yet forgotten still counts as seen: a request
 * reusing it is refused as a replay. Honest clients never reuse a nonce, and the backlog drains
 * because each call forgets more than it adds.
 *
 * When the window holds `capacity` live nonces, `remember` refuses the new one instead of
 * forgetting an old one. Forgetting a live nonce would let its request be replayed for the rest
 * of its window, and a flood of signed requests would be exactly the way to arrange that; refusing
 * costs only the availability of signed requests until old entries age out. Safety first: the
 * caller refuses the request and counts it.
 */
export type NonceOutcome = 'remembered' | 'replayed' | 'full';

export class NonceWindow {
  private readonly timestampsByKey = new Map<string, number>();
  /** Remembered nonces by request timestamp, oldest first. */
  private readonly byTimestamp = new PriorityHeap<string>();

  constructor(readonly capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'a nonce window holds at least one entry');
  }

  get size(): number {
    return this.timestampsByKey.size;
  }

  /**
   * Forgets a few nonces stamped below `floorMs`, then records `key` (tenant and nonce) for a
   * request stamped `timestampMs`. The caller has already refused stale requests, so
   * `timestampMs` is at or above the floor.
   */
  remember(key: string, timestampMs: number, floorMs: number): NonceOutcome {
    assert(timestampMs >= floorMs, 'stale requests are refused before their nonce is remembered');
    this.forgetBefore(floorMs, nonceEvictionsPerCallMax);
    if (this.timestampsByKey.has(key)) return 'replayed';
    // Still full means nothing was forgotten above, so every remembered nonce is live: forgetting
    // any would reopen a replay. (Forgetting even one would have made room.)
    if (this.timestampsByKey.size >= this.capacity) return 'full';
    this.timestampsByKey.set(key, timestampMs);
    this.byTimestamp.push(timestampMs, key);
    return 'remembered';
  }

  /** Forgets up to `countMax` nonces stamped below `floorMs`, oldest first; returns how many. */
  forgetBefore(floorMs: number, countMax: number): number {
    let forgotten = 0;
    while (forgotten < countMax && (this.byTimestamp.peekPriority() ?? Infinity) < floorMs) {
      const key = this.byTimestamp.pop();
      const deleted = this.timestampsByKey.delete(key);
      assert(deleted, 'every heap entry has a map entry');
      forgotten++;
    }
    assert(this.byTimestamp.size === this.timestampsByKey.size, 'heap and map hold the same nonces');
    return forgotten;
  }
}
