import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseApiKey } from '../admission/api-key.js';
import type { TenantId } from '../core/ids.js';
import { localSecretLengthMin, type LocalTenant } from './local-config.js';
import { adminTokenFileName, secretFileName } from './local-plan.js';
import { readLocalState, stateFileName } from './local-state.js';

/**
 * What one `npm start` hands to the next: the mesh secret, the admin token and each tenant's API
 * key, so a client's key keeps working across restarts of the launcher. They live in the state
 * directory (0700) in files of mode 0600: `mesh.secret`, `admin.token`, and the keys in
 * `state.json` (src/local/local-state.ts). The nodes keep nothing durable yet, so the launcher
 * puts the accounts and tenants into the policy again at every start and registers the digests of
 * the saved keys instead of minting new ones; counters and usage start from zero.
 *
 * When the configuration changed since the keys were saved:
 *   - a tenant still in the config keeps its key;
 *   - a tenant no longer in the config is not re-created, and its saved key is dropped;
 *   - a tenant new in the config gets a newly minted key;
 *   - a saved key that is not a key of its tenant (edited by hand, another format) is replaced;
 *   - a `secret` or `adminToken` in the config wins over the saved one.
 * `npm start -- --fresh` ignores what was saved and mints everything anew.
 */

export interface SavedCredentials {
  readonly secret: string | undefined;
  readonly adminToken: string | undefined;
  /** API keys by tenant id, as the last run wrote them. */
  readonly apiKeys: Readonly<Record<string, string>>;
  /** Why the saved keys could not be read, when a state file is there but unreadable. */
  readonly problem: string | undefined;
}

export const noSavedCredentials: SavedCredentials = { secret: undefined, adminToken: undefined, apiKeys: {}, problem: undefined };

/** What the last run left in `stateDir`; nothing when it left nothing. */
export async function readSavedCredentials(stateDir: string): Promise<SavedCredentials> {
  const secret = usableSecret(await readOptional(join(stateDir, secretFileName)));
  const adminToken = usableSecret(await readOptional(join(stateDir, adminTokenFileName)));
  const stateFile = join(stateDir, stateFileName);
  if ((await readOptional(stateFile)) === undefined) return { secret, adminToken, apiKeys: {}, problem: undefined };
  const state = await readLocalState(stateFile);
  return state.ok ? { secret, adminToken, apiKeys: state.value.apiKeys, problem: undefined } : { secret, adminToken, apiKeys: {}, problem: state.error };
}

/**
 * Forgets the last run's keys (`--fresh`): the state file goes before anything is minted, so a
 * start that fails halfway cannot bring the old keys back at the next start. The secret and
 * token files are overwritten by the start itself.
 */
export async function forgetSavedCredentials(stateDir: string): Promise<void> {
  await rm(join(stateDir, stateFileName), { force: true });
}

export interface KeyPlan {
  /** Saved keys to register again, by tenant id: only tenants of the config. */
  readonly reused: ReadonlyMap<TenantId, string>;
  /** Tenants of the config that need a new key. */
  readonly toMint: readonly TenantId[];
  /** Tenants with a saved key that the config no longer has. */
  readonly dropped: readonly string[];
  /** Tenants whose saved key was not a key of theirs and is replaced. */
  readonly replaced: readonly TenantId[];
}

/** Which saved keys carry over to a run of `tenants`. Pure. */
export function planKeys(tenants: readonly LocalTenant[], saved: Readonly<Record<string, string>>): KeyPlan {
  const reused = new Map<TenantId, string>();
  const toMint: TenantId[] = [];
  const replaced: TenantId[] = [];
  for (const tenant of tenants) {
    const key = Object.hasOwn(saved, tenant.id) ? saved[tenant.id] : undefined;
    const parsed = key === undefined ? undefined : parseApiKey(key);
    if (key !== undefined && parsed?.ok === true && parsed.value.tenant === tenant.id) {
      reused.set(tenant.id, key);
      continue;
    }
    if (key !== undefined) replaced.push(tenant.id);
    toMint.push(tenant.id);
  }
  const known = new Set<string>(tenants.map((tenant) => tenant.id));
  const dropped = Object.keys(saved).filter((tenant) => !known.has(tenant));
  return { reused, toMint, dropped, replaced };
}

/** A saved secret or token as the config would accept it; anything else is generated anew. */
function usableSecret(text: string | undefined): string | undefined {
  const value = text?.trim();
  return value !== undefined && value.length >= localSecretLengthMin && /^[\x21-\x7e]+$/.test(value) ? value : undefined;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
