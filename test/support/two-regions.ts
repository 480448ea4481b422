// Two real region nodes in one process for the forwarding tests: the mesh over ws, the gRPC
// endpoints and the Forward service on loopback, one emulator whose one account is homed in
// eu-west, so a call made at us-east is forwarded there. Tenants with a minted key each.
import { usedUnder } from '../../src/admission/quota.js';
import { type AccountId, asNodeId, asRegionId, type NodeId, type RegionId, type TenantId } from '../../src/core/ids.js';
import {
  type Account,
  type ClientCancelMode,
  defaultTokenWeights,
  type IdempotencyScope,
  type LimitRule,
  type Tenant,
} from '../../src/mesh/policy/policy-schema.js';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { mintApiKey } from '../../src/node/gateway/api-key-mint.js';
import type { SettledRequest } from '../../src/node/gateway/carpool-gateway.js';
import { RegionGateway } from '../../src/node/gateway/region-gateway.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { freePort } from './cluster.js';
import { until } from './wait.js';

export const east: RegionId = asRegionId('us-east');
export const west: RegionId = asRegionId('eu-west');
export const eastNode: NodeId = asNodeId('use-1');
export const westNode: NodeId = asNodeId('euw-1');
export const westAccount = 'acct-west' as AccountId;

/** Eventual limits that never bind, over 30 days. */
export function roomyRules(limits: Record<string, number>): LimitRule[] {
  return Object.entries(limits).map(([metric, limit]) => ({ metric, window: 'day30', sliding: false, limit, mode: 'eventual' }));
}

export const accountRules = roomyRules({ requests: 1_000_000, input_tokens: 1_000_000_000, output_tokens: 1_000_000_000, weighted_tokens: 1_000_000_000 });

export interface TwoRegionTenant {
  readonly id: string;
  readonly onClientCancel?: ClientCancelMode;
  readonly idempotency?: IdempotencyScope;
}

export interface TwoRegionOptions {
  readonly secret: string;
  /** The emulator's pacing and answer sizes; one account is generated from `seed`. */
  readonly emulator: Omit<EmulatorOptions, 'accounts'> & { readonly seed: number };
  readonly tenants: readonly TwoRegionTenant[];
  readonly tenantRules: readonly LimitRule[];
}

export interface RegionNode {
  readonly runtime: MeshRuntime;
  readonly gateway: RegionGateway;
  /** The usage records the gateway settled, in order. */
  readonly settled: SettledRequest[];
}

export interface TwoRegions {
  readonly emulator: Emulator;
  readonly east: RegionNode;
  readonly west: RegionNode;
  /** Each tenant's API key, by tenant id. */
  readonly keys: ReadonlyMap<string, string>;
  /** A client of `region`'s endpoint with `tenant`'s key (none without a tenant); closed by `close()`. */
  client(region: RegionNode, tenant?: string): CarpoolClient;
  /** What `region`'s counters show for the subject under the rule on `metric`. */
  used(region: RegionNode, scope: 'tenant' | 'account', subject: string, metric: string): number;
  close(): Promise<void>;
}

export async function startTwoRegions(options: TwoRegionOptions): Promise<TwoRegions> {
  const emulator = await startEmulator({ ...options.emulator, accounts: generatedAccounts(1, options.emulator.seed) });
  const [eastMesh, westMesh, eastGrpc, westGrpc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const members = [
    { id: eastNode, region: east, url: `ws://127.0.0.1:${eastMesh}` },
    { id: westNode, region: west, url: `ws://127.0.0.1:${westMesh}` },
  ];
  const memberGrpc = new Map<NodeId, string>([
    [eastNode, `127.0.0.1:${eastGrpc}`],
    [westNode, `127.0.0.1:${westGrpc}`],
  ]);
  const start = async (node: NodeId, region: RegionId, meshPort: number, grpcPort: number, targets: Map<AccountId, UpstreamTarget>): Promise<RegionNode> => {
    const runtime = await MeshRuntime.start({
      config: {
        node,
        region,
        listen: { host: '127.0.0.1', port: meshPort },
        admin: undefined,
        members,
        memberGrpc,
        secret: { kind: 'inline', value: options.secret },
        tls: undefined,
      },
      secret: new TextEncoder().encode(options.secret),
    });
    const settled: SettledRequest[] = [];
    const gateway = await RegionGateway.start({ runtime, listen: { host: '127.0.0.1', port: grpcPort }, targets, onSettled: (record) => settled.push(record) });
    return { runtime, gateway, settled };
  };
  // Only the home region holds the account's credential, as in a real deployment.
  const eastRegion = await start(eastNode, east, eastMesh, eastGrpc, new Map());
  const westRegion = await start(
    westNode,
    west,
    westMesh,
    westGrpc,
    new Map([[westAccount, { baseUrl: emulator.url, credential: { kind: 'api-key', key: emulator.keys[0] as string } }]]),
  );

  const account: Account = { id: westAccount, kind: 'api-key', homeRegion: west, weight: 1, concurrencyMax: 8, limits: accountRules };
  if (!eastRegion.runtime.policy.upsertAccount(account).ok) throw new Error('the account does not validate');
  const keys = new Map<string, string>();
  for (const spec of options.tenants) {
    const minted = mintApiKey(nodeAuthCrypto, spec.id as TenantId);
    keys.set(spec.id, minted.apiKey);
    const tenant: Tenant = {
      id: spec.id as TenantId,
      tier: 'paid',
      apiKeys: [{ hash: minted.keyHashHex, name: 'test', createdAtMs: 0 }],
      requireSignature: false,
      concurrencyMax: 100,
      weights: defaultTokenWeights,
      limits: options.tenantRules,
      userLimits: [],
      userConcurrencyMax: 100,
      ...(spec.onClientCancel === undefined ? {} : { onClientCancel: spec.onClientCancel }),
      ...(spec.idempotency === undefined ? {} : { idempotency: spec.idempotency }),
    };
    if (!eastRegion.runtime.policy.upsertTenant(tenant).ok) throw new Error(`tenant ${spec.id} does not validate`);
  }
  const last = options.tenants.at(-1)?.id as TenantId;
  await until(
    () => westRegion.runtime.policy.tenant(last) !== undefined && westRegion.runtime.pool.account(westAccount) !== undefined,
    'the policy reaches eu-west',
    10_000,
  );
  await until(() => eastRegion.runtime.node.peerConnected(westNode), 'the mesh link is up', 10_000);

  const clients: CarpoolClient[] = [];
  return {
    emulator,
    east: eastRegion,
    west: westRegion,
    keys,
    client(region, tenant) {
      const target = `127.0.0.1:${region.gateway.port}`;
      const made = new CarpoolClient(tenant === undefined ? { target } : { target, apiKey: keys.get(tenant) as string });
      clients.push(made);
      return made;
    },
    used(region, scope, subject, metric) {
      const rule = (scope === 'tenant' ? options.tenantRules : accountRules).find((r) => r.metric === metric) as LimitRule;
      return usedUnder(region.runtime.counter, scope, subject, rule, Date.now());
    },
    async close() {
      for (const made of clients) made.close();
      for (const region of [eastRegion, westRegion]) {
        await region.gateway.stop(2_000);
        await region.runtime.stop();
      }
      await emulator.close();
    },
  };
}
