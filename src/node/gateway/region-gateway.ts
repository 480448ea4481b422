import { Agent } from 'undici';
import type { AdminTokens } from '../../admission/admin-access.js';
import { RequestAuthenticator } from '../../admission/request-auth.js';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../platform/system-clock.js';
import type { AccountId, NodeId } from '../../core/ids.js';
import { countTokensTimeoutMs, gatewayHealthCheckEveryMs, upstreamCloseGraceMs } from '../../core/limits.js';
import { ForwardClient } from '../../net/grpc/forward-client.js';
import { CarpoolGrpcServer, type ListenAddress } from '../../net/grpc/grpc-server.js';
import { anthropicRoutes } from '../../net/http/anthropic-routes.js';
import { openAiRoutes } from '../../net/http/openai-routes.js';
import { type HttpBounds, HttpFrontDoor, type HttpRoute } from '../../net/http/http-server.js';
import { type ModelEntry, modelCatalogueOf } from '../../net/http/model-catalogue.js';
import type { GatewayObserver } from '../../observe/gateway-observer.js';
import type { Account } from '../../mesh/policy/policy-schema.js';
import type { FeedbackReport } from '../../pool/account-pool.js';
import { disableReasonText } from '../../pool/account-health.js';
import { AccountCaller, type AccountCallClient } from '../account-caller.js';
import { CredentialedClient, type CredentialSource } from '../credentials/credentialed-client.js';
import { AdminService } from '../admin/admin-service.js';
import { ForwardExecutor, newForwardLedger, storedAnswerCodec } from '../forward/forward-executor.js';
import { servedAnswerCodec } from './answer-store.js';
import { type ForwardRoute, ForwardRouter } from '../forward/forward-route.js';
import type { MeshRuntime } from '../mesh-runtime.js';
import { nodeAuthCrypto } from '../node-auth-crypto.js';
import { countTokensCall } from '../../upstream/count-tokens-call.js';
import { UpstreamClient } from '../../upstream/upstream-client.js';
import type { UpstreamTarget } from '../../upstream/upstream-request.js';
import type { UsageReader } from '../../ledger/usage-query.js';
import { AdminGateway } from './admin-gateway.js';
import { CarpoolGateway, type SettledRequest } from './carpool-gateway.js';
import type { GatewaySettings } from './gateway-settings.js';

/**
 * The public side of one region node, wired together: the gRPC endpoint over the carpool and
 * admin handlers, the HTTP front door (src/net/http/, when configured) over the same carpool
 * handler, an upstream client and the account caller that uses the runtime's pool, and a
 * small connection pool for count_tokens. `MeshRuntime` stays the mesh; this is what a node adds
 * when its configuration has `grpc`.
 *
 * Forwarding (src/node/forward/): an account homed in another region is called through that
 * region's node, found in the members' `grpc` addresses; this node serves the members-only
 * Forward service for the accounts homed here, authenticated by the mesh secret.
 *
 * Health: the endpoint reports SERVING while this node reaches a majority of the mesh (itself
 * included), which strict admission and quorum reads need, and NOT_SERVING otherwise and while
 * it drains; checked every `gatewayHealthCheckEveryMs`.
 *
 * Start: the gRPC endpoint binds, then the HTTP front door, then health is reported. Stop, within
 * one grace period:
 *   1. both endpoints take no new calls (gRPC reports NOT_SERVING) and wait for the running ones;
 *      at the end of the grace what is left is cancelled (queued requests leave the queue, and
 *      streams whose client is gone drain for their usage);
 *   2. handlers finish settling (draining calls included), as long as the grace lasts;
 *   3. the account caller ends parked calls, the upstream client cuts what still runs (with the
 *      usage seen so far, which the handlers settle) and closes its connections.
 */
export interface RegionGatewayOptions {
  readonly runtime: MeshRuntime;
  readonly listen: ListenAddress;
  /** Where each account this node holds a credential for is called. */
  readonly targets: ReadonlyMap<AccountId, UpstreamTarget>;
  /**
   * The node's live credentials (src/node/credentials/account-credentials.ts), looked up before
   * `targets`: their targets carry the access token held at each call, and calls on renewable
   * OAuth accounts renew and retry once on an expired token (local and forwarded calls alike).
   */
  readonly credentials?: (CredentialSource & { target(accountId: AccountId): UpstreamTarget | undefined }) | undefined;
  /** The admin tokens (src/admission/admin-access.ts); without any, the Admin service is not served. */
  readonly adminTokens?: AdminTokens | undefined;
  readonly settings?: GatewaySettings;
  /** Hears the request path's timings and tokens (the node's Prometheus metrics). */
  readonly observer?: GatewayObserver;
  /** Told the usage record of every settled request (src/node/gateway/carpool-gateway.ts `SettledRequest`). */
  readonly onSettled?: (settled: SettledRequest) => void;
  readonly log?: (line: string) => void;
  /** The HTTP front door (src/net/http/): Anthropic routes over the same gateway; none without it. */
  readonly http?: RegionHttpOptions | undefined;
  /** The node's usage ledger, which the Admin service's QueryUsage reads; none without a `dataDir`. */
  readonly usage?: UsageReader | undefined;
}

export interface RegionHttpOptions {
  readonly listen: ListenAddress;
  readonly bounds?: Partial<HttpBounds>;
  /** The node's model catalogue (src/net/http/model-catalogue.ts); the default list when undefined. */
  readonly models?: readonly ModelEntry[] | undefined;
  /** More routes beside the Anthropic ones (an OpenAI-compatible route), over the same gateway. */
  readonly routes?: (carpool: CarpoolGateway) => readonly HttpRoute[];
}

export class RegionGateway {
  private stopping: Promise<void> | undefined;
  private readonly healthTimer: NodeJS.Timeout;

  private constructor(
    readonly port: number,
    readonly server: CarpoolGrpcServer,
    readonly carpool: CarpoolGateway,
    readonly admin: AdminGateway | undefined,
    readonly caller: AccountCaller,
    readonly router: ForwardRouter,
    readonly executor: ForwardExecutor,
    private readonly runtime: MeshRuntime,
    readonly client: UpstreamClient,
    private readonly forwardClient: ForwardClient,
    private readonly countAgent: Agent,
    private readonly log: (line: string) => void,
    /** The HTTP front door and its port, when the node serves one. */
    readonly http: { readonly server: HttpFrontDoor; readonly port: number } | undefined,
    /** The client wrapper that renews expired OAuth tokens, with its retry count; none without credentials. */
    readonly credentialed: CredentialedClient | undefined,
  ) {
    this.checkHealth();
    this.healthTimer = setInterval(() => this.checkHealth(), gatewayHealthCheckEveryMs);
    this.healthTimer.unref();
  }

  static async start(options: RegionGatewayOptions): Promise<RegionGateway> {
    const { runtime, targets } = options;
    const log = options.log ?? (() => {});
    const config = runtime.config;
    const region = config.region;
    const clock: Clock = systemClock;
    const client = new UpstreamClient(options.observer === undefined ? {} : { observer: options.observer });
    const credentials = options.credentials;
    const target =
      credentials === undefined
        ? (accountId: AccountId): UpstreamTarget | undefined => targets.get(accountId)
        : (accountId: AccountId): UpstreamTarget | undefined => credentials.target(accountId) ?? targets.get(accountId);
    // The home node's calls on its accounts, its own and forwarded ones, go through the renewal.
    const credentialed = credentials === undefined ? undefined : new CredentialedClient(client, credentials, clock);
    const callClient: AccountCallClient = credentialed ?? client;
    const onAlert = (report: FeedbackReport): void =>
      log(
        `account ${report.accountId} disabled (${report.alert === undefined ? 'refused' : disableReasonText(report.alert)}): re-enable it with EnableAccount once fixed`,
      );
    const forwardClient = new ForwardClient();
    const router = new ForwardRouter({
      self: config.node,
      region,
      members: config.members,
      memberGrpc: config.memberGrpc ?? new Map(),
      connected: (member) => runtime.node.peerConnected(member),
      transport: forwardClient,
      crypto: nodeAuthCrypto,
      secret: runtime.secret,
      clock,
    });
    const otherMembers = new Set<NodeId>(config.members.map((member) => member.id).filter((id) => id !== config.node));
    const executor = new ForwardExecutor({
      region,
      crypto: nodeAuthCrypto,
      secret: runtime.secret,
      isMember: (id) => otherMembers.has(id),
      pool: runtime.pool,
      usage: runtime.accountUsage,
      client: callClient,
      targets: target,
      ledger: newForwardLedger(),
      clock,
      onAlert,
      log,
      self: config.node,
      durable: runtime,
    });
    runtime.attachBook('forward', executor.ledger, storedAnswerCodec(region));
    const localRoutes = new WeakMap<Account, ForwardRoute>();
    const caller = new AccountCaller({
      pool: runtime.pool,
      usage: runtime.accountUsage,
      client: callClient,
      targets: target,
      routes: (account, accountTarget) => {
        if (accountTarget === undefined) return router.route(account);
        // One route per account (a policy update makes a new account object, and so a new route).
        let route = localRoutes.get(account);
        if (route === undefined) {
          route = executor.localRoute(account, accountTarget, config.node);
          localRoutes.set(account, route);
        }
        return route;
      },
      localRegion: region,
      strategyOf: (tenant) => runtime.policy.tenant(tenant)?.poolStrategy,
      poolChanges: (listener) => runtime.onPoolChange(listener),
      onAlert,
      log,
    });
    // Count calls are short and rare; their own small pool keeps them out of the completions' queue.
    const countAgent = new Agent({ connections: 8, keepAliveTimeout: 4_000, connect: { timeout: countTokensTimeoutMs } });
    const authenticator = new RequestAuthenticator(nodeAuthCrypto, (id) => runtime.policy.tenant(id));
    const carpool = new CarpoolGateway({
      runtime,
      region,
      node: config.node,
      regionOf: (node) => config.members.find((member) => member.id === node)?.region,
      authenticator,
      caller,
      targets: target,
      countTokens: (upstreamTarget, request, callOptions) => countTokensCall(upstreamTarget, request, { ...callOptions, dispatcher: countAgent }),
      ...(options.settings === undefined ? {} : { settings: options.settings }),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
      ...(options.onSettled === undefined ? {} : { onSettled: options.onSettled }),
      log,
    });
    runtime.attachBook('answers', carpool.answers.ledger, servedAnswerCodec);
    const adminTokens = options.adminTokens;
    const admin =
      adminTokens === undefined || adminTokens.size === 0
        ? undefined
        : new AdminGateway({ service: new AdminService({ runtime, crypto: nodeAuthCrypto, usage: options.usage }), tokens: adminTokens });
    const server = new CarpoolGrpcServer({ carpool, ...(admin === undefined ? {} : { admin }), forward: executor, log });
    let port: number;
    let http: { server: HttpFrontDoor; port: number } | undefined;
    try {
      port = await server.start(options.listen);
      if (options.http !== undefined) http = await startHttp(options.http, carpool, region, log);
    } catch (error) {
      await server.stop(0);
      caller.close();
      forwardClient.close();
      await client.close(1);
      await countAgent.close();
      throw error;
    }
    return new RegionGateway(port, server, carpool, admin, caller, router, executor, runtime, client, forwardClient, countAgent, log, http, credentialed);
  }

  /** Whether this node reaches a majority of the mesh, itself included. */
  get hasQuorum(): boolean {
    const membership = this.runtime.node.membership;
    let reachable = 1;
    for (const member of membership.members) {
      if (member.id !== membership.self.id && this.runtime.node.peerConnected(member.id)) reachable++;
    }
    return reachable >= membership.quorum().write;
  }

  private checkHealth(): void {
    if (this.stopping !== undefined) return;
    // A node whose store refuses writes takes no work (the gateway refuses it), so a balancer
    // should send it none either.
    this.server.setServing(this.hasQuorum && this.runtime.storeFailing === undefined);
  }

  /** Drains and stops within `graceMs`; see the file comment. Idempotent. */
  stop(graceMs: number = upstreamCloseGraceMs): Promise<void> {
    this.stopping ??= this.shutDown(graceMs);
    return this.stopping;
  }

  private async shutDown(graceMs: number): Promise<void> {
    clearInterval(this.healthTimer);
    const deadlineMs = Date.now() + graceMs;
    // Both endpoints stop taking calls and wait for their running ones within the one grace.
    await Promise.all([this.server.stop(graceMs), this.http?.server.stop(graceMs)]);
    const leftMs = (): number => Math.max(1, deadlineMs - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace-over'>((resolve) => {
      timer = setTimeout(() => resolve('grace-over'), leftMs());
    });
    const settled = await Promise.race([this.carpool.idle().then(() => 'idle' as const), graceOver]);
    clearTimeout(timer);
    if (settled === 'grace-over') this.log(`gateway: ${this.carpool.inFlight} calls still settling at the end of the grace; the upstream client cuts them`);
    this.carpool.close();
    this.caller.close();
    this.forwardClient.close();
    await this.client.close(leftMs());
    await this.countAgent.close();
  }
}

/** The front door over the gateway: the Anthropic routes, the OpenAI-compatible one, then any the node adds. */
async function startHttp(
  options: RegionHttpOptions,
  carpool: CarpoolGateway,
  region: string,
  log: (line: string) => void,
): Promise<{ server: HttpFrontDoor; port: number }> {
  const models = modelCatalogueOf(options.models);
  const routes = [
    ...anthropicRoutes({ carpool, identify: (call) => carpool.identify(call), models }),
    ...openAiRoutes({ carpool, models }),
    ...(options.routes?.(carpool) ?? []),
  ];
  const server = new HttpFrontDoor({
    routes,
    serverHeaders: { 'carpool-region': region },
    log,
    ...(options.bounds === undefined ? {} : { bounds: options.bounds }),
  });
  const port = await server.start(options.listen);
  return { server, port };
}
