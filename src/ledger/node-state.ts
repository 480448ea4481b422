import type { LedgerRow } from './ledger-row.js';

/**
 * What a node keeps on disk, as plain records: the seam between the cores (which say what changed
 * since the last commit, see `durable-journal.ts`) and a store (SQLite in production,
 * src/ledger/sqlite-store.ts; memory in the simulator). Nothing here does I/O.
 *
 *   meta              the node's replica id, its start count, its counter's own version
 *                     (`counterVersion`), the schema's own bookkeeping
 *   counter entries   (p, n, version) per counter key and replica: this replica's own, and every
 *                     other replica's it holds, for a dead incarnation (one that lost its disk)
 *                     never sends its own again, and a quorum write this node acknowledged must
 *                     survive its restart (see src/crdt/windowed-counter.ts, "Durability")
 *   rights rows       this replica's own row of each escrowed limit's rights matrix
 *   open requests     the quota gate's admitted or admitting requests, with their reservations
 *                     and leases, as the gate's own JSON (src/admission/quota-gate.ts)
 *   policy updates    Yjs updates of the policy document, compacted now and then to one
 *   answers           entries of the answer ledgers (gateway answers, the forward ledger), as
 *                     their owner's JSON
 *   ledger rows       one per settled request (ledger-row.ts); appended, never updated
 *
 * Counter keys are stored by their parts, window by unit and index, so a store can drop expired
 * windows with one range delete; a counter entry is keyed by its key and its replica.
 */
export interface StoredCounterEntry {
  /** The replica whose entry it is: this node's own, or another's it held. */
  readonly replica: string;
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly unit: string;
  readonly index: number;
  /** When the key's window ends; rows whose window ended before the expiry horizon are deleted. */
  readonly endMs: number;
  /**
   * The key's id (src/crdt/counter-key.ts), when the writer has it at hand (the journal does): an
   * in-memory store indexes by it instead of building a string from the parts at every commit.
   * A store reads it from the parts, never from here.
   */
  readonly keyId?: string;
  readonly p: number;
  readonly n: number;
  readonly version: number;
}

export interface StoredRightsRow {
  /** The counter key id the escrowed limit is keyed by (src/crdt/counter-key.ts). */
  readonly keyId: string;
  readonly endMs: number;
  /** The row as JSON: `{ scope, subject, metric, unit, index, cells: [[replica, amount]...], used }`. */
  readonly json: string;
}

export interface StoredOpenRequest {
  readonly requestId: string;
  readonly json: string;
}

/** Which answer ledger an answer belongs to. */
export type AnswerBook = 'answers' | 'forward';

export interface StoredAnswer {
  readonly book: AnswerBook;
  readonly key: string;
  readonly atMs: number;
  readonly json: string;
}

/**
 * Everything one group commit writes, in one transaction. Within a batch the puts are applied
 * before the deletes, so a key both put and deleted (a request admitted and settled between two
 * commits) ends deleted; a later put of the same key belongs in a later batch.
 */
export interface StateBatch {
  readonly meta: readonly (readonly [string, string])[];
  readonly counterEntries: readonly StoredCounterEntry[];
  readonly rightsRows: readonly StoredRightsRow[];
  readonly openRequestsPut: readonly StoredOpenRequest[];
  readonly openRequestsDeleted: readonly string[];
  readonly policyUpdates: readonly Uint8Array[];
  readonly answersPut: readonly StoredAnswer[];
  readonly answersDeleted: readonly { readonly book: AnswerBook; readonly key: string }[];
  readonly ledgerRows: readonly LedgerRow[];
}

/** What a node reads back at start; everything but the ledger rows, which stay on disk. */
export interface NodeSnapshot {
  readonly meta: ReadonlyMap<string, string>;
  readonly counterEntries: readonly StoredCounterEntry[];
  readonly rightsRows: readonly StoredRightsRow[];
  readonly openRequests: readonly StoredOpenRequest[];
  readonly policyUpdates: readonly Uint8Array[];
  readonly answers: readonly StoredAnswer[];
}

/** Why a store refused a write or a read: each is a node that must stop taking work, never a silent loss. */
export type StoreError =
  | { readonly kind: 'full'; readonly message: string }
  | { readonly kind: 'read-only'; readonly message: string }
  | { readonly kind: 'corrupt'; readonly message: string }
  | { readonly kind: 'locked'; readonly message: string }
  | { readonly kind: 'io'; readonly message: string };

/**
 * A node's durable state. `commit` writes a batch in one transaction, all or nothing; after it
 * returns ok, the batch survives the process's death (and, with `sync: 'full'`, the machine's).
 */
export interface StateStore {
  load(): NodeSnapshot;
  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError };
  /** Deletes counter entries and rights rows whose window ended before `beforeMs`; returns how many. */
  dropExpired(beforeMs: number): number;
  /** Replaces every stored policy update with one (the document's whole state). */
  compactPolicy(state: Uint8Array): void;
}
