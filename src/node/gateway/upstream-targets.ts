import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { AccountId } from '../../core/ids.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Credential, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { ConfigError, CredentialSource, UpstreamConfig } from '../node-config.js';

/**
 * The upstream targets of a node: each configured account's base URL and credential, read once
 * at start from where the configuration says (src/node/node-config.ts `upstream`). A credential
 * that cannot be read stops the start with an error naming its field, rather than leaving the
 * account silently uncallable; the credential itself never appears in an error.
 */
export interface ResolveOptions {
  /** Directory that relative `keyFile` paths are resolved against: the config file's. */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readText?: (path: string) => Promise<string>;
}

export async function resolveUpstreamTargets(upstream: UpstreamConfig | undefined, options: ResolveOptions): Promise<Result<ReadonlyMap<AccountId, UpstreamTarget>, ConfigError>> {
  const targets = new Map<AccountId, UpstreamTarget>();
  if (upstream === undefined) return ok(targets);
  const readText = options.readText ?? ((path: string) => readFile(path, 'utf8'));
  for (const [id, account] of upstream.accounts) {
    const field = `upstream.accounts.${id}`;
    const secret = await secretOf(account.credential, field, options, readText);
    if (!secret.ok) return secret;
    const credential: Credential = account.kind === 'api-key' ? { kind: 'api-key', key: secret.value } : { kind: 'oauth', token: secret.value };
    targets.set(id, { baseUrl: upstream.baseUrl, credential });
  }
  return ok(targets);
}

async function secretOf(source: CredentialSource, field: string, options: ResolveOptions, readText: (path: string) => Promise<string>): Promise<Result<string, ConfigError>> {
  let value: string | undefined;
  switch (source.kind) {
    case 'inline':
      value = source.value;
      break;
    case 'env':
      value = options.env[source.name];
      if (value === undefined) return bad(`${field}.keyEnv`, `the environment variable ${source.name} is not set`);
      break;
    case 'file':
      try {
        value = (await readText(resolve(options.baseDir, source.path))).trim();
      } catch (error) {
        return bad(`${field}.keyFile`, `cannot read ${source.path}: ${error instanceof Error ? error.message : 'read failed'}`);
      }
      break;
  }
  // Header values must be printable ASCII; the upstream client would refuse every call otherwise.
  if (!/^[\x21-\x7e]+$/.test(value)) return bad(field, 'the credential is empty or not printable ASCII without spaces');
  return ok(value);
}

function bad(field: string, reason: string): Result<never, ConfigError> {
  return err({ kind: 'bad-config', field, reason });
}
