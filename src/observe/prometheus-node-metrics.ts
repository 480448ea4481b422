import { degradableTiers } from '../mesh/policy/schedule-schema.js';
import { degradeActions } from '../schedule/degrade.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, type LabelValues, Registry } from 'prom-client';
import type { TokenUsage } from '../admission/estimate.js';
import { assert } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../platform/system-clock.js';
import type { NodeId, RegionId } from '../core/ids.js';
import type { ClaimStats } from '../admission/request-claims.js';
import type { ReleaseReport } from '../admission/successor-release.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import type { JournalStats } from '../ledger/durable-journal.js';
import type { StoreError } from '../ledger/node-state.js';
import type { StoreStats } from '../ledger/sqlite-store.js';
import type { MeshNode } from '../mesh/mesh-node.js';
import { lagBucketsMs, type MeshStats } from '../mesh/mesh-stats.js';
import { type Tier, tiers } from '../mesh/policy/policy-schema.js';
import type { GrpcServerStats } from '../net/grpc/grpc-server.js';
import type { WsTransportStats } from '../net/ws-transport.js';
import type { AccountCallerStats } from '../node/account-caller.js';
import type { ForwardExecutorStats } from '../node/forward/forward-executor.js';
import type { AnswerLedger, LedgerStats } from '../node/answer-ledger.js';
import type { ForwardRouterStats } from '../node/forward/forward-route.js';
import type { GatewayStats } from '../node/gateway/carpool-gateway.js';
import { RecentUsage } from '../node/gateway/recent-usage.js';
import { type AccountPool, type PoolStats, windowUtilizations } from '../pool/account-pool.js';
import { unifiedWindowNames } from '../pool/account-feedback.js';
import { healthStates } from '../pool/account-health.js';
import type { TierQueue } from '../schedule/tier-queue.js';
import type { UpstreamClientStats } from '../upstream/upstream-client.js';
import {
  type AdmissionOutcome,
  type GatewayObserver,
  type QueueWaitOutcome,
  type UpstreamMode,
  upstreamModes,
  type UpstreamOutcome,
} from './gateway-observer.js';

/**
 * The Prometheus binding of one node: ONE prom-client `Registry` (never the global default, so a
 * test may build many nodes in one process), served by GET /metrics on the admin endpoint.
 *
 * Two kinds of figures:
 *  - timings and tokens the request path reports through `GatewayObserver` (this class is the
 *    production observer): histograms and a counter, updated as things happen;
 *  - everything the plain stats objects of the mesh, the pool, the gateway, the account caller,
 *    the gRPC server and the upstream client already count, read when a scrape asks (`collect`).
 *    Those objects stay the one source of truth; nothing is counted twice.
 *
 * Monotonic figures read from stats objects are prom-client Counters whose `collect` does
 * `reset()` then `inc(value)`: the exposition then says `# TYPE … counter`, which `rate()`,
 * recording rules and `promtool check metrics` expect of a `_total`, at the cost of one reset
 * per family and scrape. (A Gauge set to the same number would print the same sample under the
 * wrong type.)
 *
 * Labels. Every series carries the constant labels `region` and `node`. Other label values come
 * from fixed sets (outcome, reason, tier, state, kind, mode) or from sets that the policy bounds:
 * `account` (at most `policyAccountsMax` accounts) and `peer` (at most `meshMembersMax` members,
 * from the configuration). No tenant or user id is ever a label: tenants are up to
 * `policyTenantsMax`, and per-tenant figures are what GetUsage answers.
 *
 * Built in parts, so a node without a gRPC endpoint still exposes its mesh: the constructor
 * registers the mesh, pool and request-path histograms; `attachGateway` adds the families of
 * whatever parts of the gateway the node runs.
 */

/** What the binding reads of the node's runtime; `MeshRuntime` provides all of it. */
export interface MetricsRuntime {
  readonly node: Pick<MeshNode, 'stats' | 'peerViews'>;
  readonly pool: Pick<AccountPool, 'status' | 'stateCounts' | 'totals' | 'stats'> & Partial<Pick<AccountPool, 'capacity'>>;
  readonly counter: Pick<WindowedCounter, 'size' | 'replicaCount'>;
  /** Request-id claims (src/admission/request-claims.ts). */
  readonly claims: { readonly stats: ClaimStats; readonly pendingCount: number };
  /** What this node released of its dead predecessors' reservations, once it has. */
  readonly released: ReleaseReport | undefined;
  transportStats(): WsTransportStats;
}

/** The parts of the request path a node runs; each is optional. */
export interface GatewayParts {
  readonly carpool?: {
    readonly stats: GatewayStats;
    readonly inFlight: number;
    readonly scheduler: { readonly queue: Pick<TierQueue, 'depthOf' | 'inFlight' | 'stats'> };
    readonly recentUsage: Pick<RecentUsage, 'lastMinuteTotal' | 'forgotten'>;
    readonly answers: { readonly ledger: Pick<AnswerLedger<unknown>, 'size' | 'storedBytes' | 'stats'> };
  };
  readonly caller?: { readonly stats: AccountCallerStats };
  readonly server?: { stats(): GrpcServerStats };
  readonly client?: { stats(): UpstreamClientStats };
  /** Forwarding: the origin's routes, and the home side's executor and ledger. */
  readonly forward?: {
    readonly router: ForwardRouterStats;
    readonly executor: ForwardExecutorStats;
    readonly ledger: LedgerStats;
    readonly ledgerEntries: () => number;
  };
}

export interface NodeMetricsOptions {
  readonly runtime: MetricsRuntime;
  readonly region: RegionId;
  readonly node: NodeId;
  /** The wall clock that health states and the last-minute token tally are read at; `Date.now` by default. */
  readonly clock?: Clock;
  /** A monotonic clock in ms for the observed timings; `performance.now` by default. */
  readonly monotonicMs?: () => number;
  /** Adds prom-client's process metrics (CPU, memory, event loop lag, GC); off by default. */
  readonly processMetrics?: boolean;
}

export interface RenderedMetrics {
  readonly contentType: string;
  readonly text: string;
}

/** Token kinds as label values: the Messages API's own words for them. */
const tokenKinds = ['input', 'output', 'cache_write', 'cache_read'] as const;
type TokenKind = (typeof tokenKinds)[number];

function tokensOf(usage: TokenUsage, kind: TokenKind): number {
  switch (kind) {
    case 'input':
      return usage.input;
    case 'output':
      return usage.output;
    case 'cache_write':
      return usage.cacheWrite;
    case 'cache_read':
      return usage.cacheRead;
  }
}

/** Histogram bounds in seconds: a local admission takes microseconds, a strict round a few RTTs. */
const admissionBucketsSeconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Up to `tierQueueWaitMsMax` (60 s). */
const queueWaitBucketsSeconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Headers and first token: a loaded model answers in seconds, a local emulator in milliseconds. */
const firstByteBucketsSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];
/** Whole calls: long generations stream for minutes. */
const callBucketsSeconds = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

type Read<T> = (source: T) => number;

const meshCounters: readonly (readonly [string, string, Read<MeshStats>])[] = [
  ['carpool_mesh_frames_sent_total', 'Mesh frames sent to peers.', (s) => s.framesSent],
  ['carpool_mesh_sent_bytes_total', 'Bytes of mesh frames sent to peers.', (s) => s.bytesSent],
  ['carpool_mesh_frames_received_total', 'Mesh frames received from peers.', (s) => s.framesReceived],
  ['carpool_mesh_received_bytes_total', 'Bytes of mesh frames received from peers.', (s) => s.bytesReceived],
  ['carpool_mesh_rights_rows_sent_total', 'Escrow rights rows sent.', (s) => s.rightsRowsSent],
  ['carpool_mesh_rights_rows_received_total', 'Escrow rights rows received.', (s) => s.rightsRowsReceived],
  ['carpool_mesh_health_records_sent_total', 'Account health records sent (the shared health register).', (s) => s.healthRecordsSent],
  ['carpool_mesh_health_records_received_total', 'Account health records received.', (s) => s.healthRecordsReceived],
  ['carpool_mesh_deltas_sent_total', 'Counter delta batches sent.', (s) => s.deltasSent],
  ['carpool_mesh_delta_sent_bytes_total', 'Bytes of counter delta batches sent.', (s) => s.deltaBytesSent],
  ['carpool_mesh_delta_entries_sent_total', 'Counter entries sent in delta batches.', (s) => s.deltaEntriesSent],
  ['carpool_mesh_deltas_received_total', 'Counter delta batches received.', (s) => s.deltasReceived],
  ['carpool_mesh_delta_entries_received_total', 'Counter entries applied from delta batches.', (s) => s.deltaEntriesReceived],
  ['carpool_mesh_delta_resends_total', 'Delta batches sent again for want of an ack.', (s) => s.deltaResends],
  ['carpool_mesh_unacked_overflows_total', 'Peers whose resend buffer overflowed, left to digest repair.', (s) => s.unackedOverflows],
  ['carpool_mesh_digests_sent_total', 'Anti-entropy digests sent.', (s) => s.digestsSent],
  ['carpool_mesh_digest_repairs_total', 'Repairs sent in answer to a digest.', (s) => s.digestRepairs],
  ['carpool_mesh_repair_entries_sent_total', 'Counter entries sent in repairs.', (s) => s.repairEntriesSent],
  ['carpool_mesh_full_state_transfers_total', 'Repairs that sent the full state.', (s) => s.fullStateTransfers],
  ['carpool_mesh_inbound_frames_dropped_total', "Inbound frames dropped because a link's queue was full.", (s) => s.inboundDropped],
  ['carpool_mesh_crdt_entries_overflowed_total', 'Counter entries a join could not hold (key or replica bound).', (s) => s.entriesOverflowed],
  ['carpool_mesh_policy_messages_sent_total', 'Policy document sync messages sent.', (s) => s.policyMessagesSent],
  ['carpool_mesh_policy_messages_received_total', 'Policy document sync messages received.', (s) => s.policyMessagesReceived],
  ['carpool_mesh_policy_messages_too_large_total', 'Policy sync messages too large for a frame, not sent.', (s) => s.policyMessagesTooLarge],
  ['carpool_mesh_links_authenticated_total', 'Peer links that completed the handshake.', (s) => s.linksAuthenticated],
  ['carpool_mesh_links_closed_total', 'Peer links closed.', (s) => s.linksClosed],
];

const transportCounters: readonly (readonly [string, string, Read<WsTransportStats>])[] = [
  ['carpool_transport_links_opened_total', 'WebSocket links opened.', (s) => s.linksOpened],
  ['carpool_transport_links_closed_total', 'WebSocket links closed.', (s) => s.linksClosed],
  ['carpool_transport_reconnect_attempts_total', 'Dials to a peer after the first.', (s) => s.reconnectAttempts],
  ['carpool_transport_frames_sent_total', 'WebSocket messages sent.', (s) => s.framesSent],
  ['carpool_transport_sent_bytes_total', 'WebSocket bytes sent.', (s) => s.bytesSent],
  ['carpool_transport_frames_received_total', 'WebSocket messages received.', (s) => s.framesReceived],
  ['carpool_transport_received_bytes_total', 'WebSocket bytes received.', (s) => s.bytesReceived],
  ['carpool_transport_dropped_sends_total', "Droppable sends refused because a link's send queue was full.", (s) => s.droppedSends],
  ['carpool_transport_queue_overflow_closes_total', 'Links closed because an essential send did not fit the send queue.', (s) => s.queueOverflowCloses],
  ['carpool_transport_pong_timeouts_total', 'Links terminated for an unanswered ping.', (s) => s.pongTimeouts],
  ['carpool_transport_protocol_errors_total', "Links closed for a peer's protocol violation.", (s) => s.protocolErrors],
  ['carpool_transport_links_refused_total', 'Inbound connections refused at the link bound.', (s) => s.linksRefused],
];

const poolCounters: readonly (readonly [string, string, Read<PoolStats>])[] = [
  ['carpool_pool_grants_total', 'Account permits granted.', (s) => s.granted],
  ['carpool_pool_probes_total', 'Grants that were the probe of a half-open account.', (s) => s.probes],
  ['carpool_pool_queued_total', 'Account requests queued for a permit.', (s) => s.queued],
  ['carpool_pool_no_account_total', 'Account requests refused: no account could serve.', (s) => s.noAccount],
  ['carpool_pool_busy_total', 'Account requests refused: every account busy and its queue full.', (s) => s.busy],
  ['carpool_pool_vip_spills_total', "Grants of a VIP tenant's request to a shared account.", (s) => s.vipSpills],
  ['carpool_pool_remote_grants_total', 'Grants to an account homed in another region.', (s) => s.remoteGrants],
  ['carpool_pool_alerts_total', 'Accounts disabled by an authentication failure or a credential that could not be renewed.', (s) => s.alerts],
  ['carpool_pool_shared_health_writes_total', "Records this node wrote to the mesh's account health register.", (s) => s.sharedWrites],
  [
    'carpool_pool_forwards_refused_total',
    'Forwarded calls the home node turned away: the account was paused, disabled or had its probe out.',
    (s) => s.forwardsRefused,
  ],
];

const callerCounters: readonly (readonly [string, string, Read<AccountCallerStats>])[] = [
  ['carpool_account_calls_total', 'Calls through the account pool (each may make several attempts).', (s) => s.calls],
  ['carpool_account_calls_completed_total', 'Calls through the account pool that completed.', (s) => s.completed],
  ['carpool_account_calls_failed_total', 'Calls through the account pool that failed.', (s) => s.failed],
  ['carpool_account_call_retries_total', 'Attempts after the first, on another account.', (s) => s.retries],
  ['carpool_account_calls_skipped_total', 'Accounts passed over without a call (no credential here, or evicted).', (s) => s.skipped],
  ['carpool_account_calls_parked_total', "Calls that waited for an account's permit.", (s) => s.parked],
  ['carpool_account_call_queue_timeouts_total', 'Calls whose wait for a permit timed out.', (s) => s.queueTimeouts],
  ['carpool_account_calls_cancelled_while_parked_total', 'Calls cancelled while waiting for a permit.', (s) => s.cancelledWhileParked],
  ['carpool_account_orphan_grants_total', 'Grants with no waiting call, released at once.', (s) => s.orphanGrants],
  ['carpool_account_charge_failures_total', "Attempts whose usage could not be charged to the account's counters.", (s) => s.chargeFailures],
  ['carpool_account_alerts_total', 'Auth-failure alerts raised by upstream answers.', (s) => s.alerts],
];

const forwardCounters: readonly (readonly [string, string, Read<NonNullable<GatewayParts['forward']>>])[] = [
  ['carpool_forward_sent_total', "Calls forwarded to an account's home region.", (s) => s.router.forwards],
  ['carpool_forward_transport_retries_total', 'Forwards repeated after a connection failed before any answer.', (s) => s.router.transportRetries],
  ['carpool_forward_transport_failures_total', 'Forwards that failed for want of a working connection.', (s) => s.router.transportFailures],
  ['carpool_forward_replays_received_total', "Forwards answered from the home node's ledger.", (s) => s.router.replays],
  ['carpool_forward_no_route_total', 'Accounts passed over: no member of their home region reachable.', (s) => s.router.noRoute],
  ['carpool_forward_executed_total', 'Calls this node ran on its accounts through the ledger (forwarded or its own).', (s) => s.executor.executed],
  ['carpool_forward_replayed_total', 'Repeated requests this node answered from its ledger.', (s) => s.executor.replayed],
  ['carpool_forward_refused_total', 'Forwards this node could not run (not homed here, no credential, running, full).', (s) => s.executor.refused],
  ['carpool_forward_unauthenticated_total', 'Forwards refused for a bad member proof.', (s) => s.executor.unauthenticated],
  ['carpool_forward_ledger_evicted_total', 'Ledger entries evicted before their time to live.', (s) => s.ledger.evicted],
  ['carpool_forward_ledger_answers_dropped_total', 'Answers too large to keep for a replay.', (s) => s.ledger.answersDropped],
];

export class PrometheusNodeMetrics implements GatewayObserver {
  readonly registry = new Registry();
  private readonly runtime: MetricsRuntime;
  private readonly clock: Clock;
  private readonly monotonicMs: () => number;
  private readonly admissionSeconds: Histogram<'outcome'>;
  private readonly queueWaitSeconds: Histogram<'tier' | 'outcome'>;
  private readonly upstreamHeadersSeconds: Histogram<'mode'>;
  private readonly upstreamFirstTokenSeconds: Histogram;
  private readonly upstreamCallSeconds: Histogram<'mode' | 'outcome'>;
  private readonly tokensTotal: Counter<'kind'>;
  private attached = false;

  constructor(options: NodeMetricsOptions) {
    this.runtime = options.runtime;
    this.clock = options.clock ?? systemClock;
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.registry.setDefaultLabels({ region: options.region, node: options.node });
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];

    // Observed as they happen. `attachGateway` starts the label sets every gateway has at zero,
    // so a dashboard sees those series before the first request rather than a gap.
    this.admissionSeconds = new Histogram({
      name: 'carpool_admission_duration_seconds',
      help: "Time the quota decision of a completion took (a local check, or a strict mode's quorum round), by outcome.",
      labelNames: ['outcome'],
      buckets: admissionBucketsSeconds,
      registers,
    });
    this.queueWaitSeconds = new Histogram({
      name: 'carpool_queue_wait_seconds',
      help: 'Time a request waited in the admission queue, by tier and how the wait ended (granted, queue-timeout, cancelled, closed).',
      labelNames: ['tier', 'outcome'],
      buckets: queueWaitBucketsSeconds,
      registers,
    });
    this.upstreamHeadersSeconds = new Histogram({
      name: 'carpool_upstream_headers_seconds',
      help: 'Time from dispatching an upstream call to its response headers, by mode (complete, stream).',
      labelNames: ['mode'],
      buckets: firstByteBucketsSeconds,
      registers,
    });
    this.upstreamFirstTokenSeconds = new Histogram({
      name: 'carpool_upstream_time_to_first_token_seconds',
      help: 'Time from dispatching an upstream stream to its first content_block_delta.',
      buckets: firstByteBucketsSeconds,
      registers,
    });
    this.upstreamCallSeconds = new Histogram({
      name: 'carpool_upstream_call_duration_seconds',
      help: 'Time from dispatching an upstream call to its end (a stream drained included), by mode and outcome (ok, or the error kind).',
      labelNames: ['mode', 'outcome'],
      buckets: callBucketsSeconds,
      registers,
    });
    this.tokensTotal = new Counter({
      name: 'carpool_tokens_total',
      help: 'Tokens used by settled requests at this node, by kind (input, output, cache_write, cache_read).',
      labelNames: ['kind'],
      registers,
    });

    this.registerMesh();
    this.registerPool();
    this.registerAdmission();
  }

  // ---- GatewayObserver ----

  nowMs(): number {
    return this.monotonicMs();
  }

  admission(outcome: AdmissionOutcome, latencyMs: number): void {
    this.admissionSeconds.observe({ outcome }, secondsOf(latencyMs));
  }

  queueWait(tier: Tier, outcome: QueueWaitOutcome, waitMs: number): void {
    this.queueWaitSeconds.observe({ tier, outcome }, secondsOf(waitMs));
  }

  upstreamHeaders(mode: UpstreamMode, latencyMs: number): void {
    this.upstreamHeadersSeconds.observe({ mode }, secondsOf(latencyMs));
  }

  upstreamFirstToken(latencyMs: number): void {
    this.upstreamFirstTokenSeconds.observe(secondsOf(latencyMs));
  }

  upstreamCall(mode: UpstreamMode, outcome: UpstreamOutcome, latencyMs: number): void {
    this.upstreamCallSeconds.observe({ mode, outcome }, secondsOf(latencyMs));
  }

  tokens(usage: TokenUsage): void {
    for (const kind of tokenKinds) {
      const count = tokensOf(usage, kind);
      if (count > 0) this.tokensTotal.inc({ kind }, count);
    }
  }

  // ---- Parts ----

  /** Adds the families of the gateway parts this node runs; once per node. */
  attachGateway(parts: GatewayParts): void {
    assert(!this.attached, 'a gateway is attached to the node metrics once');
    this.attached = true;
    if (parts.carpool !== undefined) {
      this.registerCarpool(parts.carpool);
      for (const outcome of ['admitted', 'refused'] as const) this.admissionSeconds.zero({ outcome });
      for (const tier of tiers) this.queueWaitSeconds.zero({ tier, outcome: 'granted' });
      for (const kind of tokenKinds) this.tokensTotal.inc({ kind }, 0);
    }
    if (parts.caller !== undefined) {
      const caller = parts.caller;
      for (const [name, help, read] of callerCounters) this.counter(name, help, [], (add) => add(read(caller.stats)));
    }
    if (parts.server !== undefined) this.registerServer(parts.server);
    if (parts.forward !== undefined) {
      const forward = parts.forward;
      for (const [name, help, read] of forwardCounters) this.counter(name, help, [], (add) => add(read(forward)));
      this.gauge('carpool_forward_ledger_entries', 'Request ids the ledger remembers, running or done.', [], (set) => set(forward.ledgerEntries()));
    }
    if (parts.client !== undefined) {
      const client = parts.client;
      for (const mode of upstreamModes) {
        this.upstreamHeadersSeconds.zero({ mode });
        this.upstreamCallSeconds.zero({ mode, outcome: 'ok' });
      }
      this.gauge('carpool_upstream_calls_in_flight', 'Upstream calls running (draining streams included).', [], (set) => set(client.stats().callsInFlight));
      this.gauge('carpool_upstream_connections_open', 'Open upstream connections over all origins, busy or idle.', [], (set) =>
        set(client.stats().connectionsOpen),
      );
    }
  }

  /** The exposition of every family, in the Prometheus text format 0.0.4. */
  async render(): Promise<RenderedMetrics> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  private registerMesh(): void {
    const { node, counter } = this.runtime;
    for (const [name, help, read] of meshCounters) this.counter(name, help, [], (add) => add(read(node.stats)));
    this.counter('carpool_mesh_bad_frames_total', 'Mesh frames that did not decode or came out of turn, by reason.', ['reason'], (add) => {
      for (const [reason, count] of node.stats.badFrames) add(count, { reason });
    });
    this.counter('carpool_mesh_auth_failures_total', 'Peer handshakes refused, by reason.', ['reason'], (add) => {
      for (const [reason, count] of node.stats.authFailures) add(count, { reason });
    });
    new StatsHistogram(
      'carpool_mesh_convergence_lag_seconds',
      'Time from a peer sending a counter delta to its being applied here (sender and receiver clocks; skew included).',
      this.registry,
      () => ({
        counts: node.stats.lagBuckets,
        boundsSeconds: lagBucketsMs.map((ms) => ms / 1_000),
        sum: node.stats.lagSumMs / 1_000,
        count: node.stats.lagCount,
      }),
    );
    this.gauge('carpool_mesh_peers', 'Peers in the configured membership.', [], (set) => set(node.peerViews(this.clock.nowMs()).length));
    this.gauge('carpool_mesh_peers_connected', 'Peers with an open, authenticated link.', [], (set) =>
      set(node.peerViews(this.clock.nowMs()).filter((peer) => peer.connected).length),
    );
    this.gauge('carpool_mesh_peer_connected', 'Whether each configured peer has an open, authenticated link (1) or not (0).', ['peer'], (set) => {
      for (const view of node.peerViews(this.clock.nowMs())) set(view.connected ? 1 : 0, { peer: view.peer });
    });
    this.gauge(
      'carpool_crdt_keys',
      'PN-counter keys held by this replica (named crdt, not counter: promtool reserves the word for the metric type).',
      [],
      (set) => set(counter.size),
    );
    this.gauge('carpool_crdt_replicas', 'Replicas with entries in this PN-counter store.', [], (set) => set(counter.replicaCount));
    for (const [name, help, read] of transportCounters) this.counter(name, help, [], (add) => add(read(this.runtime.transportStats())));
  }

  private registerAdmission(): void {
    const { claims } = this.runtime;
    this.counter(
      'carpool_request_claims_total',
      'Request-id claims decided at this node, by outcome (granted, held-here, held-elsewhere, no-quorum, shed).',
      ['outcome'],
      (add) => {
        const stats = claims.stats;
        add(stats.granted, { outcome: 'granted' });
        add(stats.heldHere, { outcome: 'held-here' });
        add(stats.heldElsewhere, { outcome: 'held-elsewhere' });
        add(stats.noQuorum, { outcome: 'no-quorum' });
        add(stats.shed, { outcome: 'shed' });
      },
    );
    this.counter('carpool_request_claims_withdrawn_total', 'Granted request-id claims given back: the request ended before reaching the model.', [], (add) =>
      add(claims.stats.withdrawn),
    );
    this.gauge('carpool_request_claims_pending', 'Request-id claims waiting for a quorum round or in one.', [], (set) => set(claims.pendingCount));
    this.counter(
      'carpool_reservations_released_total',
      "Units (weighted tokens, requests) this node's start released of what a dead incarnation of the same node left reserved under eventual limits.",
      [],
      (add) => add(this.runtime.released?.amount ?? 0),
    );
  }

  private registerPool(): void {
    const pool = this.runtime.pool;
    this.gauge(
      'carpool_account_state',
      "Each upstream account's health state as this node sees it: 1 on the account's current state.",
      ['account', 'state'],
      (set) => {
        for (const status of pool.status(this.clock.nowMs())) set(1, { account: status.id, state: status.state });
      },
    );
    this.gauge('carpool_accounts', 'Upstream accounts per health state.', ['state'], (set) => {
      const counts = pool.stateCounts(this.clock.nowMs());
      for (const state of healthStates) set(counts[state], { state });
    });
    this.gauge('carpool_account_permits_in_flight', 'Calls holding a permit of each account.', ['account'], (set) => {
      for (const status of pool.status(this.clock.nowMs())) set(status.inFlight, { account: status.id });
    });
    this.gauge('carpool_account_waiters', "Requests queued for each account's permit.", ['account'], (set) => {
      for (const status of pool.status(this.clock.nowMs())) set(status.queued, { account: status.id });
    });
    this.gauge(
      'carpool_account_window_utilization',
      "A subscription account's share of each usage window used (0 to 1, from its last answer's anthropic-ratelimit-unified-* headers).",
      ['account', 'window'],
      (set) => {
        for (const status of pool.status(this.clock.nowMs()))
          for (const { window, utilization } of windowUtilizations(status)) set(utilization, { account: status.id, window });
      },
    );
    this.gauge(
      'carpool_account_window_reset_seconds',
      'When each subscription window of an account resets (Unix seconds), from its last answer.',
      ['account', 'window'],
      (set) => {
        for (const status of pool.status(this.clock.nowMs())) {
          for (const window of unifiedWindowNames) {
            const resetAtMs = status.windows?.windows[window]?.resetAtMs;
            if (resetAtMs !== undefined) set(Math.floor(resetAtMs / 1000), { account: status.id, window });
          }
        }
      },
    );
    this.gauge(
      'carpool_account_disabled',
      'Accounts disabled until an operator acts, by reason: auth-failed (the upstream refused the credential) or credential (it could not be renewed). An alert.',
      ['account', 'reason'],
      (set) => {
        for (const status of pool.status(this.clock.nowMs())) {
          if (status.disabled !== undefined) set(1, { account: status.id, reason: status.disabled.kind });
        }
      },
    );
    this.gauge('carpool_pool_permits_held', 'Account permits held, over all accounts.', [], (set) => set(pool.totals().held));
    this.gauge(
      'carpool_pool_utilization',
      "The pool's load: calls holding or waiting for a permit over the permits of the accounts that can serve now (1 when none can); above 1 while calls wait. The degraded mode's shortage figure.",
      [],
      (set) => {
        const capacity = pool.capacity?.(this.clock.nowMs());
        if (capacity !== undefined) set(capacity.permits === 0 ? 1 : capacity.busy / capacity.permits);
      },
    );
    this.gauge('carpool_pool_waiters', 'Requests queued for an account permit, over all accounts.', [], (set) => set(pool.totals().waiting));
    for (const [name, help, read] of poolCounters) this.counter(name, help, [], (add) => add(read(pool.stats)));
  }

  /** The admission queue's levels and escapes, and the degraded mode. */
  private registerSchedule(carpool: NonNullable<GatewayParts['carpool']>): void {
    const { stats } = carpool;
    const queue = carpool.scheduler.queue;
    this.counter(
      'carpool_queue_starts_total',
      'Requests the admission queue started in dynamic mode, by the feedback level of their tenant at the start (0 is the top).',
      ['level'],
      (add) => {
        queue.stats.startsByLevel.forEach((count, level) => {
          if (count > 0 || level === 0) add(count, { level: String(level) });
        });
      },
    );
    this.counter(
      'carpool_queue_escapes_total',
      "Starts of a lower tier's aged request ahead of a higher tier's queued work (bounded by settings.schedule.escapeEvery).",
      [],
      (add) => add(queue.stats.escapes),
    );
    this.counter('carpool_degraded_requests_total', 'Requests served degraded because the pool was short, by tier (see settings.degrade).', ['tier'], (add) => {
      for (const tier of degradableTiers) add(stats.degradedRequests[tier], { tier });
    });
    this.counter(
      'carpool_degraded_actions_total',
      'Actions applied to degraded requests, by tier and action (max-tokens, model, wait); a request may take several.',
      ['tier', 'action'],
      (add) => {
        for (const tier of degradableTiers) for (const action of degradeActions) add(stats.degraded[tier][action], { tier, action });
      },
    );
  }

  private registerCarpool(carpool: NonNullable<GatewayParts['carpool']>): void {
    const stats = carpool.stats;
    const queue = carpool.scheduler.queue;
    this.counter('carpool_requests_received_total', 'Calls to the Carpool service (completions, streams, counts, usage reads).', [], (add) =>
      add(stats.requests),
    );
    this.counter(
      'carpool_requests_total',
      'Requests that ended, by outcome: completed, failed after admission (queue, pool or upstream), or refused before the call.',
      ['outcome'],
      (add) => {
        let refused = 0;
        for (const count of Object.values(stats.refused)) refused += count;
        add(stats.completed, { outcome: 'completed' });
        add(stats.callFailures, { outcome: 'failed' });
        add(refused, { outcome: 'refused' });
      },
    );
    this.counter('carpool_requests_refused_total', 'Requests refused before the call, by reason (the rejection kind).', ['reason'], (add) => {
      for (const [reason, count] of Object.entries(stats.refused)) add(count, { reason });
    });
    this.counter('carpool_requests_cancelled_total', 'Admitted requests whose client went away.', [], (add) => add(stats.cancelled));
    this.counter('carpool_settlements_total', 'Reservations settled with what a request used.', [], (add) => add(stats.settlements));
    this.counter(
      'carpool_settlements_estimated_total',
      "Settlements whose output was estimated from relayed text: streams their client left under a tenant's onClientCancel abort.",
      [],
      (add) => add(stats.settlementsEstimated),
    );
    this.counter('carpool_requests_withdrawn_total', 'Admitted requests that reached no model: refunded whole, their id free again.', [], (add) =>
      add(stats.withdrawn),
    );
    this.counter('carpool_answers_replayed_total', 'Retries of a used request id answered from the answer store, with no upstream call.', [], (add) =>
      add(stats.replayed),
    );
    const answers = carpool.answers.ledger;
    this.gauge('carpool_answer_store_entries', 'Request ids the answer store remembers, running or done.', [], (set) => set(answers.size));
    this.gauge('carpool_answer_store_bytes', 'Bytes of answers the answer store keeps.', [], (set) => set(answers.storedBytes));
    this.counter('carpool_answer_store_evicted_total', 'Answers evicted before their time to live to stay within the bounds.', [], (add) =>
      add(answers.stats.evicted),
    );
    this.counter('carpool_answer_store_expired_total', 'Answers dropped at the end of their time to live.', [], (add) => add(answers.stats.expired));
    this.counter('carpool_answer_store_answers_dropped_total', 'Answers too large to keep; their request is remembered as done.', [], (add) =>
      add(answers.stats.answersDropped),
    );
    this.gauge('carpool_requests_in_flight', 'Carpool service calls running.', [], (set) => set(carpool.inFlight));
    this.gauge('carpool_queue_depth', 'Requests waiting in the admission queue, by tier.', ['tier'], (set) => {
      for (const tier of tiers) set(queue.depthOf(tier), { tier });
    });
    this.gauge('carpool_queue_running', 'Requests holding a call slot of the admission queue.', [], (set) => set(queue.inFlight));
    this.counter('carpool_queue_enqueued_total', 'Requests that entered the admission queue, by tier.', ['tier'], (add) => {
      for (const tier of tiers) add(queue.stats.enqueued[tier], { tier });
    });
    this.counter('carpool_queue_refused_full_total', 'Requests refused because the admission queue was full, by tier.', ['tier'], (add) => {
      for (const tier of tiers) add(queue.stats.refusedFull[tier], { tier });
    });
    this.registerSchedule(carpool);
    this.gauge('carpool_token_usage_rate', 'Tokens per second used at this node over the last minute, by kind.', ['kind'], (set) => {
      const nowMs = this.clock.nowMs();
      const total = carpool.recentUsage.lastMinuteTotal(nowMs);
      const spanSeconds = RecentUsage.lastMinuteSpanMs(nowMs) / 1_000;
      for (const kind of tokenKinds) set(tokensOf(total, kind) / spanSeconds, { kind });
    });
    this.counter(
      'carpool_recent_usage_tenants_forgotten_total',
      "Tenants dropped from the last-minute tally at its bound (their tokens stay in the node's rate).",
      [],
      (add) => add(carpool.recentUsage.forgotten),
    );
  }

  private registerServer(server: NonNullable<GatewayParts['server']>): void {
    this.counter('carpool_grpc_calls_started_total', 'gRPC calls started.', [], (add) => add(server.stats().callsStarted));
    this.gauge('carpool_grpc_calls_in_flight', 'gRPC calls running.', [], (set) => set(server.stats().callsInFlight));
    this.counter('carpool_grpc_calls_refused_in_flight_total', 'gRPC calls refused at the in-flight bound.', [], (add) =>
      add(server.stats().callsRefusedInFlight),
    );
    this.counter('carpool_grpc_credentials_refused_total', 'gRPC calls refused for ambiguous credentials, by problem.', ['problem'], (add) => {
      for (const [problem, count] of Object.entries(server.stats().credentialsRefused)) add(count, { problem });
    });
    this.counter('carpool_grpc_handler_failures_total', 'gRPC handlers that threw (answered INTERNAL).', [], (add) => add(server.stats().handlerFailures));
  }

  /**
   * The durable store's families: its size against its bound, rows, commits and whether it
   * refuses writes now (the node then refuses work). Once per node, with a store.
   */
  attachStore(store: StoreParts): void {
    const stats = (): StoreStats => store.stats();
    // fileBytes already holds the log (StoreStats): adding walBytes again counted it twice.
    this.gauge('carpool_store_bytes', 'Bytes the durable store takes on disk (database pages and write-ahead log).', [], (set) => set(stats().fileBytes));
    this.gauge('carpool_store_bytes_max', "The store file's bound (store.maxBytes); past it the node refuses work.", [], (set) => set(stats().maxBytes));
    this.gauge('carpool_ledger_rows', 'Usage rows in the ledger, by kind: rows, and daily aggregates of rows past retention.', ['kind'], (set) => {
      const now = stats();
      set(now.ledgerRows, { kind: 'rows' });
      set(now.aggregateRows, { kind: 'daily_aggregates' });
    });
    this.gauge('carpool_store_failing', '1 while the store refuses writes (full, read-only, corrupt): the node sends nothing and admits nothing.', [], (set) =>
      set(store.failing() === undefined ? 0 : 1),
    );
    this.counter('carpool_store_commits_total', 'Group commits written.', [], (add) => add(store.journal.commits));
    this.counter('carpool_store_commit_failures_total', 'Group commits the store refused (kept and written again).', [], (add) =>
      add(store.journal.commitFailures),
    );
    this.counter('carpool_ledger_rows_written_total', 'Usage rows written.', [], (add) => add(store.journal.rowsWritten));
    this.gauge('carpool_store_commit_seconds_max', 'The longest group commit since the node started.', [], (set) => set(secondsOf(store.journal.commitMsMax)));
  }

  /**
   * The upstream credentials' families: OAuth refreshes per account and outcome (ok, transient,
   * refused), calls sent again after a renewal, and the alert gauge of accounts whose renewal was
   * refused (disabled until an operator gives a new credential). Account ids are the node's
   * configured accounts, a bounded set; no label or value ever holds a credential.
   */
  attachCredentials(credentials: CredentialParts): void {
    this.counter(
      'carpool_account_credential_refreshes_total',
      'OAuth credential refreshes, by account and outcome (ok, transient: retried, refused: the account is disabled).',
      ['account', 'outcome'],
      (add) => {
        for (const [account, counts] of credentials.refreshes) for (const [outcome, count] of Object.entries(counts)) add(count, { account, outcome });
      },
    );
    this.gauge(
      'carpool_accounts_credential_refused',
      'Accounts whose credential renewal was refused and that have no new credential yet: alert on > 0.',
      [],
      (set) => set(credentials.refusedCount()),
    );
    this.counter('carpool_account_credential_retries_total', 'Calls answered "OAuth token expired" and sent again after a renewal.', [], (add) =>
      add(credentials.retried()),
    );
  }

  /** A counter that copies a stats object's monotonic counts at each scrape; see the file comment. */
  private counter<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: (add: (value: number, labels?: LabelValues<L>) => void) => void,
  ): void {
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        read((value, labels) => (labels === undefined ? this.inc(value) : this.inc(labels, value)));
      },
    });
  }

  /** A gauge read from its source at each scrape; label sets not set this time disappear. */
  private gauge<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: (set: (value: number, labels?: LabelValues<L>) => void) => void,
  ): void {
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        read((value, labels) => (labels === undefined ? this.set(value) : this.set(labels, value)));
      },
    });
  }
}

/** What `attachCredentials` reads (src/node/credentials/account-credentials.ts). */
export interface CredentialParts {
  readonly refreshes: ReadonlyMap<string, Readonly<Record<string, number>>>;
  refusedCount(): number;
  retried(): number;
}

/** What `attachStore` reads. */
export interface StoreParts {
  stats(): StoreStats;
  readonly journal: JournalStats;
  failing(): StoreError | undefined;
}

function secondsOf(ms: number): number {
  // A wall-clock step could make a difference negative; the monotonic default never does.
  return Math.max(0, ms) / 1_000;
}

interface BucketCounts {
  /** Per bound, plus one for the overflow: not cumulative. */
  readonly counts: readonly number[];
  readonly boundsSeconds: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/**
 * A histogram whose buckets a stats object counts (MeshStats' convergence lag): prom-client's
 * Histogram observes values itself, so this one only overrides what a scrape reads. It is
 * registered like any other metric and printed by the registry with its default labels.
 */
class StatsHistogram extends Histogram {
  constructor(
    private readonly familyName: string,
    private readonly familyHelp: string,
    registry: Registry,
    private readonly read: () => BucketCounts,
  ) {
    super({ name: familyName, help: familyHelp, registers: [registry] });
  }

  override get(): ReturnType<Histogram['get']> {
    const { counts, boundsSeconds, sum, count } = this.read();
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    let cumulative = 0;
    for (const [i, bound] of boundsSeconds.entries()) {
      cumulative += counts[i] ?? 0;
      values.push({ value: cumulative, labels: { le: bound }, metricName: `${this.familyName}_bucket` });
    }
    values.push({ value: count, labels: { le: '+Inf' }, metricName: `${this.familyName}_bucket` });
    values.push({ value: sum, labels: {}, metricName: `${this.familyName}_sum` });
    values.push({ value: count, labels: {}, metricName: `${this.familyName}_count` });
    // The registry reads `type` as the text of `# TYPE`; the typings declare it a numeric enum.
    return Promise.resolve({ name: this.familyName, help: this.familyHelp, type: 'histogram', aggregator: 'sum', values } as unknown as Awaited<
      ReturnType<Histogram['get']>
    >);
  }

  /** What the registry prints from, when a metric has it (prom-client's Histogram does). */
  getForPromString(): ReturnType<Histogram['get']> {
    return this.get();
  }
}
