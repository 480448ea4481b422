import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { StoreError } from './node-state.js';

/**
 * One table from what SQLite and the file system report to the five kinds of StoreError, with
 * messages an operator can act on. Every kind means the node must stop taking work: nothing it
 * would settle could be made durable. Anything this table does not know (a constraint broken by
 * a bad row, a misuse of the API) is a programmer error and is rethrown by the caller.
 */
export function storeErrorOf(cause: unknown, path: string): StoreError | undefined {
  if (cause instanceof Database.SqliteError) return fromSqlite(cause.code, cause.message, path);
  const code = errnoCode(cause);
  if (code === undefined) return undefined;
  const detail = cause instanceof Error ? cause.message : String(cause);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return readOnly(path, detail);
  if (code === 'ENOSPC' || code === 'EDQUOT') return full(path, detail);
  return { kind: 'io', message: `the database file ${path} could not be used: ${detail}` };
}

function fromSqlite(code: string, detail: string, path: string): StoreError | undefined {
  const primary = code.replace(/^(SQLITE_[A-Z]+).*$/, '$1');
  switch (primary) {
    case 'SQLITE_FULL':
      return full(path, detail);
    case 'SQLITE_READONLY':
    case 'SQLITE_PERM':
      return readOnly(path, detail);
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
      return {
        kind: 'corrupt',
        message: `the database file ${path} is corrupt (${detail}); move it away, with its -wal file, to start the node without state`,
      };
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return {
        kind: 'locked',
        message: `the database file ${path} is in use by another process (${detail}): one node per data directory; stop the other node or give this one its own dataDir`,
      };
    case 'SQLITE_CANTOPEN':
      return (
        unwritable(path, detail) ?? {
          kind: 'io',
          message: `the database file ${path} could not be opened (${detail}); check that its folder exists and is reachable`,
        }
      );
    case 'SQLITE_IOERR':
    case 'SQLITE_PROTOCOL':
    case 'SQLITE_NOLFS':
      // A file SQLite had to open read-only fails its first write as an I/O error, not as read-only.
      return (
        unwritable(path, detail) ?? {
          kind: 'io',
          message: `the database file ${path} could not be read or written (${detail}); check the disk and its kernel log`,
        }
      );
    default:
      return undefined;
  }
}

/**
 * SQLite says only that it could not open or write the file. Asking the file system what it would
 * let us do tells a read-only disk, file or folder (EROFS, EACCES, EPERM) from other failures.
 */
function unwritable(path: string, detail: string): StoreError | undefined {
  for (const probe of [path, dirname(path)]) {
    try {
      accessSync(probe, constants.W_OK);
    } catch (cause) {
      const code = errnoCode(cause);
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return readOnly(path, `${detail}; ${probe}: ${code}`);
    }
  }
  return undefined;
}

/**
 * Why the store's folder could not be made. Node's recursive mkdir reports ENOENT where a parent
 * is on a read-only file system, so the nearest folder that exists is asked instead.
 */
export function folderErrorOf(cause: unknown, folder: string, path: string): StoreError | undefined {
  let existing = folder;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const detail = cause instanceof Error ? cause.message : String(cause);
  return unwritable(existing, detail) === undefined ? storeErrorOf(cause, path) : readOnly(path, `${detail}; ${existing} cannot be written`);
}

function full(path: string, detail: string): StoreError {
  return {
    kind: 'full',
    message: `the database file ${path} is full (${detail}): its disk is out of space or the store reached its configured bound (maxBytes); free space or raise the bound, then restart the node`,
  };
}

function readOnly(path: string, detail: string): StoreError {
  return {
    kind: 'read-only',
    message: `the database file ${path} cannot be written (${detail}): the file, its folder or its file system is read-only; make it writable and restart the node`,
  };
}

function errnoCode(cause: unknown): string | undefined {
  if (typeof cause !== 'object' || cause === null || !('code' in cause)) return undefined;
  const code = cause.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
}

/**
 * Thrown by the store's housekeeping calls whose contract returns a plain value (`dropExpired`,
 * `compactPolicy`) when SQLite reports an expected failure: it carries the same StoreError that
 * `commit` would return, so the caller can stop taking work with the same message.
 */
export class StoreFailure extends Error {
  override readonly name = 'StoreFailure';
  constructor(readonly error: StoreError) {
    super(error.message);
  }
}
