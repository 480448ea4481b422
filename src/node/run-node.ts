import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { AccountId } from '../core/ids.js';
import { upstreamCloseGraceMs } from '../core/limits.js';
import { startAdminHttp } from '../net/admin-http.js';
import type { UpstreamTarget } from '../upstream/upstream-request.js';
import { PrometheusNodeMetrics } from '../observe/prometheus-node-metrics.js';
import { AdminRoutes, gatewayStatusOf } from './admin-routes.js';
import { defaultGatewaySettings } from './gateway/gateway-settings.js';
import { RegionGateway } from './gateway/region-gateway.js';
import { resolveUpstreamTargets } from './gateway/upstream-targets.js';
import { MeshRuntime } from './mesh-runtime.js';
import { adminTokenLengthMin, type NodeConfig, parseNodeConfig } from './node-config.js';

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
  const loaded = await loadConfig(options.configPath);
  if (typeof loaded === 'string') {
    options.print(`carpool node: ${loaded}`);
    return 2;
  }
  const { config, secret, tls, targets, adminToken } = loaded;
  const runtime = await MeshRuntime.start({ config, secret, ...(tls === undefined ? {} : { tls }), log: options.print });
  const metrics = new PrometheusNodeMetrics({ runtime, region: config.region, node: config.node, processMetrics: true });
  // Assigned once the endpoint is up; the admin routes read it through the closure.
  let gateway: RegionGateway | undefined = undefined;
  const routes = new AdminRoutes(runtime, { metrics, gatewayStatus: () => (gateway === undefined ? undefined : gatewayStatusOf(gateway.carpool)) });
  const admin = config.admin === undefined ? undefined : await startAdminHttp(config.admin.host, config.admin.port, routes);
  gateway =
    config.grpc === undefined
      ? undefined
      : await RegionGateway.start({
          runtime,
          listen: config.grpc,
          targets,
          adminToken,
          settings: { ...defaultGatewaySettings, rateLimits: config.rateLimits ?? defaultGatewaySettings.rateLimits },
          observer: metrics,
          log: options.print,
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
  options.print(`node ${config.node} (${config.region}) replica ${runtime.replica}`);
  options.print(`  mesh  ${scheme}://${config.listen.host}:${runtime.meshPort}`);
  if (admin !== undefined) options.print(`  admin http://${config.admin?.host}:${admin.port} (metrics at /metrics)`);
  if (gateway !== undefined) {
    const adminService = adminToken === undefined ? 'without the Admin service (no admin token)' : 'with the Admin service';
    options.print(`  grpc  ${config.grpc?.host}:${gateway.port}, ${targets.size} upstream account credential(s), ${adminService}`);
  }
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
  await new Promise<void>((done) => {
    const stop = (): void => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(status);
  await gateway?.stop(upstreamCloseGraceMs);
  await admin?.close();
  await runtime.stop();
  options.print(`node ${config.node} stopped`);
  return 0;
}

interface Loaded {
  readonly config: NodeConfig;
  readonly secret: Uint8Array;
  readonly tls: { certPem: string; keyPem: string; caPem?: string } | undefined;
  /** The upstream accounts' credentials, read from the config, the environment or files. */
  readonly targets: ReadonlyMap<AccountId, UpstreamTarget>;
  readonly adminToken: string | undefined;
}

async function loadConfig(path: string): Promise<Loaded | string> {
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
  const parsed = parseNodeConfig(raw);
  if (!parsed.ok) return `${path}: field ${parsed.error.field}: ${parsed.error.reason}`;
  const config = parsed.value;
  const base = dirname(resolve(path));
  let secretText: string;
  if (config.secret.kind === 'inline') secretText = config.secret.value;
  else if (config.secret.kind === 'env') {
    const fromEnv = process.env.CARPOOL_MESH_SECRET;
    if (fromEnv === undefined || fromEnv.length < 16) return 'no mesh secret: set "secret" or "secretFile" in the config, or CARPOOL_MESH_SECRET (at least 16 characters)';
    secretText = fromEnv;
  } else {
    try {
      secretText = (await readFile(resolve(base, config.secret.path), 'utf8')).trim();
    } catch (error) {
      return `field secretFile: cannot read ${config.secret.path}: ${(error as Error).message}`;
    }
    if (secretText.length < 16) return `field secretFile: the secret in ${config.secret.path} is shorter than 16 characters`;
  }
  let tls: Loaded['tls'];
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
  let adminToken: string | undefined;
  if (config.adminToken?.kind === 'inline') adminToken = config.adminToken.value;
  else if (config.adminToken?.kind === 'file') {
    try {
      adminToken = (await readFile(resolve(base, config.adminToken.path), 'utf8')).trim();
    } catch (error) {
      return `field adminTokenFile: cannot read ${config.adminToken.path}: ${(error as Error).message}`;
    }
    if (adminToken.length < adminTokenLengthMin) return `field adminTokenFile: the token in ${config.adminToken.path} is shorter than ${adminTokenLengthMin} characters`;
  }
  const targets = await resolveUpstreamTargets(config.upstream, { baseDir: base, env: process.env });
  if (!targets.ok) return `${path}: field ${targets.error.field}: ${targets.error.reason}`;
  return { config, secret: new TextEncoder().encode(secretText), tls, targets: targets.value, adminToken };
}
