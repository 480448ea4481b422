import { Agent } from 'undici';
import { RequestAuthenticator } from '../../admission/request-auth.js';
import type { AccountId } from '../../core/ids.js';
import { countTokensTimeoutMs, upstreamCloseGraceMs } from '../../core/limits.js';
import { CarpoolGrpcServer, type ListenAddress } from '../../net/grpc/grpc-server.js';
import { AccountCaller } from '../account-caller.js';
import type { MeshRuntime } from '../mesh-runtime.js';
import { nodeAuthCrypto } from '../node-auth-crypto.js';
import { countTokensCall } from '../../upstream/count-tokens-call.js';
import { UpstreamClient } from '../../upstream/upstream-client.js';
import type { UpstreamTarget } from '../../upstream/upstream-request.js';
import { AdminGateway } from './admin-gateway.js';
import { CarpoolGateway } from './carpool-gateway.js';
import type { GatewaySettings } from './gateway-settings.js';

/**
 * The public side of one region node, wired together: the gRPC endpoint over the carpool and
 * admin handlers, an upstream client and the account caller that uses the runtime's pool, and a
 * small connection pool for count_tokens. `MeshRuntime` stays the mesh; this is what a node adds
 * when its configuration has `grpc`.
 *
 * Start: the endpoint binds, then reports SERVING. Stop, within one grace period:
 *   1. the endpoint reports NOT_SERVING, takes no new calls, and waits for the running ones;
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
  /** The Admin service's token; without one the service is not served. */
  readonly adminToken?: string | undefined;
  readonly settings?: GatewaySettings;
  readonly log?: (line: string) => void;
}

export class RegionGateway {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly port: number,
    readonly server: CarpoolGrpcServer,
    readonly carpool: CarpoolGateway,
    readonly admin: AdminGateway | undefined,
    readonly caller: AccountCaller,
    private readonly client: UpstreamClient,
    private readonly countAgent: Agent,
    private readonly log: (line: string) => void,
  ) {}

  static async start(options: RegionGatewayOptions): Promise<RegionGateway> {
    const { runtime, targets } = options;
    const log = options.log ?? (() => {});
    const region = runtime.config.region;
    const client = new UpstreamClient();
    const target = (accountId: AccountId): UpstreamTarget | undefined => targets.get(accountId);
    const caller = new AccountCaller({
      pool: runtime.pool,
      usage: runtime.accountUsage,
      client,
      targets: target,
      localRegion: region,
      poolChanges: (listener) => runtime.onPoolChange(listener),
      onAlert: (report) => log(`account ${report.accountId} disabled after an upstream ${report.alert?.status ?? 'refusal'}: re-enable it with EnableAccount once fixed`),
      log,
    });
    // Count calls are short and rare; their own small pool keeps them out of the completions' queue.
    const countAgent = new Agent({ connections: 8, keepAliveTimeout: 4_000, connect: { timeout: countTokensTimeoutMs } });
    const authenticator = new RequestAuthenticator(nodeAuthCrypto, (id) => runtime.policy.tenant(id));
    const carpool = new CarpoolGateway({
      runtime,
      region,
      authenticator,
      caller,
      targets: target,
      countTokens: (upstreamTarget, request, callOptions) => countTokensCall(upstreamTarget, request, { ...callOptions, dispatcher: countAgent }),
      ...(options.settings === undefined ? {} : { settings: options.settings }),
      log,
    });
    const admin = options.adminToken === undefined ? undefined : new AdminGateway({ runtime, adminToken: options.adminToken, crypto: nodeAuthCrypto });
    const server = new CarpoolGrpcServer({ carpool, ...(admin === undefined ? {} : { admin }), log });
    let port: number;
    try {
      port = await server.start(options.listen);
    } catch (error) {
      caller.close();
      await client.close(1);
      await countAgent.close();
      throw error;
    }
    server.setServing(true);
    return new RegionGateway(port, server, carpool, admin, caller, client, countAgent, log);
  }

  /** Drains and stops within `graceMs`; see the file comment. Idempotent. */
  stop(graceMs: number = upstreamCloseGraceMs): Promise<void> {
    this.stopping ??= this.shutDown(graceMs);
    return this.stopping;
  }

  private async shutDown(graceMs: number): Promise<void> {
    const deadlineMs = Date.now() + graceMs;
    await this.server.stop(graceMs);
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
    await this.client.close(leftMs());
    await this.countAgent.close();
  }
}
