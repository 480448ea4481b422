import { assert } from '../core/assert.js';
import { type Brand, isValidId, type UserId } from '../core/ids.js';
import {
  clientIpLengthMax,
  limiterBurstMax,
  limiterHeapSlackMax,
  limiterKeysMax,
  limiterPeriodMsMax,
  limiterRateMax,
  rateKeyLengthMax,
} from '../core/limits.js';
import { PriorityHeap } from '../core/priority-heap.js';
import { err, ok, type Result } from '../core/result.js';
import type { Rejection } from './outcome.js';

/**
 * A rate limiter by the Generic Cell Rate Algorithm (GCRA), as Brandur Leach and redis-cell
 * describe it, over a bounded set of keys.
 *
 * The algorithm. A key admits `rate` cells per `periodMs`, so one cell is worth the emission
 * interval T = periodMs / rate. Each key keeps one number, its theoretical arrival time (TAT):
 * when the key's spending would be paid off if cells kept arriving at exactly the rate. A request
 * of `cost` cells at `now` moves it to max(TAT, now) + cost × T and is admitted if that lies at
 * most burst × T ahead of `now` (the burst tolerance τ = T × (burst − 1), plus the request's own
 * interval). So an idle key admits `burst` cells at once and then one per T, and a refused
 * request leaves the TAT unchanged: being refused costs nothing.
 *
 * Exact arithmetic. T is rarely a whole number of milliseconds (3 per second is 333.3… ms), and
 * a floating TAT would drift across the boundary after enough additions. A TAT is therefore held
 * as whole milliseconds plus a remainder in ticks of 1/rate ms, in which T is exactly `periodMs`
 * ticks; every comparison is between integers well below 2^53 (see the limits' assertion).
 * Clock readings are floored to whole milliseconds, which can only make a request look earlier,
 * so stricter.
 *
 * The clock going backwards. After an admission the TAT lies at most burst × T ahead of the
 * clock, and forward time keeps it so. A backwards step can leave it further ahead; left alone,
 * the key would be locked out for the length of the step. Instead the TAT is clamped to
 * now + burst × T: the key counts as having just spent its whole burst. That grants nothing a
 * key that spent its burst at `now` would not get, and waits no longer than a full burst.
 *
 * The key bound. A key whose TAT is not ahead of the clock behaves exactly like a key never seen,
 * so it may be dropped without changing any decision. Keys are dropped only when a new key needs
 * room: a min-heap on each key's idle time (its TAT rounded up to a millisecond) yields the idle
 * keys first. If every tracked key is still active, the new key is refused (`limiter-full`) and
 * counted. Forgetting an active key instead would hand a throttled client a fresh burst, and a
 * flood of new keys (spoofed forwarding headers, many users) would be precisely the way to
 * arrange it; refusing costs new clients some availability, for at most the hinted time, until
 * the earliest tracked key falls idle. Safety before availability. The caller should map a
 * refusal to a `shed` rejection (503): it is the node's capacity, not this client's rate.
 *
 * The heap holds one entry per admission rather than per key: an entry whose key has moved on is
 * skipped when it surfaces. When stale entries outnumber live keys (plus `limiterHeapSlackMax`),
 * the heap is rebuilt from the map, so memory stays within twice the key bound and the cost of a
 * rebuild is amortised over at least as many admissions. A sweep pops only until one key has
 * room, and each entry is popped once, so no call scans the map and the amortised cost of a
 * `take` is O(log keys).
 *
 * Two instances serve admission: one per (client IP, user), keyed by `rateKey`, and one per
 * tenant for its burst, keyed by `TenantId`. Each is a plain object advanced by `nowMs`
 * arguments; nothing here reads a clock.
 */

export interface GcraConfig {
  /** Cells admitted per period, sustained: 1 to `limiterRateMax`. */
  readonly rate: number;
  /** 1 to `limiterPeriodMsMax`. */
  readonly periodMs: number;
  /** Cells an idle key may spend at once: 1 to `limiterBurstMax`. */
  readonly burst: number;
  /** Keys tracked at once: 1 to `limiterKeysMax` (the default). */
  readonly keysMax?: number;
}

export type GcraDecision =
  | {
      readonly allowed: true;
      /** Cells of cost 1 that would still be admitted at this instant. */
      readonly remaining: number;
    }
  | {
      readonly allowed: false;
      /**
       * `rate`: this key is over its rate. `limiter-full`: the key is new and every tracked key
       * is active; the hint is when the earliest of them falls idle.
       */
      readonly reason: 'rate' | 'limiter-full';
      /** Whole milliseconds until the same request would pass, if nothing else happens first. */
      readonly retryAfterMs: number;
    }
  | {
      readonly allowed: false;
      /** The request costs more than the burst, so no amount of waiting admits it. */
      readonly reason: 'cost-exceeds-burst';
      readonly burst: number;
    };

/** Plain counters for the metrics binding (style guide §9). */
export class GcraStats {
  allowed = 0;
  /** Refused for the key's rate. */
  limited = 0;
  /** New keys refused because every tracked key was active. */
  refusedFull = 0;
  costExceedsBurst = 0;
  /** Idle keys dropped to make room; each was equivalent to a fresh key. */
  idleDropped = 0;
  /** TATs clamped after the clock went backwards. */
  clamped = 0;
  heapRebuilds = 0;
}

/** A key's TAT: `tatMs + tatTicks / rate` milliseconds, with 0 ≤ tatTicks < rate. */
interface Cell {
  tatMs: number;
  tatTicks: number;
}

export class GcraLimiter<K extends string> {
  readonly rate: number;
  readonly periodMs: number;
  readonly burst: number;
  readonly keysMax: number;
  readonly stats = new GcraStats();

  /** burst × T in ticks: how far ahead of the clock an admission may leave the TAT. */
  private readonly aheadTicksMax: number;
  /** The same bound in whole milliseconds, rounded up. */
  private readonly aheadMsMax: number;
  private readonly cells = new Map<K, Cell>();
  /** Keys by the millisecond they fall idle; an entry is stale once its key has moved on. */
  private readonly idleHeap = new PriorityHeap<K>();

  constructor(config: GcraConfig) {
    const { rate, periodMs, burst } = config;
    this.keysMax = config.keysMax ?? limiterKeysMax;
    assert(Number.isSafeInteger(rate) && rate >= 1 && rate <= limiterRateMax, 'limiter rate out of range');
    assert(Number.isSafeInteger(periodMs) && periodMs >= 1 && periodMs <= limiterPeriodMsMax, 'limiter period out of range');
    assert(Number.isSafeInteger(burst) && burst >= 1 && burst <= limiterBurstMax, 'limiter burst out of range');
    assert(Number.isSafeInteger(this.keysMax) && this.keysMax >= 1 && this.keysMax <= limiterKeysMax, 'limiter keysMax out of range');
    this.rate = rate;
    this.periodMs = periodMs;
    this.burst = burst;
    this.aheadTicksMax = periodMs * burst;
    this.aheadMsMax = Math.ceil(this.aheadTicksMax / rate);
  }

  /** Keys tracked, active or not yet swept. */
  get size(): number {
    return this.cells.size;
  }

  /** Entries in the idle heap, stale ones included; at most 2 × size + `limiterHeapSlackMax`. */
  get heapLength(): number {
    return this.idleHeap.size;
  }

  /** Spends `cost` cells of `key`'s rate at `nowMs`, or says when it could. */
  take(key: K, nowMs: number, cost = 1): GcraDecision {
    assert(Number.isFinite(nowMs), 'the clock reads a finite time');
    assert(Number.isSafeInteger(cost) && cost >= 1, 'a request costs a positive whole number of cells');
    if (cost > this.burst) {
      this.stats.costExceedsBurst++;
      return { allowed: false, reason: 'cost-exceeds-burst', burst: this.burst };
    }
    const now = Math.floor(nowMs);
    const costTicks = cost * this.periodMs;
    let cell = this.cells.get(key);
    let aheadTicks = 0;
    if (cell !== undefined) {
      aheadTicks = this.aheadTicks(cell, now);
      if (aheadTicks > this.aheadTicksMax) {
        // Only a backwards clock step gets here; see the file comment.
        this.stats.clamped++;
        aheadTicks = this.aheadTicksMax;
        this.setTat(key, cell, now, aheadTicks);
      }
    }
    const nextTicks = aheadTicks + costTicks;
    if (nextTicks > this.aheadTicksMax) {
      // Only a tracked key can be over: a fresh one has room for any cost up to the burst.
      this.stats.limited++;
      return { allowed: false, reason: 'rate', retryAfterMs: Math.ceil((nextTicks - this.aheadTicksMax) / this.rate) };
    }
    if (cell === undefined) {
      if (this.cells.size >= this.keysMax && !this.makeRoom(now)) {
        this.stats.refusedFull++;
        const idleAtMs = this.idleHeap.peekPriority();
        assert(idleAtMs !== undefined && idleAtMs > now, 'a full limiter has an active key on top of its heap');
        return { allowed: false, reason: 'limiter-full', retryAfterMs: idleAtMs - now };
      }
      cell = { tatMs: 0, tatTicks: 0 };
      this.cells.set(key, cell);
    }
    this.setTat(key, cell, now, nextTicks);
    this.stats.allowed++;
    return { allowed: true, remaining: Math.floor((this.aheadTicksMax - nextTicks) / this.periodMs) };
  }

  /** How far the cell's TAT lies ahead of `now`, in ticks; 0 when it is not ahead. */
  private aheadTicks(cell: Cell, now: number): number {
    const aheadMs = cell.tatMs - now;
    // tatTicks / rate < 1 ms, so a TAT whose whole milliseconds are behind `now` is behind it.
    if (aheadMs < 0) return 0;
    // Past the clamp in whole milliseconds already: skip the multiplication that could overflow.
    if (aheadMs > this.aheadMsMax) return this.aheadTicksMax + 1;
    return aheadMs * this.rate + cell.tatTicks;
  }

  /** Sets the cell's TAT to `now + aheadTicks` and files the key under its new idle time. */
  private setTat(key: K, cell: Cell, now: number, aheadTicks: number): void {
    cell.tatMs = now + Math.floor(aheadTicks / this.rate);
    cell.tatTicks = aheadTicks % this.rate;
    this.push(idleAtMs(cell), key);
  }

  /**
   * Drops idle keys until one more fits; returns whether one does. Stops at the first active key
   * on top of the heap: every key below it falls idle no sooner.
   */
  private makeRoom(now: number): boolean {
    // Each pass pops one entry, and pushes one only when clamping a key, which leaves that key
    // within the clamp; so the loop ends within heap length plus key count passes.
    while (this.cells.size >= this.keysMax) {
      const key = this.idleHeap.peekValue();
      const atMs = this.idleHeap.peekPriority();
      assert(key !== undefined && atMs !== undefined, 'every tracked key has a heap entry');
      const cell = this.cells.get(key);
      if (cell === undefined || idleAtMs(cell) !== atMs) {
        // Stale: the key was dropped or has moved on to a later entry.
        this.pop();
      } else if (atMs <= now) {
        this.pop();
        this.cells.delete(key);
        this.stats.idleDropped++;
      } else if (atMs - now > this.aheadMsMax) {
        // Further ahead than any admission leaves a key: the clock went back. Clamp it, so the
        // key falls idle (and the refusal's hint comes true) within one burst.
        this.pop();
        this.stats.clamped++;
        this.setTat(key, cell, now, this.aheadTicksMax);
      } else {
        return false;
      }
    }
    return true;
  }

  /** Files `key` under `atMs`; the caller has already set the key's cell to that idle time. */
  private push(atMs: number, key: K): void {
    if (this.idleHeap.size >= 2 * this.cells.size + limiterHeapSlackMax) {
      // The rebuilt heap already holds the key's current entry.
      this.rebuildHeap();
      return;
    }
    this.idleHeap.push(atMs, key);
  }

  private pop(): void {
    this.idleHeap.pop();
  }

  /** One current entry per tracked key, heapified bottom-up in O(keys). */
  private rebuildHeap(): void {
    this.stats.heapRebuilds++;
    const times: number[] = [];
    const keys: K[] = [];
    for (const [key, cell] of this.cells) {
      times.push(idleAtMs(cell));
      keys.push(key);
    }
    this.idleHeap.rebuild(times, keys);
  }
}

/** The first whole millisecond at which the cell's TAT is not ahead of the clock. */
function idleAtMs(cell: Cell): number {
  return cell.tatTicks > 0 ? cell.tatMs + 1 : cell.tatMs;
}

/** A per-(client IP, user) limiter key. */
export type RateKey = Brand<string, 'RateKey'>;

export type RateKeyError = Extract<Rejection, { kind: 'invalid' }>;

/**
 * The limiter key of a client IP and an authenticated user: `<ip length>/<ip>/<user>`, at most
 * `rateKeyLengthMax` characters, so the key bound also bounds the limiter's memory. The length
 * prefix makes the key injective: no IP and user pair can borrow another pair's budget, which a
 * truncated or hashed key would allow an attacker to arrange. The IP text is lowercased (IPv6 hex
 * is case-insensitive); other spellings of one address (`::1` and `0::1`) are the adapter's to
 * canonicalise, since it parses the address anyway. An IP that is not printable ASCII without
 * spaces, or is longer than any address, is a bad request (perhaps a forged forwarding header).
 */
export function rateKey(ip: string, user: UserId): Result<RateKey, RateKeyError> {
  if (ip.length === 0 || ip.length > clientIpLengthMax || !isPrintable(ip)) {
    return err({ kind: 'invalid', field: 'ip', reason: `a client IP is 1 to ${clientIpLengthMax} printable ASCII characters` });
  }
  assert(isValidId(user), 'user ids are validated when parsed');
  const key = `${ip.length}/${ip.toLowerCase()}/${user}`;
  assert(key.length <= rateKeyLengthMax, 'rate keys fit their bound');
  return ok(key as RateKey);
}

function isPrintable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
