import type { ReplicaId } from '../src/core/ids.js';
import type { CounterKey } from '../src/crdt/counter-key.js';
import type { WindowedCounter } from '../src/crdt/windowed-counter.js';
import { emptyTallies, type RowTallies } from './sim-disk.js';

/**
 * The accounting truth of the requests the workload saw admitted, kept per replica that admitted
 * them: what each was finally charged, and the usage row it must have left on that node's disk.
 *
 * When a charge is final. The simulated gateway does what the production one does
 * (src/node/gateway/carpool-gateway.ts): a request reaches the upstream only after the commit
 * that follows its admission, and its client hears the end only after the commit that follows
 * its settlement, which carries its usage row. So a request is charged
 *   - its usage, with one `ok` row, once its settlement is committed;
 *   - if its node crashed with its state between those two commits, what the restart leaves
 *     charged (src/admission/quota-gate.ts, `recoverInterrupted`): its whole estimate on strict
 *     and escrow keys, nothing on eventual ones (released, as a successor would), with one
 *     `interrupted` row of that amount;
 *   - nothing, and no row, if its node crashed before its admission was committed: it never
 *     reached the upstream, and the restart withdraws whatever of it the disk held.
 *
 * The check, once the mesh has converged: for every live replica R and tenant key, R's own entry
 * (p − n) equals Σ over R's requests of their charges, less what R released of its dead
 * predecessors' reservations (src/admission/successor-release.ts); and R's disk holds exactly
 * the rows its requests must have left. A replica that lost its state (a lost disk) is left out:
 * what survives of it is the oracle's business (sim/oracle.ts).
 */
interface ReplicaBooks {
  /** Per tenant: Σ final charges of this replica's requests. */
  readonly charged: number[];
  /** Per tenant: what this replica released of its dead predecessors' reservations. */
  readonly released: number[];
  readonly rows: RowTallies;
}

export class DurableBooks {
  private readonly byReplica = new Map<ReplicaId, ReplicaBooks>();

  constructor(private readonly tenants: number) {}

  /** A request's final charge (see above): `ok` at its usage, `interrupted` at what the restart left charged. */
  charge(replica: ReplicaId, tenant: number, amount: number, outcome: 'ok' | 'interrupted'): void {
    const books = this.of(replica);
    books.charged[tenant] = (books.charged[tenant] as number) + amount;
    books.rows[outcome].rows++;
    books.rows[outcome].weightedTokens += amount;
  }

  release(replica: ReplicaId, tenant: number, amount: number): void {
    const books = this.of(replica);
    books.released[tenant] = (books.released[tenant] as number) + amount;
  }

  /**
   * What is wrong with `replica`'s books (undefined: nothing): its own entries in `counter`
   * (converged) on the tenants' keys, and the rows its disk committed.
   */
  check(replica: ReplicaId, counter: WindowedCounter, tenantKeys: readonly CounterKey[], rows: RowTallies): string | undefined {
    const books = this.of(replica);
    for (const [tenant, key] of tenantKeys.entries()) {
      const own = counter.contributions(key).get(replica) ?? { p: 0, n: 0 };
      const charged = books.charged[tenant] as number;
      const released = books.released[tenant] as number;
      if (own.p - own.n !== charged - released) {
        return `${replica} holds ${own.p - own.n} for ${key.subject}, but its requests were charged ${charged}${released > 0 ? ` less ${released} released` : ''}`;
      }
    }
    for (const outcome of ['ok', 'interrupted', 'failed'] as const) {
      const want = books.rows[outcome];
      const got = rows[outcome];
      if (want.rows !== got.rows || want.weightedTokens !== got.weightedTokens) {
        return `${replica}'s disk holds ${got.rows} ${outcome} usage rows of ${got.weightedTokens} tokens, its requests left ${want.rows} of ${want.weightedTokens}`;
      }
    }
    return undefined;
  }

  private of(replica: ReplicaId): ReplicaBooks {
    let books = this.byReplica.get(replica);
    if (books === undefined) {
      books = { charged: new Array<number>(this.tenants).fill(0), released: new Array<number>(this.tenants).fill(0), rows: emptyTallies() };
      this.byReplica.set(replica, books);
    }
    return books;
  }
}
