// One region node in one process for the gateway's tests: a one-member MeshRuntime, the upstream
// emulator, the RegionGateway (gRPC on 127.0.0.1:0) with targets for the emulator's keys, and a
// CarpoolClient; plus helpers to read counters and to call the Admin service.
import { Client, credentials as grpcCredentials, Metadata, type MethodDefinition, type ServiceError } from '@grpc/grpc-js';
import { AdminTokens } from '../../../src/admission/admin-access.js';
import { type TokenUsage, weightedTokens } from '../../../src/admission/estimate.js';
import { usedUnder } from '../../../src/admission/quota.js';
import { type AccountId, asNodeId, asRegionId, type RegionId, type TenantId } from '../../../src/core/ids.js';
import {
  type Account,
  type ClientCancelMode,
  type IdempotencyScope,
  defaultTokenWeights,
  type LimitRule,
  type Tenant,
  type Tier,
} from '../../../src/mesh/policy/policy-schema.js';
import { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';
import type { CompleteRequest } from '../../../src/net/grpc/carpool-handler.js';
import { type AdminServiceMethods, loadCarpoolProto } from '../../../src/net/grpc/carpool-proto.js';
import { mintApiKey } from '../../../src/node/gateway/api-key-mint.js';
import type { SettledRequest } from '../../../src/node/gateway/carpool-gateway.js';
import { defaultGatewaySettings, type GatewaySettings } from '../../../src/node/gateway/gateway-settings.js';
import { RegionGateway, type RegionHttpOptions } from '../../../src/node/gateway/region-gateway.js';
import { MeshRuntime } from '../../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';
import { generatedAccounts } from '../../../src/upstream/emulator/emulator-config.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../../../src/upstream/emulator/emulator-server.js';
import { parseFaults } from '../../../src/upstream/emulator/fault-plan.js';
import type { UpstreamTarget } from '../../../src/upstream/upstream-request.js';
import type { UsageReader } from '../../../src/ledger/usage-query.js';

export const region: RegionId = asRegionId('us-east');
export const adminToken = 'admin-token-for-gateway-tests';
/** A second token, of the role viewer (named `grafana`): it may read, not write. */
export const viewerToken = 'viewer-token-for-gateway-tests';

/** The harness's admin tokens: `admin` (role admin) and `grafana` (role viewer). */
export function harnessAdminTokens(): AdminTokens {
  return new AdminTokens(nodeAuthCrypto, [
    { name: 'admin', role: 'admin', token: adminToken },
    { name: 'grafana', role: 'viewer', token: viewerToken },
  ]);
}
export const model = 'claude-sonnet-4-6';
export const utf8 = new TextEncoder();
export const fromUtf8 = new TextDecoder();

/** A rule per metric in a 30-day window that no test run crosses, so every charge stays readable. */
export function rulesOf(limits: Readonly<Record<string, number>>, mode: LimitRule['mode'] = 'eventual'): LimitRule[] {
  return Object.entries(limits).map(([metric, limit]) => ({ metric, window: 'day30', sliding: false, limit, mode }));
}

export const roomyTenantLimits = { requests: 1_000_000, weighted_tokens: 1_000_000_000, output_tokens: 1_000_000_000 };
const accountRules = rulesOf({ requests: 1_000_000, input_tokens: 1_000_000_000, output_tokens: 1_000_000_000, weighted_tokens: 1_000_000_000 });

export interface TenantSpec {
  readonly id: string;
  readonly tier?: Tier;
  readonly limits?: readonly LimitRule[];
  readonly onClientCancel?: ClientCancelMode;
  readonly idempotency?: IdempotencyScope;
  /** Limits of each user within the tenant (`<tenant>:<user>`). */
  readonly userLimits?: readonly LimitRule[];
}

export interface HarnessOptions {
  readonly tenants?: readonly TenantSpec[];
  readonly accounts?: number;
  readonly emulator?: Partial<EmulatorOptions>;
  readonly settings?: Partial<GatewaySettings>;
  /** Mesh members that never answer, besides this node: with two, the node has no majority. */
  readonly absentMembers?: number;
  /** Serve the HTTP front door too (on 127.0.0.1:0), with these options. */
  readonly http?: Omit<RegionHttpOptions, 'listen'>;
  /** The usage ledger the Admin service's QueryUsage reads; none by default, as a node without a dataDir. */
  readonly usage?: UsageReader;
}

export interface Harness {
  readonly runtime: MeshRuntime;
  readonly emulator: Emulator;
  readonly gateway: RegionGateway;
  readonly port: number;
  /** `http://127.0.0.1:<port>` of the HTTP front door, when the harness serves one. */
  readonly httpUrl: string;
  readonly accountIds: readonly AccountId[];
  /** The API key of each tenant, by tenant id. */
  readonly keys: ReadonlyMap<string, string>;
  /** Every usage record the gateway settled, in order. */
  readonly settled: readonly SettledRequest[];
  /** A client sending the key of `tenant`. */
  client(tenant: string): CarpoolClient;
  keyOf(account: AccountId): string;
  /** What the tenant's counters show under the rule on `metric`, at this node. */
  tenantUsed(tenant: string, metric: string): number;
  /** What every account's counters together show on `metric`. */
  accountsUsed(metric: string): number;
  /** Emulator usage of every key together: what the tenant should have been charged. */
  emulatorUsage(): TokenUsage & { readonly requests: number };
  inject(plan: unknown): void;
  close(): Promise<void>;
}

const opened: Harness[] = [];

/** Closes every harness the test opened; call from afterEach. */
export async function closeAll(): Promise<void> {
  for (const harness of opened.splice(0)) await harness.close();
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const node = asNodeId('gw0');
  const secret = 'gateway-test-mesh-secret';
  const runtime = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      // Absent members listen nowhere (port 1 refuses): their links never come up.
      members: [
        { id: node, region, url: 'ws://127.0.0.1:1' },
        ...Array.from({ length: options.absentMembers ?? 0 }, (_, i) => ({ id: asNodeId(`gone${i}`), region, url: 'ws://127.0.0.1:1' })),
      ],
      secret: { kind: 'inline', value: secret },
      tls: undefined,
    },
    secret: utf8.encode(secret),
  });
  const emulator = await startEmulator({ accounts: generatedAccounts(options.accounts ?? 3, 7), seed: 3, ...options.emulator });
  const accountIds = emulator.keys.map((_, i) => `acct-${i}` as AccountId);
  const keyByAccount = new Map(accountIds.map((id, i) => [id, emulator.keys[i] as string]));
  for (const id of accountIds) {
    const account: Account = { id, kind: 'api-key', homeRegion: region, weight: 1, concurrencyMax: 4, limits: accountRules };
    const saved = runtime.policy.upsertAccount(account);
    if (!saved.ok) throw new Error(saved.error.reason);
  }
  const keys = new Map<string, string>();
  for (const spec of options.tenants ?? [{ id: 'acme' }]) {
    const minted = mintApiKey(nodeAuthCrypto, spec.id as TenantId);
    const tenant: Tenant = {
      id: spec.id as TenantId,
      tier: spec.tier ?? 'paid',
      apiKeys: [{ hash: minted.keyHashHex, name: 'test', createdAtMs: 0 }],
      requireSignature: false,
      concurrencyMax: 100,
      weights: defaultTokenWeights,
      limits: spec.limits ?? rulesOf(roomyTenantLimits),
      userLimits: spec.userLimits ?? [],
      userConcurrencyMax: 100,
      ...(spec.onClientCancel === undefined ? {} : { onClientCancel: spec.onClientCancel }),
      ...(spec.idempotency === undefined ? {} : { idempotency: spec.idempotency }),
    };
    const saved = runtime.policy.upsertTenant(tenant);
    if (!saved.ok) throw new Error(saved.error.reason);
    keys.set(spec.id, minted.apiKey);
  }
  const targets = new Map<AccountId, UpstreamTarget>(
    accountIds.map((id) => [id, { baseUrl: emulator.url, credential: { kind: 'api-key', key: keyByAccount.get(id) as string } }]),
  );
  const settled: SettledRequest[] = [];
  const gateway = await RegionGateway.start({
    runtime,
    listen: { host: '127.0.0.1', port: 0 },
    targets,
    adminTokens: harnessAdminTokens(),
    settings: { ...defaultGatewaySettings, ...options.settings },
    onSettled: (record) => settled.push(record),
    ...(options.http === undefined ? {} : { http: { ...options.http, listen: { host: '127.0.0.1', port: 0 } } }),
    usage: options.usage,
  });
  const clients: CarpoolClient[] = [];
  const harness: Harness = {
    runtime,
    emulator,
    gateway,
    port: gateway.port,
    httpUrl: gateway.http === undefined ? '' : `http://127.0.0.1:${gateway.http.port}`,
    accountIds,
    keys,
    settled,
    client(tenant) {
      const client = new CarpoolClient({ target: `127.0.0.1:${gateway.port}`, apiKey: keys.get(tenant) ?? 'cp_nobody_00000000000000000000000000000000' });
      clients.push(client);
      return client;
    },
    keyOf: (account) => keyByAccount.get(account) as string,
    tenantUsed(tenant, metric) {
      const rule = runtime.policy.tenant(tenant as TenantId)?.limits.find((r) => r.metric === metric);
      if (rule === undefined) throw new Error(`tenant ${tenant} has no rule on ${metric}`);
      return usedUnder(runtime.counter, 'tenant', tenant, rule, Date.now());
    },
    accountsUsed(metric) {
      const rule = accountRules.find((r) => r.metric === metric) as LimitRule;
      return accountIds.reduce((sum, id) => sum + usedUnder(runtime.counter, 'account', id, rule, Date.now()), 0);
    },
    emulatorUsage() {
      const rows = Object.values(emulator.stats().keys);
      const sum = (pick: (row: (typeof rows)[number]) => number): number => rows.reduce((total, row) => total + pick(row), 0);
      return {
        requests: sum((row) => row.messages),
        input: sum((row) => row.inputTokens),
        output: sum((row) => row.outputTokens),
        cacheWrite: sum((row) => row.cacheCreationInputTokens),
        cacheRead: sum((row) => row.cacheReadInputTokens),
      };
    },
    inject(plan) {
      const faults = parseFaults(plan);
      if (!faults.ok) throw new Error(JSON.stringify(faults.error));
      const added = emulator.addFaults(faults.value);
      if (!added.ok) throw new Error(JSON.stringify(added.error));
    },
    async close() {
      for (const client of clients) client.close();
      await gateway.stop(2_000);
      await emulator.close();
      await runtime.stop();
    },
  };
  opened.push(harness);
  return harness;
}

/** The weighted tokens of a usage under the default weights, as the tenants here are charged. */
export function weighted(usage: TokenUsage): number {
  return weightedTokens(usage, defaultTokenWeights);
}

let nextRequest = 0;

/** A small valid completion request with a fresh id. */
export function completion(overrides: Partial<CompleteRequest> & { readonly maxTokens?: number } = {}): CompleteRequest {
  const { maxTokens, ...rest } = overrides;
  const body = { model, max_tokens: maxTokens ?? 64, messages: [{ role: 'user', content: 'Share a ride to the station?' }] };
  return { requestId: `req-${++nextRequest}`, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '', ...rest };
}

export interface AdminAnswer {
  readonly error: ServiceError | null;
  readonly response: unknown;
}

type AdminMethod = keyof AdminServiceMethods;

/** One Admin call over a raw grpc-js client (the typed client serves Carpool only). */
export function adminCall(port: number, method: AdminMethod, request: object, token: string | undefined): Promise<AdminAnswer> {
  const definition = loadCarpoolProto().admin[method] as MethodDefinition<object, unknown>;
  const client = new Client(`127.0.0.1:${port}`, grpcCredentials.createInsecure());
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, request, metadata, {}, (error, response) => {
      client.close();
      resolve({ error, response });
    });
  });
}
