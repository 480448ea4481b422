import { assert } from '../core/assert.js';
import { isValidId, type ReplicaId } from '../core/ids.js';
import { claimBatchMax, claimRetryAfterMs, claimsWaitingMax, strictRetryDelayMsMax, strictRetryDelayMsMin } from '../core/limits.js';
import type { Random } from '../core/random.js';
import { counterKey, type CounterKey } from '../crdt/counter-key.js';
import { windowAt } from '../crdt/window.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import type { RoundOutcome } from '../mesh/quorum.js';
import type { RoundStarter } from './quota-gate.js';

/**
 * Mesh-wide "at most once" for request ids that clients choose (DESIGN.md §6): before a node
 * sends a request to the upstream, it claims the id in the replicated counters with the same
 * two-phase quorum round strict quotas use, and only the claim that saw no other may go on.
 *
 *   claim(subject)   this replica already holds an active claim on it ─────────▶ held-here
 *                    own entry on the claim key += 1, then one quorum round:
 *                      write the claim key to W members, read the three claim keys from R
 *                      ├ round failed ─ own entry −1 ──────────────────────────▶ no-quorum
 *                      ├ another replica holds an active claim ─ own entry −1 ─▶ held-elsewhere
 *                      └ none ─────────────────────────────────────────────────▶ granted
 *   withdraw(claim)  the request ended without reaching the model: own entry −1, so that a retry
 *                    (at this node or any other) may claim the id again
 *
 * Why two claims cannot both be granted. Each claimer raises its own entry before its round and
 * a granted claim is never withdrawn. Of two claimers of one id, order them by when their write
 * phase completed: the later one's read phase started after the earlier one's write was held by
 * W members, and W + R > N, so the later read sees the earlier claim and is refused. (This is
 * DESIGN.md §4's argument for strict rounds; a refused claimer withdraws, which can only make
 * a later read see less, never make a granted claim disappear.)
 *
 * Liveness. Claims whose rounds overlap may refuse each other all round (found by the tests: on
 * a mesh of a few milliseconds, three concurrent claims of one id were always all refused). So
 * a claim refused for another's claim withdraws and tries once more after a random delay (the
 * strict retry's range): by then the others have withdrawn too, or one of them was granted, and
 * the jitter keeps the retries from meeting again in lockstep. A claim refused for a claim
 * granted long ago pays that delay once, which is the price of not telling the two apart.
 *
 * Keys and horizon. A claim of the id digest `subject` made in hour H (epoch-aligned) is written
 * on `(claim, subject, claims, hour:H+1)` and the round reads hours H, H+1 and H+2. Any two
 * claims of one subject made less than an hour apart are in the same or adjacent hours, so the
 * key one writes is among the keys the other reads, in both directions, which the argument
 * above needs. Writing the next hour's key keeps a claim readable until that window is dropped
 * (its end plus the counter's expiry horizon): at least `claimHorizonMsMin` after the claim, at
 * most about two hours and a quarter. Claims further apart may both be granted: the guarantee's
 * horizon, documented in README.
 *
 * Availability. Like strict admission, a claim needs a majority: a node cut off from it refuses
 * with `no-quorum` (a retry hint) rather than risk a second run. Claims of one node share a
 * round (group commit): one round in flight, every claim that arrives meanwhile rides the next.
 *
 * Costs. A claim is one counter key per request id for up to the horizon, replicated like any
 * other; the node claims only ids its clients chose (an id the node makes itself is unique by
 * construction and needs none).
 *
 * Completions: `done` is called exactly once, synchronously for `held-here` and `shed`,
 * otherwise from the mesh node's `tick` when the round completes. `tick` starts due retries.
 */
export interface ClaimHandle {
  readonly subject: string;
  /** The key this replica raised: a withdrawal lowers the same one. */
  readonly key: CounterKey;
}

export type ClaimOutcome =
  /** This replica now holds the only active claim: the request may reach the upstream. */
  | { readonly kind: 'granted'; readonly claim: ClaimHandle }
  /** This replica claimed the id before and still holds it: what became of it is the node's own record. */
  | { readonly kind: 'held-here' }
  /** Another replica holds an active claim: the id ran (or runs) there. */
  | { readonly kind: 'held-elsewhere'; readonly holder: ReplicaId }
  /** The round reached no quorum: nothing is claimed; a retry may succeed. */
  | { readonly kind: 'no-quorum'; readonly retryAfterMs: number }
  /** This node is at a bound (claims waiting, rounds open, counter keys): nothing is claimed. */
  | { readonly kind: 'shed'; readonly retryAfterMs: number };

export class ClaimStats {
  claims = 0;
  granted = 0;
  heldHere = 0;
  heldElsewhere = 0;
  noQuorum = 0;
  shed = 0;
  withdrawn = 0;
  rounds = 0;
}

interface Rider {
  readonly subject: string;
  readonly writeKey: CounterKey;
  readonly readKeys: readonly CounterKey[];
  readonly done: (outcome: ClaimOutcome) => void;
  /** Whether it was refused for another's claim once already (it is retried once). */
  retried: boolean;
}

/** The counter scope and metric of claims; their subject is the digest the node computes. */
export const claimScope = 'claim';
export const claimMetric = 'claims';

export class RequestClaims {
  readonly stats = new ClaimStats();
  private waiting: Rider[] = [];
  /** Claims refused for another's claim, waiting for their one retry. */
  private retries: { readonly rider: Rider; readonly atMs: number }[] = [];
  private inFlight = false;
  /** Subjects with a claim waiting or in a round: a second claim of one is `held-here`. */
  private readonly pending = new Set<string>();
  private readonly withdrawn = new WeakSet<ClaimHandle>();

  private readonly replica: ReplicaId;

  constructor(
    private readonly counter: WindowedCounter,
    private readonly rounds: RoundStarter,
    /** Jitter of retries; every node should draw from its own seed. */
    private readonly random: Random,
  ) {
    this.replica = counter.self;
  }

  /** Starts the retries that are due; call it from the node's tick. */
  tick(nowMs: number): void {
    if (this.retries.length === 0) return;
    const due = this.retries.filter((retry) => retry.atMs <= nowMs);
    if (due.length === 0) return;
    this.retries = this.retries.filter((retry) => retry.atMs > nowMs);
    for (const { rider } of due) this.waiting.push(rider);
    this.run(nowMs);
  }

  /** When `tick` next has timed work (for the owner's scheduler); Infinity when none. */
  nextTickMs(nowMs: number): number {
    let next = Infinity;
    for (const retry of this.retries) next = Math.min(next, retry.atMs);
    return Math.max(nowMs, next);
  }

  /** Claims waiting for a round or in one. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * The claims' tables, for the bound tests: `pending` ≤ `claimsWaitingMax` (shed past it), and
   * every rider waiting or retrying has its subject in `pending`, so `waiting` and `retries` follow it.
   */
  tableSizes(): { readonly pending: number; readonly waiting: number; readonly retries: number } {
    return { pending: this.pending.size, waiting: this.waiting.length, retries: this.retries.length };
  }

  claim(subject: string, nowMs: number, done: (outcome: ClaimOutcome) => void): void {
    assert(isValidId(subject), 'a claim subject is an id');
    this.stats.claims++;
    const hour = windowAt('hour', nowMs).index;
    // Built, not taken from the counter's key cache: a subject is claimed once or twice, and
    // caching one per request would only evict the tenants' hot keys from the cache.
    const readKeys = [0, 1, 2].map((offset) => counterKey(claimScope, subject, claimMetric, { unit: 'hour', index: hour + offset }));
    if (this.pending.has(subject) || this.activeOf(this.replica, readKeys) > 0) {
      this.stats.heldHere++;
      return done({ kind: 'held-here' });
    }
    if (this.pending.size >= claimsWaitingMax) {
      this.stats.shed++;
      return done({ kind: 'shed', retryAfterMs: claimRetryAfterMs });
    }
    this.pending.add(subject);
    this.waiting.push({ subject, writeKey: readKeys[1] as CounterKey, readKeys, done, retried: false });
    this.run(nowMs);
  }

  /**
   * Gives a granted claim back: the request ended without reaching the model (refused by quota,
   * in the queue, by every account before any token). Idempotent per handle. Never call it for a
   * request that may have reached the model: the id would then be free to run a second time.
   */
  withdraw(claim: ClaimHandle): void {
    if (this.withdrawn.has(claim)) return;
    this.withdrawn.add(claim);
    this.stats.withdrawn++;
    this.counter.decrement(claim.key, 1);
  }

  private run(nowMs: number): void {
    if (this.inFlight || this.waiting.length === 0) return;
    const riders: Rider[] = [];
    for (const rider of this.waiting.splice(0, claimBatchMax)) {
      // The key may be refused (the counter is full); nothing was raised then.
      if (this.counter.increment(rider.writeKey, 1).ok) riders.push(rider);
      else this.finish(rider, { kind: 'shed', retryAfterMs: claimRetryAfterMs });
    }
    if (riders.length === 0) return this.run(nowMs);
    const readKeys = new Map<string, CounterKey>();
    for (const rider of riders) for (const key of rider.readKeys) readKeys.set(key.id, key);
    this.inFlight = true;
    this.stats.rounds++;
    this.rounds.startRound({ writeKeys: riders.map((rider) => rider.writeKey), readKeys: [...readKeys.values()] }, nowMs, (outcome, doneMs) => {
      assert(this.inFlight, 'a claim round completes once');
      this.inFlight = false;
      for (const rider of riders) this.decide(rider, outcome, doneMs);
      this.run(doneMs);
    });
  }

  private decide(rider: Rider, outcome: RoundOutcome, nowMs: number): void {
    if (!outcome.ok) {
      this.counter.decrement(rider.writeKey, 1);
      return this.finish(
        rider,
        outcome.reason === 'no-quorum' ? { kind: 'no-quorum', retryAfterMs: claimRetryAfterMs } : { kind: 'shed', retryAfterMs: claimRetryAfterMs },
      );
    }
    const holder = this.otherHolder(rider.readKeys);
    if (holder !== undefined) {
      this.counter.decrement(rider.writeKey, 1);
      if (rider.retried) return this.finish(rider, { kind: 'held-elsewhere', holder });
      rider.retried = true;
      this.retries.push({ rider, atMs: nowMs + strictRetryDelayMsMin + this.random.int(strictRetryDelayMsMax - strictRetryDelayMsMin) });
      return;
    }
    this.finish(rider, { kind: 'granted', claim: { subject: rider.subject, key: rider.writeKey } });
  }

  private finish(rider: Rider, outcome: ClaimOutcome): void {
    this.pending.delete(rider.subject);
    this.stats[statOf[outcome.kind]]++;
    rider.done(outcome);
  }

  /** A replica other than this one with an active claim (entries above zero over the keys), if any. */
  private otherHolder(keys: readonly CounterKey[]): ReplicaId | undefined {
    const active = new Map<ReplicaId, number>();
    for (const key of keys) {
      for (const [replica, { p, n }] of this.counter.contributions(key)) active.set(replica, (active.get(replica) ?? 0) + p - n);
    }
    for (const [replica, total] of active) if (replica !== this.replica && total > 0) return replica;
    return undefined;
  }

  private activeOf(replica: ReplicaId, keys: readonly CounterKey[]): number {
    let total = 0;
    for (const key of keys) {
      const entry = this.counter.contributions(key).get(replica);
      if (entry !== undefined) total += entry.p - entry.n;
    }
    return total;
  }
}

const statOf: Readonly<Record<ClaimOutcome['kind'], 'granted' | 'heldHere' | 'heldElsewhere' | 'noQuorum' | 'shed'>> = {
  granted: 'granted',
  'held-here': 'heldHere',
  'held-elsewhere': 'heldElsewhere',
  'no-quorum': 'noQuorum',
  shed: 'shed',
};
