import { assert, isCount } from '../core/assert.js';
import type { ReplicaId } from '../core/ids.js';
import { counterValueMax, replicasMax } from '../core/limits.js';

/**
 * A delta-state PN-counter (Almeida, Shoker, Baquero: "Delta State Replicated Data Types").
 *
 * Each replica owns one entry: a monotone positive total `p` and a monotone negative total `n`.
 * Only the owner writes its entry, so two states merge by taking, per replica, the larger `p`
 * and the larger `n`: the join is commutative, associative and idempotent, and duplicated,
 * reordered or re-sent deltas are harmless. The value is Σp − Σn. `n` exists because admission
 * reserves an estimate and later refunds the difference.
 *
 * A mutation returns a delta: the owner's whole entry after the change. Joining that delta into
 * any replica has the same effect as joining the owner's full state, only smaller.
 *
 * A replica that loses its state must come back under a new replica id (a new incarnation):
 * restarting an entry from zero would make its new increments invisible under the max-join.
 */
export interface PnEntry {
  readonly p: number;
  readonly n: number;
}

/** A delta or a full state: entries per replica. */
export type PnState = ReadonlyMap<ReplicaId, PnEntry>;

export class PnCounter {
  private readonly entries = new Map<ReplicaId, PnEntry>();

  constructor(readonly self: ReplicaId) {}

  /** Adds `amount` to this replica's positive total and returns the delta to gossip. */
  increment(amount: number): PnState {
    return this.change(amount, 0);
  }

  /** Adds `amount` to this replica's negative total and returns the delta to gossip. */
  decrement(amount: number): PnState {
    return this.change(0, amount);
  }

  private change(pAmount: number, nAmount: number): PnState {
    assert(isCount(pAmount) && isCount(nAmount), 'amounts are non-negative safe integers');
    const current = this.entries.get(this.self) ?? { p: 0, n: 0 };
    const next = { p: current.p + pAmount, n: current.n + nAmount };
    assert(next.p <= counterValueMax && next.n <= counterValueMax, 'counter entry overflow');
    if (current.p === 0 && current.n === 0 && !this.entries.has(this.self)) {
      assert(this.entries.size < replicasMax, 'own entry must fit the replica bound');
    }
    this.entries.set(this.self, next);
    return new Map([[this.self, next]]);
  }

  /**
   * Merges a delta or a full state. Returns how many entries were dropped because the state
   * already tracks `replicasMax` replicas (zero in any correctly configured mesh).
   */
  join(delta: PnState): number {
    let dropped = 0;
    for (const [replica, incoming] of delta) {
      assert(isCount(incoming.p) && isCount(incoming.n), 'joined entries hold counts');
      const current = this.entries.get(replica);
      if (current === undefined) {
        if (this.entries.size >= replicasMax) {
          dropped++;
          continue;
        }
        this.entries.set(replica, { p: incoming.p, n: incoming.n });
      } else if (incoming.p > current.p || incoming.n > current.n) {
        this.entries.set(replica, { p: Math.max(current.p, incoming.p), n: Math.max(current.n, incoming.n) });
      }
    }
    return dropped;
  }

  value(): number {
    let total = 0;
    for (const entry of this.entries.values()) total += entry.p - entry.n;
    return total;
  }

  /** What each replica has added and refunded: for audits and for the simulator's checkers. */
  contributions(): PnState {
    return new Map(this.entries);
  }

  /** The full state, for a new or long-gone peer. */
  state(): PnState {
    return this.contributions();
  }
}
