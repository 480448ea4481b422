import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { defaultStateDir } from './local-config.js';

/**
 * The state file a running local mesh leaves for its clients (`carpool client`): where each region
 * answers and each tenant's API key. It holds credentials, so it is written with mode 0600 (the
 * directory is 0700), and replaced atomically so a client never reads half of it.
 *
 * ```json
 * {
 *   "version": 1,
 *   "pid": 4242,                     // the launcher; a client checks it is still alive
 *   "startedAtMs": 1767225600000,
 *   "emulator": "http://127.0.0.1:17400",
 *   "regions": [ { "region": "us-east", "node": "us-east-1", "grpc": "127.0.0.1:17412",
 *                  "http": "http://127.0.0.1:17413",   // ANTHROPIC_BASE_URL of the region
 *                  "admin": "http://127.0.0.1:17411", "metrics": "http://127.0.0.1:17411/metrics" } ],
 *   "apiKeys": { "demo": "cp_demo_…" },
 *   "adminToken": "…",               // the Admin service's bearer token (kept across starts)
 *   "pids": { "emulator": 4243, "us-east": 4244 }   // the child processes, updated on a restart
 * }
 * ```
 *
 * The file stays after the mesh stops: the next `npm start` takes the API keys from it (see
 * src/local/local-credentials.ts; `--fresh` deletes it first) and writes it anew.
 */
export interface LocalState {
  readonly version: 1;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly emulator: string;
  readonly regions: readonly RegionEndpoints[];
  readonly apiKeys: Readonly<Record<string, string>>;
  readonly adminToken: string;
  /** The child processes by name (`emulator`, a region), to find them if the launcher was killed. */
  readonly pids: Readonly<Record<string, number>>;
}

export interface RegionEndpoints {
  readonly region: string;
  readonly node: string;
  /** `host:port` of the public gRPC endpoint. */
  readonly grpc: string;
  /**
   * `http://host:port` of the HTTP front door (the Anthropic Messages API), the base URL for
   * Claude Code and the SDKs; undefined in a state file written before the front door existed.
   */
  readonly http?: string | undefined;
  /** `http://host:port` of the admin endpoint. */
  readonly admin: string;
  readonly metrics: string;
}

export const stateFileName = 'state.json';
export const defaultStateFile = join(defaultStateDir, stateFileName);

export async function writeLocalState(path: string, state: LocalState): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  // writeFile's mode applies only to a new file; a leftover temporary keeps its own.
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

/** The state of the running mesh, or a message that says what to do. */
export async function readLocalState(path: string): Promise<Result<LocalState, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return err(`no local mesh state at ${path}: start the mesh first with npm start (or pass --state FILE, or --target and --api-key)`);
    return err(`cannot read ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return err(`${path} is not JSON; restart the mesh with npm start`);
  }
  const state = parseLocalState(raw);
  if (state === undefined) return err(`${path} is not a local mesh state file of this version; restart the mesh with npm start`);
  return ok(state);
}

export function parseLocalState(raw: unknown): LocalState | undefined {
  if (!isRecord(raw) || raw.version !== 1) return undefined;
  if (typeof raw.pid !== 'number' || typeof raw.startedAtMs !== 'number' || typeof raw.emulator !== 'string' || typeof raw.adminToken !== 'string')
    return undefined;
  if (!Array.isArray(raw.regions) || !isRecord(raw.apiKeys)) return undefined;
  const regions: RegionEndpoints[] = [];
  for (const entry of raw.regions as unknown[]) {
    if (!isRecord(entry)) return undefined;
    const { region, node, grpc, http, admin, metrics } = entry;
    if (typeof region !== 'string' || typeof node !== 'string' || typeof grpc !== 'string' || typeof admin !== 'string' || typeof metrics !== 'string')
      return undefined;
    if (http !== undefined && typeof http !== 'string') return undefined;
    regions.push({ region, node, grpc, ...(http === undefined ? {} : { http }), admin, metrics });
  }
  const apiKeys: Record<string, string> = {};
  for (const [tenant, key] of Object.entries(raw.apiKeys)) {
    if (typeof key !== 'string') return undefined;
    apiKeys[tenant] = key;
  }
  const pids: Record<string, number> = {};
  for (const [name, pid] of Object.entries(isRecord(raw.pids) ? raw.pids : {})) {
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
    pids[name] = pid;
  }
  return { version: 1, pid: raw.pid, startedAtMs: raw.startedAtMs, emulator: raw.emulator, regions, apiKeys, adminToken: raw.adminToken, pids };
}

/**
 * When a previous launcher died without stopping its children (killed with SIGKILL), they still
 * hold the ports; this names them, from the state file it left, so the user can stop them.
 */
export async function orphanHint(path: string): Promise<string | undefined> {
  const previous = await readLocalState(path);
  if (!previous.ok || isProcessAlive(previous.value.pid)) return undefined;
  const alive = Object.entries(previous.value.pids).filter(([, pid]) => isProcessAlive(pid));
  if (alive.length === 0) return undefined;
  const names = alive.map(([name, pid]) => `${name} ${pid}`).join(', ');
  return `Processes of an earlier run whose launcher is gone still run (${names}); stop them with: kill ${alive.map(([, pid]) => pid).join(' ')}`;
}

/** Whether the process that wrote the state still runs (signal 0 checks without sending). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
