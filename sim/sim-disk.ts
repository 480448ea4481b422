import type { LedgerOutcome } from '../src/ledger/ledger-row.js';
import { MemoryStore } from '../src/ledger/memory-store.js';
import { checkedCounterKey, type CounterKey } from '../src/crdt/counter-key.js';
import type { WindowUnit } from '../src/crdt/window.js';
import type { NodeSnapshot, StateBatch, StateStore, StoreError, StoredCounterEntry, StoredRightsRow } from '../src/ledger/node-state.js';

/**
 * A simulated node's disk: the production in-memory store (src/ledger/memory-store.ts), whose
 * `commit` is the sync point, kept across the node's crashes with state and replaced by an empty
 * one when the disk is lost. What a node had not committed when it crashed is simply gone: its
 * cores are dropped and the next incarnation starts from `load()`.
 *
 * Usage rows are folded into tallies per outcome as they are committed instead of being kept: a
 * long run writes millions, and the checkers (sim/durable-books.ts) compare counts and sums. The
 * node's own counter entries and rights rows committed are also indexed for the simulator's disk
 * check, which asks at every step what the disk holds of one of them (`ownEntry`, `rightsRow`).
 */
export interface RowTally {
  rows: number;
  weightedTokens: number;
}

export type RowTallies = Record<LedgerOutcome, RowTally>;

export function emptyTallies(): RowTallies {
  return { ok: { rows: 0, weightedTokens: 0 }, failed: { rows: 0, weightedTokens: 0 }, interrupted: { rows: 0, weightedTokens: 0 } };
}

export class SimDisk implements StateStore {
  readonly rows = emptyTallies();
  // Rows are not kept (rowsMax 0): each is tallied below, then dropped by the store.
  private readonly store = new MemoryStore(0);
  /** The replica the disk's meta names: its node's own entries are indexed. */
  private self: string | undefined;
  private readonly ownEntries = new Map<string, StoredCounterEntry>();
  private readonly rights = new Map<string, StoredRightsRow>();

  get commits(): number {
    return this.store.commits;
  }

  load(): NodeSnapshot {
    return this.store.load();
  }

  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError } {
    const written = this.store.commit(batch);
    if (!written.ok) return written;
    for (const [key, value] of batch.meta) if (key === 'replica') this.self = value;
    for (const entry of batch.counterEntries) if (entry.replica === this.self) this.ownEntries.set(entry.keyId ?? storedKeyId(entry), entry);
    for (const row of batch.rightsRows) this.rights.set(row.keyId, row);
    for (const row of batch.ledgerRows) {
      const tally = this.rows[row.outcome];
      tally.rows++;
      tally.weightedTokens += row.weightedTokens;
    }
    return written;
  }

  dropExpired(beforeMs: number): number {
    for (const [id, entry] of this.ownEntries) if (entry.endMs < beforeMs) this.ownEntries.delete(id);
    for (const [id, row] of this.rights) if (row.endMs < beforeMs) this.rights.delete(id);
    return this.store.dropExpired(beforeMs);
  }

  /** What the disk holds of its own node's entry for `key`. */
  ownEntry(key: CounterKey): StoredCounterEntry | undefined {
    return this.ownEntries.get(key.id);
  }

  /** The rights row the disk holds under `key`: its node's own. */
  rightsRow(key: CounterKey): StoredRightsRow | undefined {
    return this.rights.get(key.id);
  }

  compactPolicy(state: Uint8Array): void {
    this.store.compactPolicy(state);
  }
}

/** The id of a stored entry's key, for an entry written without it (the journal writes it). */
function storedKeyId(entry: StoredCounterEntry): string {
  return checkedCounterKey(entry.scope, entry.subject, entry.metric, { unit: entry.unit as WindowUnit, index: entry.index }).id;
}
