import type { ReplicaId } from '../src/core/ids.js';
import type { CounterKey } from '../src/crdt/counter-key.js';
import type { WindowedCounter } from '../src/crdt/windowed-counter.js';

/**
 * Ground truth for the counters: every increment and refund the workload really applied, per
 * key and per replica incarnation, kept outside the system under test.
 *
 * Crashes. A node that crashes without durable state loses whatever of its own changes no other
 * node had received yet; those requests are gone (the indeterminate operations of Jepsen's
 * pn-counter check). At the crash the oracle lowers that incarnation's truth to the most any
 * surviving replica holds of it; everything else must then converge exactly. A survivor that holds
 * more than the truth is itself a failure (a replica invented counts), checked by `invented`.
 *
 * A node that crashes with its state resumes its replica from its disk (sim/sim-disk.ts): the
 * changes it had not committed are gone, so the oracle lowers that replica's truth to what the
 * disk holds (`restarted`). Nothing is lost that anyone saw, because a node commits before it
 * sends; a node that broke that rule leaves peers holding more of it than the truth, which
 * `invented` reports. A disk also holds the other replicas' entries its node had committed, so
 * what survives of a dead incarnation includes what the disks of stopped nodes hold.
 */
export interface Totals {
  p: number;
  n: number;
}

export type TruthSnapshot = ReadonlyMap<string, ReadonlyMap<ReplicaId, Totals>>;

/** Where copies of replicas' entries survive a crash: a running node's counter, or a node's disk. */
export type Holder = (key: CounterKey, replica: ReplicaId) => Totals | undefined;

/** A counter as a holder. */
export function counterHolder(counter: WindowedCounter): Holder {
  return (key, replica) => counter.contributions(key).get(replica);
}

/** Stored entries (key id → replica → totals) as a holder. */
export function storedHolder(stored: TruthSnapshot): Holder {
  return (key, replica) => stored.get(key.id)?.get(replica);
}

export class Oracle {
  readonly keys = new Map<string, CounterKey>();
  private readonly truth = new Map<string, Map<ReplicaId, Totals>>();

  apply(key: CounterKey, replica: ReplicaId, increment: number, refund: number): void {
    let perReplica = this.truth.get(key.id);
    if (perReplica === undefined) {
      perReplica = new Map();
      this.truth.set(key.id, perReplica);
      this.keys.set(key.id, key);
    }
    let totals = perReplica.get(replica);
    if (totals === undefined) {
      totals = { p: 0, n: 0 };
      perReplica.set(replica, totals);
    }
    totals.p += increment;
    totals.n += refund;
  }

  /** The crashed incarnation's changes survive only as far as `survivors` hold them. */
  crashed(replica: ReplicaId, survivors: readonly Holder[]): void {
    for (const [keyId, perReplica] of this.truth) {
      const totals = perReplica.get(replica);
      if (totals === undefined) continue;
      const key = this.keys.get(keyId) as CounterKey;
      let p = 0;
      let n = 0;
      for (const holds of survivors) {
        const held = holds(key, replica);
        if (held !== undefined) {
          p = Math.max(p, held.p);
          n = Math.max(n, held.n);
        }
      }
      totals.p = Math.min(totals.p, p);
      totals.n = Math.min(totals.n, n);
    }
  }

  /**
   * The replica restarts from its disk: its truth becomes what the disk holds of each key (at
   * most what was counted; a disk holding more is found by `invented` once it is restored).
   */
  restarted(replica: ReplicaId, stored: TruthSnapshot): void {
    for (const [keyId, perReplica] of this.truth) {
      const totals = perReplica.get(replica);
      if (totals === undefined) continue;
      const kept = stored.get(keyId)?.get(replica) ?? { p: 0, n: 0 };
      totals.p = Math.min(totals.p, kept.p);
      totals.n = Math.min(totals.n, kept.n);
    }
  }

  /**
   * Lowers what an earlier snapshot expects of `replica` to its current truth: after a crash,
   * changes the snapshot counted may be lost for good (all of them without state, the
   * uncommitted ones with it).
   */
  forget(snapshot: TruthSnapshot, replica: ReplicaId): void {
    for (const [keyId, perReplica] of snapshot) {
      const expected = perReplica.get(replica);
      const now = this.truth.get(keyId)?.get(replica);
      if (expected === undefined || now === undefined) continue;
      expected.p = Math.min(expected.p, now.p);
      expected.n = Math.min(expected.n, now.n);
    }
  }

  value(key: CounterKey): number {
    let total = 0;
    for (const totals of this.truth.get(key.id)?.values() ?? []) total += totals.p - totals.n;
    return total;
  }

  snapshot(): TruthSnapshot {
    const copy = new Map<string, Map<ReplicaId, Totals>>();
    for (const [keyId, perReplica] of this.truth) {
      copy.set(keyId, new Map([...perReplica].map(([replica, t]) => [replica, { p: t.p, n: t.n }])));
    }
    return copy;
  }

  /** Whether `counter` holds at least every change in `snapshot` (it may hold newer ones too). */
  covers(counter: WindowedCounter, snapshot: TruthSnapshot): boolean {
    for (const [keyId, perReplica] of snapshot) {
      const held = counter.contributions(this.keys.get(keyId) as CounterKey);
      for (const [replica, totals] of perReplica) {
        const entry = held.get(replica);
        if (totals.p === 0 && totals.n === 0) continue;
        if (entry === undefined || entry.p < totals.p || entry.n < totals.n) return false;
      }
    }
    return true;
  }

  /** Whether `counter` agrees with the truth exactly on every key. */
  equals(counter: WindowedCounter): boolean {
    for (const key of this.keys.values()) if (counter.value(key) !== this.value(key)) return false;
    return true;
  }

  /** A description of the first entry `counter` holds beyond the truth, if any. */
  invented(counter: WindowedCounter): string | undefined {
    for (const [keyId, perReplica] of this.truth) {
      const key = this.keys.get(keyId) as CounterKey;
      for (const [replica, held] of counter.contributions(key)) {
        const totals = perReplica.get(replica);
        if (totals === undefined || held.p > totals.p || held.n > totals.n) {
          return `${counter.self} holds ${replica}'s ${keyId.split('\u001f').join('/')} at p=${held.p} n=${held.n}, truth p=${totals?.p ?? 0} n=${totals?.n ?? 0}`;
        }
      }
    }
    return undefined;
  }
}
