import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { AccountId } from '../../core/ids.js';
import { oauthCredentialBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { UpstreamTarget } from '../../upstream/upstream-request.js';
import { type HeldCredential, upstreamCredentialOf } from '../credentials/held-credential.js';
import { parseCredentialJson } from '../credentials/oauth-credential.js';
import type { ConfigError, UpstreamAccountConfig, UpstreamConfig } from '../node-config.js';

/**
 * The credentials of a node's accounts, read from where the configuration says
 * (src/node/node-config.ts `upstream`): at start, and again on SIGHUP. A credential that cannot be
 * read stops the start with an error naming its field, rather than leaving the account silently
 * uncallable; the credential itself never appears in an error.
 *
 * A renewable OAuth credential's file must be private to its owner (no permission bit for group
 * or others, 0600 or stricter): it holds a refresh token, which outlives every access token, and
 * the node writes rotated ones back into it when it keeps no store.
 */
export interface ResolveOptions {
  /** Directory that relative `keyFile` paths are resolved against: the config file's. */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readText?: (path: string) => Promise<string>;
  /** The permission bits of a file (`stat().mode`); the file system's by default. */
  readonly modeOf?: (path: string) => Promise<number>;
}

/** One account's credential as its configured source holds it. */
export interface SourcedCredential {
  readonly held: HeldCredential;
  /** The credential file's absolute path and its JSON as read, for a renewable one kept in a file. */
  readonly file?: { readonly path: string; readonly json: unknown };
  /** Whether it came from an environment variable (which the node cannot write back to). */
  readonly fromEnv: boolean;
}

/** Every configured account's credential as its source holds it now. */
export async function readAccountCredentials(
  upstream: UpstreamConfig | undefined,
  options: ResolveOptions,
): Promise<Result<ReadonlyMap<AccountId, SourcedCredential>, ConfigError>> {
  const credentials = new Map<AccountId, SourcedCredential>();
  if (upstream === undefined) return ok(credentials);
  for (const [id, account] of upstream.accounts) {
    const read = await readAccountCredential(id, account, options);
    if (!read.ok) return read;
    credentials.set(id, read.value);
  }
  return ok(credentials);
}

/** Each account's base URL and the credential its source holds now (no renewal): for tools that only read. */
export async function resolveUpstreamTargets(
  upstream: UpstreamConfig | undefined,
  options: ResolveOptions,
): Promise<Result<ReadonlyMap<AccountId, UpstreamTarget>, ConfigError>> {
  const read = await readAccountCredentials(upstream, options);
  if (!read.ok) return read;
  const targets = new Map<AccountId, UpstreamTarget>();
  for (const [id, sourced] of read.value) targets.set(id, { baseUrl: (upstream as UpstreamConfig).baseUrl, credential: upstreamCredentialOf(sourced.held) });
  return ok(targets);
}

export async function readAccountCredential(
  id: AccountId,
  account: UpstreamAccountConfig,
  options: ResolveOptions,
): Promise<Result<SourcedCredential, ConfigError>> {
  const field = `upstream.accounts.${id}`;
  const renewable = account.format === 'renewable';
  const source = account.credential;
  const sourceField = `${field}.${source.kind === 'inline' ? 'key' : source.kind === 'env' ? (renewable ? 'credentialsEnv' : 'keyEnv') : renewable ? 'credentialsFile' : 'keyFile'}`;
  let text: string;
  let path: string | undefined;
  switch (source.kind) {
    case 'inline':
      text = source.value;
      break;
    case 'env': {
      const value = options.env[source.name];
      if (value === undefined) return bad(sourceField, `the environment variable ${source.name} is not set`);
      text = value;
      break;
    }
    case 'file': {
      path = resolve(options.baseDir, source.path);
      const read = await readSourceFile(path, source.path, renewable, sourceField, options);
      if (!read.ok) return read;
      text = read.value;
      break;
    }
  }
  if (renewable) {
    const parsed = parseCredentialJson(text);
    if (!parsed.ok) return bad(sourceField, `${parsed.error.field} ${parsed.error.reason}`);
    const file = path === undefined ? undefined : { path, json: JSON.parse(text) as unknown };
    return ok({ held: { kind: 'oauth', credential: parsed.value }, ...(file === undefined ? {} : { file }), fromEnv: source.kind === 'env' });
  }
  const value = source.kind === 'file' ? text.trim() : text;
  // Header values must be printable ASCII; the upstream client would refuse every call otherwise.
  if (!/^[\x21-\x7e]+$/.test(value)) return bad(field, 'the credential is empty or not printable ASCII without spaces');
  const held: HeldCredential = account.kind === 'api-key' ? { kind: 'api-key', key: value } : { kind: 'oauth-token', token: value };
  return ok({ held, fromEnv: source.kind === 'env' });
}

async function readSourceFile(path: string, shown: string, renewable: boolean, field: string, options: ResolveOptions): Promise<Result<string, ConfigError>> {
  const readText = options.readText ?? ((file: string) => readFile(file, 'utf8'));
  const modeOf = options.modeOf ?? (async (file: string) => (await stat(file)).mode);
  try {
    if (renewable) {
      const mode = await modeOf(path);
      // The refresh token must not be readable by anyone but the node's user.
      if ((mode & 0o077) !== 0)
        return bad(field, `${shown} is readable or writable by group or others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): chmod 600 ${shown}`);
    }
    const text = await readText(path);
    if (renewable && text.length > oauthCredentialBytesMax) return bad(field, `${shown} is larger than ${oauthCredentialBytesMax} bytes`);
    return ok(text);
  } catch (error) {
    return bad(field, `cannot read ${shown}: ${error instanceof Error ? error.message : 'read failed'}`);
  }
}

function bad(field: string, reason: string): Result<never, ConfigError> {
  return err({ kind: 'bad-config', field, reason });
}
