// Proves, with real processes, what one process cannot show: a second process is refused a store
// file while a node holds it; everything a killed (kill -9) writer acknowledged is in the file;
// and a read-only file system gives `read-only` errors, never a crash or a changed file.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/ledger/sqlite-store.js';
import { batchOf, openStore, storeOptions, tempFolder } from '../support/ledger.js';

const childScript = 'test/support/store-child.ts';
let folder: ReturnType<typeof tempFolder>;
const children: ChildProcess[] = [];

beforeEach(() => {
  folder = tempFolder();
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  folder.remove();
});

/** Starts the child script and hands each JSON line it says to `onLine`; resolves with its exit. */
function runChild(
  args: readonly string[],
  onLine: (event: Record<string, unknown>, child: ChildProcess) => void,
  command: readonly string[] = [process.execPath],
): Promise<number | null> {
  const [file, ...pre] = command;
  const child = spawn(file!, [...pre, '--import', 'tsx', childScript, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  createInterface({ input: child.stdout }).on('line', (line) => onLine(JSON.parse(line) as Record<string, unknown>, child));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

function childSays(args: readonly string[]): Promise<Record<string, unknown>[]> {
  const events: Record<string, unknown>[] = [];
  return runChild(args, (event) => events.push(event)).then(() => events);
}

describe('SqliteStore across processes', () => {
  it('refuses the file to a second process while a node holds it, and lets it in afterwards', async () => {
    const path = join(folder.path, 'state.db');
    let holder: ChildProcess | undefined;
    const held = new Promise<void>((resolve) => {
      void runChild(['hold', path], (event, child) => {
        expect(event).toEqual({ held: true });
        holder = child;
        resolve();
      });
    });
    await held;
    const [refused] = await childSays(['open', path]);
    expect(refused).toMatchObject({ ok: false, kind: 'locked' });
    expect(String(refused!.message)).toContain(path);
    // The parent is refused too: SQLite's lock is the file's, not one process's.
    const opened = SqliteStore.open(path, storeOptions);
    expect(opened.ok ? 'opened' : opened.error.kind).toBe('locked');
    const exited = new Promise((resolve) => holder!.on('exit', resolve));
    holder!.kill('SIGKILL');
    await exited;
    // A killed holder leaves no lock behind: the kernel drops its locks with the process.
    expect(await childSays(['open', path])).toEqual([{ ok: true }]);
  });

  it('keeps every commit a writer acknowledged before it was killed with SIGKILL', async () => {
    for (const killAfter of [1, 37, 400]) {
      // A file per round, each starting empty.
      const path = join(folder.path, `after-${killAfter}.db`);
      let acked = -1;
      await runChild(['commit', path, '100000'], (event, child) => {
        acked = event.acked as number;
        if (acked === killAfter) child.kill('SIGKILL');
      });
      const store = openStore(path);
      try {
        const meta = store.load().meta;
        const rows = store.queryUsage({ filter: { side: 'tenant' } }).totals.requests;
        // Every acknowledged commit is there; at most the one in flight at the kill is too.
        for (let i = 0; i <= acked; i++) expect(meta.get(`m${i}`)).toBe(String(i));
        expect(meta.size).toBeGreaterThanOrEqual(acked + 1);
        expect(meta.size).toBeLessThanOrEqual(100_000);
        expect(rows).toBe(meta.size);
        expect(store.commit(batchOf({ meta: [['reopened', 'yes']] }))).toEqual({ ok: true });
      } finally {
        store.close();
      }
    }
  });

  // Root (CI runs as root) writes through file modes, so a read-only file system is the honest
  // way to deny writes: a private mount namespace where the test folder is bound read-only, as a
  // disk the kernel remounted read-only after errors would be. (The kernel refuses to remount a
  // file system read-only while a file on it is open for writing, so this covers a node that
  // starts on a read-only disk, not one whose disk turns read-only under it.)
  const canUnshare = spawnSync('unshare', ['-m', '-r', 'true']).status === 0;
  it.skipIf(!canUnshare)('answers read-only on a read-only file system and leaves the file as it was (needs unshare -m -r)', async () => {
    const existing = join(folder.path, 'existing.db');
    const store = openStore(existing);
    store.commit(batchOf({ meta: [['kept', 'yes']] }));
    store.close();
    const bytesBefore = readFileSync(existing);
    const events: Record<string, unknown>[] = [];
    const mountReadOnly = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"';
    const code = await runChild(['read-only', folder.path], (event) => events.push(event), [
      'unshare',
      '-m',
      '-r',
      'sh',
      '-c',
      mountReadOnly,
      folder.path,
      process.execPath,
    ]);
    expect(code).toBe(0);
    for (const name of ['existing.db', 'new.db', join('missing', 'new.db')]) {
      const result = events.find((e) => e.step === name)?.result as { kind?: string; message?: string } | undefined;
      expect([name, result?.kind]).toEqual([name, 'read-only']);
      expect(result?.message).toContain('read-only');
    }
    expect(readFileSync(existing).equals(bytesBefore)).toBe(true);
    expect(existsSync(join(folder.path, 'new.db'))).toBe(false);
  });
});
