import { assert, isCount } from '../core/assert.js';
import type { ReplicaId } from '../core/ids.js';
import { escrowKeysMax, escrowRebalanceRecipientsMax, windowExpiryHorizonMs } from '../core/limits.js';
import { BoundedCounter, type KeyedRightsRow, type RightsRow } from '../crdt/bounded-counter.js';
import { counterKey, type CounterKey } from '../crdt/counter-key.js';
import { windowAt, windowEndMs, windowLengthMs, windowStartMs } from '../crdt/window.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';

/**
 * The `escrow` mode's books (DESIGN.md §4): for each escrowed limit window, a bounded counter
 * whose rights a node spends locally, with no round trip, while they last.
 *
 * Where rights come from. A limit's rights are claimed from it by strict quorum rounds on a
 * claims counter (`claimKey`): Σ claims ≤ limit is exactly a strict limit, so it inherits the
 * strict safety argument, and a node that claimed `c` creates `c` rights in its own row. Rights
 * are never conjured per node from configuration: a node that restarted without its state would
 * then create its share twice. Such a node comes back under a new replica id; the rights its old
 * incarnation held are stranded until the window ends (capacity lost, never quota overrun).
 *
 * Why the total stays under the limit: Σ rights created by claims ≤ limit; spending is a
 * decrement of the spender's own rights in its own view, which the bounded counter proves never
 * exceeds what it truly holds; a refund at settlement re-creates only rights this node spent on
 * that request. So Σ admitted usage ≤ Σ claims ≤ limit, through any partition.
 *
 * Moving rights toward demand. Every node records the amounts requested of each escrowed limit
 * (admitted or not) in a `demand` counter per minute, gossiped like any counter. `rebalance`
 * reads every replica's recent demand and, where this node holds more than its proportional
 * share of the rights in view, transfers half of the surplus (a throttle) to the replicas
 * furthest below theirs. Transfers are writes to this node's own row, replicated by the mesh as
 * rights deltas. When a node's rights run out it claims more from the limit's unclaimed rest;
 * when that is gone too, the request is refused and its demand pulls rights over from the
 * nodes that hold them.
 */
export interface EscrowStats {
  transfers: number;
  rightsTransferred: number;
  keysDropped: number;
  rowsDropped: number;
}

interface Entry {
  readonly key: CounterKey;
  readonly counter: BoundedCounter;
}

/** The counter whose strict limit hands out a window's rights: Σ claims ≤ limit. */
export function claimKey(key: CounterKey): CounterKey {
  return counterKey(`${key.scope}_claims`, key.subject, key.metric, key.window);
}

/** The per-minute demand counter of an escrowed limit, read by every node's rebalancer. */
export function demandKey(key: CounterKey, nowMs: number): CounterKey {
  return counterKey(demandScope(key), key.subject, key.metric, windowAt('minute', nowMs));
}

function demandScope(key: CounterKey): string {
  return `${key.scope}_demand`;
}

function rowId(key: CounterKey, owner: ReplicaId): string {
  return `${key.id}\u001e${owner}`;
}

export class EscrowBook {
  readonly stats: EscrowStats = { transfers: 0, rightsTransferred: 0, keysDropped: 0, rowsDropped: 0 };
  private readonly entries = new Map<string, Entry>();
  /** Rows changed since `takeChanged`, the latest snapshot per (key, owner): rows only grow. */
  private changed = new Map<string, KeyedRightsRow>();
  /** Entries whose own row changed since `takeChanged`: snapshotted once per gossip interval. */
  private ownChanged = new Set<Entry>();
  /**
   * Entries whose own row changed since `takeUnsaved`: what a durable node writes before it sends
   * (see below). Kept only once `keepDurable` was called: on a node without a store nobody takes
   * them, and the set held every window's entry the node ever changed, expired ones included.
   */
  private unsaved = new Set<Entry>();
  private durable = false;
  private lastNowMs = -Infinity;

  constructor(
    readonly self: ReplicaId,
    private readonly counter: WindowedCounter,
    private readonly keysMax: number = escrowKeysMax,
  ) {
    assert(counter.self === self, 'the escrow book and the counter belong to the same replica');
    assert(keysMax > 0 && keysMax <= escrowKeysMax, 'keysMax out of range');
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The book's tables, for the bound tests: `entries` ≤ `keysMax`; `ownChanged` and `unsaved` are
   * sets of live entries (an expired window leaves them too); `changed` holds at most a row per
   * owner of each live window (≤ `replicasMax` each) and empties every gossip interval.
   */
  tableSizes(): { readonly entries: number; readonly changed: number; readonly ownChanged: number; readonly unsaved: number } {
    return { entries: this.entries.size, changed: this.changed.size, ownChanged: this.ownChanged.size, unsaved: this.unsaved.size };
  }

  /** This node's rights under `key` in its own view. */
  rights(key: CounterKey): number {
    return this.entries.get(key.id)?.counter.localRights() ?? 0;
  }

  /**
   * Spends `amount` of this node's rights on every key, or none: true if all were covered.
   * `amount` per key comes from `amounts`, index for index.
   */
  spend(keys: readonly CounterKey[], amounts: readonly number[]): boolean {
    assert(keys.length === amounts.length, 'one amount per key');
    for (let i = 0; i < keys.length; i++) {
      if (this.rights(keys[i] as CounterKey) < (amounts[i] as number)) return false;
    }
    for (let i = 0; i < keys.length; i++) {
      const entry = this.entries.get((keys[i] as CounterKey).id) as Entry;
      const spent = entry.counter.consume(amounts[i] as number);
      assert(spent, 'rights were checked just above');
      this.changedOwn(entry);
    }
    return true;
  }

  /** Rights back: a settled request used less than it spent, or a later check refused it. */
  refund(key: CounterKey, amount: number): void {
    assert(isCount(amount), 'a refund is a count');
    if (amount === 0) return;
    const entry = this.entries.get(key.id);
    // The window was dropped (expired) meanwhile: there is nothing left to refund into.
    if (entry === undefined) return;
    entry.counter.create(amount);
    this.changedOwn(entry);
  }

  /** Creates rights a claim round won; false if the book is full (the claim is then wasted). */
  grant(key: CounterKey, amount: number): boolean {
    assert(isCount(amount), 'a grant is a count');
    const entry = this.entry(key);
    if (entry === undefined) return false;
    if (amount > 0) {
      entry.counter.create(amount);
      this.changedOwn(entry);
    }
    return true;
  }

  /** Records demand for `key` (admitted or not), for every node's rebalancer. */
  recordDemand(key: CounterKey, amount: number, nowMs: number): void {
    // The counter's key cache: this runs for every escrowed request.
    if (amount > 0) this.counter.increment(this.counter.keyFor(demandScope(key), key.subject, key.metric, windowAt('minute', nowMs)), amount);
  }

  /**
   * Moves rights toward demand; see the file comment. Returns the transfers made. Call it every
   * rebalance interval; it visits every live window this node holds rights in.
   */
  rebalance(nowMs: number): number {
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    let transfers = 0;
    for (const entry of this.entries.values()) {
      if (windowEndMs(entry.key.window) <= nowMs) continue;
      const mine = entry.counter.localRights();
      if (mine <= 0) continue;
      const demand = this.recentDemand(entry.key, nowMs);
      let demandTotal = 0;
      for (const amount of demand.values()) demandTotal += amount;
      if (demandTotal === 0) continue;
      let rightsTotal = 0;
      const holders = new Set<ReplicaId>([...entry.counter.owners(), ...demand.keys()]);
      for (const replica of holders) rightsTotal += Math.max(0, entry.counter.localRights(replica));
      const surplus = mine - (rightsTotal * (demand.get(this.self) ?? 0)) / demandTotal;
      // Hysteresis: small imbalances are not worth a row write on every node.
      if (surplus < Math.max(1, rightsTotal / 100)) continue;
      const deficits: { replica: ReplicaId; deficit: number }[] = [];
      for (const [replica, amount] of demand) {
        if (replica === this.self) continue;
        const deficit = (rightsTotal * amount) / demandTotal - Math.max(0, entry.counter.localRights(replica));
        if (deficit >= 1) deficits.push({ replica, deficit });
      }
      if (deficits.length === 0) continue;
      deficits.sort((a, b) => b.deficit - a.deficit || (a.replica < b.replica ? -1 : 1));
      const chosen = deficits.slice(0, escrowRebalanceRecipientsMax);
      const deficitTotal = chosen.reduce((sum, d) => sum + d.deficit, 0);
      const give = Math.min(Math.floor(surplus / 2), Math.floor(deficitTotal));
      for (const { replica, deficit } of chosen) {
        const amount = Math.min(Math.floor((give * deficit) / deficitTotal), Math.floor(deficit));
        if (amount <= 0) continue;
        const moved = entry.counter.transfer(replica, amount);
        if (!moved.ok) break;
        this.queue(entry.key, moved.value);
        if (this.durable) this.unsaved.add(entry);
        this.stats.transfers++;
        this.stats.rightsTransferred += amount;
        transfers++;
      }
    }
    return transfers;
  }

  /** Drops windows that ended more than the counter expiry horizon ago. */
  expire(nowMs: number): number {
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    let dropped = 0;
    for (const [id, entry] of this.entries) {
      if (this.expired(entry.key)) {
        this.entries.delete(id);
        this.ownChanged.delete(entry);
        this.unsaved.delete(entry);
        dropped++;
      }
    }
    return dropped;
  }

  // ---- RightsReplica (src/mesh/mesh-node.ts) ----

  takeChanged(): KeyedRightsRow[] {
    for (const entry of this.ownChanged) {
      // A window dropped by expiry since it changed has nothing left to send.
      if (this.entries.get(entry.key.id) === entry) this.changed.set(rowId(entry.key, this.self), { key: entry.key, row: entry.counter.ownState() });
    }
    this.ownChanged.clear();
    if (this.changed.size === 0) return [];
    const rows = [...this.changed.values()];
    this.changed = new Map();
    return rows;
  }

  state(): KeyedRightsRow[] {
    const rows: KeyedRightsRow[] = [];
    for (const entry of this.entries.values()) for (const row of entry.counter.state()) rows.push({ key: entry.key, row });
    return rows;
  }

  join(rows: readonly KeyedRightsRow[]): void {
    for (const { key, row } of rows) {
      // Our own row comes back from peers after a restart with durable state; a row of ours we
      // do not hold would mean a lost state under a reused id, which the replica ids prevent.
      if (this.expired(key)) continue;
      const entry = this.entry(key);
      if (entry === undefined) continue;
      this.stats.rowsDropped += entry.counter.join([row], (raised: RightsRow) => {
        this.changed.set(rowId(key, raised.owner), { key, row: raised });
        if (raised.owner === this.self && this.durable) this.unsaved.add(entry);
      });
    }
  }

  // ---- Durability ----

  /** Keeps the rows `takeUnsaved` hands out from now on; the owner must then take them every commit. */
  keepDurable(): void {
    this.durable = true;
  }

  /**
   * This node's own rows changed since the last call. A node that resumes under its own replica
   * id after a restart writes them before it sends any frame, as it does its counter entries
   * (src/crdt/windowed-counter.ts, "Durability"): a row a peer saw must never be larger than the
   * one on disk, or rights spent before the crash would be spent again.
   */
  takeUnsaved(): KeyedRightsRow[] {
    const rows: KeyedRightsRow[] = [];
    for (const entry of this.unsaved) {
      if (this.entries.get(entry.key.id) === entry) rows.push({ key: entry.key, row: entry.counter.ownState() });
    }
    this.unsaved.clear();
    return rows;
  }

  /** Puts back this node's own rows as a durable store kept them, at start; expired windows are left out. */
  restoreOwn(rows: readonly KeyedRightsRow[], nowMs: number): void {
    this.lastNowMs = Math.max(this.lastNowMs, nowMs);
    for (const { key, row } of rows) {
      assert(row.owner === this.self, 'a node restores only its own rights rows');
      if (this.expired(key)) continue;
      const entry = this.entry(key);
      if (entry !== undefined) this.stats.rowsDropped += entry.counter.join([row], () => {});
    }
  }

  // ---- Internals ----

  private changedOwn(entry: Entry): void {
    this.ownChanged.add(entry);
    if (this.durable) this.unsaved.add(entry);
  }

  private entry(key: CounterKey): Entry | undefined {
    let entry = this.entries.get(key.id);
    if (entry === undefined) {
      if (this.entries.size >= this.keysMax) {
        this.stats.keysDropped++;
        return undefined;
      }
      entry = { key, counter: new BoundedCounter(this.self) };
      this.entries.set(key.id, entry);
    }
    return entry;
  }

  private queue(key: CounterKey, rows: readonly RightsRow[]): void {
    for (const row of rows) this.changed.set(rowId(key, row.owner), { key, row });
  }

  private expired(key: CounterKey): boolean {
    return windowEndMs(key.window) + windowExpiryHorizonMs < this.lastNowMs;
  }

  /**
   * Per replica, the amounts requested of `key` over about the last minute: the current
   * minute's demand plus the previous minute's, weighted by how much of it still lies within
   * the last sixty seconds.
   */
  private recentDemand(key: CounterKey, nowMs: number): Map<ReplicaId, number> {
    const current = demandKey(key, nowMs);
    const previous = counterKey(current.scope, current.subject, current.metric, { unit: 'minute', index: current.window.index - 1 });
    const elapsed = (nowMs - windowStartMs(current.window)) / windowLengthMs.minute;
    const demand = new Map<ReplicaId, number>();
    for (const [replica, entry] of this.counter.contributions(current)) demand.set(replica, entry.p);
    for (const [replica, entry] of this.counter.contributions(previous)) {
      demand.set(replica, (demand.get(replica) ?? 0) + entry.p * (1 - elapsed));
    }
    return demand;
  }
}
