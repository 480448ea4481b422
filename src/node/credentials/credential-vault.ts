import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { err, ok, type Result } from '../../core/result.js';
import type { StoredCredentialRow } from '../../ledger/sqlite-store.js';
import type { StoreError } from '../../ledger/node-state.js';
import type { SourcedCredential } from '../gateway/upstream-targets.js';
import { fingerprintOf, type HeldCredential } from './held-credential.js';
import { credentialJson, isTokenText, parseCredentialObject } from './oauth-credential.js';

/**
 * Where a node keeps the credentials it renewed or was given, so a restart starts from them:
 *
 *   with a store (`dataDir`)   the `credentials` table (src/ledger/store-schema.ts, version 4),
 *                              one row per account, committed before the new token is used
 *   without, from a file       the operator's credential file, rewritten atomically: a temporary
 *                              file in the same folder (mode 0600), fsync, rename over the old one
 *   without, from a variable   nowhere: memory only. A restart reads the variable again, whose
 *                              refresh token may have been rotated away; the account is then
 *                              refused at its first refresh and disabled until replaced.
 *
 * Which credential wins at start. A stored row carries the fingerprint (held-credential.ts) of the
 * configured credential it descends from. It wins while the file or variable still holds that
 * one; once an operator puts a new credential there, the configured one wins (and the row is
 * replaced at its first renewal). So pasting a fresh login into the file always takes effect.
 */
export type KeptIn = 'store' | 'file' | 'memory';

/** What the vault needs of the node's store. */
export interface CredentialTable {
  putCredential(row: StoredCredentialRow): Result<undefined, StoreError>;
  credential(account: string): Result<StoredCredentialRow | undefined, StoreError>;
}

export interface VaultEntry {
  readonly held: HeldCredential;
  /** The fingerprint of the configured credential this one descends from ('none' without one). */
  readonly origin: string;
  /** The operator's credential file and its JSON as last read or written, for a write back. */
  readonly file?: SourcedCredential['file'];
}

export class CredentialVault {
  constructor(
    private readonly table: CredentialTable | undefined,
    private readonly nowMs: () => number,
  ) {}

  /** Whether credentials survive a restart through the store. */
  get keepsStore(): boolean {
    return this.table !== undefined;
  }

  /**
   * The credential an account starts from: the stored one while it descends from what the
   * configuration holds now, else the configured one. A row that does not decode is passed over
   * (and replaced at the next write) with the reason, which names no secret.
   */
  initial(accountId: string, configured: SourcedCredential | undefined): Result<VaultEntry | undefined, string> {
    const origin = fingerprintOf(configured?.held);
    const fromConfig: VaultEntry | undefined =
      configured === undefined ? undefined : { held: configured.held, origin, ...(configured.file === undefined ? {} : { file: configured.file }) };
    if (this.table === undefined) return ok(fromConfig);
    const row = this.table.credential(accountId);
    if (!row.ok) return err(`the store could not be read (${row.error.kind}): ${row.error.message}`);
    if (row.value === undefined || row.value.origin !== origin) return ok(fromConfig);
    const held = heldOfRow(row.value);
    if (held === undefined) return err(`the stored credential of ${accountId} does not decode; the configured one is used`);
    return ok({ held, origin, ...(configured?.file === undefined ? {} : { file: configured.file }) });
  }

  /** Keeps `entry` where this node keeps credentials; returns where, or why it could not. */
  async keep(accountId: string, entry: VaultEntry): Promise<Result<{ readonly kept: KeptIn; readonly file?: VaultEntry['file'] }, string>> {
    if (this.table !== undefined) {
      const put = this.table.putCredential({
        account: accountId,
        kind: entry.held.kind,
        json: rowJsonOf(entry.held),
        origin: entry.origin,
        updatedMs: this.nowMs(),
      });
      return put.ok ? ok({ kept: 'store' }) : err(`the store refused the write (${put.error.kind}): ${put.error.message}`);
    }
    if (entry.file !== undefined && entry.held.kind === 'oauth') {
      const text = credentialJson(entry.held.credential, entry.file.json);
      try {
        await writeFileAtomic(entry.file.path, text);
      } catch (error) {
        // The message names the path and the system error, never the content.
        return err(`the credential file could not be written: ${error instanceof Error ? error.message : 'write failed'}`);
      }
      return ok({ kept: 'file', file: { path: entry.file.path, json: JSON.parse(text) as unknown } });
    }
    return ok({ kept: 'memory' });
  }
}

/**
 * Writes `text` to `path` so that a reader (or a restart after a crash) sees the old file or the
 * new one, never a mix: a temporary file beside it, created 0600, flushed, renamed over it, and
 * the folder flushed so the rename itself survives a power cut.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const folder = dirname(path);
  const temporary = join(folder, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  const dir = await open(folder, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function rowJsonOf(held: HeldCredential): string {
  switch (held.kind) {
    case 'api-key':
      return JSON.stringify({ key: held.key });
    case 'oauth-token':
      return JSON.stringify({ token: held.token });
    case 'oauth':
      return JSON.stringify({ accessToken: held.credential.accessToken, refreshToken: held.credential.refreshToken, expiresAt: held.credential.expiresAtMs });
  }
}

function heldOfRow(row: StoredCredentialRow): HeldCredential | undefined {
  let json: unknown;
  try {
    json = JSON.parse(row.json);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const fields = json as Record<string, unknown>;
  switch (row.kind) {
    case 'api-key':
      return isTokenText(fields.key) ? { kind: 'api-key', key: fields.key } : undefined;
    case 'oauth-token':
      return isTokenText(fields.token) ? { kind: 'oauth-token', token: fields.token } : undefined;
    case 'oauth': {
      const parsed = parseCredentialObject(fields);
      return parsed.ok ? { kind: 'oauth', credential: parsed.value } : undefined;
    }
    default:
      return undefined;
  }
}
