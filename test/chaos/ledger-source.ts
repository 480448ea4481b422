// Every node's usage ledger rows, for the crash tests' per-request checks. Read from each node's
// store file with a read-only connection: WAL lets a reader in beside the node's writer, and the
// reader sees every commit the node made (the node's own answer only ever follows a commit).
import Database from 'better-sqlite3';
import { ledgerColumnList, ledgerRowOf } from '../../src/ledger/ledger-columns.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';

export function readLedgerFile(path: string): LedgerRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT ${ledgerColumnList} FROM ledger`).raw().all() as unknown[][]).map(ledgerRowOf);
  } finally {
    db.close();
  }
}
