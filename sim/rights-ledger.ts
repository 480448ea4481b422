import type { ReplicaId } from '../src/core/ids.js';
import { type KeyedRightsRow, type RightsRow, rightsOf } from '../src/crdt/bounded-counter.js';
import type { CounterKey } from '../src/crdt/counter-key.js';

/**
 * The escrow checkers' truth (src/admission/escrow.ts): every rights row any node ever held, and
 * the rights every claim round granted.
 *
 * Conservation. Rights enter a window's bounded counter only through a won claim (`grant`) or a
 * refund of rights spent on a request that used less; they leave only by a spend. So, per
 * escrowed key, with each owner's row as the largest any node held (rows only grow):
 *
 *   Σ_r rights(r) + Σ charged = Σ granted
 *
 * where Σ charged is what the admitted requests are truly charged (spent minus refunded, the
 * simulator's per-tenant truth). Lost state only strands rights: a crash without state takes its
 * replica's unsent spends and refunds along, and a grant whose commit was lost is still counted
 * here, so the checker holds `≤` at every check; `>` means rights came from nowhere. And no
 * owner's rights are ever negative in that merged view, even though a stale view may show them
 * so (a spend seen before the transfer that paid for it).
 *
 * A node that resumes its replica from its disk goes back to the rows its disk holds (`resumed`):
 * what it had changed and not committed never happened, and no peer saw it (it commits before it
 * sends), so its rows are replaced, not merged.
 */
export class RightsLedger {
  /** Per escrowed key id: the key, and every owner's largest row seen. */
  private readonly rows = new Map<string, { key: CounterKey; owners: Map<ReplicaId, RightsRow> }>();
  private readonly grants = new Map<string, number>();

  granted(key: CounterKey, amount: number): void {
    this.grants.set(key.id, (this.grants.get(key.id) ?? 0) + amount);
  }

  /** Merges what one node holds (its `EscrowBook.state()`). */
  observe(rows: readonly KeyedRightsRow[]): void {
    for (const { key, row } of rows) {
      const owners = this.keyRows(key);
      const known = owners.get(row.owner);
      owners.set(row.owner, known === undefined ? row : maxRow(known, row));
    }
  }

  /** `owner` restarted from its disk: its rows are what `stored` gives for each key (none: empty). */
  resumed(owner: ReplicaId, stored: (key: CounterKey) => RightsRow | undefined): void {
    for (const { key, owners } of this.rows.values()) {
      const row = stored(key);
      if (row === undefined) owners.delete(owner);
      else owners.set(owner, row);
    }
  }

  /** The first broken rule for `key`, whose admitted requests are charged `charged`, described. */
  check(key: CounterKey, charged: number): string | undefined {
    const entry = this.rows.get(key.id);
    const granted = this.grants.get(key.id) ?? 0;
    let total = 0;
    if (entry !== undefined) {
      for (const owner of entry.owners.keys()) {
        const rights = rightsOf(entry.owners, owner);
        if (rights < 0) return `${owner} holds ${rights} rights of ${key.subject}: below zero`;
        total += rights;
      }
    }
    if (total + charged > granted)
      return `${key.subject}'s rights (${total}) and charges (${charged}) add up to more than its claims granted (${granted}): rights came from nowhere`;
    return undefined;
  }

  private keyRows(key: CounterKey): Map<ReplicaId, RightsRow> {
    let entry = this.rows.get(key.id);
    if (entry === undefined) this.rows.set(key.id, (entry = { key, owners: new Map() }));
    return entry.owners;
  }
}

/**
 * Whether every view holds the same rights rows (`EscrowBook.state()` of each node): once the
 * mesh is whole and quiet they must, as the counters must. Returns the first difference.
 */
export function rightsDisagree(views: readonly { readonly name: string; readonly rows: readonly KeyedRightsRow[] }[]): string | undefined {
  const first = views[0];
  if (first === undefined) return undefined;
  const reference = indexRows(first.rows);
  for (const view of views.slice(1)) {
    const rows = indexRows(view.rows);
    for (const id of new Set([...reference.keys(), ...rows.keys()])) {
      const a = reference.get(id);
      const b = rows.get(id);
      if (a === undefined || b === undefined || !sameRow(a, b)) {
        return `${first.name} and ${view.name} hold different rights rows for ${id.split('\u001f').join('/')}: ${describe(a)} and ${describe(b)}`;
      }
    }
  }
  return undefined;
}

function indexRows(rows: readonly KeyedRightsRow[]): Map<string, RightsRow> {
  const index = new Map<string, RightsRow>();
  for (const { key, row } of rows) index.set(`${key.id}\u001e${row.owner}`, row);
  return index;
}

function sameRow(a: RightsRow, b: RightsRow): boolean {
  if (a.used !== b.used || a.cells.size !== b.cells.size) return false;
  for (const [to, amount] of a.cells) if (b.cells.get(to) !== amount) return false;
  return true;
}

function describe(row: RightsRow | undefined): string {
  if (row === undefined) return 'none';
  return `used ${row.used}, cells ${[...row.cells].map(([to, amount]) => `${to}:${amount}`).join(' ')}`;
}

function maxRow(a: RightsRow, b: RightsRow): RightsRow {
  const cells = new Map(a.cells);
  for (const [to, amount] of b.cells) cells.set(to, Math.max(cells.get(to) ?? 0, amount));
  return { owner: a.owner, cells, used: Math.max(a.used, b.used) };
}
