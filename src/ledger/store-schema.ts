import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';

/**
 * The store's schema as an ordered list of migrations. A database records the migrations applied
 * to it in SQLite's `user_version` (0 for a new file); opening it applies the missing ones in
 * order, each in a transaction of its own together with the version it reaches, so a crash
 * between two migrations leaves a database at a version this list knows, never between two.
 *
 * Rules for the next migration: append, never edit one that shipped (databases in the field went
 * through it as it was); keep it meaningful on a database with data in it; and extend
 * test/ledger/store-migrations.test.ts, which builds a database at every earlier version, fills
 * it, and opens it with the current code.
 *
 * Tables (node-state.ts says what each record is):
 *
 *   meta             key → value
 *   counter_entries  (replica, scope, subject, metric, unit, window_index) → p, n, version, end_ms
 *   rights_rows      key_id → end_ms, json
 *   open_requests    request_id → json
 *   policy_updates   seq → bytes (Yjs updates in the order they were made)
 *   answers          (book, key) → at_ms, json
 *   ledger           id (rowid: one more than the largest, so in insertion order) → every field of a LedgerRow
 *   ledger_daily     (day, role, tenant, user, api_key_id, model, account) → sums and a count
 *   credentials      account → kind, json, origin, updated_ms: the upstream credentials this node
 *                    renewed or an operator replaced (src/node/credentials/credential-vault.ts);
 *                    secrets, so the data folder must be private to the node's user
 *
 * Booleans are 0/1 integers. In `ledger_daily` an absent user, key or account is '' rather than
 * NULL: NULLs are distinct in a primary key, so rows without a user would never fold into one
 * aggregate.
 */
export interface Migration {
  /** The `user_version` a database has once this migration is applied. */
  readonly version: number;
  /** What it brings, for the log and the reader. */
  readonly purpose: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    purpose: "the node's state (meta, own counter entries, rights rows, open requests, policy updates, answers) and the usage ledger",
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE counter_entries (
        scope TEXT NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT NOT NULL, window_index INTEGER NOT NULL,
        end_ms INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (scope, subject, metric, unit, window_index)
      ) WITHOUT ROWID;
      CREATE INDEX counter_entries_end ON counter_entries (end_ms);
      CREATE TABLE rights_rows (key_id TEXT PRIMARY KEY, end_ms INTEGER NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX rights_rows_end ON rights_rows (end_ms);
      CREATE TABLE open_requests (request_id TEXT PRIMARY KEY, json TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE policy_updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, bytes BLOB NOT NULL);
      CREATE TABLE answers (
        book TEXT NOT NULL, key TEXT NOT NULL, at_ms INTEGER NOT NULL, json TEXT NOT NULL,
        PRIMARY KEY (book, key)
      ) WITHOUT ROWID;
      -- The id is a plain rowid, not AUTOINCREMENT: that would write sqlite_sequence's page in
      -- every commit for nothing (the id only orders rows of the same millisecond; roll-ups delete
      -- the oldest rows, so the largest id, which the next one follows, stays).
      CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL, role TEXT NOT NULL, tenant TEXT NOT NULL, user TEXT, api_key_id TEXT, account TEXT,
        origin_region TEXT NOT NULL, served_region TEXT NOT NULL, node TEXT NOT NULL, model TEXT NOT NULL, stream INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
        weighted_tokens INTEGER NOT NULL, cost_micros INTEGER, outcome TEXT NOT NULL, status TEXT NOT NULL,
        estimated INTEGER NOT NULL, client_left INTEGER NOT NULL, drained INTEGER NOT NULL,
        charged_at_ms INTEGER NOT NULL, settled_at_ms INTEGER NOT NULL, duration_ms INTEGER NOT NULL
      );
      CREATE INDEX ledger_charged ON ledger (charged_at_ms);
    `,
  },
  {
    version: 2,
    purpose: 'retention (daily aggregates of rows past their age) and the indexes the usage queries by tenant, account and request use',
    sql: `
      CREATE TABLE ledger_daily (
        day INTEGER NOT NULL, role TEXT NOT NULL, tenant TEXT NOT NULL, user TEXT NOT NULL, api_key_id TEXT NOT NULL,
        model TEXT NOT NULL, account TEXT NOT NULL,
        requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL, weighted_tokens INTEGER NOT NULL,
        cost_micros INTEGER NOT NULL,
        PRIMARY KEY (day, role, tenant, user, api_key_id, model, account)
      ) WITHOUT ROWID;
      CREATE INDEX ledger_daily_tenant ON ledger_daily (tenant, day);
      CREATE INDEX ledger_daily_account ON ledger_daily (account, day);
      CREATE INDEX ledger_tenant ON ledger (tenant, charged_at_ms);
      CREATE INDEX ledger_account ON ledger (account, charged_at_ms);
      CREATE INDEX ledger_request ON ledger (request_id);
    `,
  },
  {
    version: 3,
    purpose:
      "every replica's counter entries, not only the node's own: the replica joins the key (rows kept so far are the node's own, the replica its meta names)",
    sql: `
      CREATE TABLE counter_entries_by_replica (
        replica TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT NOT NULL, window_index INTEGER NOT NULL,
        end_ms INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (replica, scope, subject, metric, unit, window_index)
      ) WITHOUT ROWID;
      INSERT INTO counter_entries_by_replica
        SELECT coalesce((SELECT value FROM meta WHERE key = 'replica'), ''), scope, subject, metric, unit, window_index, end_ms, p, n, version
        FROM counter_entries;
      DROP TABLE counter_entries;
      ALTER TABLE counter_entries_by_replica RENAME TO counter_entries;
      CREATE INDEX counter_entries_end ON counter_entries (end_ms);
    `,
  },
  {
    version: 4,
    purpose:
      'the upstream credentials the node renewed (rotated OAuth refresh tokens) or an operator replaced, each with the fingerprint of the configured credential it descends from',
    sql: `
      CREATE TABLE credentials (
        account TEXT PRIMARY KEY, kind TEXT NOT NULL, json TEXT NOT NULL, origin TEXT NOT NULL, updated_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

/** The version a database has once every migration this build knows is applied. */
export const schemaVersion = migrations.length;

migrations.forEach((migration, i) => assert(migration.version === i + 1, 'migrations are numbered 1, 2, ... in order'));

export function userVersion(db: Database.Database): number {
  const version = db.pragma('user_version', { simple: true });
  assert(typeof version === 'number', 'user_version is a number');
  return version;
}

/**
 * Applies the migrations after the database's version up to `target` (all of them unless a test
 * asks for fewer), each in its own transaction. The caller has checked that the database is not
 * newer than this build. SQLite errors propagate: the caller maps them to a StoreError.
 */
export function migrate(db: Database.Database, target: number = schemaVersion): { readonly from: number; readonly to: number } {
  assert(Number.isInteger(target) && target >= 0 && target <= schemaVersion, 'a known target version');
  const from = userVersion(db);
  assert(from <= schemaVersion, 'the caller refuses a newer database');
  for (const migration of migrations.slice(from, target)) {
    db.transaction(() => {
      db.exec(migration.sql);
      // user_version lives in the database header, which the transaction writes with the tables.
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
  return { from, to: Math.max(from, target) };
}
