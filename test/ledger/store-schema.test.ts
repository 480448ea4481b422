// Proves the migrations: a database built and filled at every earlier schema version opens with
// the current code with its data intact and its queries working, ends with the same schema as a
// new file, and a migration that fails leaves the database at the version before it.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, migrations, schemaVersion, userVersion } from '../../src/ledger/store-schema.js';
import { day0Ms, ledgerRow, openStore, storeOptions, tempFolder } from '../support/ledger.js';

const dayMs = 86_400_000;

/**
 * What a node of each earlier version would have written, in that version's own SQL. A new
 * migration must add the version it leaves behind here (the first test checks that it did).
 */
const writeAtVersion: Record<number, (db: Database.Database) => void> = {
  0: () => {},
  1: (db) => writeOwnEntriesOnly(db),
  // Version 2 added the aggregates; the tables a node wrote were those of version 1.
  2: (db) => writeOwnEntriesOnly(db),
  // Version 3 keyed counter entries by replica; the rest is as before.
  3: (db) => writeEntriesByReplica(db),
};

/** Version 3: every replica's counter entries, the replica in the key; the rest as before. */
function writeEntriesByReplica(db: Database.Database): void {
  writeOwnEntriesOnly(db, "INSERT INTO counter_entries VALUES ('eu-1~r1', 'tenant', 'acme', 'weighted_tokens', 'day', 20423, ?, 50, 5, 9)");
}

/** Versions 1 and 2 kept the node's own counter entries only, keyed without their replica (the one meta names). */
function writeOwnEntriesOnly(
  db: Database.Database,
  counterInsert = "INSERT INTO counter_entries VALUES ('tenant', 'acme', 'weighted_tokens', 'day', 20423, ?, 50, 5, 9)",
): void {
  db.prepare("INSERT INTO meta (key, value) VALUES ('replicaId', 'eu/node-1#2')").run();
  db.prepare("INSERT INTO meta (key, value) VALUES ('replica', 'eu-1~r1')").run();
  db.prepare(counterInsert).run(day0Ms + dayMs);
  db.prepare("INSERT INTO rights_rows VALUES ('k1', ?, '{\"used\":3}')").run(day0Ms);
  db.prepare("INSERT INTO open_requests VALUES ('r7', '{\"lease\":1}')").run();
  db.prepare('INSERT INTO policy_updates (bytes) VALUES (?)').run(Buffer.from([7, 7]));
  db.prepare("INSERT INTO answers VALUES ('forward', 'r6:acct-1', 12, '{}')").run();
  const insert = db.prepare(`INSERT INTO ledger (request_id, role, tenant, user, api_key_id, account, origin_region, served_region, node, model, stream,
    input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, weighted_tokens, cost_micros, outcome, status, estimated, client_left,
    drained, charged_at_ms, settled_at_ms, duration_ms) VALUES (?, 'local', 'acme', 'ada', NULL, 'acct-1', 'eu', 'eu', 'eu/node-1',
    'claude-sonnet-4-6', 0, 100, 20, 0, 0, 200, 600, 'ok', 'ok', 0, 0, 0, ?, ?, 40)`);
  insert.run('old', day0Ms - 200 * dayMs, day0Ms - 200 * dayMs + 40);
  insert.run('new', day0Ms, day0Ms + 40);
}

let folder: ReturnType<typeof tempFolder>;
beforeEach(() => {
  folder = tempFolder();
});
afterEach(() => folder.remove());

function schemaOf(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY name").pluck().all() as string[]).map((s) =>
      s.replace(/\s+/g, ' '),
    );
  } finally {
    db.close();
  }
}

describe('store migrations', () => {
  it('has a writer for every earlier version, and at least two migrations', () => {
    expect(schemaVersion).toBeGreaterThanOrEqual(2);
    expect(Object.keys(writeAtVersion).map(Number)).toEqual(Array.from({ length: schemaVersion }, (_, v) => v));
    expect(migrations.map((m) => m.version)).toEqual(Array.from({ length: schemaVersion }, (_, v) => v + 1));
  });

  for (let version = 0; version < schemaVersion; version++) {
    it(`opens a database filled at version ${version} with its data and queries intact`, () => {
      const path = join(folder.path, `v${version}.db`);
      const db = new Database(path);
      expect(migrate(db, version)).toEqual({ from: 0, to: version });
      writeAtVersion[version]!(db);
      db.close();

      const store = openStore(path);
      try {
        const snapshot = store.load();
        if (version >= 1) {
          expect(snapshot.meta.get('replicaId')).toBe('eu/node-1#2');
          // Entries kept before version 3 are the node's own: the replica its meta names.
          expect(snapshot.counterEntries).toEqual([
            {
              replica: 'eu-1~r1',
              scope: 'tenant',
              subject: 'acme',
              metric: 'weighted_tokens',
              unit: 'day',
              index: 20423,
              endMs: day0Ms + dayMs,
              p: 50,
              n: 5,
              version: 9,
            },
          ]);
          expect(snapshot.rightsRows).toEqual([{ keyId: 'k1', endMs: day0Ms, json: '{"used":3}' }]);
          expect(snapshot.openRequests).toEqual([{ requestId: 'r7', json: '{"lease":1}' }]);
          expect(snapshot.policyUpdates).toEqual([Uint8Array.of(7, 7)]);
          expect(snapshot.answers).toEqual([{ book: 'forward', key: 'r6:acct-1', atMs: 12, json: '{}' }]);
          const exported: string[] = [];
          store.eachRow({ side: 'tenant', tenant: 'acme' }, (row) => exported.push(row.requestId));
          expect(exported).toEqual(['old', 'new']);
          expect(store.queryUsage({ filter: { side: 'tenant' }, rowsLimit: 1 }).rows).toEqual([ledgerRow({ requestId: 'new', apiKeyId: null })]);
        }
        // Rows written before the aggregates existed roll up into them like any other.
        const before = store.queryUsage({ filter: { side: 'account', account: 'acct-1' } }).totals;
        expect(store.rollUp(day0Ms)).toEqual({ ok: true, value: version >= 1 ? 1 : 0 });
        expect(store.queryUsage({ filter: { side: 'account', account: 'acct-1' } })).toMatchObject({ totals: before, fromAggregates: version >= 1 ? 1 : 0 });
        // Version 4's credentials table is there and empty, and takes a credential.
        expect(store.credential('acct-1')).toEqual({ ok: true, value: undefined });
        expect(store.putCredential({ account: 'acct-1', kind: 'oauth', json: '{}', origin: 'none', updatedMs: 5 })).toEqual({ ok: true, value: undefined });
        expect(store.credential('acct-1')).toEqual({ ok: true, value: { account: 'acct-1', kind: 'oauth', json: '{}', origin: 'none', updatedMs: 5 } });
        expect(
          store.commit({
            meta: [['after', 'migration']],
            counterEntries: [],
            rightsRows: [],
            openRequestsPut: [],
            openRequestsDeleted: [],
            policyUpdates: [],
            answersPut: [],
            answersDeleted: [],
            ledgerRows: [ledgerRow()],
          }),
        ).toEqual({ ok: true });
      } finally {
        store.close();
      }
      const fresh = join(folder.path, 'fresh.db');
      openStore(fresh, storeOptions).close();
      expect(schemaOf(path)).toEqual(schemaOf(fresh));
    });
  }

  it('leaves a database at the version before a migration that fails', () => {
    const path = join(folder.path, 'broken.db');
    const db = new Database(path);
    migrate(db, 1);
    // A table named like the next migration's last index makes it fail after its first statements.
    db.exec('CREATE TABLE ledger_request (x INTEGER)');
    expect(() => migrate(db)).toThrow(/ledger_request/);
    expect(userVersion(db)).toBe(1);
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('ledger_daily', 'ledger_tenant')").pluck().get()).toBe(0);
    db.close();
  });
});
