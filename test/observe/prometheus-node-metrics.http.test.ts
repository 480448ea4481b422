// Proves GET /metrics end to end, from one region node's request path to the exposition.
// The request path (gRPC endpoint, gateway, account caller, upstream client against the emulator)
// reports to the Prometheus binding, and the real admin HTTP server on 127.0.0.1 serves its
// exposition as text/plain; version=0.0.4 with the requests, admission and queue timings, upstream
// timings and tokens of the calls just made, and no tenant id. GET /status carries the gateway
// figures the local-mesh launcher reads; a node without metrics answers 404.
import { afterEach, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../src/admission/admin-access.js';
import { RequestAuthenticator } from '../../src/admission/request-auth.js';
import { type AccountId, asNodeId, asRegionId, type TenantId } from '../../src/core/ids.js';
import { defaultTokenWeights, type LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { startAdminHttp } from '../../src/net/admin-http.js';
import { CarpoolClient, type StreamItem } from '../../src/net/grpc/carpool-client.js';
import { CarpoolGrpcServer } from '../../src/net/grpc/grpc-server.js';
import { AccountCaller } from '../../src/node/account-caller.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { AdminRoutes, gatewayStatusOf } from '../../src/node/admin-routes.js';
import { mintApiKey } from '../../src/node/gateway/api-key-mint.js';
import { CarpoolGateway } from '../../src/node/gateway/carpool-gateway.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { PrometheusNodeMetrics } from '../../src/observe/prometheus-node-metrics.js';
import { countTokensCall } from '../../src/upstream/count-tokens-call.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { within } from '../support/wait.js';
import { parseExposition, sampleOf } from './exposition.js';

const node = asNodeId('m0');
const region = asRegionId('us-east');
const tenant = 'tenant-metrics-quokka' as TenantId;
const secret = 'metrics-test-mesh-secret';
const utf8 = new TextEncoder();

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function rules(limits: Readonly<Record<string, number>>): LimitRule[] {
  return Object.entries(limits).map(([metric, limit]) => ({ metric, window: 'day30', sliding: false, limit, mode: 'eventual' }));
}

async function runtime(): Promise<MeshRuntime> {
  const started = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      members: [{ id: node, region, url: 'ws://127.0.0.1:1' }],
      secret: { kind: 'inline', value: secret },
      tls: undefined,
    },
    secret: utf8.encode(secret),
  });
  cleanups.push(() => started.stop());
  return started;
}

let nextRequest = 0;
function completion(maxTokens: number): { requestId: string; requestJson: Uint8Array; anthropicVersion: string; anthropicBeta: string; user: string } {
  const body = { model: 'claude-sonnet-4-6', max_tokens: maxTokens, messages: [{ role: 'user', content: 'Metrics, please.' }] };
  return { requestId: `metrics-req-${++nextRequest}`, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' };
}

/** A viewer token, as a Prometheus scrape would carry (`authorization` in its scrape config). */
const token = 'metrics-test-viewer-token';
const tokens = new AdminTokens(nodeAuthCrypto, [{ name: 'prometheus', role: 'viewer', token }]);
const service = (mesh: MeshRuntime): AdminService => new AdminService({ runtime: mesh, crypto: nodeAuthCrypto });

async function get(port: number, path: string): Promise<{ status: number; contentType: string | null; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

describe('GET /metrics on the admin endpoint', () => {
  it('serves the exposition of a node whose request path reports to it', async () => {
    const mesh = await runtime();
    const emulator = await startEmulator({ accounts: generatedAccounts(2, 5), seed: 11 });
    cleanups.push(() => emulator.close());
    const accountIds = emulator.keys.map((_, i) => `acct-${i}` as AccountId);
    const rule = rules({ requests: 1_000_000, input_tokens: 1_000_000_000, output_tokens: 1_000_000_000, weighted_tokens: 1_000_000_000 });
    for (const id of accountIds)
      expect(mesh.policy.upsertAccount({ id, kind: 'api-key', homeRegion: region, weight: 1, concurrencyMax: 4, limits: rule }).ok).toBe(true);
    const minted = mintApiKey(nodeAuthCrypto, tenant);
    const saved = mesh.policy.upsertTenant({
      id: tenant,
      tier: 'paid',
      apiKeys: [{ hash: minted.keyHashHex, name: 'test', createdAtMs: 0 }],
      requireSignature: false,
      concurrencyMax: 10,
      weights: defaultTokenWeights,
      limits: rules({ requests: 1_000_000, weighted_tokens: 1_000_000_000 }),
      userLimits: [],
      userConcurrencyMax: 10,
    });
    expect(saved.ok).toBe(true);

    // The node as run-node wires it: one metrics object, the observer of the request path.
    const metrics = new PrometheusNodeMetrics({ runtime: mesh, region, node });
    const targets = (id: AccountId): UpstreamTarget | undefined => {
      const key = emulator.keys[accountIds.indexOf(id)];
      return key === undefined ? undefined : { baseUrl: emulator.url, credential: { kind: 'api-key', key } };
    };
    const client = new UpstreamClient({ observer: metrics });
    cleanups.push(() => client.close(1_000));
    const caller = new AccountCaller({
      pool: mesh.pool,
      usage: mesh.accountUsage,
      client,
      targets,
      localRegion: region,
      poolChanges: (listener) => mesh.onPoolChange(listener),
    });
    cleanups.push(() => caller.close());
    const carpool = new CarpoolGateway({
      runtime: mesh,
      region,
      authenticator: new RequestAuthenticator(nodeAuthCrypto, (id) => mesh.policy.tenant(id)),
      caller,
      targets,
      countTokens: countTokensCall,
      observer: metrics,
    });
    const server = new CarpoolGrpcServer({ carpool, log: () => {} });
    const grpcPort = await server.start({ host: '127.0.0.1', port: 0 });
    server.setServing(true);
    cleanups.push(() => server.stop(1_000));
    metrics.attachGateway({ carpool, caller, server, client });
    const admin = await startAdminHttp({
      host: '127.0.0.1',
      port: 0,
      tokens,
      handler: new AdminRoutes(mesh, service(mesh), { metrics, gatewayStatus: () => gatewayStatusOf(carpool) }),
    });
    cleanups.push(() => admin.close());

    const carpoolClient = new CarpoolClient({ target: `127.0.0.1:${grpcPort}`, apiKey: minted.apiKey });
    cleanups.push(() => carpoolClient.close());
    const completed = await within(carpoolClient.complete(completion(32)), 'a completion', 5_000);
    expect(completed.ok).toBe(true);
    const items: StreamItem[] = [];
    for await (const item of carpoolClient.streamComplete(completion(64))) items.push(item);
    expect(items.at(-1)?.kind).toBe('summary');
    const stranger = new CarpoolClient({ target: `127.0.0.1:${grpcPort}`, apiKey: 'cp_nobody_00000000000000000000000000000000' });
    cleanups.push(() => stranger.close());
    const refused = await stranger.complete(completion(8));
    expect(refused.ok).toBe(false);

    const reply = await get(admin.port, '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(reply.text).not.toContain(tenant);
    const families = parseExposition(reply.text);
    const upstream = Object.values(emulator.stats().keys).reduce(
      (sum, row) => ({ input: sum.input + row.inputTokens, output: sum.output + row.outputTokens, cacheRead: sum.cacheRead + row.cacheReadInputTokens }),
      { input: 0, output: 0, cacheRead: 0 },
    );
    expect(upstream.output).toBeGreaterThan(0);
    expect(sampleOf(families, 'carpool_requests_received_total', { region: 'us-east', node: 'm0' })).toBe(3);
    expect(sampleOf(families, 'carpool_requests_total', { outcome: 'completed' })).toBe(2);
    expect(sampleOf(families, 'carpool_requests_refused_total', { reason: 'unauthenticated' })).toBe(1);
    expect(sampleOf(families, 'carpool_admission_duration_seconds_count', { outcome: 'admitted' })).toBe(2);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_count', { tier: 'paid', outcome: 'granted' })).toBe(2);
    expect(sampleOf(families, 'carpool_upstream_headers_seconds_count', { mode: 'complete' })).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_headers_seconds_count', { mode: 'stream' })).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_time_to_first_token_seconds_count')).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_call_duration_seconds_count', { mode: 'stream', outcome: 'ok' })).toBe(1);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'output' })).toBe(upstream.output);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'input' })).toBe(upstream.input);
    expect(sampleOf(families, 'carpool_token_usage_rate', { kind: 'output' })).toBeGreaterThan(0);
    expect(sampleOf(families, 'carpool_account_calls_completed_total')).toBe(2);
    expect(sampleOf(families, 'carpool_grpc_calls_started_total')).toBe(3);
    expect(sampleOf(families, 'carpool_account_state', { account: 'acct-0', state: 'healthy' })).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_connections_open')).toBeGreaterThanOrEqual(1);

    const status = await get(admin.port, '/status');
    expect(status.contentType).toBe('application/json');
    const body = JSON.parse(status.text) as { gateway?: unknown; peers?: unknown };
    expect(body.gateway).toEqual({ requests: 3, completed: 2, inFlight: 0, queueDepth: 0 });
    expect(Array.isArray(body.peers)).toBe(true);
    const post = await fetch(`http://127.0.0.1:${admin.port}/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    // A write, which the viewer token of a scrape may not make.
    expect(post.status).toBe(403);
  });

  it('answers 404 on a node without metrics, and /status has no gateway section without a gateway', async () => {
    const mesh = await runtime();
    const admin = await startAdminHttp({ host: '127.0.0.1', port: 0, tokens, handler: new AdminRoutes(mesh, service(mesh)) });
    cleanups.push(() => admin.close());
    const reply = await get(admin.port, '/metrics');
    expect(reply.status).toBe(404);
    expect(reply.contentType).toBe('application/json');
    const status = JSON.parse((await get(admin.port, '/status')).text) as Record<string, unknown>;
    expect(status).not.toHaveProperty('gateway');
    expect(status).toHaveProperty('peers');
  });
});
