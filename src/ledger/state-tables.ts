import type Database from 'better-sqlite3';
import { assert, isCount } from '../core/assert.js';
import { storeLoadChunkEntriesMax } from '../core/limits.js';
import { insertLedgerSql, ledgerValues, type SqlValue } from './ledger-columns.js';
import type { AnswerBook, NodeSnapshot, StateBatch, StoredAnswer, StoredCounterEntry, StoredOpenRequest, StoredRightsRow } from './node-state.js';

/**
 * The node-state tables behind a store: the statements of a group commit, prepared once, and the
 * reads of a restart. SQLite errors propagate to the store, which maps them to StoreErrors; a
 * batch that fails rolls back whole (better-sqlite3's transaction function does the ROLLBACK).
 */
export class StateTables {
  /** Applies a batch in one transaction: puts first, then deletes, then appends (node-state.ts). */
  readonly apply: (batch: StateBatch) => void;
  readonly dropExpired: (beforeMs: number) => number;
  readonly compactPolicy: (state: Uint8Array) => void;
  private readonly reads: {
    readonly meta: Database.Statement;
    readonly counters: Database.Statement;
    readonly rights: Database.Statement;
    readonly open: Database.Statement;
    readonly policy: Database.Statement;
    readonly answers: Database.Statement;
  };

  constructor(db: Database.Database) {
    const put = {
      meta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      counter: db.prepare(
        `INSERT INTO counter_entries (replica, scope, subject, metric, unit, window_index, end_ms, p, n, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (replica, scope, subject, metric, unit, window_index) DO UPDATE SET end_ms = excluded.end_ms, p = excluded.p, n = excluded.n, version = excluded.version`,
      ),
      rights: db.prepare(
        'INSERT INTO rights_rows (key_id, end_ms, json) VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET end_ms = excluded.end_ms, json = excluded.json',
      ),
      open: db.prepare('INSERT INTO open_requests (request_id, json) VALUES (?, ?) ON CONFLICT (request_id) DO UPDATE SET json = excluded.json'),
      answer: db.prepare(
        'INSERT INTO answers (book, key, at_ms, json) VALUES (?, ?, ?, ?) ON CONFLICT (book, key) DO UPDATE SET at_ms = excluded.at_ms, json = excluded.json',
      ),
      policy: db.prepare('INSERT INTO policy_updates (bytes) VALUES (?)'),
      ledger: db.prepare(insertLedgerSql),
    };
    const del = {
      open: db.prepare('DELETE FROM open_requests WHERE request_id = ?'),
      answer: db.prepare('DELETE FROM answers WHERE book = ? AND key = ?'),
      expiredCounters: db.prepare('DELETE FROM counter_entries WHERE end_ms < ?'),
      expiredRights: db.prepare('DELETE FROM rights_rows WHERE end_ms < ?'),
      policy: db.prepare('DELETE FROM policy_updates'),
    };
    this.apply = db.transaction((batch: StateBatch) => {
      for (const [key, value] of batch.meta) put.meta.run(key, value);
      for (const e of batch.counterEntries) {
        assert(
          Number.isSafeInteger(e.index) && Number.isSafeInteger(e.endMs) && isCount(e.p) && isCount(e.n) && isCount(e.version),
          'a counter entry holds counts',
        );
        put.counter.run(e.replica, e.scope, e.subject, e.metric, e.unit, e.index, e.endMs, e.p, e.n, e.version);
      }
      for (const r of batch.rightsRows) put.rights.run(r.keyId, r.endMs, r.json);
      for (const o of batch.openRequestsPut) put.open.run(o.requestId, o.json);
      for (const a of batch.answersPut) put.answer.run(a.book, a.key, a.atMs, a.json);
      for (const id of batch.openRequestsDeleted) del.open.run(id);
      for (const a of batch.answersDeleted) del.answer.run(a.book, a.key);
      for (const update of batch.policyUpdates) put.policy.run(asBuffer(update));
      for (const row of batch.ledgerRows) put.ledger.run(ledgerValues(row));
    });
    this.dropExpired = db.transaction((beforeMs: number) => del.expiredCounters.run(beforeMs).changes + del.expiredRights.run(beforeMs).changes);
    this.compactPolicy = db.transaction((state: Uint8Array) => {
      del.policy.run();
      put.policy.run(asBuffer(state));
    });
    this.reads = {
      meta: db.prepare('SELECT key, value FROM meta').raw(),
      counters: db
        .prepare(
          `SELECT json_group_array(json_array(replica, scope, subject, metric, unit, window_index, end_ms, p, n, version)) FROM (
             SELECT * FROM counter_entries WHERE (replica, scope, subject, metric, unit, window_index) > (?, ?, ?, ?, ?, ?)
             ORDER BY replica, scope, subject, metric, unit, window_index LIMIT ${storeLoadChunkEntriesMax})`,
        )
        .pluck(),
      rights: db.prepare('SELECT key_id, end_ms, json FROM rights_rows').raw(),
      open: db.prepare('SELECT request_id, json FROM open_requests').raw(),
      policy: db.prepare('SELECT bytes FROM policy_updates ORDER BY seq').raw(),
      answers: db.prepare('SELECT book, key, at_ms, json FROM answers').raw(),
    };
  }

  /**
   * Counter entries (every replica's the node held), the largest table a node loads (100,000 keys
   * and more). A row crossing from SQLite to JavaScript costs about a microsecond in
   * better-sqlite3, while one JSON string of many rows is parsed by V8 several times faster; so the
   * entries come as JSON arrays of
   * `storeLoadChunkEntriesMax` rows, each chunk starting after the last key of the one before.
   */
  private readCounterEntries(): StoredCounterEntry[] {
    const entries: StoredCounterEntry[] = [];
    let after = beforeFirstKey;
    for (;;) {
      const chunk = JSON.parse(this.reads.counters.get(after) as string) as [string, string, string, string, string, number, number, number, number, number][];
      for (const [replica, scope, subject, metric, unit, index, endMs, p, n, version] of chunk)
        entries.push({ replica, scope, subject, metric, unit, index, endMs, p, n, version });
      if (chunk.length < storeLoadChunkEntriesMax) return entries;
      after = chunk[chunk.length - 1]!.slice(0, 6);
    }
  }

  /** Everything but the ledger, as stored (each table in its key order). SQLite errors propagate. */
  read(): NodeSnapshot {
    const rows = (statement: Database.Statement): unknown[][] => statement.all() as unknown[][];
    return {
      meta: new Map(rows(this.reads.meta).map((r) => [r[0] as string, r[1] as string])),
      counterEntries: this.readCounterEntries(),
      rightsRows: rows(this.reads.rights).map((r): StoredRightsRow => ({ keyId: r[0] as string, endMs: r[1] as number, json: r[2] as string })),
      openRequests: rows(this.reads.open).map((r): StoredOpenRequest => ({ requestId: r[0] as string, json: r[1] as string })),
      policyUpdates: rows(this.reads.policy).map((r) => {
        const bytes = r[0] as Buffer;
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      }),
      answers: rows(this.reads.answers).map((r): StoredAnswer => ({
        book: r[0] as AnswerBook,
        key: r[1] as string,
        atMs: r[2] as number,
        json: r[3] as string,
      })),
    };
  }
}

/** The first key of the counter table's order: every stored key compares greater. */
const beforeFirstKey: readonly SqlValue[] = ['', '', '', '', '', Number.MIN_SAFE_INTEGER];

/** better-sqlite3 binds Buffers as BLOBs; a view over the same memory costs no copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
