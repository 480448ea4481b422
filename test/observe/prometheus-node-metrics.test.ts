// Proves the Prometheus binding of a node.
// The exposition parses and holds every family with its type and label names, each sample carrying
// region and node and never a tenant; counters follow the stats objects they read (every field of
// the mesh, pool and caller stats has its family); the observed timings and tokens land in their
// histograms and counter; the token rate is the node-wide last-minute total over its span; and a
// node without a gateway still exposes its mesh and pool.
import { ClaimStats } from '../../src/admission/request-claims.js';
import type { ReleaseReport } from '../../src/admission/successor-release.js';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { type AccountId, asNodeId, asRegionId, type NodeId, type TenantId } from '../../src/core/ids.js';
import { MeshStats } from '../../src/mesh/mesh-stats.js';
import type { PeerView } from '../../src/mesh/mesh-node.js';
import type { GrpcServerStats } from '../../src/net/grpc/grpc-server.js';
import type { WsTransportStats } from '../../src/net/ws-transport.js';
import { AccountCallerStats } from '../../src/node/account-caller.js';
import { CallScheduler } from '../../src/node/gateway/call-scheduler.js';
import { AnswerStore } from '../../src/node/gateway/answer-store.js';
import { GatewayStats } from '../../src/node/gateway/carpool-gateway.js';
import { RecentUsage } from '../../src/node/gateway/recent-usage.js';
import { type GatewayParts, type MetricsRuntime, PrometheusNodeMetrics } from '../../src/observe/prometheus-node-metrics.js';
import { type HealthState, healthStates } from '../../src/pool/account-health.js';
import { type AccountStatus, PoolStats } from '../../src/pool/account-pool.js';
import { TierQueue } from '../../src/schedule/tier-queue.js';
import type { Timers } from '../../src/upstream/call-guard.js';
import { JournalStats } from '../../src/ledger/durable-journal.js';
import type { StoreError } from '../../src/ledger/node-state.js';
import type { StoreStats } from '../../src/ledger/sqlite-store.js';
import { type Family, parseExposition, sampleOf } from './exposition.js';

const region = asRegionId('eu-west');
const node = asNodeId('n7');
/** A tenant id that must never reach the exposition. */
const tenant = 'tenant-zebra-7781' as TenantId;
const nowMs = 1_800_000_123_456;

interface Fixture {
  readonly metrics: PrometheusNodeMetrics;
  readonly mesh: MeshStats;
  readonly poolStats: PoolStats;
  readonly claimStats: ClaimStats;
  released: ReleaseReport | undefined;
  statuses: AccountStatus[];
  peers: PeerView[];
  transport: WsTransportStats;
  monotonicMs: number;
}

function status(id: string, state: HealthState, inFlight = 0, queued = 0): AccountStatus {
  return {
    id: id as AccountId,
    kind: 'api-key',
    homeRegion: region,
    state,
    inFlight,
    queued,
    concurrencyMax: 4,
    availableAtMs: undefined,
    dedicated: false,
    disabledReason: undefined,
    disabled: undefined,
    shared: undefined,
    windows: undefined,
  };
}

const zeroTransport: WsTransportStats = {
  linksOpened: 0,
  linksClosed: 0,
  reconnectAttempts: 0,
  framesSent: 0,
  bytesSent: 0,
  framesReceived: 0,
  bytesReceived: 0,
  droppedSends: 0,
  queueOverflowCloses: 0,
  pongTimeouts: 0,
  protocolErrors: 0,
  linksRefused: 0,
};

function fixture(): Fixture {
  const mesh = new MeshStats();
  const poolStats = new PoolStats();
  const state = {
    statuses: [
      status('acct-a', 'healthy', 2, 1),
      status('acct-b', 'throttled'),
      {
        ...status('acct-c', 'disabled'),
        kind: 'oauth',
        disabled: { kind: 'credential', detail: 'refresh refused: invalid_grant' },
        disabledReason: 'credential: refresh refused: invalid_grant',
        windows: {
          status: 'allowed',
          resetAtMs: 1_800_000_000_000,
          windows: { 'five-hour': { status: 'allowed', utilization: 0.25, resetAtMs: 1_800_000_000_000 }, 'seven-day': undefined },
        },
      } satisfies AccountStatus,
    ],
    peers: [
      { peer: 'n8' as NodeId, connected: true, liveness: 'alive' },
      { peer: 'n9' as NodeId, connected: false, liveness: 'dead' },
    ] as PeerView[],
    transport: zeroTransport,
    monotonicMs: 0,
    released: undefined as ReleaseReport | undefined,
  };
  const claimStats = new ClaimStats();
  const runtime: MetricsRuntime = {
    node: { stats: mesh, peerViews: () => state.peers },
    pool: {
      status: () => state.statuses,
      stateCounts: () => {
        const counts = Object.fromEntries(healthStates.map((s) => [s, 0])) as Record<HealthState, number>;
        for (const s of state.statuses) counts[s.state]++;
        return counts;
      },
      totals: () => ({
        held: state.statuses.reduce((sum, s) => sum + s.inFlight, 0),
        waiting: state.statuses.reduce((sum, s) => sum + s.queued, 0),
        pendingEvents: 0,
      }),
      stats: poolStats,
    },
    counter: { size: 12, replicaCount: 3 },
    claims: { stats: claimStats, pendingCount: 2 },
    get released() {
      return state.released;
    },
    transportStats: () => state.transport,
  };
  const metrics = new PrometheusNodeMetrics({ runtime, region, node, clock: new ManualClock(nowMs), monotonicMs: () => fixtureRef.monotonicMs });
  const fixtureRef: Fixture = Object.assign(state, { metrics, mesh, poolStats, claimStats });
  return fixtureRef;
}

interface Gateway {
  readonly stats: GatewayStats;
  readonly queue: TierQueue;
  readonly recentUsage: RecentUsage;
  readonly callerStats: AccountCallerStats;
  server: GrpcServerStats;
  readonly parts: GatewayParts;
}

function gateway(): Gateway {
  const stats = new GatewayStats();
  const queue = new TierQueue({ tierDepthMax: 8, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 });
  const recentUsage = new RecentUsage();
  const callerStats = new AccountCallerStats();
  const answers = new AnswerStore();
  const g: Gateway = {
    stats,
    queue,
    recentUsage,
    callerStats,
    server: {
      callsStarted: 0,
      callsInFlight: 0,
      callsRefusedInFlight: 0,
      credentialsRefused: { 'repeated-credential': 0, 'conflicting-keys': 0, 'unsupported-authorization': 0, 'tenant-credentials-on-admin': 0 },
      handlerFailures: 0,
    },
    parts: {
      carpool: { stats, inFlight: 2, scheduler: { queue }, recentUsage, answers },
      caller: { stats: callerStats },
      server: { stats: () => g.server },
      client: { stats: () => ({ callsInFlight: 3, connectionsOpen: 2 }) },
    },
  };
  return g;
}

async function scrape(metrics: PrometheusNodeMetrics): Promise<{ text: string; families: Map<string, Family> }> {
  const rendered = await metrics.render();
  expect(rendered.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  return { text: rendered.text, families: parseExposition(rendered.text) };
}

/** Every family a node with a whole gateway exposes: its type and its labels besides region and node. */
const expectedFamilies: Readonly<Record<string, readonly [string, readonly string[]]>> = {
  carpool_admission_duration_seconds: ['histogram', ['outcome']],
  carpool_queue_wait_seconds: ['histogram', ['tier', 'outcome']],
  carpool_upstream_headers_seconds: ['histogram', ['mode']],
  carpool_upstream_time_to_first_token_seconds: ['histogram', []],
  carpool_upstream_call_duration_seconds: ['histogram', ['mode', 'outcome']],
  carpool_tokens_total: ['counter', ['kind']],
  carpool_token_usage_rate: ['gauge', ['kind']],
  carpool_requests_received_total: ['counter', []],
  carpool_requests_total: ['counter', ['outcome']],
  carpool_requests_refused_total: ['counter', ['reason']],
  carpool_requests_cancelled_total: ['counter', []],
  carpool_settlements_total: ['counter', []],
  carpool_settlements_estimated_total: ['counter', []],
  carpool_requests_withdrawn_total: ['counter', []],
  carpool_answers_replayed_total: ['counter', []],
  carpool_answer_store_entries: ['gauge', []],
  carpool_answer_store_bytes: ['gauge', []],
  carpool_answer_store_evicted_total: ['counter', []],
  carpool_answer_store_expired_total: ['counter', []],
  carpool_answer_store_answers_dropped_total: ['counter', []],
  carpool_requests_in_flight: ['gauge', []],
  carpool_queue_depth: ['gauge', ['tier']],
  carpool_queue_running: ['gauge', []],
  carpool_queue_enqueued_total: ['counter', ['tier']],
  carpool_queue_refused_full_total: ['counter', ['tier']],
  carpool_queue_starts_total: ['counter', ['level']],
  carpool_pool_utilization: ['gauge', []],
  carpool_queue_escapes_total: ['counter', []],
  carpool_degraded_requests_total: ['counter', ['tier']],
  carpool_degraded_actions_total: ['counter', ['tier', 'action']],
  carpool_recent_usage_tenants_forgotten_total: ['counter', []],
  carpool_account_state: ['gauge', ['account', 'state']],
  carpool_accounts: ['gauge', ['state']],
  carpool_account_permits_in_flight: ['gauge', ['account']],
  carpool_account_waiters: ['gauge', ['account']],
  carpool_account_window_utilization: ['gauge', ['account', 'window']],
  carpool_account_window_reset_seconds: ['gauge', ['account', 'window']],
  carpool_account_disabled: ['gauge', ['account', 'reason']],
  carpool_pool_permits_held: ['gauge', []],
  carpool_pool_waiters: ['gauge', []],
  carpool_upstream_calls_in_flight: ['gauge', []],
  carpool_upstream_connections_open: ['gauge', []],
  carpool_grpc_calls_started_total: ['counter', []],
  carpool_grpc_calls_in_flight: ['gauge', []],
  carpool_grpc_calls_refused_in_flight_total: ['counter', []],
  carpool_grpc_credentials_refused_total: ['counter', ['problem']],
  carpool_grpc_handler_failures_total: ['counter', []],
  carpool_mesh_bad_frames_total: ['counter', ['reason']],
  carpool_mesh_auth_failures_total: ['counter', ['reason']],
  carpool_mesh_convergence_lag_seconds: ['histogram', []],
  carpool_mesh_peers: ['gauge', []],
  carpool_mesh_peers_connected: ['gauge', []],
  carpool_mesh_peer_connected: ['gauge', ['peer']],
  carpool_crdt_keys: ['gauge', []],
  carpool_crdt_replicas: ['gauge', []],
  carpool_request_claims_total: ['counter', ['outcome']],
  carpool_request_claims_withdrawn_total: ['counter', []],
  carpool_request_claims_pending: ['gauge', []],
  carpool_reservations_released_total: ['counter', []],
};

/** Families named by pattern: one per field of a stats object, none with labels. */
const unlabelledCounterPrefixes = ['carpool_mesh_', 'carpool_transport_', 'carpool_pool_', 'carpool_account_'];

describe('PrometheusNodeMetrics', () => {
  it('exposes every family with its type and label names, region and node on each sample, and no tenant', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    // Give the labelled families something to show, and a tenant something to leak through.
    f.mesh.countBadFrame('truncated');
    f.mesh.countAuthFailure('bad-proof');
    g.recentUsage.add(tenant, { input: 1, output: 2, cacheWrite: 0, cacheRead: 0 }, nowMs);
    expect(g.queue.enqueue({ tier: 'free', tenant, costTokens: 5 }, nowMs).ok).toBe(true);
    f.metrics.queueWait('vip', 'cancelled', 3);
    f.metrics.upstreamCall('stream', 'timeout', 9);
    const { text, families } = await scrape(f.metrics);

    for (const [name, [type, labels]] of Object.entries(expectedFamilies)) {
      const family = families.get(name);
      expect(family, name).toBeDefined();
      expect(family?.type, name).toBe(type);
      expect(family?.help.length, name).toBeGreaterThan(10);
      expect(family?.samples.length, `${name} has samples`).toBeGreaterThan(0);
      for (const sample of family?.samples ?? []) {
        const own = Object.keys(sample.labels).filter(
          (label) => label !== 'region' && label !== 'node' && !(label === 'le' && sample.name.endsWith('_bucket')),
        );
        expect(own.sort(), `${sample.name} labels`).toEqual([...labels].sort());
      }
    }
    for (const [name, family] of families) {
      expect(name.startsWith('carpool_'), name).toBe(true);
      // A family not in the table is one of the per-field counters, which carry no label.
      if (!(name in expectedFamilies)) {
        expect(unlabelledCounterPrefixes.some((prefix) => name.startsWith(prefix)) && name.endsWith('_total'), name).toBe(true);
        expect(family.type, name).toBe('counter');
        for (const sample of family.samples) expect(Object.keys(sample.labels).sort(), name).toEqual(['node', 'region']);
      }
      if (family.type === 'counter') expect(name.endsWith('_total'), name).toBe(true);
      for (const sample of family.samples) {
        expect(sample.labels.region, sample.name).toBe('eu-west');
        expect(sample.labels.node, sample.name).toBe('n7');
        expect(Object.keys(sample.labels)).not.toContain('tenant');
        expect(Object.keys(sample.labels)).not.toContain('user');
      }
    }
    expect(text).not.toContain(tenant);
  });

  it('reads the counters from the stats objects at each scrape', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    Object.assign(g.stats, { requests: 20, completed: 11, callFailures: 2, cancelled: 1, settlements: 13, settlementsEstimated: 2, withdrawn: 5, replayed: 3 });
    g.stats.refused.quota = 4;
    g.stats.refused.shed = 3;
    let { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_requests_received_total')).toBe(20);
    expect(sampleOf(families, 'carpool_requests_total', { outcome: 'completed' })).toBe(11);
    expect(sampleOf(families, 'carpool_requests_total', { outcome: 'failed' })).toBe(2);
    expect(sampleOf(families, 'carpool_requests_total', { outcome: 'refused' })).toBe(7);
    expect(sampleOf(families, 'carpool_requests_refused_total', { reason: 'quota' })).toBe(4);
    expect(sampleOf(families, 'carpool_requests_refused_total', { reason: 'no-quorum' })).toBe(0);
    expect(sampleOf(families, 'carpool_settlements_total')).toBe(13);
    expect(sampleOf(families, 'carpool_settlements_estimated_total')).toBe(2);
    expect(sampleOf(families, 'carpool_requests_withdrawn_total')).toBe(5);
    expect(sampleOf(families, 'carpool_answers_replayed_total')).toBe(3);
    expect(sampleOf(families, 'carpool_answer_store_entries')).toBe(0);
    expect(sampleOf(families, 'carpool_requests_in_flight')).toBe(2);

    g.stats.completed = 30;
    g.stats.refused.quota = 9;
    g.server = { ...g.server, callsStarted: 41, credentialsRefused: { ...g.server.credentialsRefused, 'conflicting-keys': 2 } };
    ({ families } = await scrape(f.metrics));
    expect(sampleOf(families, 'carpool_requests_total', { outcome: 'completed' })).toBe(30);
    expect(sampleOf(families, 'carpool_requests_refused_total', { reason: 'quota' })).toBe(9);
    expect(sampleOf(families, 'carpool_grpc_calls_started_total')).toBe(41);
    expect(sampleOf(families, 'carpool_grpc_credentials_refused_total', { problem: 'conflicting-keys' })).toBe(2);
    expect(sampleOf(families, 'carpool_upstream_calls_in_flight')).toBe(3);
  });

  it('shows request-id claims by outcome and what a restart released', async () => {
    const f = fixture();
    Object.assign(f.claimStats, { granted: 7, heldHere: 1, heldElsewhere: 2, noQuorum: 3, shed: 4, withdrawn: 5 });
    let { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_request_claims_total', { outcome: 'granted' })).toBe(7);
    expect(sampleOf(families, 'carpool_request_claims_total', { outcome: 'held-elsewhere' })).toBe(2);
    expect(sampleOf(families, 'carpool_request_claims_total', { outcome: 'no-quorum' })).toBe(3);
    expect(sampleOf(families, 'carpool_request_claims_withdrawn_total')).toBe(5);
    expect(sampleOf(families, 'carpool_request_claims_pending')).toBe(2);
    expect(sampleOf(families, 'carpool_reservations_released_total')).toBe(0);
    f.released = { keys: 2, amount: 12_345 };
    ({ families } = await scrape(f.metrics));
    expect(sampleOf(families, 'carpool_reservations_released_total')).toBe(12_345);
  });

  it('has a family for every field of the mesh, pool, caller and transport stats, showing its value', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    // Distinct values per field: each must come out of exactly one family with that prefix.
    let next = 1_001;
    const assign = (target: object, skip: readonly string[] = []): number[] => {
      const values: number[] = [];
      for (const [field, value] of Object.entries(target)) {
        if (typeof value !== 'number' || skip.includes(field)) continue;
        (target as Record<string, number>)[field] = next;
        values.push(next++);
      }
      return values;
    };
    const meshValues = assign(f.mesh, ['lagCount', 'lagSumMs', 'lagMaxMs']);
    const poolValues = assign(f.poolStats);
    const callerValues = assign(g.callerStats);
    const transport = { ...zeroTransport };
    const transportValues = assign(transport);
    f.transport = transport;
    const { families } = await scrape(f.metrics);
    const valuesUnder = (prefix: string): number[] =>
      [...families.values()]
        .filter(
          (family) =>
            family.name.startsWith(prefix) &&
            family.type === 'counter' &&
            family.samples.length === 1 &&
            Object.keys(family.samples[0]?.labels ?? {}).length === 2,
        )
        .map((family) => family.samples[0]?.value ?? -1);
    expect(valuesUnder('carpool_mesh_').sort()).toEqual(meshValues.sort());
    expect(valuesUnder('carpool_pool_').sort()).toEqual(poolValues.sort());
    expect(valuesUnder('carpool_account_').sort()).toEqual(callerValues.sort());
    expect(valuesUnder('carpool_transport_').sort()).toEqual(transportValues.sort());
  });

  it('shows each account in its one health state, the accounts per state, and the peers', async () => {
    const f = fixture();
    let { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_account_state', { account: 'acct-a', state: 'healthy' })).toBe(1);
    expect(sampleOf(families, 'carpool_account_state', { account: 'acct-b', state: 'throttled' })).toBe(1);
    expect(families.get('carpool_account_state')?.samples).toHaveLength(3);
    expect(sampleOf(families, 'carpool_account_disabled', { account: 'acct-c', reason: 'credential' })).toBe(1);
    expect(families.get('carpool_account_disabled')?.samples).toHaveLength(1);
    expect(sampleOf(families, 'carpool_account_window_utilization', { account: 'acct-c', window: 'five-hour' })).toBe(0.25);
    expect(sampleOf(families, 'carpool_account_window_reset_seconds', { account: 'acct-c', window: 'five-hour' })).toBe(1_800_000_000);
    expect(sampleOf(families, 'carpool_accounts', { state: 'throttled' })).toBe(1);
    expect(sampleOf(families, 'carpool_accounts', { state: 'disabled' })).toBe(1);
    expect(sampleOf(families, 'carpool_account_permits_in_flight', { account: 'acct-a' })).toBe(2);
    expect(sampleOf(families, 'carpool_pool_waiters')).toBe(1);
    expect(sampleOf(families, 'carpool_mesh_peers')).toBe(2);
    expect(sampleOf(families, 'carpool_mesh_peers_connected')).toBe(1);
    expect(sampleOf(families, 'carpool_mesh_peer_connected', { peer: 'n9' })).toBe(0);

    // An account that changes state leaves its old series: one state per account, always.
    f.statuses = [status('acct-a', 'circuit-open'), status('acct-b', 'throttled')];
    ({ families } = await scrape(f.metrics));
    expect(sampleOf(families, 'carpool_account_state', { account: 'acct-a', state: 'circuit-open' })).toBe(1);
    expect(families.get('carpool_account_state')?.samples.filter((s) => s.labels.account === 'acct-a')).toHaveLength(1);
  });

  it('puts the observed timings in their histograms and the tokens in their counter', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    f.metrics.admission('admitted', 0.2);
    f.metrics.admission('admitted', 40);
    f.metrics.admission('refused', 1_500);
    f.metrics.upstreamHeaders('stream', 120);
    f.metrics.upstreamFirstToken(700);
    f.metrics.upstreamCall('stream', 'ok', 4_000);
    f.metrics.upstreamCall('complete', 'http-status', 30);
    f.metrics.tokens({ input: 100, output: 40, cacheWrite: 0, cacheRead: 900 });
    f.metrics.tokens({ input: 1, output: 2, cacheWrite: 3, cacheRead: 0 });
    const { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_admission_duration_seconds_count', { outcome: 'admitted' })).toBe(2);
    expect(sampleOf(families, 'carpool_admission_duration_seconds_bucket', { outcome: 'admitted', le: '0.00025' })).toBe(1);
    expect(sampleOf(families, 'carpool_admission_duration_seconds_bucket', { outcome: 'admitted', le: '0.05' })).toBe(2);
    expect(sampleOf(families, 'carpool_admission_duration_seconds_sum', { outcome: 'refused' })).toBeCloseTo(1.5);
    expect(sampleOf(families, 'carpool_upstream_headers_seconds_count', { mode: 'stream' })).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_headers_seconds_count', { mode: 'complete' })).toBe(0);
    expect(sampleOf(families, 'carpool_upstream_time_to_first_token_seconds_bucket', { le: '0.5' })).toBe(0);
    expect(sampleOf(families, 'carpool_upstream_time_to_first_token_seconds_bucket', { le: '1' })).toBe(1);
    expect(sampleOf(families, 'carpool_upstream_call_duration_seconds_sum', { mode: 'stream', outcome: 'ok' })).toBeCloseTo(4);
    expect(sampleOf(families, 'carpool_upstream_call_duration_seconds_count', { mode: 'complete', outcome: 'http-status' })).toBe(1);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'input' })).toBe(101);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'output' })).toBe(42);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'cache_write' })).toBe(3);
    expect(sampleOf(families, 'carpool_tokens_total', { kind: 'cache_read' })).toBe(900);
  });

  it('times each wait in a real call scheduler by tier and outcome', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    const timers = new ManualTimers();
    const scheduler = new CallScheduler({ queue: g.queue, waitMs: 500, clock: new ManualClock(nowMs), timers, observer: f.metrics });
    const first = await scheduler.acquire({ tier: 'paid', tenant, costTokens: 10 }, new AbortController().signal);
    expect(first.ok).toBe(true);
    const second = scheduler.acquire({ tier: 'vip', tenant, costTokens: 10 }, new AbortController().signal);
    const third = scheduler.acquire({ tier: 'free', tenant, costTokens: 10 }, new AbortController().signal);
    f.monotonicMs += 250;
    if (first.ok) first.value.release();
    expect((await second).ok).toBe(true);
    f.monotonicMs += 250;
    timers.fireAll();
    const timedOut = await third;
    expect(timedOut.ok ? 'ok' : timedOut.error.kind).toBe('queue-timeout');
    const { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_count', { tier: 'paid', outcome: 'granted' })).toBe(1);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_sum', { tier: 'paid', outcome: 'granted' })).toBe(0);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_sum', { tier: 'vip', outcome: 'granted' })).toBeCloseTo(0.25);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_sum', { tier: 'free', outcome: 'queue-timeout' })).toBeCloseTo(0.5);
    expect(sampleOf(families, 'carpool_queue_wait_seconds_bucket', { tier: 'free', outcome: 'queue-timeout', le: '0.25' })).toBe(0);
    expect(sampleOf(families, 'carpool_queue_depth', { tier: 'free' })).toBe(0);
    expect(sampleOf(families, 'carpool_queue_enqueued_total', { tier: 'vip' })).toBe(1);
  });

  it('gives the token rate as the node-wide last-minute total over the span it covers', async () => {
    const f = fixture();
    const g = gateway();
    f.metrics.attachGateway(g.parts);
    // Two tenants within the last minute, and one charge older than it.
    g.recentUsage.add(tenant, { input: 0, output: 9_999, cacheWrite: 0, cacheRead: 0 }, nowMs - 120_000);
    g.recentUsage.add(tenant, { input: 600, output: 300, cacheWrite: 0, cacheRead: 60 }, nowMs - 30_000);
    g.recentUsage.add('other' as TenantId, { input: 600, output: 0, cacheWrite: 6, cacheRead: 0 }, nowMs);
    const spanSeconds = RecentUsage.lastMinuteSpanMs(nowMs) / 1_000;
    expect(spanSeconds).toBeGreaterThanOrEqual(50);
    expect(spanSeconds).toBeLessThanOrEqual(60);
    const { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_token_usage_rate', { kind: 'input' })).toBeCloseTo(1_200 / spanSeconds);
    expect(sampleOf(families, 'carpool_token_usage_rate', { kind: 'output' })).toBeCloseTo(300 / spanSeconds);
    expect(sampleOf(families, 'carpool_token_usage_rate', { kind: 'cache_write' })).toBeCloseTo(6 / spanSeconds);
    expect(sampleOf(families, 'carpool_token_usage_rate', { kind: 'cache_read' })).toBeCloseTo(60 / spanSeconds);
  });

  it('exposes the mesh and the pool of a node without a gateway, and nothing of the request path', async () => {
    const f = fixture();
    f.mesh.recordLag(3);
    f.mesh.recordLag(30_000);
    const { families } = await scrape(f.metrics);
    expect(sampleOf(families, 'carpool_mesh_peers_connected')).toBe(1);
    expect(sampleOf(families, 'carpool_crdt_keys')).toBe(12);
    expect(sampleOf(families, 'carpool_mesh_convergence_lag_seconds_bucket', { le: '0.002' })).toBe(0);
    expect(sampleOf(families, 'carpool_mesh_convergence_lag_seconds_bucket', { le: '0.005' })).toBe(1);
    expect(sampleOf(families, 'carpool_mesh_convergence_lag_seconds_bucket', { le: '5' })).toBe(1);
    expect(sampleOf(families, 'carpool_mesh_convergence_lag_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(sampleOf(families, 'carpool_mesh_convergence_lag_seconds_sum')).toBeCloseTo(30.003);
    for (const name of [
      'carpool_requests_total',
      'carpool_queue_depth',
      'carpool_token_usage_rate',
      'carpool_grpc_calls_in_flight',
      'carpool_upstream_calls_in_flight',
      'carpool_account_calls_total',
    ]) {
      expect(families.has(name), name).toBe(false);
    }
    // The request-path histograms exist but hold no series until a gateway reports.
    expect(families.get('carpool_admission_duration_seconds')?.samples).toEqual([]);
  });

  it("shows the store's size on disk once (its pages and its log), its bound, rows and whether it fails", async () => {
    const f = fixture();
    const journal = new JournalStats();
    journal.commits = 7;
    const state: { failing: StoreError | undefined } = { failing: undefined };
    // fileBytes is the pages and the log together (src/ledger/sqlite-store.ts `StoreStats`).
    const stats: StoreStats = {
      fileBytes: 5_000,
      walBytes: 1_000,
      maxBytes: 1_048_576,
      ledgerRows: 12,
      aggregateRows: 3,
      counterEntries: 40,
      lastCommitMs: 0.5,
      lastInlineCheckpointMs: 0,
      commits: 7,
      commitFailures: 0,
      inlineCheckpoints: 0,
      inlineCheckpointFailures: 0,
      checkpoint: { checkpoints: 0, checkpointFailures: 0, lastCheckpointError: null, lastCheckpointMs: 0 },
    };
    f.metrics.attachStore({ stats: () => stats, journal, failing: () => state.failing });
    let families = (await scrape(f.metrics)).families;
    expect(sampleOf(families, 'carpool_store_bytes')).toBe(5_000);
    expect(sampleOf(families, 'carpool_store_bytes_max')).toBe(1_048_576);
    expect(sampleOf(families, 'carpool_ledger_rows', { kind: 'rows' })).toBe(12);
    expect(sampleOf(families, 'carpool_store_commits_total')).toBe(7);
    expect(sampleOf(families, 'carpool_store_failing')).toBe(0);
    state.failing = { kind: 'full', message: 'full' };
    families = (await scrape(f.metrics)).families;
    expect(sampleOf(families, 'carpool_store_failing')).toBe(1);
  });

  it('keeps one registry per node, so two nodes in one process do not collide', async () => {
    const a = fixture();
    const b = fixture();
    a.metrics.tokens({ input: 5, output: 0, cacheWrite: 0, cacheRead: 0 });
    a.metrics.attachGateway(gateway().parts);
    b.metrics.attachGateway(gateway().parts);
    expect(sampleOf((await scrape(a.metrics)).families, 'carpool_tokens_total', { kind: 'input' })).toBe(5);
    expect(sampleOf((await scrape(b.metrics)).families, 'carpool_tokens_total', { kind: 'input' })).toBe(0);
  });
});

/** Timers that fire only when told to. */
class ManualTimers implements Timers {
  private next = 0;
  private readonly armed = new Map<number, () => void>();

  start(callback: () => void): unknown {
    const id = ++this.next;
    this.armed.set(id, callback);
    return id;
  }

  cancel(handle: unknown): void {
    this.armed.delete(handle as number);
  }

  fireAll(): void {
    for (const [id, callback] of [...this.armed]) {
      this.armed.delete(id);
      callback();
    }
  }
}
