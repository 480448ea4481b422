import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { SqliteStore } from '../ledger/sqlite-store.js';
import type { AccountId } from '../core/ids.js';
import { ledgerRollUpRowsMax, upstreamCloseGraceMs } from '../core/limits.js';
import { type AdminRole, type AdminTokenEntry, AdminTokens } from '../admission/admin-access.js';
import { type AdminServer, startAdminHttp } from '../net/admin-http.js';
import type { UpstreamTarget } from '../upstream/upstream-request.js';
import { PrometheusNodeMetrics } from '../observe/prometheus-node-metrics.js';
import { AdminRoutes, gatewayStatusOf } from './admin-routes.js';
import { defaultGatewaySettings } from './gateway/gateway-settings.js';
import { RegionGateway } from './gateway/region-gateway.js';
import { readAccountCredentials, type SourcedCredential } from './gateway/upstream-targets.js';
import { AccountCredentials } from './credentials/account-credentials.js';
import { CredentialVault } from './credentials/credential-vault.js';
import { upstreamCredentialOf } from './credentials/held-credential.js';
import { HttpTokenEndpoint } from './credentials/token-endpoint.js';
import { systemTimers } from '../upstream/call-guard.js';
import { systemClock } from '../platform/system-clock.js';
import { MeshRuntime } from './mesh-runtime.js';
import { AdminService } from './admin/admin-service.js';
import { nodeAuthCrypto } from './node-auth-crypto.js';
import {
  adminTokenLengthMax,
  adminTokenLengthMin,
  defaultAdminTokenName,
  defaultStoreConfig,
  isValidAdminToken,
  type NodeConfig,
  parseNodeConfig,
  type TokenSource,
} from './node-config.js';

/**
 * `carpool node --config FILE`: one mesh node process. Prints its endpoints, a status line every
 * `statusEveryMs`, and stops cleanly on SIGINT or SIGTERM: the gRPC endpoint first (running calls
 * get `upstreamCloseGraceMs` to finish and settle), then the admin endpoint, then the mesh.
 */
export interface RunNodeOptions {
  readonly configPath: string;
  readonly statusEveryMs: number;
  readonly print: (line: string) => void;
}

export async function runNode(options: RunNodeOptions): Promise<number> {
  const loaded = await loadNodeConfig(options.configPath);
  if (typeof loaded === 'string') {
    options.print(`carpool node: ${loaded}`);
    return 2;
  }
  const opened = openNodeStore(loaded);
  if (!opened.ok) {
    // A store that cannot be read or written is never replaced by an empty one: the node would
    // serve requests whose usage it cannot keep. It stops, saying what an operator can do.
    options.print(`carpool node: ${opened.error}`);
    return 3;
  }
  let node: StartedNode;
  try {
    node = await startNode(loaded, options.print, opened.value);
  } catch (error) {
    opened.value?.close();
    options.print(`carpool node: ${(error as Error).message}`);
    return 3;
  }
  const { config } = loaded;
  const runtime = node.runtime;
  let last = { deltas: 0, at: Date.now() };
  const status = setInterval(() => {
    const now = Date.now();
    const peers = runtime.node.peerViews(now);
    const connected = peers.filter((p) => p.connected).length;
    const deltas = runtime.node.stats.deltasReceived;
    const perSecond = ((deltas - last.deltas) * 1000) / Math.max(1, now - last.at);
    last = { deltas, at: now };
    options.print(`[${config.node}] peers ${connected}/${peers.length} connected, ${perSecond.toFixed(1)} deltas/s in, ${runtime.counter.size} keys`);
  }, options.statusEveryMs);
  // SIGHUP re-reads the config's upstream credentials (only those: the rest needs a restart).
  const reload = (): void => void reloadCredentials(options.configPath, node, options.print);
  process.on('SIGHUP', reload);
  await new Promise<void>((done) => {
    const stop = (): void => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.off('SIGHUP', reload);
  clearInterval(status);
  await node.stop();
  options.print(`node ${config.node} stopped`);
  return 0;
}

/** A running node: what `carpool node` starts, and what a test harness may add routes beside. */
export interface StartedNode {
  readonly runtime: MeshRuntime;
  /** The admin HTTP endpoint, when the config has one. */
  readonly admin: AdminServer | undefined;
  readonly gateway: RegionGateway | undefined;
  /** The node's durable store, with a `dataDir`. */
  readonly store: SqliteStore | undefined;
  /** The upstream credentials of the accounts this node calls, renewed as they expire; none without `upstream`. */
  readonly credentials: AccountCredentials | undefined;
  /** Stops the gRPC endpoint (running calls get `upstreamCloseGraceMs` to settle), the admin endpoint, then the mesh. */
  stop(): Promise<void>;
}

/**
 * Opens the node's durable store in its data directory (`dataDir/node.sqlite`), or none without a
 * `dataDir`; a message an operator can act on when it cannot be opened.
 */
export function openNodeStore(loaded: LoadedNodeConfig): Result<SqliteStore | undefined, string> {
  const { config } = loaded;
  if (config.dataDir === undefined) return ok(undefined);
  const store = config.store ?? defaultStoreConfig;
  const path = join(resolve(loaded.baseDir, config.dataDir), storeFileName);
  const opened = SqliteStore.open(path, { sync: store.sync, maxBytes: store.maxBytes, retentionMs: store.retentionDays * dayMs });
  if (!opened.ok) return err(`the store ${path} cannot be used (${opened.error.kind}): ${opened.error.message}`);
  return ok(opened.value);
}

/** Starts a node from a loaded config and prints its endpoints; `store` is its opened durable store, if any. */
export async function startNode(loaded: LoadedNodeConfig, print: (line: string) => void, store?: SqliteStore): Promise<StartedNode> {
  const { config, secret, tls, adminTokens } = loaded;
  let runtime: MeshRuntime;
  try {
    runtime = await MeshRuntime.start({ config, secret, ...(tls === undefined ? {} : { tls }), log: print, ...(store === undefined ? {} : { store }) });
  } catch (error) {
    store?.close();
    throw error;
  }
  if (runtime.restart !== undefined) describeRestart(runtime, print);
  const rollUp = store === undefined ? undefined : setInterval(() => void rollUpLedger(store, print, () => !storeClosing), storeRollUpEveryMs);
  let storeClosing = false;
  rollUp?.unref();
  const metrics = new PrometheusNodeMetrics({ runtime, region: config.region, node: config.node, processMetrics: true });
  if (store !== undefined && runtime.journal !== undefined) {
    const journal = runtime.journal;
    metrics.attachStore({ stats: () => store.stats(), journal: journal.stats, failing: () => journal.failing });
  }
  let credentials: AccountCredentials | undefined;
  try {
    credentials = startCredentials(loaded, runtime, store, print);
  } catch (error) {
    await runtime.stop();
    store?.close();
    throw error;
  }
  if (credentials !== undefined) {
    const live = credentials;
    metrics.attachCredentials({
      refreshes: live.stats.refreshes,
      refusedCount: () => live.refusedCount(),
      retried: () => gateway?.credentialed?.stats.retried ?? 0,
    });
  }
  // Assigned once the endpoint is up; the admin routes read it through the closure.
  let gateway: RegionGateway | undefined = undefined;
  // The store is also the node's usage ledger, which the admin surfaces read (usage queries, exports).
  const service = new AdminService({ runtime, crypto: nodeAuthCrypto, usage: store, credentials });
  const routes = new AdminRoutes(runtime, service, { metrics, gatewayStatus: () => (gateway === undefined ? undefined : gatewayStatusOf(gateway.carpool)) });
  const admin =
    config.admin === undefined
      ? undefined
      : await startAdminHttp({
          host: config.admin.host,
          port: config.admin.port,
          handler: routes,
          tokens: adminTokens,
          allowedHosts: config.admin.allowedHosts ?? [],
          allowedOrigins: config.admin.allowedOrigins ?? [],
        });
  gateway =
    config.grpc === undefined
      ? undefined
      : await RegionGateway.start({
          runtime,
          listen: config.grpc,
          targets: new Map(),
          credentials,
          adminTokens,
          settings: { ...defaultGatewaySettings, rateLimits: config.rateLimits ?? defaultGatewaySettings.rateLimits },
          observer: metrics,
          log: print,
          http: config.http === undefined ? undefined : { listen: config.http, bounds: config.http.bounds, models: config.http.models },
          usage: store,
        });
  if (gateway !== undefined) {
    const { executor } = gateway;
    metrics.attachGateway({
      carpool: gateway.carpool,
      caller: gateway.caller,
      server: gateway.server,
      client: gateway.client,
      forward: { router: gateway.router.stats, executor: executor.stats, ledger: executor.ledger.stats, ledgerEntries: () => executor.ledger.size },
    });
  }
  const scheme = tls === undefined ? 'ws' : 'wss';
  print(`node ${config.node} (${config.region}) replica ${runtime.replica}`);
  print(`  mesh  ${scheme}://${config.listen.host}:${runtime.meshPort}`);
  if (admin !== undefined) print(`  admin http://${config.admin?.host}:${admin.port} (metrics at /metrics; ${adminTokens.size} admin token(s))`);
  if (gateway !== undefined) {
    const adminService = adminTokens.size === 0 ? 'without the Admin service (no admin token)' : 'with the Admin service';
    print(`  grpc  ${config.grpc?.host}:${gateway.port}, ${credentials?.size ?? 0} upstream account credential(s), ${adminService}`);
    if (gateway.http !== undefined) print(`  http  http://${config.http?.host}:${gateway.http.port} (Anthropic Messages API: ANTHROPIC_BASE_URL)`);
  }
  const started = gateway;
  return {
    runtime,
    admin,
    gateway: started,
    store,
    credentials,
    stop: async () => {
      if (rollUp !== undefined) clearInterval(rollUp);
      credentials?.close();
      storeClosing = true;
      await started?.stop(upstreamCloseGraceMs);
      await admin?.close();
      // The runtime commits what the last requests settled before it stops; the store closes after.
      await runtime.stop();
      store?.close();
    },
  };
}

/** A node config read from its file with every secret it names resolved. */
export interface LoadedNodeConfig {
  readonly config: NodeConfig;
  readonly secret: Uint8Array;
  readonly tls: { certPem: string; keyPem: string; caPem?: string } | undefined;
  /** The upstream accounts' credentials as configured now (the config, the environment or files). */
  readonly credentials: ReadonlyMap<AccountId, SourcedCredential>;
  /** The same as targets, with the access tokens they hold now (no renewal): for tools that only read. */
  readonly targets: ReadonlyMap<AccountId, UpstreamTarget>;
  /** Every configured admin token, `adminToken` as the one named `admin`. */
  readonly adminTokens: AdminTokens;
  /** The config file's folder: relative paths in it resolve against it. */
  readonly baseDir: string;
}

/** The store's file in a node's data directory. */
export const storeFileName = 'node.sqlite';
const dayMs = 86_400_000;
/** How often usage rows past retention are rolled into daily aggregates (in bounded chunks). */
const storeRollUpEveryMs = 60_000;
/** Chunks of `ledgerRollUpRowsMax` rows one roll-up run takes at most: 200,000 rows a minute. */
const storeRollUpChunksMax = 100;

function describeRestart(runtime: MeshRuntime, print: (line: string) => void): void {
  const restart = runtime.restart;
  if (restart === undefined) return;
  if (!restart.resumed) {
    print(`  store: a new replica (start ${restart.starts}); nothing to restore`);
    return;
  }
  const interrupted = restart.interrupted.filter((ended) => ended.settlements.length > 0).length;
  const withdrawn = restart.interrupted.length - interrupted;
  print(
    `  store: resumed as ${runtime.replica} (start ${restart.starts}): ${restart.counterEntries} counter entries, ${restart.rightsRows} rights rows, ${restart.policyUpdates} policy updates;` +
      ` ${interrupted} request(s) interrupted mid-call ended (released on eventual limits, the estimate kept on strict and escrow ones), ${withdrawn} never dispatched withdrawn` +
      (restart.skipped > 0 ? `; ${restart.skipped} stored record(s) did not decode and were skipped` : ''),
  );
}

/**
 * Rolls every usage row past retention into the daily aggregates, a bounded chunk at a time with
 * the event loop free between chunks, up to `storeRollUpChunksMax` chunks a run (the next run goes
 * on from there).
 */
async function rollUpLedger(store: SqliteStore, print: (line: string) => void, open: () => boolean): Promise<void> {
  for (let chunk = 0; chunk < storeRollUpChunksMax && open(); chunk++) {
    const rolled = store.rollUp(Date.now());
    if (!rolled.ok) {
      print(`store: rolling up usage rows failed (${rolled.error.kind}): ${rolled.error.message}`);
      return;
    }
    if (rolled.value < ledgerRollUpRowsMax) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Reads and checks a node config and what it refers to; a message naming the field otherwise.
 * `env` is where the member id (`"node": { "env": ... }`), `CARPOOL_MESH_SECRET` and the accounts'
 * `keyEnv` / `credentialsEnv` are looked up: the process's environment unless a caller (a test of
 * a deployment's configs) hands another.
 */
export async function loadNodeConfig(path: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedNodeConfig | string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return `cannot read the config file ${path}: ${(error as Error).message}`;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return `the config file ${path} is not JSON: ${(error as Error).message}`;
  }
  const parsed = parseNodeConfig(raw, env);
  if (!parsed.ok) return `${path}: field ${parsed.error.field}: ${parsed.error.reason}`;
  const config = parsed.value;
  const base = dirname(resolve(path));
  let secretText: string;
  if (config.secret.kind === 'inline') secretText = config.secret.value;
  else if (config.secret.kind === 'env') {
    const fromEnv = env.CARPOOL_MESH_SECRET;
    if (fromEnv === undefined || fromEnv.length < 16)
      return 'no mesh secret: set "secret" or "secretFile" in the config, or CARPOOL_MESH_SECRET (at least 16 characters)';
    secretText = fromEnv;
  } else {
    try {
      secretText = (await readFile(resolve(base, config.secret.path), 'utf8')).trim();
    } catch (error) {
      return `field secretFile: cannot read ${config.secret.path}: ${(error as Error).message}`;
    }
    if (secretText.length < 16) return `field secretFile: the secret in ${config.secret.path} is shorter than 16 characters`;
  }
  let tls: LoadedNodeConfig['tls'];
  if (config.tls !== undefined) {
    try {
      const certPem = await readFile(resolve(base, config.tls.certFile), 'utf8');
      const keyPem = await readFile(resolve(base, config.tls.keyFile), 'utf8');
      const caPem = config.tls.caFile === undefined ? undefined : await readFile(resolve(base, config.tls.caFile), 'utf8');
      tls = { certPem, keyPem, ...(caPem === undefined ? {} : { caPem }) };
    } catch (error) {
      return `field tls: cannot read a certificate or key: ${(error as Error).message}`;
    }
  }
  const adminTokens = await resolveAdminTokens(config, base);
  if (typeof adminTokens === 'string') return adminTokens;
  const credentials = await readAccountCredentials(config.upstream, { baseDir: base, env });
  if (!credentials.ok) return `${path}: field ${credentials.error.field}: ${credentials.error.reason}`;
  const targets = new Map<AccountId, UpstreamTarget>();
  for (const [id, sourced] of credentials.value) targets.set(id, { baseUrl: config.upstream?.baseUrl ?? '', credential: upstreamCredentialOf(sourced.held) });
  return { config, secret: new TextEncoder().encode(secretText), tls, credentials: credentials.value, targets, adminTokens, baseDir: base };
}

/**
 * The node's upstream credentials, kept in its store when it has one (else written back to their
 * files), renewed before they expire; a refused renewal disables the account in the pool.
 * Undefined on a node without `upstream`. Throws with a message naming the account when the store
 * cannot be read.
 */
function startCredentials(
  loaded: LoadedNodeConfig,
  runtime: MeshRuntime,
  store: SqliteStore | undefined,
  print: (line: string) => void,
): AccountCredentials | undefined {
  const upstream = loaded.config.upstream;
  if (upstream === undefined) return undefined;
  const clock = systemClock;
  const started = AccountCredentials.start(
    {
      baseUrl: upstream.baseUrl,
      refreshLeadMs: upstream.oauth.refreshLeadMs,
      endpoint: new HttpTokenEndpoint(upstream.oauth, { clock }),
      vault: new CredentialVault(store, () => clock.nowMs()),
      pool: runtime.pool,
      clock,
      timers: systemTimers,
      log: print,
    },
    loaded.credentials,
  );
  if (!started.ok) throw new Error(started.error);
  return started.value;
}

/** SIGHUP: the config file's credentials read again and handed to the running node. */
async function reloadCredentials(configPath: string, node: StartedNode, print: (line: string) => void): Promise<void> {
  if (node.credentials === undefined) {
    print('SIGHUP: this node has no upstream credentials to re-read');
    return;
  }
  const loaded = await loadNodeConfig(configPath);
  if (typeof loaded === 'string') {
    print(`SIGHUP: the credentials were not re-read: ${loaded}`);
    return;
  }
  const { changed, removed } = node.credentials.reload(loaded.credentials);
  print(
    `SIGHUP: credentials re-read: ${changed.length} new or changed${changed.length === 0 ? '' : ` (${changed.join(', ')})`}, ${removed.length} removed${removed.length === 0 ? '' : ` (${removed.join(', ')})`}`,
  );
}

/** Reads every admin token (inline or from its file) and checks that no two names share one. */
async function resolveAdminTokens(config: NodeConfig, base: string): Promise<AdminTokens | string> {
  const sources: { readonly name: string; readonly role: AdminRole; readonly source: TokenSource; readonly field: string }[] = [];
  if (config.adminToken !== undefined) {
    sources.push({
      name: defaultAdminTokenName,
      role: 'admin',
      source: config.adminToken,
      field: config.adminToken.kind === 'file' ? 'adminTokenFile' : 'adminToken',
    });
  }
  for (const [i, entry] of (config.adminTokens ?? []).entries()) {
    sources.push({
      name: entry.name,
      role: entry.role,
      source: entry.token,
      field: `adminTokens[${i}].${entry.token.kind === 'file' ? 'tokenFile' : 'token'}`,
    });
  }
  const entries: AdminTokenEntry[] = [];
  for (const { name, role, source, field } of sources) {
    let token: string;
    if (source.kind === 'inline') token = source.value;
    else {
      try {
        token = (await readFile(resolve(base, source.path), 'utf8')).trim();
      } catch (error) {
        return `field ${field}: cannot read ${source.path}: ${(error as Error).message}`;
      }
      if (!isValidAdminToken(token))
        return `field ${field}: the token in ${source.path} must be ${adminTokenLengthMin} to ${adminTokenLengthMax} printable ASCII characters without spaces`;
    }
    const same = entries.find((entry) => entry.token === token);
    if (same !== undefined) return `field ${field}: the same token as the one named ${same.name}; each name needs its own token`;
    entries.push({ name, role, token });
  }
  return new AdminTokens(nodeAuthCrypto, entries);
}
