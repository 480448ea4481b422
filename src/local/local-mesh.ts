import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiKeyHashHex, formatKeyId } from '../admission/api-key.js';
import type { AccountId, TenantId } from '../core/ids.js';
import { err, ok, type Result } from '../core/result.js';
import { nodeAuthCrypto } from '../node/node-auth-crypto.js';
import { createApiKey } from './admin-client.js';
import type { LocalConfig, LocalRegion } from './local-config.js';
import { forgetSavedCredentials, type KeyPlan, noSavedCredentials, planKeys, readSavedCredentials, type SavedCredentials } from './local-credentials.js';
import {
  accountPolicyOf,
  adminTokenFileName,
  dataDirName,
  adminUrl,
  grpcTarget,
  httpBaseUrl,
  logFileName,
  nodeConfigFileName,
  nodeConfigOf,
  type NodePlacement,
  secretFileName,
  tenantPolicyOf,
} from './local-plan.js';
import { checkPortsFree, plannedPorts } from './local-ports.js';
import { type LocalState, orphanHint, type RegionEndpoints, stateFileName, writeLocalState } from './local-state.js';
import type { RestartPolicy } from './restart-backoff.js';
import { type ChildEvent, SupervisedChild } from './supervised-child.js';

/**
 * A local mesh: the emulator and one node process per region on this machine, configured,
 * connected, given its policy and a key per tenant, and kept running. `carpool local` (npm start)
 * drives it, and so can end-to-end tests.
 *
 * Start, in order, each step bounded in time; a failing step stops whatever already runs and
 * returns the reason, with the output tail of the child at fault:
 *   1. check that every port is free;
 *   2. take the previous run's mesh secret, admin token and API keys from the state directory
 *      (src/local/local-credentials.ts; unless `fresh`), generate what is missing, and write the
 *      secrets and each node's config there (mode 0600, directory 0700);
 *   3. start the emulator, read its URL and keys from its first line;
 *   4. start the nodes (each with its gRPC endpoint and HTTP front door), wait for each to report
 *      its gRPC endpoint, then for the mesh links;
 *   5. put the accounts and tenants into the policy at the first region's admin endpoint, with
 *      the digests of the previous run's keys of tenants still configured;
 *   6. mint an API key for every other tenant through the first region's Admin gRPC service;
 *   7. wait until every node's policy shows all of it (the document replicates over the mesh);
 *   8. write the state file for clients.
 * After that each child is supervised (src/local/supervised-child.ts): one that exits on its own
 * is started again, with its ports and config file, after a backoff, while the others keep
 * serving; a restarted node joins the mesh again and takes the policy from its peers' copies of
 * the document, and the restarted emulator derives the same keys from the same seed. Nothing in a
 * node is durable yet: a restarted node starts as a new replica and takes the counters from its
 * peers, so what it had not gossiped before it died is lost. `stop()` stops every child (SIGTERM,
 * a grace period, SIGKILL), a restart waiting for its backoff included, and leaves the state
 * directory in place for the next start.
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

/** The ready line of each kind of child; a restart waits for it again. */
const emulatorReadyPattern = /^emulator listening on (\S+) keys (\S+)/;
const nodeReadyPattern = /^\s*grpc\s+\S+/;

export interface StartLocalMeshOptions {
  /** Progress lines; none by default. */
  readonly print?: (line: string) => void;
  /** Overrides the config's stateDir; relative paths resolve against the current directory. */
  readonly stateDir?: string;
  /** Aborting it during the start stops what runs and returns an error. */
  readonly signal?: AbortSignal;
  /** Ignore the previous run's secret, token and keys, and mint everything anew. */
  readonly fresh?: boolean;
  /** A child died or came back once the mesh was up (see `formatChildEvent`). */
  readonly onChildEvent?: (event: ChildEvent) => void;
  /** How restarts back off; the defaults of src/local/restart-backoff.ts otherwise. */
  readonly restartPolicy?: RestartPolicy;
  /** Where each node runs and how the others reach it; every endpoint on `config.host` otherwise. */
  readonly placement?: NodePlacement;
}

export interface LocalMeshRegion extends RegionEndpoints {
  /** The HTTP front door's base URL: ANTHROPIC_BASE_URL for Claude Code and the SDKs. */
  readonly http: string;
  readonly config: LocalRegion;
}

export interface LocalMesh {
  readonly regions: readonly LocalMeshRegion[];
  readonly emulator: { readonly url: string; readonly keys: readonly string[] };
  /** One API key per tenant, by tenant id. */
  readonly apiKeys: Readonly<Record<string, string>>;
  /** Tenants whose key is the one the previous run saved (the others' were minted by this run). */
  readonly reusedKeys: readonly string[];
  readonly adminToken: string;
  readonly stateDir: string;
  readonly stateFile: string;
  /** The current process id of a child (`emulator` or a region name); undefined while it is down. */
  pidOf(name: string): number | undefined;
  /** How often a child was restarted and came back. */
  restartsOf(name: string): number;
  /** The last lines a child printed (`emulator` or a region name). */
  outputOf(name: string): string;
  /** Stops every child; safe to call more than once. */
  stop(): Promise<void>;
}

export async function startLocalMesh(config: LocalConfig, options: StartLocalMeshOptions = {}): Promise<Result<LocalMesh, string>> {
  const children: SupervisedChild[] = [];
  const interrupted = (): boolean => options.signal?.aborted === true;
  const abandon = async (reason: string): Promise<Result<never, string>> => {
    await Promise.all(children.map((child) => child.stop()));
    return err(interrupted() ? 'interrupted while starting; stopped what had started' : reason);
  };
  // An interruption stops the children at once, which ends any wait on them.
  const onAbort = (): void => children.forEach((child) => child.kill('SIGTERM'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const context: LaunchContext = {
    config,
    stateDir: resolve(options.stateDir ?? config.stateDir),
    print: options.print ?? (() => {}),
    children,
    interrupted,
    abandon,
    options,
    onChildEvent: undefined,
  };
  try {
    return await launch(context);
  } catch (error) {
    return abandon(`cannot start the local mesh: ${(error as Error).message}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

interface LaunchContext {
  readonly config: LocalConfig;
  readonly stateDir: string;
  readonly print: (line: string) => void;
  /** Every child started so far, so a failed start stops them all. */
  readonly children: SupervisedChild[];
  readonly interrupted: () => boolean;
  readonly abandon: (reason: string) => Promise<Result<never, string>>;
  readonly options: StartLocalMeshOptions;
  /** Where the children's events go; set once the mesh is up, as no event comes before. */
  onChildEvent: ((event: ChildEvent) => void) | undefined;
}

async function launch(context: LaunchContext): Promise<Result<LocalMesh, string>> {
  const { config, stateDir, print, interrupted, abandon } = context;
  const stateFile = join(stateDir, stateFileName);
  const taken = await checkPortsFree(config.host, plannedPorts(config));
  if (taken !== undefined) {
    const hint = await orphanHint(stateFile);
    return err(hint === undefined ? taken : `${taken}\n${hint}`);
  }

  // 2. Credentials: the previous run's unless told otherwise.
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  if (context.options.fresh === true) {
    await forgetSavedCredentials(stateDir);
    // A fresh mesh starts without the nodes' stores too: their policy names the old keys.
    await rm(join(stateDir, dataDirName), { recursive: true, force: true });
  }
  const saved = context.options.fresh === true ? noSavedCredentials : await readSavedCredentials(stateDir);
  const keyPlan = planKeys(config.tenants, saved.apiKeys);
  describeReuse(saved, keyPlan, context.options.fresh === true, print);
  const secret = config.secret ?? saved.secret ?? randomBytes(24).toString('base64url');
  const adminToken = config.adminToken ?? saved.adminToken ?? randomBytes(24).toString('base64url');
  await writeSecretFile(join(stateDir, secretFileName), secret);
  await writeSecretFile(join(stateDir, adminTokenFileName), adminToken);

  // 3. The emulator.
  print(`starting the emulator on port ${config.emulator.port} and ${config.regions.length} region node(s)…`);
  const emulator = await startEmulator(context);
  if (!emulator.ok) return emulator;
  const { child: emulatorChild, url: emulatorUrl, keys } = emulator.value;
  if (interrupted()) return abandon('interrupted');

  // 4. The nodes, all at once: each dials the others and retries until they listen.
  const accountKeys = new Map<AccountId, string>(config.emulator.accounts.map((account, i) => [account.id, keys[i] as string]));
  const { placement } = context.options;
  const nodes: SupervisedChild[] = [];
  for (const region of config.regions) {
    const configFile = join(stateDir, nodeConfigFileName(region));
    const nodeConfig = nodeConfigOf(config, region, { emulatorUrl, accountKeys, ...(placement === undefined ? {} : { placement }) });
    await writeFile(configFile, `${JSON.stringify(nodeConfig, null, 2)}\n`, { mode: 0o600 });
    const args = ['node', '--config', configFile, '--status-every', '3600'];
    nodes.push(startChild(context, region.name, args, nodeReadyPattern, undefined, placement?.commandPrefix(region)));
  }
  const ready = await Promise.all(nodes.map((node) => node.waitUntilReady()));
  for (const [i, answer] of ready.entries()) {
    if (typeof answer === 'string') return abandon(childProblem(nodes[i] as SupervisedChild, answer));
  }
  if (interrupted()) return abandon('interrupted');
  print('nodes listening; waiting for the mesh links…');
  const regions: LocalMeshRegion[] = config.regions.map((region) => {
    const host = placement?.hostOf(region) ?? config.host;
    const admin = adminUrl(host, region.adminPort);
    return {
      region: region.name,
      node: region.node,
      grpc: grpcTarget(host, region.grpcPort),
      http: httpBaseUrl(host, region.httpPort),
      admin,
      metrics: `${admin}/metrics`,
      config: region,
    };
  });
  const connected = await settle(regions, interrupted, async (region) => {
    const status = await getJson(`${region.admin}/status`, adminToken);
    const peers = isRecord(status) && Array.isArray(status.peers) ? (status.peers as unknown[]) : [];
    const up = peers.filter((peer) => isRecord(peer) && peer.connected === true).length;
    return up === regions.length - 1 ? undefined : `${region.region} has ${up} of ${regions.length - 1} mesh peers connected`;
  });
  if (connected !== undefined) return abandon(`the mesh did not connect within ${meshSettleTimeoutMs / 1000} s: ${connected}${tailsOf(nodes)}`);

  // 5 to 7. The policy and the keys.
  const apiKeys = await applyPolicy(context, regions, adminToken, keyPlan);
  if (!apiKeys.ok) return abandon(`${apiKeys.error}${tailsOf(nodes)}`);

  // 8. The state file for `carpool client`, then supervision.
  const state: LocalState = {
    version: 1,
    pid: process.pid,
    startedAtMs: Date.now(),
    emulator: emulatorUrl,
    regions: regions.map(({ region, node, grpc, http, admin, metrics }) => ({ region, node, grpc, http, admin, metrics })),
    apiKeys: apiKeys.value,
    adminToken,
    pids: pidsOf(context.children),
  };
  await writeLocalState(stateFile, state);
  return ok(
    superviseMesh(context, {
      regions,
      emulatorChild,
      nodes,
      emulator: { url: emulatorUrl, keys },
      apiKeys: apiKeys.value,
      keyPlan,
      adminToken,
      state,
      stateFile,
    }),
  );
}

/** Says which of the previous run's credentials this start takes, and what changed. */
function describeReuse(saved: SavedCredentials, plan: KeyPlan, fresh: boolean, print: (line: string) => void): void {
  if (fresh) {
    print('--fresh: a new mesh secret, admin token and API keys for every tenant');
    return;
  }
  if (saved.problem !== undefined) print(`the previous run's keys cannot be read (${saved.problem}); minting new ones`);
  if (plan.reused.size > 0) print(`reusing the API keys of ${[...plan.reused.keys()].join(', ')} from the previous run (npm start -- --fresh mints new ones)`);
  for (const tenant of plan.dropped) print(`tenant ${tenant} is no longer in the configuration: its key from the previous run is not registered`);
  for (const tenant of plan.replaced) print(`the saved key of tenant ${tenant} is not one of its keys: minting a new one`);
  if (plan.reused.size > 0) {
    for (const tenant of plan.toMint) if (!plan.replaced.includes(tenant)) print(`tenant ${tenant} is new: minting its key`);
  }
}

/** A secret file of mode 0600, also when it existed with another mode (writeFile's mode is for new files). */
async function writeSecretFile(path: string, value: string): Promise<void> {
  await writeFile(path, `${value}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

function startChild(
  context: LaunchContext,
  name: string,
  args: readonly string[],
  readyPattern: RegExp,
  checkReady?: (match: RegExpMatchArray) => string | undefined,
  commandPrefix?: readonly string[],
): SupervisedChild {
  const child = SupervisedChild.start({
    name,
    logFile: join(context.stateDir, logFileName(name)),
    args,
    readyPattern,
    startTimeoutMs: childStartTimeoutMs,
    stopGraceMs: childStopGraceMs,
    killWaitMs: childKillWaitMs,
    ...(context.options.restartPolicy === undefined ? {} : { restartPolicy: context.options.restartPolicy }),
    ...(checkReady === undefined ? {} : { checkReady }),
    ...(commandPrefix === undefined ? {} : { commandPrefix }),
    onEvent: (event) => context.onChildEvent?.(event),
  });
  context.children.push(child);
  return child;
}

async function startEmulator(context: LaunchContext): Promise<Result<{ child: SupervisedChild; url: string; keys: string[] }, string>> {
  const { config } = context;
  const { emulator: emulatorConfig } = config;
  let firstKeys = '';
  // The nodes hold the keys of the first start; a restart deriving others would fail every call.
  const sameKeys = (match: RegExpMatchArray): string | undefined =>
    match[2] === firstKeys ? undefined : 'it printed other account keys than at the first start: the nodes hold the old ones, so restart the mesh';
  const child = startChild(
    context,
    'emulator',
    [
      'emulate',
      '--host',
      config.host,
      '--port',
      String(emulatorConfig.port),
      '--accounts',
      String(emulatorConfig.accounts.length),
      '--seed',
      String(emulatorConfig.seed),
      '--ttft-ms',
      String(emulatorConfig.ttftMs),
      '--tokens-per-second',
      String(emulatorConfig.tokensPerSecond),
    ],
    emulatorReadyPattern,
    sameKeys,
  );
  const line = await child.waitUntilReady();
  if (typeof line === 'string') return context.abandon(childProblem(child, line));
  firstKeys = line[2] as string;
  const keys = firstKeys.split(',');
  if (keys.length !== emulatorConfig.accounts.length)
    return context.abandon(`the emulator printed ${keys.length} keys for ${emulatorConfig.accounts.length} accounts`);
  return ok({ child, url: line[1] as string, keys });
}

/**
 * Steps 5 to 7: the accounts and tenants into the policy (with the digests of reused keys), a new
 * key for each tenant that has none, and a wait until every region's policy shows them all.
 * Answers every tenant's key.
 */
async function applyPolicy(
  context: LaunchContext,
  regions: readonly LocalMeshRegion[],
  adminToken: string,
  keyPlan: KeyPlan,
): Promise<Result<Record<string, string>, string>> {
  const { config, print, interrupted } = context;
  const { emulator: emulatorConfig } = config;
  // 5. The policy, written once at the first region; the document carries it to the others.
  print(`mesh connected; applying the policy at ${config.regions[0]?.name ?? '?'}${keyPlan.toMint.length > 0 ? ' and minting keys' : ''}…`);
  const first = regions[0] as LocalMeshRegion;
  for (const account of emulatorConfig.accounts) {
    const put = await sendJson('PUT', `${first.admin}/policy/accounts/${encodeURIComponent(account.id)}`, accountPolicyOf(account), adminToken);
    if (put !== undefined) return err(`PUT /policy/accounts/${account.id} at ${first.region}: ${put}`);
  }
  // The nodes keep their policy across starts; the config is what the local mesh runs, so a tenant
  // or account it no longer lists is removed (and with it, a removed tenant's keys).
  const pruned = await pruneUnlisted(first.admin, adminToken, new Set(config.tenants.map((t) => t.id)), new Set(emulatorConfig.accounts.map((a) => a.id)));
  if (pruned !== undefined) return err(`removing what the config no longer lists at ${first.region}: ${pruned}`);
  for (const tenant of config.tenants) {
    const put = await sendJson('PUT', `${first.admin}/policy/tenants/${encodeURIComponent(tenant.id)}`, tenantPolicyOf(tenant), adminToken);
    if (put !== undefined) return err(`PUT /policy/tenants/${tenant.id} at ${first.region}: ${put}`);
    // A previous run's key is registered again: a node started without its store (a new data
    // directory, --fresh) has no policy; one with its store already holds the key, which the
    // endpoint answers with 400 on the field apiKey, "already" (src/node/admin/admin-service.ts).
    const reused = keyPlan.reused.get(tenant.id);
    if (reused === undefined) continue;
    const registered = await sendJson(
      'POST',
      `${first.admin}/policy/tenants/${encodeURIComponent(tenant.id)}/keys`,
      { name: 'local-mesh', apiKey: reused, reason: 'kept from the previous carpool local start' },
      adminToken,
    );
    const alreadyThere =
      registered !== undefined && registered.startsWith('HTTP 400') && registered.includes('"field":"apiKey"') && registered.includes('already');
    if (registered !== undefined && !alreadyThere) return err(`registering the previous key of tenant ${tenant.id} at ${first.region}: ${registered}`);
  }

  // 6. A key for each tenant without one, minted by the Admin service (it stores only the digest).
  const apiKeys: Record<string, string> = Object.fromEntries(keyPlan.reused);
  for (const tenant of keyPlan.toMint) {
    const minted = await createApiKey(first.grpc, adminToken, tenant, adminCallTimeoutMs);
    if (!minted.ok) return err(minted.error);
    apiKeys[tenant] = minted.value.apiKey;
  }
  // In the config's order, as clients list them.
  const ordered = Object.fromEntries(config.tenants.map((tenant) => [tenant.id, apiKeys[tenant.id] as string]));

  // 7. Every node must know every account, tenant and key before a client may pick any region.
  const keyIds = new Map(Object.entries(ordered).map(([tenant, key]) => [tenant, formatKeyId(tenant as TenantId, apiKeyHashHex(nodeAuthCrypto, key))]));
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
  if (replicated !== undefined) return err(`the policy did not reach every region within ${meshSettleTimeoutMs / 1000} s: ${replicated}`);
  return ok(ordered);
}

interface StartedMesh {
  readonly regions: readonly LocalMeshRegion[];
  readonly emulatorChild: SupervisedChild;
  readonly nodes: readonly SupervisedChild[];
  readonly emulator: { readonly url: string; readonly keys: readonly string[] };
  readonly apiKeys: Record<string, string>;
  readonly keyPlan: KeyPlan;
  readonly adminToken: string;
  readonly state: LocalState;
  readonly stateFile: string;
}

/**
 * Arms the restarts and answers the running mesh. The state file follows the children's process
 * ids, so a user can still find them from it if the launcher itself is killed.
 */
function superviseMesh(context: LaunchContext, started: StartedMesh): LocalMesh {
  const { children } = context;
  let stopping: Promise<void> | undefined;
  // Events pass in order through one chain, and a `back` is told once the state file has the new
  // process id, so whoever reads the file on that news finds it.
  let events = Promise.resolve();
  context.onChildEvent = (event) => {
    if (stopping !== undefined) return;
    const state = event.kind === 'back' ? { ...started.state, pids: pidsOf(children) } : undefined;
    events = events
      .then(() => (state === undefined ? undefined : writeLocalState(started.stateFile, state)))
      .catch(() => {})
      .then(() => context.options.onChildEvent?.(event));
  };
  for (const child of children) child.supervise();
  const byName = new Map(children.map((child) => [child.name, child]));
  return {
    regions: started.regions,
    emulator: started.emulator,
    apiKeys: started.apiKeys,
    reusedKeys: [...started.keyPlan.reused.keys()],
    adminToken: started.adminToken,
    stateDir: context.stateDir,
    stateFile: started.stateFile,
    pidOf: (name) => byName.get(name)?.pid,
    restartsOf: (name) => byName.get(name)?.restarts ?? 0,
    outputOf: (name) => byName.get(name)?.tail() ?? '',
    stop: () => {
      // Nodes first, so their last calls still reach the emulator; then the emulator.
      stopping ??= (async () => {
        await Promise.all(started.nodes.map((node) => node.stop()));
        await started.emulatorChild.stop();
        await events;
      })();
      return stopping;
    },
  };
}

function pidsOf(children: readonly SupervisedChild[]): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const child of children) {
    const pid = child.pid;
    if (pid !== undefined) pids[child.name] = pid;
  }
  return pids;
}

/** A message for a child that failed to start: what went wrong, its output tail, its log. */
export function childProblem(child: SupervisedChild, problem: string): string {
  const tail = child.tail();
  return `${child.name} ${problem}${tail.length > 0 ? `; its last output:\n${indent(tail)}` : ' (it printed nothing)'}\n(full log: ${child.logFile})`;
}

function tailsOf(nodes: readonly SupervisedChild[]): string {
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

/** A write to the admin endpoint, with the mesh's admin token: undefined on 200, else the status and the error it gave. */
/** Removes the policy's tenants and accounts that are not in `tenants` and `accounts`; an error message, or undefined. */
async function pruneUnlisted(admin: string, adminToken: string, tenants: ReadonlySet<string>, accounts: ReadonlySet<string>): Promise<string | undefined> {
  let policy: unknown;
  try {
    const response = await fetch(`${admin}/policy`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(adminCallTimeoutMs) });
    if (response.status !== 200) return `GET /policy: HTTP ${response.status}`;
    policy = await response.json();
  } catch (error) {
    return (error as Error).message;
  }
  if (!isRecord(policy) || !Array.isArray(policy.tenants) || !Array.isArray(policy.accounts)) return 'GET /policy: not a policy';
  const ids = (entries: unknown[]): string[] => entries.flatMap((entry) => (isRecord(entry) && typeof entry.id === 'string' ? [entry.id] : []));
  for (const [kind, listed, present] of [
    ['tenants', tenants, ids(policy.tenants as unknown[])],
    ['accounts', accounts, ids(policy.accounts as unknown[])],
  ] as const) {
    for (const id of present) {
      if (listed.has(id)) continue;
      const removed = await sendJson(
        'DELETE',
        `${admin}/policy/${kind}/${encodeURIComponent(id)}`,
        { reason: 'no longer in the carpool local config' },
        adminToken,
      );
      if (removed !== undefined) return `DELETE /policy/${kind}/${id}: ${removed}`;
    }
  }
  return undefined;
}

async function sendJson(method: 'PUT' | 'POST' | 'DELETE', url: string, body: unknown, adminToken: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, {
      method,
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
