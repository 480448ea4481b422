// A process that uses a SqliteStore the way a node does, for the tests that need a second process,
// a kill -9 or a read-only file system (test/ledger/sqlite-store-processes.test.ts). It reports on
// stdout, one JSON line per event, written synchronously: a line the parent has read was written
// after the step it reports had returned.
//
//   store-child.ts hold <file>              open, say {"held":true}, keep the store until killed
//   store-child.ts open <file>              open, say {"ok":...,"kind":...,"message":...}, exit
//   store-child.ts commit <file> <count>    commit <count> batches (meta m<i> and a ledger row r<i>),
//                                           saying {"acked":i} after each commit returned ok
//   store-child.ts read-only <folder>       run where <folder> is on a read-only file system: open
//                                           a store on an existing file, a new one and one in a
//                                           missing folder; say what each got
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore, type StoreOptions } from '../../src/ledger/sqlite-store.js';
import { batchOf, ledgerRow } from './ledger.js';

const options: StoreOptions = { sync: 'normal', maxBytes: 64 * 1024 * 1024 };

function say(event: unknown): void {
  writeSync(1, `${JSON.stringify(event)}\n`);
}

function opened(path: string): { ok: boolean; kind?: string; message?: string; store?: SqliteStore } {
  const result = SqliteStore.open(path, options);
  return result.ok ? { ok: true, store: result.value } : { ok: false, kind: result.error.kind, message: result.error.message };
}

function outcome(path: string): { ok: boolean; kind?: string; message?: string } {
  const { store, ...rest } = opened(path);
  store?.close();
  return rest;
}

function commitLoop(path: string, count: number): void {
  const result = SqliteStore.open(path, options);
  if (!result.ok) throw new Error(result.error.message);
  for (let i = 0; i < count; i++) {
    const committed = result.value.commit(batchOf({ meta: [[`m${i}`, String(i)]], ledgerRows: [ledgerRow({ requestId: `r${i}`, chargedAtMs: Date.now() })] }));
    if (!committed.ok) throw new Error(committed.error.message);
    say({ acked: i });
  }
  result.value.close();
}

function readOnly(folder: string): void {
  for (const name of ['existing.db', 'new.db', join('missing', 'new.db')]) say({ step: name, result: outcome(join(folder, name)) });
}

const [command, target, count] = process.argv.slice(2);
if (command === 'hold') {
  const held = opened(target!);
  say({ held: held.ok, kind: held.kind });
  // The timer keeps the process, and its closure the store, alive until the parent kills it.
  setInterval(() => held.store?.path, 60_000);
} else if (command === 'open') say(outcome(target!));
else if (command === 'commit') commitLoop(target!, Number(count));
else if (command === 'read-only') readOnly(target!);
else throw new Error(`unknown command ${command}`);
