import type { ReplicaId } from '../src/core/ids.js';
import type { CounterKey } from '../src/crdt/counter-key.js';
import type { CounterEntry, WindowedCounter } from '../src/crdt/windowed-counter.js';

/**
 * The quorum checker's truth (src/mesh/quorum.ts): the intersection property itself, checked
 * where it holds instead of through its consequences. A strict round that completes has made its
 * writer's entries durable at W members; any round that starts after that, anywhere, and
 * completes, must have read them: W + R > N puts one of its R members among those W, and a member
 * that lost its state answers no reads until it recovered. So at every completion the reader's
 * counter holds, for each key it read, at least what every round completed before it began had
 * written.
 *
 * An overshoot needs such a stale read *and* a limit that binds at that moment; this checker
 * needs only the stale read, so it catches a broken fence or quorum on runs whose limits never
 * bind then. The floor of a writer that resumes from its disk stays: its acknowledged writes
 * were on its disk (a node commits before it sends). A writer lost without its state stays too:
 * its writes live on at the other W − 1 members.
 */
export class QuorumFloor {
  /** Per key id and writer: the largest entry a completed round wrote. */
  private readonly floors = new Map<string, Map<ReplicaId, CounterEntry>>();

  /** What a round starting now must read: the floors of its read keys, copied. */
  snapshot(readKeys: readonly CounterKey[]): Map<string, Map<ReplicaId, CounterEntry>> {
    const copy = new Map<string, Map<ReplicaId, CounterEntry>>();
    for (const key of readKeys) {
      const floor = this.floors.get(key.id);
      if (floor !== undefined) copy.set(key.id, new Map(floor));
    }
    return copy;
  }

  /** A round completed: its entries (as written at its start) are now the floor. */
  completed(entries: readonly CounterEntry[]): void {
    for (const entry of entries) {
      let floor = this.floors.get(entry.key.id);
      if (floor === undefined) this.floors.set(entry.key.id, (floor = new Map<ReplicaId, CounterEntry>()));
      const known = floor.get(entry.replica);
      if (known === undefined || entry.p > known.p || entry.n > known.n) {
        floor.set(entry.replica, known === undefined ? entry : { ...entry, p: Math.max(entry.p, known.p), n: Math.max(entry.n, known.n) });
      }
    }
  }

  /** The first entry of `required` that `reader` does not hold, described; undefined if it holds them all. */
  static missing(reader: WindowedCounter, required: ReadonlyMap<string, ReadonlyMap<ReplicaId, CounterEntry>>): string | undefined {
    for (const floor of required.values()) {
      for (const entry of floor.values()) {
        const held = reader.contributions(entry.key).get(entry.replica) ?? { p: 0, n: 0 };
        if (held.p < entry.p || held.n < entry.n) {
          return `${entry.replica}'s ${entry.key.id.split('\u001f').join('/')} at p=${entry.p} n=${entry.n} (it holds p=${held.p} n=${held.n})`;
        }
      }
    }
    return undefined;
  }
}
