import { assert, isCount } from '../core/assert.js';
import type { ReplicaId } from '../core/ids.js';
import { counterValueMax, replicasMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { CounterKey } from './counter-key.js';

/**
 * The escrow counter: a bounded counter after Balegas et al., "Extending Eventually Consistent
 * Cloud Databases for Enforcing Numeric Invariants" (SRDS 2015). It holds a non-negative
 * quantity (remaining quota) whose decrements must never take it below zero, even when replicas
 * cannot talk to each other.
 *
 * State: a rights matrix R and a used vector U. R[i][i] counts rights replica i created
 * (increments), R[i][j] rights i handed to j, U[i] rights i consumed (decrements). Replica i
 * writes only its own row R[i][*] and U[i], so states merge by point-wise maximum like a
 * PN-counter. Then
 *
 *   value        = Σ_i R[i][i] − Σ_i U[i]
 *   rights(i)    = R[i][i] + Σ_{j≠i} R[j][i] − Σ_{j≠i} R[i][j] − U[i]
 *
 * Replica i decrements or transfers only what rights(i) covers in its own view. Its view of the
 * others' rows can be stale but only ever under-counts what they gave it, so rights(i) in its
 * view never exceeds its true rights, and the sum of all true rights, which equals the value,
 * never goes below zero. A partitioned replica keeps exactly the rights it holds.
 *
 * A delta is the owner's whole row (a few cells), so every view holds a consistent snapshot of
 * each row.
 */
export interface RightsRow {
  readonly owner: ReplicaId;
  /** R[owner][to] for every `to` with a non-zero cell; `cells.get(owner)` is the rights created. */
  readonly cells: ReadonlyMap<ReplicaId, number>;
  /** U[owner]. */
  readonly used: number;
}

/** One row of the rights matrix of the bounded counter under `key` (escrowed quotas are keyed). */
export interface KeyedRightsRow {
  readonly key: CounterKey;
  readonly row: RightsRow;
}

/** A delta (one row) or a full state (every row). */
export type BoundedState = readonly RightsRow[];

export interface InsufficientRights {
  readonly kind: 'insufficient-rights';
  readonly requested: number;
  readonly available: number;
}

interface MutableRow {
  readonly cells: Map<ReplicaId, number>;
  used: number;
}

/**
 * A replica's rights in a view of the rows, by owner: rights(r) = R[r][r] + Σ_{j≠r} R[j][r] −
 * Σ_{j≠r} R[r][j] − U[r]. Exported for the simulator's conservation checker, which reads it
 * off the largest row of each owner any node held (sim/rights-ledger.ts).
 */
export function rightsOf(rows: ReadonlyMap<ReplicaId, Pick<RightsRow, 'cells' | 'used'>>, replica: ReplicaId): number {
  let rights = 0;
  for (const [owner, row] of rows) {
    if (owner === replica) {
      for (const [to, amount] of row.cells) rights += to === owner ? amount : -amount;
      rights -= row.used;
    } else {
      rights += row.cells.get(replica) ?? 0;
    }
  }
  return rights;
}

export class BoundedCounter {
  private readonly rows = new Map<ReplicaId, MutableRow>();
  /**
   * `localRights()` of this replica, kept up to date by its own operations and recomputed after
   * a join changes a row: the escrow admission path asks it on every request.
   */
  private ownRights = 0;

  constructor(readonly self: ReplicaId) {
    this.rows.set(self, { cells: new Map(), used: 0 });
  }

  /** Creates `amount` new rights at this replica (the quota grows, or a refund comes back). */
  increment(amount: number): BoundedState {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    this.create(amount);
    return [this.snapshot(this.self, this.ownRow())];
  }

  /** `increment` without the snapshot: for callers that send rows later, in batches. */
  create(amount: number): void {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    const row = this.ownRow();
    const next = (row.cells.get(this.self) ?? 0) + amount;
    assert(next <= counterValueMax, 'rights overflow');
    row.cells.set(this.self, next);
    this.ownRights += amount;
  }

  /** `decrement` without the snapshot: consumes `amount` of this replica's rights, or returns false. */
  consume(amount: number): boolean {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    if (amount > this.ownRights) return false;
    this.ownRow().used += amount;
    this.ownRights -= amount;
    return true;
  }

  /** This replica's own row as it stands: what a batched sender sends. */
  ownState(): RightsRow {
    return this.snapshot(this.self, this.ownRow());
  }

  /** Consumes `amount` of this replica's rights, or fails without any change. */
  decrement(amount: number): Result<BoundedState, InsufficientRights> {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    const available = this.ownRights;
    if (!this.consume(amount)) return err({ kind: 'insufficient-rights', requested: amount, available });
    return ok([this.snapshot(this.self, this.ownRow())]);
  }

  /** Hands `amount` of this replica's rights to `to`, or fails without any change. */
  transfer(to: ReplicaId, amount: number): Result<BoundedState, InsufficientRights> {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    assert(to !== this.self, 'a replica cannot transfer rights to itself');
    const available = this.ownRights;
    if (amount > available) return err({ kind: 'insufficient-rights', requested: amount, available });
    const row = this.ownRow();
    if (!row.cells.has(to)) assert(row.cells.size < replicasMax, 'a row holds at most replicasMax cells');
    row.cells.set(to, (row.cells.get(to) ?? 0) + amount);
    this.ownRights -= amount;
    return ok([this.snapshot(this.self, row)]);
  }

  /** The rights `replica` holds in this view (exact for this replica itself). */
  localRights(replica: ReplicaId = this.self): number {
    return replica === this.self ? this.ownRights : this.rightsInView(replica);
  }

  private rightsInView(replica: ReplicaId): number {
    return rightsOf(this.rows, replica);
  }

  /** Rights created minus rights used, across all replicas in this view. */
  value(): number {
    let total = 0;
    for (const [owner, row] of this.rows) total += (row.cells.get(owner) ?? 0) - row.used;
    return total;
  }

  /**
   * Merges rows by point-wise maximum. Returns how many rows were dropped because this state
   * already tracks `replicasMax` replicas (zero in any correctly configured mesh). `raised`, if
   * given, sees the merged snapshot of every row the join changed: what a relay passes on.
   */
  join(delta: BoundedState, raised?: (row: RightsRow) => void): number {
    let dropped = 0;
    for (const incoming of delta) {
      assert(isCount(incoming.used), 'joined rows hold counts');
      let row = this.rows.get(incoming.owner);
      if (row === undefined) {
        // An empty row is the join's identity: nothing to hold.
        if (incoming.cells.size === 0 && incoming.used === 0) continue;
        if (this.rows.size >= replicasMax || incoming.cells.size > replicasMax) {
          dropped++;
          continue;
        }
        row = { cells: new Map(), used: 0 };
        this.rows.set(incoming.owner, row);
      }
      let changed = false;
      for (const [to, amount] of incoming.cells) {
        assert(isCount(amount), 'joined cells hold counts');
        if (amount > (row.cells.get(to) ?? 0)) {
          if (!row.cells.has(to) && row.cells.size >= replicasMax) continue;
          row.cells.set(to, amount);
          changed = true;
        }
      }
      if (incoming.used > row.used) {
        row.used = incoming.used;
        changed = true;
      }
      if (changed && raised !== undefined) raised(this.snapshot(incoming.owner, row));
    }
    // Others' rows give this replica rights; its own row may come back larger after a restart.
    this.ownRights = this.rightsInView(this.self);
    return dropped;
  }

  /** The replicas with a row in this view. */
  owners(): ReplicaId[] {
    return [...this.rows.keys()];
  }

  /** Every non-empty row: the full state for a new or long-gone peer. */
  state(): BoundedState {
    const rows: RightsRow[] = [];
    for (const [owner, row] of this.rows) if (row.cells.size > 0 || row.used > 0) rows.push(this.snapshot(owner, row));
    return rows;
  }

  private ownRow(): MutableRow {
    const row = this.rows.get(this.self);
    assert(row !== undefined, 'the own row exists from construction');
    return row;
  }

  private snapshot(owner: ReplicaId, row: MutableRow): RightsRow {
    return { owner, cells: new Map(row.cells), used: row.used };
  }
}
