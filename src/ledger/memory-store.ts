import { checkedCounterKey } from '../crdt/counter-key.js';
import type { WindowUnit } from '../crdt/window.js';
import type { LedgerRow } from './ledger-row.js';
import type { NodeSnapshot, StateBatch, StateStore, StoreError, StoredAnswer, StoredCounterEntry, StoredOpenRequest, StoredRightsRow } from './node-state.js';

/**
 * A `StateStore` in memory, for the simulator and tests: a commit is the sync point (what was
 * not committed is lost when the node "crashes", i.e. when its cores are rebuilt from `load()`),
 * and `failWith` makes commits fail the way a full or read-only disk does. Ledger rows are kept
 * in an array that the caller bounds (`rowsMax`, oldest dropped first and counted).
 */
export class MemoryStore implements StateStore {
  readonly rows: LedgerRow[] = [];
  rowsDropped = 0;
  commits = 0;
  /** While set, every commit fails with it and changes nothing. */
  failWith: StoreError | undefined;
  private readonly meta = new Map<string, string>();
  private readonly counters = new Map<string, StoredCounterEntry>();
  private readonly rights = new Map<string, StoredRightsRow>();
  private readonly open = new Map<string, StoredOpenRequest>();
  private policy: Uint8Array[] = [];
  private readonly answers = new Map<string, StoredAnswer>();

  constructor(private readonly rowsMax: number = 1_000_000) {}

  load(): NodeSnapshot {
    return {
      meta: new Map(this.meta),
      counterEntries: [...this.counters.values()],
      rightsRows: [...this.rights.values()],
      openRequests: [...this.open.values()],
      policyUpdates: [...this.policy],
      answers: [...this.answers.values()],
    };
  }

  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError } {
    if (this.failWith !== undefined) return { ok: false, error: this.failWith };
    for (const [key, value] of batch.meta) this.meta.set(key, value);
    // The replica and the journal's own key id, not a string built from the six parts: that, for
    // every entry of every commit, was the simulator's costliest function (issue 17).
    for (const entry of batch.counterEntries) this.counters.set(`${entry.replica}\u001f${entry.keyId ?? storedKeyId(entry)}`, entry);
    for (const row of batch.rightsRows) this.rights.set(row.keyId, row);
    for (const request of batch.openRequestsPut) this.open.set(request.requestId, request);
    this.policy.push(...batch.policyUpdates);
    for (const answer of batch.answersPut) this.answers.set(`${answer.book}\u001f${answer.key}`, answer);
    // Deletes after puts, as the SQLite store applies them.
    for (const id of batch.openRequestsDeleted) this.open.delete(id);
    for (const { book, key } of batch.answersDeleted) this.answers.delete(`${book}\u001f${key}`);
    for (const row of batch.ledgerRows) {
      this.rows.push(row);
      if (this.rows.length > this.rowsMax) {
        this.rows.shift();
        this.rowsDropped++;
      }
    }
    this.commits++;
    return { ok: true };
  }

  dropExpired(beforeMs: number): number {
    let dropped = 0;
    for (const [key, entry] of this.counters) {
      if (entry.endMs < beforeMs) {
        this.counters.delete(key);
        dropped++;
      }
    }
    for (const [key, row] of this.rights) {
      if (row.endMs < beforeMs) {
        this.rights.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  compactPolicy(state: Uint8Array): void {
    this.policy = [state];
  }
}

/** The id of a stored entry's key, for an entry written without it (the journal writes it). */
function storedKeyId(entry: StoredCounterEntry): string {
  return checkedCounterKey(entry.scope, entry.subject, entry.metric, { unit: entry.unit as WindowUnit, index: entry.index }).id;
}
