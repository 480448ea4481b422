import type { LedgerOutcome } from '../src/ledger/ledger-row.js';
import { MemoryStore } from '../src/ledger/memory-store.js';
import type { NodeSnapshot, StateBatch, StateStore, StoreError } from '../src/ledger/node-state.js';

/**
 * A simulated node's disk: the production in-memory store (src/ledger/memory-store.ts), whose
 * `commit` is the sync point, kept across the node's crashes with state and replaced by an empty
 * one when the disk is lost. What a node had not committed when it crashed is simply gone: its
 * cores are dropped and the next incarnation starts from `load()`.
 *
 * Usage rows are folded into tallies per outcome as they are committed instead of being kept: a
 * long run writes millions, and the checkers (sim/durable-books.ts) compare counts and sums.
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

  get commits(): number {
    return this.store.commits;
  }

  load(): NodeSnapshot {
    return this.store.load();
  }

  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError } {
    const written = this.store.commit(batch);
    if (!written.ok) return written;
    for (const row of batch.ledgerRows) {
      const tally = this.rows[row.outcome];
      tally.rows++;
      tally.weightedTokens += row.weightedTokens;
    }
    return written;
  }

  dropExpired(beforeMs: number): number {
    return this.store.dropExpired(beforeMs);
  }

  compactPolicy(state: Uint8Array): void {
    this.store.compactPolicy(state);
  }
}
