import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AccountId } from '../core/ids.js';
import { err, ok, type Result } from '../core/result.js';
import { createApiKey } from './admin-client.js';
import type { LocalConfig, LocalRegion } from './local-config.js';
import { type ChildExit, describeExit, LocalChild } from './local-child.js';
import {
  accountPolicyOf,
  adminTokenFileName,
  adminUrl,
  grpcTarget,
  logFileName,
  nodeConfigFileName,
  nodeConfigOf,
  secretFileName,
  tenantPolicyOf,
} from './local-plan.js';
import { checkPortsFree, plannedPorts } from './local-ports.js';
import { type LocalState, orphanHint, type RegionEndpoints, stateFileName, writeLocalState } from './local-state.js';

/**
 * A local mesh: the emulator and one node process per region on this machine, configured,
 * connected, given its policy and a key per tenant. `carpool local` (npm start) drives it, and so
 * can end-to-end tests.
 *
 * Start, in order, each step bounded in time; a failing step stops whatever already runs and
 * returns the reason, with the output tail of the child at fault:
 *   1. check that every port is free;
 *   2. write the secrets (generated unless configured) and each node's config into the state
 *      directory (mode 0600, directory 0700);
 *   3. start the emulator, read its URL and keys from its first line;
 *   4. start the nodes, wait for each to report its gRPC endpoint, then for the mesh links;
 *   5. put the accounts and tenants into the policy at the first region's admin endpoint;
 *   6. mint one API key per tenant through the first region's Admin gRPC service;
 *   7. wait until every node's policy shows all of it (the document replicates over the mesh);
 *   8. write the state file for clients.
 * After that, a child that exits on its own resolves `failed`; `stop()` stops every child
 * (SIGTERM, a grace period, SIGKILL) and leaves the state directory in place.
 */

/** Longest wait for one child to report that it listens. Nodes compile TypeScript through tsx at start. */
export const childStartTimeoutMs = 30_000;
/** Longest wait for every mesh link to connect, and for the policy to reach every node. */
export const meshSettleTimeoutMs = 15_000;
/** Longest wait for one admin HTTP or Admin gRPC call. */
export const adminCallTimeoutMs = 5_000;
/** How long a child gets to exit after SIGTERM, and after SIGKILL. */
export const childStopGraceMs = 5_000;
export const childKillWaitMs = 2_000;
/** Pause between two polls of the nodes while waiting for the mesh to settle. */
const settlePollMs = 100;

export interface StartLocalMeshOptions {
  /** Progress lines; none by default. */
  readonly print?: (line: string) => void;
  /** Overrides the config's stateDir; relative paths resolve against the current directory. */
  readonly stateDir?: string;
  /** Aborting it during the start stops what runs and returns an error. */
  readonly signal?: AbortSignal;
}

export interface LocalMeshRegion extends RegionEndpoints {
  readonly config: LocalRegion;
}

export interface ChildFailure {
  readonly name: string;
  readonly exit: ChildExit;
  readonly tail: string;
  readonly logFile: string;
}

export interface LocalMesh {
  readonly regions: readonly LocalMeshRegion[];
  readonly emulator: { readonly url: string; readonly keys: readonly string[] };
  /** One API key per tenant, by tenant id. */
  readonly apiKeys: Readonly<Record<string, string>>;
  readonly adminToken: string;
  readonly stateDir: string;
  readonly stateFile: string;
  /** Settles when a child exits while the mesh is not stopping. */
  readonly failed: Promise<ChildFailure>;
  /** The last lines a child printed (`emulator` or a region name). */
  outputOf(name: string): string;
  /** Stops every child; safe to call more than once. */
  stop(): Promise<void>;
}

export async function startLocalMesh(config: LocalConfig, options: StartLocalMeshOptions = {}): Promise<Result<LocalMesh, string>> {
  const print = options.print ?? (() => {});
  const stateDir = resolve(options.stateDir ?? config.stateDir);
  const children: LocalChild[] = [];
  const interrupted = (): boolean => options.signal?.aborted === true;
  const abandon = async (reason: string): Promise<Result<never, string>> => {
    await Promise.all(children.map((child) => child.stop(childStopGraceMs, childKillWaitMs)));
    return err(interrupted() ? 'interrupted while starting; stopped what had started' : reason);
  };
  // An interruption stops the children at once, which ends any wait on them.
  const onAbort = (): void => children.forEach((child) => child.kill('SIGTERM'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await launch(config, stateDir, print, children, interrupted, abandon);
  } catch (error) {
    return abandon(`cannot start the local mesh: ${(error as Error).message}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

async function launch(
  config: LocalConfig,
  stateDir: string,
  print: (line: string) => void,
  children: LocalChild[],
  interrupted: () => boolean,
  abandon: (reason: string) => Promise<Result<never, string>>,
): Promise<Result<LocalMesh, string>> {
  const stateFile = join(stateDir, stateFileName);
  const taken = await checkPortsFree(config.host, plannedPorts(config));
  if (taken !== undefined) {
    const hint = await orphanHint(stateFile);
    return err(hint === undefined ? taken : `${taken}\n${hint}`);
  }

  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const secret = config.secret ?? randomBytes(24).toString('base64url');
  const adminToken = config.adminToken ?? randomBytes(24).toString('base64url');
  await writeFile(join(stateDir, secretFileName), `${secret}\n`, { mode: 0o600 });
  await writeFile(join(stateDir, adminTokenFileName), `${adminToken}\n`, { mode: 0o600 });

  // 3. The emulator.
  const { emulator: emulatorConfig } = config;
  const emulator = LocalChild.start({
    name: 'emulator',
    logFile: join(stateDir, logFileName('emulator')),
    args: [
      'emulate',
      '--host', config.host,
      '--port', String(emulatorConfig.port),
      '--accounts', String(emulatorConfig.accounts.length),
      '--seed', String(emulatorConfig.seed),
      '--ttft-ms', String(emulatorConfig.ttftMs),
      '--tokens-per-second', String(emulatorConfig.tokensPerSecond),
    ],
  });
  children.push(emulator);
  print(`starting the emulator on port ${emulatorConfig.port} and ${config.regions.length} region node(s)…`);
  const emulatorLine = await emulator.waitForLine(/^emulator listening on (\S+) keys (\S+)/, childStartTimeoutMs);
  if (typeof emulatorLine === 'string') return abandon(childProblem(emulator, emulatorLine));
  const emulatorUrl = emulatorLine[1] as string;
  const keys = (emulatorLine[2] as string).split(',');
  if (keys.length !== emulatorConfig.accounts.length) return abandon(`the emulator printed ${keys.length} keys for ${emulatorConfig.accounts.length} accounts`);
  const accountKeys = new Map<AccountId, string>(emulatorConfig.accounts.map((account, i) => [account.id, keys[i] as string]));
  if (interrupted()) return abandon('interrupted');

  // 4. The nodes, all at once: each dials the others and retries until they listen.
  const nodes: LocalChild[] = [];
  for (const region of config.regions) {
    const configFile = join(stateDir, nodeConfigFileName(region));
    await writeFile(configFile, `${JSON.stringify(nodeConfigOf(config, region, { emulatorUrl, accountKeys }), null, 2)}\n`, { mode: 0o600 });
    const node = LocalChild.start({
      name: region.name,
      logFile: join(stateDir, logFileName(region.name)),
      args: ['node', '--config', configFile, '--status-every', '3600'],
    });
    nodes.push(node);
    children.push(node);
  }
  const ready = await Promise.all(nodes.map((node) => node.waitForLine(/^\s*grpc\s+\S+/, childStartTimeoutMs)));
  for (const [i, answer] of ready.entries()) {
    if (typeof answer === 'string') return abandon(childProblem(nodes[i] as LocalChild, answer));
  }
  if (interrupted()) return abandon('interrupted');
  print('nodes listening; waiting for the mesh links…');
  const regions: LocalMeshRegion[] = config.regions.map((region) => {
    const admin = adminUrl(config.host, region.adminPort);
    return { region: region.name, node: region.node, grpc: grpcTarget(config.host, region.grpcPort), admin, metrics: `${admin}/metrics`, config: region };
  });
  const connected = await settle(regions, interrupted, async (region) => {
    const status = await getJson(`${region.admin}/status`, adminToken);
    const peers = isRecord(status) && Array.isArray(status.peers) ? (status.peers as unknown[]) : [];
    const up = peers.filter((peer) => isRecord(peer) && peer.connected === true).length;
    return up === regions.length - 1 ? undefined : `${region.region} has ${up} of ${regions.length - 1} mesh peers connected`;
  });
  if (connected !== undefined) return abandon(`the mesh did not connect within ${meshSettleTimeoutMs / 1000} s: ${connected}${tailsOf(nodes)}`);

  // 5. The policy, written once at the first region; the document carries it to the others.
  print(`mesh connected; applying the policy at ${config.regions[0]?.name ?? '?'} and minting a key per tenant…`);
  const first = regions[0] as LocalMeshRegion;
  for (const account of emulatorConfig.accounts) {
    const put = await putJson(`${first.admin}/policy/accounts/${encodeURIComponent(account.id)}`, accountPolicyOf(account), adminToken);
    if (put !== undefined) return abandon(`PUT /policy/accounts/${account.id} at ${first.region}: ${put}`);
  }
  for (const tenant of config.tenants) {
    const put = await putJson(`${first.admin}/policy/tenants/${encodeURIComponent(tenant.id)}`, tenantPolicyOf(tenant), adminToken);
    if (put !== undefined) return abandon(`PUT /policy/tenants/${tenant.id} at ${first.region}: ${put}`);
  }

  // 6. One key per tenant, minted by the Admin service (it stores only the digest).
  const apiKeys: Record<string, string> = {};
  const keyIds = new Map<string, string>();
  for (const tenant of config.tenants) {
    const minted = await createApiKey(first.grpc, adminToken, tenant.id, adminCallTimeoutMs);
    if (!minted.ok) return abandon(minted.error);
    apiKeys[tenant.id] = minted.value.apiKey;
    keyIds.set(tenant.id, minted.value.keyId);
  }

  // 7. Every node must know every account, tenant and key before a client may pick any region.
  const replicated = await settle(regions, interrupted, async (region) => {
    const policy = await getJson(`${region.admin}/policy`, adminToken);
    if (!isRecord(policy) || !Array.isArray(policy.accounts) || !Array.isArray(policy.tenants)) return `${region.region} answered no policy`;
    const accountIds = new Set((policy.accounts as unknown[]).map((account) => (isRecord(account) ? account.id : undefined)));
    const missingAccount = emulatorConfig.accounts.find((account) => !accountIds.has(account.id));
    if (missingAccount !== undefined) return `${region.region} does not know account ${missingAccount.id} yet`;
    for (const [tenant, keyId] of keyIds) {
      const entry = (policy.tenants as unknown[]).find((t) => isRecord(t) && t.id === tenant);
      const keys = isRecord(entry) && Array.isArray(entry.keys) ? (entry.keys as unknown[]) : [];
      if (!keys.some((key) => isRecord(key) && key.keyId === keyId)) return `${region.region} does not know tenant ${tenant}'s key yet`;
    }
    return undefined;
  });
  if (replicated !== undefined) return abandon(`the policy did not reach every region within ${meshSettleTimeoutMs / 1000} s: ${replicated}${tailsOf(nodes)}`);

  // 8. The state file for `carpool client`.
  const pids: Record<string, number> = {};
  for (const child of children) if (child.pid !== undefined) pids[child.name] = child.pid;
  const state: LocalState = {
    version: 1,
    pid: process.pid,
    startedAtMs: Date.now(),
    emulator: emulatorUrl,
    regions: regions.map(({ region, node, grpc, admin, metrics }) => ({ region, node, grpc, admin, metrics })),
    apiKeys,
    adminToken,
    pids,
  };
  await writeLocalState(stateFile, state);

  let stopping: Promise<void> | undefined;
  const failed = new Promise<ChildFailure>((resolveFailure) => {
    for (const child of children) {
      void child.exited.then((exit) => {
        if (stopping === undefined) resolveFailure({ name: child.name, exit, tail: child.tail(), logFile: child.logFile });
      });
    }
  });
  const byName = new Map(children.map((child) => [child.name, child]));
  return ok({
    regions,
    emulator: { url: emulatorUrl, keys },
    apiKeys,
    adminToken,
    stateDir,
    stateFile,
    failed,
    outputOf: (name) => byName.get(name)?.tail() ?? '',
    stop: () => {
      // Nodes first, so their last calls still reach the emulator; then the emulator.
      stopping ??= (async () => {
        await Promise.all(nodes.map((node) => node.stop(childStopGraceMs, childKillWaitMs)));
        await emulator.stop(childStopGraceMs, childKillWaitMs);
      })();
      return stopping;
    },
  });
}

/** A message for a child that failed to start: what went wrong, its output tail, its log. */
export function childProblem(child: LocalChild, problem: string): string {
  const tail = child.tail();
  return `${child.name} ${problem}${tail.length > 0 ? `; its last output:\n${indent(tail)}` : ' (it printed nothing)'}\n(full log: ${child.logFile})`;
}

/** A child that exited on its own, for the launcher's message. */
export function describeFailure(failure: ChildFailure): string {
  const tail = failure.tail.length > 0 ? `; its last output:\n${indent(failure.tail)}` : '';
  return `${failure.name} exited unexpectedly (${describeExit(failure.exit)})${tail}\n(full log: ${failure.logFile})`;
}

function tailsOf(nodes: readonly LocalChild[]): string {
  return nodes.map((node) => `\n--- ${node.name} (${node.logFile}) ---\n${indent(node.tail())}`).join('');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/**
 * Polls `check` on every region until all pass (undefined), up to `meshSettleTimeoutMs`; the
 * last reason otherwise.
 */
async function settle(
  regions: readonly LocalMeshRegion[],
  interrupted: () => boolean,
  check: (region: LocalMeshRegion) => Promise<string | undefined>,
): Promise<string | undefined> {
  const deadline = Date.now() + meshSettleTimeoutMs;
  for (;;) {
    let problem: string | undefined;
    for (const region of regions) {
      problem = await check(region).catch((error: unknown) => `${region.region}: ${(error as Error).message}`);
      if (problem !== undefined) break;
    }
    if (problem === undefined) return undefined;
    if (interrupted()) return 'interrupted';
    if (Date.now() >= deadline) return problem;
    await sleep(settlePollMs);
  }
}

/** A read of the admin endpoint, with the mesh's admin token (every admin route needs one). */
async function getJson(url: string, adminToken: string): Promise<unknown> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(adminCallTimeoutMs) });
  if (response.status !== 200) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.json();
}

/** Undefined on 200; otherwise the status and the error the admin endpoint gave. */
async function putJson(url: string, body: unknown, adminToken: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(adminCallTimeoutMs),
    });
    const text = await response.text();
    return response.status === 200 ? undefined : `HTTP ${response.status} ${text}`;
  } catch (error) {
    return (error as Error).message;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
