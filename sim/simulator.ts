import { EscrowBook } from '../src/admission/escrow.js';
import { keyOf } from '../src/admission/open-request-record.js';
import type { QuotaGate, QuotaRequest } from '../src/admission/quota-gate.js';
import type { ClaimHandle, RequestClaims } from '../src/admission/request-claims.js';
import type { ReservationTable } from '../src/admission/reservations.js';
import { holdKeyOf } from '../src/admission/successor-release.js';
import { assert } from '../src/core/assert.js';
import { asNodeId, asRegionId, asReplicaId, asTenantId, type NodeId, type RegionId, type ReplicaId, type RequestId } from '../src/core/ids.js';
import { quorumRoundTimeoutMs } from '../src/core/limits.js';
import { SeededRandom } from '../src/core/random.js';
import { counterKey, type CounterKey } from '../src/crdt/counter-key.js';
import { windowAt, windowEndMs } from '../src/crdt/window.js';
import type { WindowedCounter } from '../src/crdt/windowed-counter.js';
import { NodeCore, storeRetryMs } from '../src/engine/node-core.js';
import type { Member } from '../src/mesh/membership.js';
import { type LinkId, MeshNode, type MeshNodeOptions } from '../src/mesh/mesh-node.js';
import type { LimitRule } from '../src/mesh/policy/policy-schema.js';
import { decodeFrame, type Frame } from '../src/mesh/wire/frame.js';
import type { PolicyDocument } from '../src/mesh/policy/policy-document.js';
import type { DurableJournal } from '../src/ledger/durable-journal.js';
import type { LedgerRow } from '../src/ledger/ledger-row.js';
import type { NodeSnapshot, StateStore } from '../src/ledger/node-state.js';
import { encodeRequestContext } from '../src/ledger/request-context.js';
import { decodeRightsRow } from '../src/ledger/stored-rights.js';
import { hmacMeshCrypto, seededNonces } from '../src/platform/mesh-crypto.js';
import { DurableBooks } from './durable-books.js';
import { QuorumFloor } from './quorum-floor.js';
import { RightsLedger, rightsDisagree } from './rights-ledger.js';
import { WholeMajority } from './whole-majority.js';
import { EventQueue } from './event-queue.js';
import { SimNetwork } from './network.js';
import { counterHolder, type Holder, Oracle, storedHolder, type Totals, type TruthSnapshot } from './oracle.js';
import { defaultDisk, type Fault, regionNames, type Scenario } from './scenario.js';
import type { PathEvent } from './request-path.js';
import { SimDisk } from './sim-disk.js';
import { type SimRequestHooks, SimRequests } from './sim-requests.js';
import type { CheckFailure, ClaimFigures, ConvergenceFigure, DurabilityFigures, QuotaFigures, Sample, SimResult } from './sim-result.js';

/**
 * The deterministic simulator. It runs the production node core (src/engine/node-core.ts: the
 * `MeshNode`, `WindowedCounter`, `PolicyDocument`, quota gate, claims, books, pool and durable
 * journal, the wire codec, the handshake) for every region under one virtual clock, one seeded
 * PRNG and a simulated network (`network.ts`), injects the scenario's faults, drives the workload,
 * and checks the results against an oracle (`oracle.ts`), which hears every replica's own changes
 * through the core's `onOwnChange` seam. Nothing here re-implements protocol logic: it only plays
 * the transport, the clock and the disk, as `src/node/mesh-runtime.ts` does in production.
 *
 * A run is a pure function of (scenario, seed): events are ordered by (time, insertion order),
 * every random draw comes from one `SeededRandom`, and the trace hash folds in every event.
 *
 * Durability. Every node keeps its state on a simulated disk (sim/sim-disk.ts, the production
 * in-memory store) through the production group commit (src/ledger/durable-journal.ts), and its
 * pump commits before it hands a single frame to the network, as src/node/mesh-runtime.ts does:
 * the commit is the sync point. A crash drops the node's cores; what was not committed is lost.
 * A crash with state (`durable: true`) restarts the node from its disk under its own replica id
 * through `restoreNode`, as production does; a crash without (`durable: false`, a lost disk)
 * starts a new incarnation on an empty disk. The simulated gateway waits for a commit after each
 * admission (before the upstream call) and after each settlement (before the client hears the
 * end), and the durable books (sim/durable-books.ts) check what every request was charged.
 */
export interface RunOptions {
  readonly sampleEveryMs?: number;
  readonly progress?: (simulatedMs: number, totalMs: number) => void;
  /**
   * Test hook: lets a test replace parts of a node's counter (for example a join that drops a
   * delta but still acknowledges it) to prove the checkers catch a broken replica.
   */
  readonly instrument?: (nodeIndex: number, counter: WindowedCounter) => void;
  /**
   * Extra safety checkers, run with the built-in ones every 50 simulated ms: the hook through
   * which admission adds its quota checks (strict and escrow never over the limit, eventual
   * within its bound). A returned message fails the run.
   */
  readonly checkers?: readonly ((view: SimView) => string | undefined)[];
  /**
   * Test hook: replaces the quorum round protocol of every node (for example with an unsafe
   * single-round variant, to prove the quota checker catches it).
   */
  readonly rounds?: MeshNodeOptions['rounds'];
  /**
   * Test hook: wraps each node's disk, once per disk (the wrapper lives as long as the disk, across
   * crashes with state), for example with one that acknowledges a commit before it is durable, to
   * prove the checkers catch a node that sent what its disk then lost, or one that refuses writes
   * for a while, as a full disk does.
   */
  readonly store?: (disk: SimDisk, nodeIndex: number) => StateStore;
  /**
   * Test hook: builds each start's escrow book (a subclass with a broken rule, to prove the
   * escrow checkers catch it); `new EscrowBook(replica, counter)` when left out.
   */
  readonly escrow?: (replica: ReplicaId, counter: WindowedCounter) => EscrowBook;
  /**
   * Test hook: builds each start's mesh node from the options the simulator chose (other options,
   * or a subclass with a broken repair, to prove the checkers catch it); `new MeshNode(options)`
   * when left out.
   */
  readonly mesh?: (options: MeshNodeOptions) => MeshNode;
  /**
   * Test hook: frames the simulated network loses on purpose, decoded (for example every rights
   * delta), to prove the checkers notice what the frames carried never arriving.
   */
  readonly dropFrame?: (frame: Frame) => boolean;
  /** Test hook: a mutant gate or pool under a request-path workload's paths (sim/sim-requests.ts). */
  readonly requests?: SimRequestHooks;
}

/** What a checker may look at: the live replicas and the oracle, read-only. */
export interface SimView {
  readonly nowMs: number;
  readonly phase: 'safety' | 'liveness';
  readonly replicas: readonly { readonly region: string; readonly up: boolean; readonly counter: WindowedCounter }[];
  readonly oracle: Oracle;
}

/** Simulated start: a fixed instant, so window indexes are the same in every run. */
export const simEpochMs = Date.UTC(2026, 10, 26, 8, 0, 0);
const trafficTickMs = 10;
const checkEveryMs = 50;
const secret = new TextEncoder().encode('simulated mesh secret, not a real one');

type SimEvent =
  | { readonly kind: 'traffic'; readonly node: number }
  /** A step of a request on node `node`'s request path (sim/sim-requests.ts). */
  | { readonly kind: 'path'; readonly node: number; readonly event: PathEvent }
  | { readonly kind: 'tick'; readonly node: number }
  | { readonly kind: 'pump'; readonly node: number }
  | { readonly kind: 'deliver'; readonly conn: Connection; readonly toDialer: boolean; readonly bytes: Uint8Array }
  | { readonly kind: 'dial'; readonly dialer: number; readonly responder: number }
  | { readonly kind: 'open'; readonly dialer: number; readonly responder: number }
  | { readonly kind: 'notify-closed'; readonly node: number; readonly link: LinkId; readonly conn: Connection }
  | { readonly kind: 'fault'; readonly fault: Fault; readonly start: boolean }
  | { readonly kind: 'copies-lost' }
  | { readonly kind: 'check' }
  | { readonly kind: 'sample' };

interface Connection {
  readonly dialer: number;
  readonly responder: number;
  readonly dialerLink: LinkId;
  readonly responderLink: LinkId;
  up: boolean;
  /**
   * A node that crashed on this connection: what its process had already sent still arrives (the
   * kernel sends a dead process's buffered data before it closes the socket), nothing else does.
   */
  drainingFrom?: number;
}

interface PendingSettle {
  readonly tenant: number;
  readonly requestId: RequestId;
  readonly reserved: number;
  readonly used: number;
  /** The node's clock at admission, for the usage row. */
  readonly admittedAtMs: number;
}

/**
 * A request whose last step waits for its node's next commit: an admission (then it may reach
 * the upstream) or a settlement (then its client hears the end). See sim/durable-books.ts.
 */
interface Unsynced {
  readonly step: 'admitted' | 'settled';
  readonly pending: PendingSettle;
  /** The claimed id of an admitted request that will reach the upstream once dispatched. */
  readonly dispatchId: string | undefined;
}

/** The model named in the simulated requests' contexts and usage rows. */
const simModel = 'simulated';

/** A granted claim riding its request through admission. */
interface Claimed {
  readonly id: string;
  readonly claims: RequestClaims;
  readonly claim: ClaimHandle;
}

/** Recent request ids kept for retries to draw from. */
const recentIdsMax = 256;

/**
 * The lead-in before a request in which its majority must have been whole for the availability
 * checker to expect a quorum (sim/whole-majority.ts): a round's timeout, a redial's backoff and
 * handshake, and a restarted node's recovery, with room to spare.
 */
const availabilityQuietMs = 2 * quorumRoundTimeoutMs;

/** Admission latencies are counted per whole simulated millisecond up to this bound. */
const latencyBucketsMax = 10_000;

interface SimNode {
  readonly index: number;
  /** This incarnation's cores, as production runs them; the fields below are its parts. */
  readonly core: NodeCore;
  readonly id: NodeId;
  incarnation: number;
  replica: ReplicaId;
  counter: WindowedCounter;
  policy: PolicyDocument;
  /** The admission code's reservation books, over this node's counter. */
  reservations: ReservationTable;
  escrow: EscrowBook;
  /** The admission code's quota decision in the scenario's mode; new with every MeshNode. */
  gate: QuotaGate;
  /** The request-id claims of the admission code; new with every MeshNode, like the gate. */
  claims: RequestClaims;
  mesh: MeshNode;
  up: boolean;
  /** The crash fault that took the node down; only its end restarts it (crashes may overlap). */
  crashedBy: Fault | undefined;
  pausedUntilMs: number;
  /** Actions that arrived while paused, run in order when the pause ends. */
  deferred: (() => void)[];
  /** Fixed skew and strobe amplitude/period currently applied to this node's clock. */
  skewMs: number;
  strobe: { amplitudeMs: number; periodMs: number } | undefined;
  /** True time of the tick event already queued for this node (Infinity: none). */
  tickAtMs: number;
  /** True time of the pump (commit, then frames) already queued for this node (Infinity: none). */
  pumpAtMs: number;
  readonly links: Map<LinkId, Connection>;
  /** Settlements due per traffic tick index. */
  readonly settlements: Map<number, PendingSettle[]>;
  requests: number;
  /** The node's disk, kept across its crashes with state, and the store it writes through (the disk or a test's wrapper). */
  readonly disk: SimDisk;
  readonly store: StateStore;
  readonly journal: DurableJournal;
  /** Requests waiting for this node's next commit. */
  unsynced: Unsynced[];
  /** Requests this incarnation's gate has not decided yet (a strict round or an escrow claim in flight). */
  deciding: number;
  /** Requests a restart from this node's disk must find interrupted: set at a crash with state. */
  interruptedExpected: ReadonlySet<RequestId>;
  /** Requests this start found interrupted, until a commit holds their end (a crash before it finds them again). */
  restoredUncommitted: ReadonlySet<RequestId>;
  /** The disk may have dropped every window that ended before this (its expiry, by the node's clock). */
  droppedBeforeMs: number;
}

export function runScenario(scenario: Scenario, seed: number, options: RunOptions = {}): SimResult {
  return new Simulation(scenario, seed, options).run();
}

class Simulation {
  private readonly random: SeededRandom;
  private readonly network: SimNetwork;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly oracle = new Oracle();
  private readonly nodes: SimNode[] = [];
  private readonly members: Member[];
  private readonly tenantKeys: CounterKey[];
  /** Each tenant key's index by key id: a successor's release names the key it lowered. */
  private readonly tenantIndex: Map<string, number>;
  private readonly failures: CheckFailure[] = [];
  private readonly convergence: ConvergenceFigure[] = [];
  private readonly samples: Sample[] = [];
  /** Faults healed and not yet converged: the truth when they healed, and the label. */
  private readonly pendingHeals: { atMs: number; label: string; truth: TruthSnapshot }[] = [];
  private readonly partitions = new Map<Fault, [number, number][]>();
  /** Incarnations that crashed without their state: only copies held by others remain. */
  private readonly deadReplicas: ReplicaId[] = [];
  /** When the last frame a crashed process had sent arrives, and is read (see `closeAfterCrash`). */
  private drainedAtMs = 0;
  private readonly sampleEveryMs: number;
  private readonly endMs: number;
  private nowMs = 0;
  private nextLink = 1;
  private hashA = 0x811c9dc5;
  private hashB = 0x01000193;
  private stats = { requests: 0, framesDelivered: 0, framesDropped: 0, bytesDelivered: 0, events: 0 };
  private readonly quota = { admitted: 0, rejected: 0, falseRejections: 0, noQuorum: 0 };
  private readonly claimFigures = { claimed: 0, granted: 0, heldElsewhere: 0, heldHere: 0, noQuorum: 0, shed: 0, dispatched: 0, withdrawn: 0, retries: 0 };
  /** Every request id that reached the upstream, with the region that sent it: the claims checker's truth. */
  private readonly upstreamCalls = new Map<string, string>();
  /** Recent request ids (a ring), from which retries are drawn. */
  private readonly recentIds: string[] = [];
  private nextClaimId = 0;
  /** Units the successors of crashed incarnations released (src/admission/successor-release.ts). */
  private releasedUnits = 0;
  /** Per tenant: what admitted requests are truly charged (their estimate until settled). */
  private readonly admittedTruth: number[];
  /** What every request was finally charged, per replica: the durable books' truth. */
  private readonly books: DurableBooks;
  private readonly durability = { commits: 0, commitsRefused: 0, restarts: 0, interrupted: 0, settlementsLost: 0, undispatched: 0, refusedDiskFailing: 0 };

  /** The escrow checkers' truth: every rights row seen, and the rights claims granted. */
  private readonly rightsLedger = new RightsLedger();
  private rightsReported = false;
  private availabilityReported = false;
  /** The quorum checker's truth: what completed rounds wrote (sim/quorum-floor.ts). */
  private readonly quorumFloor = new QuorumFloor();
  private quorumReported = false;
  /** The availability checker's model: when a majority around a node is whole (sim/whole-majority.ts). */
  private readonly whole: WholeMajority;
  private overshootSeenMax = 0;
  private readonly overshootReported = new Set<number>();
  private readonly latencyCounts = new Uint32Array(latencyBucketsMax + 1);
  private readonly rule: LimitRule;
  /** Per tenant and region: weighted tokens admitted, for the eventual mode's overshoot bound. */
  private readonly admittedTokens: number[][];
  private nextRequest = 0;
  private finalConverged: number | undefined;
  /** The whole request path, when the workload asks for it; its draws come from their own fork. */
  private readonly requests: SimRequests | undefined;
  /**
   * A gossip delta goes to every peer as the same bytes, so each is decoded once and the
   * (immutable) frame shared: the same decoder, called fewer times.
   */
  private readonly decoded = new WeakMap<Uint8Array, ReturnType<typeof decodeFrame>>();
  private readonly decode = (bytes: Uint8Array): ReturnType<typeof decodeFrame> => {
    let frame = this.decoded.get(bytes);
    if (frame === undefined) {
      frame = decodeFrame(bytes);
      this.decoded.set(bytes, frame);
    }
    return frame;
  };

  constructor(
    private readonly scenario: Scenario,
    private readonly seed: number,
    private readonly options: RunOptions,
  ) {
    this.random = new SeededRandom(seed);
    this.network = new SimNetwork(scenario.regions, scenario.network, this.random.fork());
    this.requests = this.newRequests();
    this.sampleEveryMs = options.sampleEveryMs ?? 1000;
    this.endMs = scenario.durationMs + scenario.convergenceBudgetMs;
    this.members = Array.from({ length: scenario.regions }, (_, i) => ({
      id: asNodeId(regionNames[i] as string),
      region: asRegionId(regionNames[i] as string),
      url: `sim://${regionNames[i] as string}`,
    }));
    // One counter per tenant: its weighted tokens of the day, the key every request touches.
    const day = windowAt('day', simEpochMs);
    this.tenantKeys = Array.from({ length: scenario.workload.tenants }, (_, t) => counterKey('tenant', `tenant-${t}`, 'weighted_tokens', day));
    this.tenantIndex = new Map(this.tenantKeys.map((key, tenant) => [key.id, tenant]));
    this.admittedTokens = this.tenantKeys.map(() => new Array<number>(scenario.regions).fill(0));
    this.admittedTruth = this.tenantKeys.map(() => 0);
    this.books = new DurableBooks(this.tenantKeys.length);
    // Without a quota every request still goes through the admission code, under a limit that
    // never binds, so the counters carry the same traffic either way.
    const quota = scenario.workload.quota;
    this.rule = {
      metric: 'weighted_tokens',
      window: 'day',
      sliding: false,
      limit: quota?.tokensPerDay ?? Number.MAX_SAFE_INTEGER,
      mode: quota?.mode ?? 'eventual',
    };
    this.whole = new WholeMajority(scenario.regions, scenario.faults, scenario.durationMs, availabilityQuietMs, scenario.network.slowLinks);
  }

  /** The request path over every node, when the workload has one; forks the PRNG only then, so other scenarios' runs stay what they were. */
  private newRequests(): SimRequests | undefined {
    const workload = this.scenario.workload.requestPath;
    if (workload === undefined) return undefined;
    assert(
      this.scenario.faults.every((fault) => fault.kind !== 'crash'),
      'a request-path workload runs without crash faults (see sim/sim-requests.ts)',
    );
    const host = {
      running: (index: number) => {
        const node = this.nodes[index];
        return node !== undefined && node.up && this.nowMs >= node.pausedUntilMs ? node.core : undefined;
      },
      reachable: (from: number, to: number) => this.network.reachable(from, to),
      rttMs: (from: number, to: number) => this.network.rttMs(from, to),
      jitterMs: this.scenario.network.jitterMs,
      schedule: (index: number, atMs: number, event: PathEvent) => this.queue.push(Math.max(atMs, this.nowMs), { kind: 'path', node: index, event }),
    };
    return new SimRequests(this.scenario, workload, this.random.fork(), host, this.options.requests);
  }

  run(): SimResult {
    const wallStart = performance.now();
    for (let i = 0; i < this.scenario.regions; i++) this.nodes.push(this.createNode(i));
    for (let i = 0; i < this.scenario.regions; i++) {
      this.queue.push(this.random.int(trafficTickMs), { kind: 'traffic', node: i });
      this.scheduleTick(this.nodes[i] as SimNode);
      for (let j = i + 1; j < this.scenario.regions; j++) this.queue.push(0, { kind: 'dial', dialer: i, responder: j });
    }
    for (const fault of this.scenario.faults) {
      this.queue.push(fault.atMs, { kind: 'fault', fault, start: true });
      this.queue.push(Math.min(fault.atMs + fault.durationMs, this.scenario.durationMs), { kind: 'fault', fault, start: false });
    }
    this.queue.push(0, { kind: 'sample' });
    this.queue.push(checkEveryMs, { kind: 'check' });
    let lastProgress = 0;
    while (this.queue.peekTime() <= this.endMs) {
      const item = this.queue.pop();
      if (item === undefined) break;
      this.nowMs = item.atMs;
      this.stats.events++;
      this.hash(item.atMs, item.seq);
      this.handle(item.event);
      if (this.options.progress !== undefined && this.nowMs - lastProgress >= 1000) {
        lastProgress = this.nowMs;
        this.options.progress(this.nowMs, this.endMs);
      }
      if (this.finalConverged !== undefined && this.pendingHeals.length === 0) break;
    }
    this.finish();
    const wallMs = performance.now() - wallStart;
    return {
      scenario: this.scenario,
      seed: this.seed,
      ok: this.failures.length === 0,
      failures: this.failures,
      traceHash: (this.hashA >>> 0).toString(16).padStart(8, '0') + (this.hashB >>> 0).toString(16).padStart(8, '0'),
      convergence: this.convergence,
      simulatedMs: this.nowMs,
      wallMs,
      stats: { ...this.stats, releasedUnits: this.releasedUnits },
      record: {
        regions: this.members.map((m) => m.id),
        sampleEveryMs: this.sampleEveryMs,
        samples: this.samples,
        faults: this.scenario.faults,
        healedAtMs: this.scenario.durationMs,
      },
      // Under a request path the quota binds the paths' requests, which the books check instead.
      ...(this.scenario.workload.quota === undefined || this.requests !== undefined ? {} : { quota: this.quotaFigures() }),
      ...(this.requests === undefined ? {} : { requestPath: this.requests.figures() }),
      ...(this.scenario.workload.claims === undefined ? {} : { claims: { ...this.claimFigures } satisfies ClaimFigures }),
      durability: { ...this.durability } satisfies DurabilityFigures,
      replay: `npm run sim -- --scenario ${this.scenario.name} --regions ${this.scenario.regions} --seed ${this.seed} --duration ${this.scenario.durationMs}`,
    };
  }

  // ---- Nodes ----

  /**
   * A node's start, as production starts one (src/node/mesh-runtime.ts), through the same
   * `NodeCore`: on a disk that names a replica it resumes that replica, with a new Yjs client id
   * per start, and restores its state (checked in `checkRestore`); on an empty disk (the first
   * start, or after a lost disk) it is a new incarnation. Either way it recovers before it serves
   * strict reads, as production does.
   */
  private createNode(index: number, previous?: SimNode, keepDisk = false): SimNode {
    const id = this.members[index]?.id as NodeId;
    const kept = keepDisk && previous !== undefined;
    const disk = kept ? previous.disk : new SimDisk();
    const store = kept ? previous.store : (this.options.store?.(disk, index) ?? disk);
    const snapshot = store.load();
    const resumed = snapshot.meta.get('replica');
    const incarnation = previous === undefined ? 0 : resumed !== undefined ? previous.incarnation : previous.incarnation + 1;
    const replica = asReplicaId(resumed ?? `${id}~${incarnation}`);
    const skewMs = previous?.skewMs ?? 0;
    const strobe = previous?.strobe;
    // Drawn in this order, so a seed's runs stay what they were: nonces, the gate, the claims.
    const nonces = this.random.fork();
    const gateRandom = this.random.fork();
    // Scenarios without claims draw nothing for them, so their runs stay what they were.
    const claimsRandom = this.scenario.workload.claims === undefined ? new SeededRandom(index + 1) : this.random.fork();
    const instrument = this.options.instrument;
    const core = new NodeCore({
      self: id,
      region: this.members[index]?.region as RegionId,
      members: this.members,
      secret,
      crypto: hmacMeshCrypto(seededNonces(nonces)),
      incarnation: String(incarnation),
      // The pool has no traffic in the simulator yet: a fixed seed per node, drawn from nothing shared.
      randoms: { gate: gateRandom, claims: claimsRandom, pool: new SeededRandom(index + 1) },
      store: { store, snapshot, nowMs: this.clockAt(skewMs, strobe) },
      decode: this.decode,
      ...(this.requests === undefined
        ? {}
        : { queueLimits: this.requests.queueLimits, queueOptions: (counter: WindowedCounter) => (this.requests as SimRequests).queueOptions(counter) }),
      ...(this.options.rounds === undefined ? {} : { rounds: this.options.rounds }),
      escrowBook: (replica, counter) => this.observedEscrow(this.options.escrow?.(replica, counter) ?? new EscrowBook(replica, counter)),
      meshNode: (options) => this.observedRounds(this.options.mesh?.(options) ?? new MeshNode(options), options.counter),
      preparePolicy: (policy) => this.preparePolicy(policy, previous === undefined),
      ...(instrument === undefined ? {} : { instrumentCounter: (counter: WindowedCounter) => instrument(index, counter) }),
      // Reservations, refunds, strict claims, escrow demand and releases all reach the counter
      // through the cores, and the oracle must know each of them to tell a real count from an
      // invented one; a release is also a change the durable books must hear of.
      onOwnChange: (key, increment, decrement, byRelease) => {
        this.oracle.apply(key, replica, increment, decrement);
        if (byRelease && decrement > 0) {
          const tenant = this.tenantIndex.get(key.id);
          if (tenant !== undefined) this.books.release(replica, tenant, decrement);
        }
      },
    });
    assert(core.replica === replica, 'the core resumes the replica the disk names');
    this.requests?.attach(index, core);
    const node: SimNode = {
      index,
      core,
      id,
      incarnation,
      replica,
      counter: core.counter,
      policy: core.policy,
      reservations: core.reservations,
      escrow: core.escrow,
      gate: core.gate,
      claims: core.claims,
      mesh: core.mesh,
      up: true,
      crashedBy: undefined,
      pausedUntilMs: 0,
      deferred: [],
      skewMs,
      strobe,
      tickAtMs: Infinity,
      pumpAtMs: Infinity,
      links: new Map(),
      settlements: new Map<number, PendingSettle[]>(),
      requests: previous?.requests ?? 0,
      disk,
      store,
      journal: core.journal as DurableJournal,
      unsynced: [],
      deciding: 0,
      interruptedExpected: new Set(),
      restoredUncommitted: new Set(),
      droppedBeforeMs: previous !== undefined && kept ? previous.droppedBeforeMs : -Infinity,
    };
    if (resumed !== undefined) {
      node.restoredUncommitted = previous?.interruptedExpected ?? new Set();
      this.checkRestore(node, node.restoredUncommitted);
    }
    return node;
  }

  /** A start's policy document before anything reads it: kept for the disk from the start, so the first commit holds the settings below. */
  private preparePolicy(policy: PolicyDocument, first: boolean): void {
    policy.keepDurable();
    if (first) this.requests?.preparePolicy(policy);
    if (first && policy.settings().gossipIntervalMs !== this.scenario.gossipIntervalMs) {
      policy.updateSettings({ gossipIntervalMs: this.scenario.gossipIntervalMs });
      policy.takeUpdates(); // every node starts with the same settings; nothing to broadcast
    }
  }

  /**
   * A restart with state: the core put the disk's state back (`restoreNode`, as in production)
   * and ended the requests that were open, each with its usage row. Checked against the model at
   * once: the requests it charges as interrupted are exactly those whose admission was committed
   * and whose settlement was not, and no reservation stays open.
   */
  private checkRestore(node: SimNode, expected: ReadonlySet<RequestId>): void {
    const restored = node.core.restart;
    this.durability.restarts++;
    if (restored === undefined || !restored.ok) {
      this.fail('durability', `${node.replica} could not restart from its disk: ${restored?.ok === false ? restored.error : 'no store'}`);
      return;
    }
    if (restored.value.skipped > 0) this.fail('durability', `${node.replica} skipped ${restored.value.skipped} records of its disk that did not decode`);
    const charged = restored.value.interrupted.filter((ended) => ended.settlements.length > 0).map((ended) => ended.record.requestId);
    const missing = [...expected].filter((requestId) => !charged.includes(requestId));
    const extra = charged.filter((requestId) => !expected.has(requestId));
    if (missing.length > 0 || extra.length > 0) {
      this.fail(
        'durability',
        `${node.replica} restarted charging ${charged.length} interrupted requests, the model expects ${expected.size} (missing ${missing.slice(0, 3).join(', ') || 'none'}, unexpected ${extra.slice(0, 3).join(', ') || 'none'})`,
      );
    }
    if (node.reservations.openCount > 0) this.fail('durability', `${node.replica} restarted with ${node.reservations.openCount} reservations still open`);
  }

  /**
   * A mesh whose every quorum round is checked against the rounds completed before it began
   * (sim/quorum-floor.ts): the reader must hold what they wrote.
   */
  private observedRounds(mesh: MeshNode, counter: WindowedCounter): MeshNode {
    const startRound = mesh.startRound.bind(mesh);
    mesh.startRound = (request, nowMs, done) => {
      const written = counter.ownEntries(request.writeKeys);
      const required = this.quorumFloor.snapshot(request.readKeys);
      startRound(request, nowMs, (outcome, doneMs) => {
        if (outcome.ok) {
          const missing = QuorumFloor.missing(counter, required);
          if (missing !== undefined && !this.quorumReported) {
            this.quorumReported = true;
            this.fail('quorum', `${counter.self} completed a round without reading ${missing}, written by a round completed before it began`);
          }
          this.quorumFloor.completed(written);
        }
        done(outcome, doneMs);
      });
    };
    return mesh;
  }

  /** An escrow book whose every granted claim is counted in the rights ledger: the conservation checker's truth. */
  private observedEscrow(escrow: EscrowBook): EscrowBook {
    const grant = escrow.grant.bind(escrow);
    escrow.grant = (key, amount) => {
      const granted = grant(key, amount);
      if (granted) this.rightsLedger.granted(key, amount);
      return granted;
    };
    return escrow;
  }

  /** Whether the test's frame filter drops these bytes (`RunOptions.dropFrame`). */
  private dropsOnPurpose(bytes: Uint8Array): boolean {
    const frame = this.decode(bytes);
    return frame.ok && this.options.dropFrame !== undefined && this.options.dropFrame(frame.value);
  }

  /** The node's own clock: true time plus its skew (and strobe). */
  private localNow(node: SimNode): number {
    return this.clockAt(node.skewMs, node.strobe);
  }

  private clockAt(skewMs: number, strobe: SimNode['strobe']): number {
    let skew = skewMs;
    if (strobe !== undefined) skew += Math.floor(this.nowMs / strobe.periodMs) % 2 === 0 ? strobe.amplitudeMs : -strobe.amplitudeMs;
    return Math.floor(simEpochMs + this.nowMs + skew);
  }

  /** Runs `action` now, or when the node's pause ends. */
  private whenRunning(node: SimNode, action: () => void): void {
    if (!node.up) return;
    if (this.nowMs < node.pausedUntilMs) node.deferred.push(action);
    else action();
  }

  private scheduleTick(node: SimNode): void {
    if (!node.up) return;
    const local = this.localNow(node);
    const next = node.core.nextTickMs(local);
    const atMs = Math.max(this.nowMs, this.nowMs + (next - local), node.pausedUntilMs);
    if (atMs < node.tickAtMs) {
      node.tickAtMs = atMs;
      this.queue.push(atMs, { kind: 'tick', node: node.index });
    }
  }

  /**
   * Asks for the node's pump (`pump`), which runs one commit's latency later (the scenario's
   * disk: production's pump turn plus the sync); whatever the node changes meanwhile joins the
   * same group commit, and a crash before it loses all of it.
   */
  private flush(node: SimNode): void {
    if (node.pumpAtMs !== Infinity || !node.up) return;
    const { commitMsMin, commitMsMax } = this.scenario.disk ?? defaultDisk;
    node.pumpAtMs = this.nowMs + commitMsMin + this.random.int(commitMsMax - commitMsMin + 1);
    this.queue.push(node.pumpAtMs, { kind: 'pump', node: node.index });
  }

  /**
   * The node's pump, as production's: the group commit, then the frames (no peer may see what
   * the disk does not hold), then the requests the commit let go on.
   */
  private pump(node: SimNode): void {
    if (!this.commit(node)) {
      // A store that refuses writes is tried again later, as production does; nothing is sent.
      node.pumpAtMs = this.nowMs + storeRetryMs;
      this.queue.push(node.pumpAtMs, { kind: 'pump', node: node.index });
      return;
    }
    for (const out of node.core.drainOutbox()) {
      const conn = node.links.get(out.link);
      if (conn === undefined) continue;
      if (out.kind === 'close') {
        this.cut(conn, 0);
        continue;
      }
      if (!conn.up) continue;
      const toDialer = node.index === conn.responder;
      const to = toDialer ? conn.dialer : conn.responder;
      if (this.options.dropFrame !== undefined && this.dropsOnPurpose(out.bytes)) {
        this.stats.framesDropped++;
        continue;
      }
      if (out.droppable && this.network.dropDroppable(this.nowMs, node.index, to)) {
        this.stats.framesDropped++;
        continue;
      }
      const atMs = this.network.deliveryTime(this.nowMs, node.index, to, out.bytes.length);
      this.queue.push(atMs, { kind: 'deliver', conn, toDialer, bytes: out.bytes });
      if (out.droppable && this.network.duplicateDroppable()) this.queue.push(atMs, { kind: 'deliver', conn, toDialer, bytes: out.bytes });
    }
    const synced = node.unsynced;
    node.unsynced = [];
    for (const { step, pending, dispatchId } of synced) {
      if (step === 'admitted') this.dispatch(node, pending, dispatchId);
      else this.books.charge(node.replica, pending.tenant, pending.used, 'ok');
    }
    this.scheduleTick(node);
  }

  /** The core's group commit (with the store's expiry); false when the store refused it (then nothing may be sent). */
  private commit(node: SimNode): boolean {
    const commits = node.disk.commits;
    if (!node.core.commit(this.localNow(node))) {
      this.durability.commitsRefused++;
      return false;
    }
    if (node.disk.commits > commits) this.durability.commits++;
    if (node.restoredUncommitted.size > 0) node.restoredUncommitted = new Set();
    node.droppedBeforeMs = Math.max(node.droppedBeforeMs, node.core.expiredBeforeMs);
    return true;
  }

  // ---- Events ----

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case 'traffic':
        return this.traffic(event.node);
      case 'tick': {
        const node = this.nodes[event.node] as SimNode;
        if (node.tickAtMs !== this.nowMs) return; // superseded by an earlier tick
        node.tickAtMs = Infinity;
        this.whenRunning(node, () => {
          // The timers (and the release of dead predecessors' reservations, once synced), then
          // the answers they gave; the commit and the frames come with the pump.
          const releasing = node.core.released === undefined;
          node.core.advance(this.localNow(node));
          const released = node.core.released;
          if (releasing && released !== undefined) this.releasedUnits += released.amount;
          node.core.drainCompletions();
          this.requests?.tick(node.index, this.localNow(node), this.nowMs);
          this.flush(node);
        });
        this.scheduleTick(node);
        return;
      }
      case 'path': {
        const node = this.nodes[event.node] as SimNode;
        this.whenRunning(node, () => {
          (this.requests as SimRequests).handle(node.index, event.event, this.localNow(node), this.nowMs);
          this.flush(node);
        });
        this.scheduleTick(node);
        return;
      }
      case 'pump': {
        const node = this.nodes[event.node] as SimNode;
        if (node.pumpAtMs !== this.nowMs) return; // a pump of an incarnation that crashed
        node.pumpAtMs = Infinity;
        this.whenRunning(node, () => this.pump(node));
        return;
      }
      case 'deliver':
        return this.deliver(event.conn, event.toDialer, event.bytes);
      case 'copies-lost':
        return this.copiesLost();
      case 'dial':
        return this.dial(event.dialer, event.responder);
      case 'open':
        return this.open(event.dialer, event.responder);
      case 'notify-closed': {
        const node = this.nodes[event.node] as SimNode;
        if (node.links.get(event.link) !== event.conn) return;
        node.links.delete(event.link);
        this.whenRunning(node, () => {
          node.core.onLinkClosed(event.link);
          this.flush(node);
        });
        return;
      }
      case 'fault':
        return event.start ? this.startFault(event.fault) : this.endFault(event.fault);
      case 'check':
        this.check();
        this.queue.push(this.nowMs + checkEveryMs, { kind: 'check' });
        return;
      case 'sample':
        this.sample();
        if (this.nowMs + this.sampleEveryMs <= this.endMs) this.queue.push(this.nowMs + this.sampleEveryMs, { kind: 'sample' });
        return;
    }
  }

  /** Arrivals of one traffic tick at one node: reservations now, settlements when due. */
  private traffic(index: number): void {
    const node = this.nodes[index] as SimNode;
    const tickIndex = Math.floor(this.nowMs / trafficTickMs);
    // New requests stop with the safety phase; settlements of earlier ones still come due, and a
    // request path still closes (below) on a node paused at the end.
    if (this.nowMs < this.scenario.durationMs || node.settlements.size > 0 || this.requests?.closed(index) === false) {
      this.queue.push(this.nowMs + trafficTickMs, { kind: 'traffic', node: index });
    }
    if (!node.up || this.nowMs < node.pausedUntilMs) {
      // Settlements due while down or paused are applied at the next tick that runs.
      const due = node.settlements.get(tickIndex);
      if (due !== undefined && node.up) {
        node.settlements.delete(tickIndex);
        const next = node.settlements.get(tickIndex + 1) ?? [];
        node.settlements.set(tickIndex + 1, [...due, ...next]);
      }
      return;
    }
    const due = node.settlements.get(tickIndex);
    if (due !== undefined) {
      node.settlements.delete(tickIndex);
      for (const pending of due) this.settle(node, pending);
    }
    if (this.nowMs >= this.scenario.durationMs) {
      // The safety phase is over: requests still in flight finish now, so the liveness phase
      // measures convergence alone, not the tail of the workload.
      for (const list of node.settlements.values()) for (const pending of list) this.settle(node, pending);
      node.settlements.clear();
      // The request path's gateway shuts down: its queued requests are withdrawn, its running ones finish.
      if (this.requests !== undefined) {
        this.requests.close(index, this.localNow(node), this.nowMs);
        this.flush(node);
      }
      return;
    }
    const { workload } = this.scenario;
    const mean = (workload.requestsPerSecond * trafficTickMs) / 1000;
    // A request path draws its arrivals apart from the network's draws, so runs that differ only in how they serve see the same load.
    const draws = this.requests?.arrivalDraws ?? this.random;
    let arrivals: number;
    if (workload.arrivals === 'poisson') arrivals = poisson(draws, mean);
    else arrivals = draws.float() < mean / workload.burstSize ? workload.burstSize : 0;
    if (node.journal.failing !== undefined) {
      // The gateway refuses work while its disk refuses writes: nothing it admitted could be kept.
      this.durability.refusedDiskFailing += arrivals;
      arrivals = 0;
    }
    if (this.requests !== undefined) {
      this.stats.requests += arrivals;
      this.requests.arrive(index, arrivals, this.localNow(node), this.nowMs);
      arrivals = 0;
    }
    for (let r = 0; r < arrivals; r++) {
      // Zipf-like tenant choice: a few tenants carry most of the traffic.
      const tenant = Math.floor(workload.tenants * this.random.float() ** 2);
      const key = this.tenantKeys[tenant] as CounterKey;
      const reserved = 1 + this.random.int(workload.maxTokens);
      const used = workload.refunds === false ? reserved : this.random.int(reserved + 1);
      this.stats.requests++;
      const request: QuotaRequest = {
        requestId: `${node.replica}/${this.nextRequest++}` as RequestId,
        tenant: asTenantId(key.subject),
        subjects: [{ scope: 'tenant', subject: key.subject, rules: [this.rule] }],
        amounts: new Map([[this.rule.metric, reserved]]),
        leaseMs: 3_600_000,
        // What the gateway keeps with an open request, for the row of an interrupted one.
        context: encodeRequestContext({ user: null, apiKeyId: null, model: simModel, stream: false, admittedAtMs: this.localNow(node) }),
      };
      if (workload.claims === undefined) this.admit(node, index, tenant, request, reserved, used, undefined);
      else this.claimThenAdmit(node, index, tenant, request, reserved, used);
    }
    this.flush(node);
  }

  /**
   * A request with a client-chosen id: a new one, or a retry of a recent one (at whichever region
   * this arrival is), claimed mesh-wide before admission; refused claims go no further.
   */
  private claimThenAdmit(node: SimNode, index: number, tenant: number, request: QuotaRequest, reserved: number, used: number): void {
    const claims = this.scenario.workload.claims as NonNullable<Scenario['workload']['claims']>;
    let id: string;
    if (this.recentIds.length > 0 && this.random.float() < claims.retryShare) {
      id = this.recentIds[this.random.int(this.recentIds.length)] as string;
      this.claimFigures.retries++;
    } else {
      id = `c${this.nextClaimId++}`;
      if (this.recentIds.length < recentIdsMax) this.recentIds.push(id);
      else this.recentIds[this.nextClaimId % recentIdsMax] = id;
    }
    this.claimFigures.claimed++;
    const claimer = node.claims;
    // The core answers from its drain, never from inside the call; drained at once, as production does.
    node.core.claim(id, this.localNow(node), (outcome) => {
      switch (outcome.kind) {
        case 'granted':
          this.claimFigures.granted++;
          return this.admit(this.nodes[index] as SimNode, index, tenant, request, reserved, used, { id, claims: claimer, claim: outcome.claim });
        case 'held-elsewhere':
          this.claimFigures.heldElsewhere++;
          return;
        case 'held-here':
          this.claimFigures.heldHere++;
          return;
        case 'no-quorum':
          this.claimFigures.noQuorum++;
          return;
        case 'shed':
          this.claimFigures.shed++;
          return;
      }
    });
    node.core.drainCompletions();
  }

  /**
   * The quota decision of one request. An admitted one waits for its node's next commit, then
   * reaches the upstream (`dispatch`); a claimed one may instead end before it (a
   * `dispatchShare`) and give its claim back. A request id that reaches the upstream a second
   * time fails the run.
   */
  private admit(node: SimNode, index: number, tenant: number, request: QuotaRequest, reserved: number, used: number, claimed: Claimed | undefined): void {
    const arrivedMs = this.nowMs;
    const admittedAtMs = this.localNow(node);
    node.deciding++;
    // The admission code decides as it will in production: at once on the local view
    // (eventual, escrow rights in hand), or when a quorum round completes (strict, claims).
    node.core.admit(request, admittedAtMs, (decision) => {
      // A gate decides only while its incarnation runs: a crash drops it with its rounds.
      assert(node.up && this.nodes[index] === node, 'a quota decision comes from a running node');
      node.deciding--;
      const dispatchId = claimed === undefined ? undefined : this.afterClaimedDecision(claimed, decision.ok);
      const latencyMs = Math.min(latencyBucketsMax, Math.round(this.nowMs - arrivedMs));
      this.latencyCounts[latencyMs] = (this.latencyCounts[latencyMs] as number) + 1;
      if (!decision.ok) {
        this.quota.rejected++;
        if (decision.error.kind === 'no-quorum') this.noQuorum(index, arrivedMs);
        else if ((this.admittedTruth[tenant] as number) + reserved <= this.rule.limit) this.quota.falseRejections++;
        return;
      }
      this.quota.admitted++;
      this.admittedTruth[tenant] = (this.admittedTruth[tenant] as number) + reserved;
      (this.admittedTokens[tenant] as number[])[index] = ((this.admittedTokens[tenant] as number[])[index] as number) + reserved;
      node.requests++;
      node.unsynced.push({ step: 'admitted', pending: { tenant, requestId: request.requestId, reserved, used, admittedAtMs }, dispatchId });
    });
    // A decision on the local view is delivered now, outside the call, as production does.
    node.core.drainCompletions();
  }

  /**
   * A refusal for want of a quorum: the strict availability checker fails the run if the node
   * belonged to a whole majority from before the request arrived until it was refused.
   */
  private noQuorum(index: number, arrivedMs: number): void {
    this.quota.noQuorum++;
    if (this.rule.mode === 'eventual' || this.availabilityReported || !this.whole.holds(index, arrivedMs, this.nowMs)) return;
    this.availabilityReported = true;
    this.fail(
      'availability',
      `${this.members[index]?.id} refused a request for want of a quorum (arrived at ${arrivedMs} ms, refused at ${this.nowMs} ms) while it and a majority around it were whole`,
    );
  }

  /** An admitted request whose admission is on disk goes to the upstream; it settles later. */
  private dispatch(node: SimNode, pending: PendingSettle, dispatchId: string | undefined): void {
    if (dispatchId !== undefined) {
      this.claimFigures.dispatched++;
      const earlier = this.upstreamCalls.get(dispatchId);
      if (earlier !== undefined) this.fail('claims', `request id ${dispatchId} reached the upstream twice: from ${earlier}, then from ${node.id}`);
      else this.upstreamCalls.set(dispatchId, node.id);
    }
    // A request dispatched after the safety phase settles at once, like the rest (see `traffic`).
    if (this.nowMs >= this.scenario.durationMs) return this.settle(node, pending);
    const settleTick = Math.floor(this.nowMs / trafficTickMs) + 1 + this.random.int(500);
    const list = node.settlements.get(settleTick) ?? [];
    list.push(pending);
    node.settlements.set(settleTick, list);
  }

  /** A claimed request's claim is given back unless it will reach the upstream; returns its id if it will. */
  private afterClaimedDecision(claimed: Claimed, admitted: boolean): string | undefined {
    if (!admitted || this.random.float() >= (this.scenario.workload.claims?.dispatchShare ?? 1)) {
      this.claimFigures.withdrawn++;
      claimed.claims.withdraw(claimed.claim);
      return undefined;
    }
    return claimed.id;
  }

  private dial(dialer: number, responder: number): void {
    const a = this.nodes[dialer] as SimNode;
    const b = this.nodes[responder] as SimNode;
    if (!a.up) return; // the restart redials
    if ([...a.links.values()].some((c) => c.responder === responder && c.up)) return;
    if (!b.up || !this.network.reachable(dialer, responder)) {
      // Jittered backoff, capped at 500 ms as in production.
      this.queue.push(this.nowMs + 50 + this.random.int(450), { kind: 'dial', dialer, responder });
      return;
    }
    // TCP and WebSocket handshakes: about one round trip.
    this.queue.push(this.nowMs + this.network.rttMs(dialer, responder), { kind: 'open', dialer, responder });
  }

  private open(dialer: number, responder: number): void {
    const a = this.nodes[dialer] as SimNode;
    const b = this.nodes[responder] as SimNode;
    if (!a.up || !b.up || !this.network.reachable(dialer, responder)) {
      if (a.up) this.queue.push(this.nowMs + 50 + this.random.int(450), { kind: 'dial', dialer, responder });
      return;
    }
    this.network.resetLink(dialer, responder);
    const conn: Connection = { dialer, responder, dialerLink: this.nextLink++, responderLink: this.nextLink++, up: true };
    a.links.set(conn.dialerLink, conn);
    b.links.set(conn.responderLink, conn);
    this.whenRunning(a, () => {
      a.core.onLinkOpen(conn.dialerLink, { direction: 'outbound', dialedPeer: b.id }, this.localNow(a));
      this.flush(a);
    });
    this.whenRunning(b, () => {
      b.core.onLinkOpen(conn.responderLink, { direction: 'inbound' }, this.localNow(b));
      this.flush(b);
    });
  }

  private deliver(conn: Connection, toDialer: boolean, bytes: Uint8Array): void {
    const node = this.nodes[toDialer ? conn.dialer : conn.responder] as SimNode;
    const link = toDialer ? conn.dialerLink : conn.responderLink;
    if (!this.carries(conn, toDialer, node, link)) {
      this.stats.framesDropped++;
      return;
    }
    this.stats.framesDelivered++;
    this.stats.bytesDelivered += bytes.length;
    this.hash(bytes.length, bytes[bytes.length - 1] as number);
    this.whenRunning(node, () => {
      if (!this.carries(conn, toDialer, node, link)) return;
      node.core.onFrame(link, bytes);
      // A round this frame completed answers now, at the frame's arrival.
      node.core.drainCompletions();
      this.scheduleTick(node);
    });
  }

  /** Whether a frame on `conn` still reaches `node`: the connection is up, or its sender crashed after sending it. */
  private carries(conn: Connection, toDialer: boolean, node: SimNode, link: LinkId): boolean {
    if (conn.up) return true;
    return conn.drainingFrom === (toDialer ? conn.responder : conn.dialer) && node.links.get(link) === conn;
  }

  /**
   * The connections of a node whose process just died: the peer still receives what the process
   * had sent, then hears the connection close (a reset after the last frame, at least one way
   * later), then redials.
   */
  private closeAfterCrash(conn: Connection, crashed: number): void {
    if (!conn.up) return;
    const peer = crashed === conn.dialer ? conn.responder : conn.dialer;
    // One ms after the last frame: the peer's tick at that frame's arrival reads it first.
    const noticeMs = Math.max((this.network.rttMs(conn.dialer, conn.responder) / 2) | 0, this.network.lastDeliveryMs(crashed, peer) + 1 - this.nowMs);
    this.cut(conn, noticeMs);
    conn.drainingFrom = crashed;
  }

  /** Takes a connection down now; each side hears of it after `noticeMs`, then the dialer redials. */
  private cut(conn: Connection, noticeMs: number): void {
    if (!conn.up) return;
    conn.up = false;
    this.queue.push(this.nowMs + noticeMs, { kind: 'notify-closed', node: conn.dialer, link: conn.dialerLink, conn });
    this.queue.push(this.nowMs + noticeMs, { kind: 'notify-closed', node: conn.responder, link: conn.responderLink, conn });
    this.queue.push(this.nowMs + noticeMs + 50 + this.random.int(450), { kind: 'dial', dialer: conn.dialer, responder: conn.responder });
  }

  // ---- Faults ----

  private startFault(fault: Fault): void {
    switch (fault.kind) {
      case 'partition': {
        this.partitions.set(fault, this.network.partition(fault.partition, fault.node));
        // Peers notice a silent connection by its heartbeat timeout: about a second.
        for (const node of this.nodes) {
          for (const conn of node.links.values()) {
            if (conn.up && !this.network.reachable(conn.dialer, conn.responder)) this.cut(conn, 500 + this.random.int(1000));
          }
        }
        return;
      }
      case 'crash': {
        const node = this.nodes[fault.node] as SimNode;
        if (!node.up) return;
        node.up = false;
        node.crashedBy = fault;
        // Found by the strict swarm: work deferred by a pause must die with the process, or the
        // pause's end ran it on the crashed node (a strict batch reserving on a dead replica).
        node.deferred = [];
        for (const conn of node.links.values()) this.closeAfterCrash(conn, fault.node);
        node.links.clear();
        this.loseProcess(node, fault.durable);
        return;
      }
      case 'pause': {
        const node = this.nodes[fault.node] as SimNode;
        node.pausedUntilMs = Math.max(node.pausedUntilMs, fault.atMs + fault.durationMs);
        return;
      }
      case 'skew':
        (this.nodes[fault.node] as SimNode).skewMs = fault.skewMs;
        return;
      case 'strobe':
        (this.nodes[fault.node] as SimNode).strobe = { amplitudeMs: fault.skewMs, periodMs: fault.periodMs };
        return;
    }
  }

  private endFault(fault: Fault): void {
    switch (fault.kind) {
      case 'partition': {
        const pairs = this.partitions.get(fault);
        if (pairs !== undefined) this.network.unblock(pairs);
        this.partitions.delete(fault);
        this.expectConvergence(`partition:${fault.partition}`);
        return;
      }
      case 'crash': {
        const previous = this.nodes[fault.node] as SimNode;
        if (previous.up || previous.crashedBy !== fault) return;
        const node = this.createNode(fault.node, previous, fault.durable);
        this.nodes[fault.node] = node;
        this.scheduleTick(node);
        for (let j = 0; j < this.nodes.length; j++) {
          if (j === fault.node) continue;
          const [dialer, responder] = j < fault.node ? [j, fault.node] : [fault.node, j];
          this.queue.push(this.nowMs + this.random.int(100), { kind: 'dial', dialer, responder });
        }
        this.expectConvergence(fault.durable ? 'crash:durable' : 'crash:amnesia');
        return;
      }
      case 'pause': {
        const node = this.nodes[fault.node] as SimNode;
        if (this.nowMs < node.pausedUntilMs) return;
        const actions = node.deferred;
        node.deferred = [];
        for (const action of actions) action();
        this.scheduleTick(node);
        this.expectConvergence('pause');
        return;
      }
      case 'skew':
        (this.nodes[fault.node] as SimNode).skewMs = 0;
        this.expectConvergence('skew');
        return;
      case 'strobe':
        (this.nodes[fault.node] as SimNode).strobe = undefined;
        this.expectConvergence('strobe');
        return;
    }
  }

  /**
   * Settles a request through the admission code (the oracle sees the refund via the counter)
   * and appends its usage row, as the gateway does; the client hears the end after the next commit.
   */
  private settle(node: SimNode, pending: PendingSettle): void {
    const settled = node.gate.settle(pending.requestId, new Map([[this.rule.metric, pending.used]]));
    if (settled.length !== 1) {
      this.fail('invariant', `settlement of ${pending.requestId} at ${node.id} found no reservation`);
      return;
    }
    this.admittedTruth[pending.tenant] = (this.admittedTruth[pending.tenant] as number) - (pending.reserved - pending.used);
    node.journal.appendRow(usageRow(pending, (this.tenantKeys[pending.tenant] as CounterKey).subject, node.id, this.localNow(node)));
    node.unsynced.push({ step: 'settled', pending, dispatchId: undefined });
  }

  /**
   * What dies with a node's process: its cores, with every change not yet committed, and the
   * requests in flight. With its disk kept the replica goes on from what the disk holds; without,
   * the replica is dead and lives on only in what the running nodes hold.
   */
  private loseProcess(node: SimNode, keepDisk: boolean): void {
    const stored = keepDisk ? node.store.load() : undefined;
    const resumes = stored !== undefined && stored.meta.get('replica') === node.replica;
    this.endRequests(node, resumes);
    // The rights ledger sees the rows as the process left them: without its disk, its last
    // spends are charged and live on nowhere else (sim/rights-ledger.ts).
    if (this.rule.mode === 'escrow') this.rightsLedger.observe(node.escrow.state());
    if (resumes) {
      this.oracle.restarted(node.replica, storedTotals(stored));
      this.rightsLedger.resumed(node.replica, (key) => {
        const row = node.disk.rightsRow(key);
        return row === undefined ? undefined : decodeRightsRow(row.json)?.row;
      });
      for (const heal of this.pendingHeals) this.oracle.forget(heal.truth, node.replica);
    } else {
      this.deadReplicas.push(node.replica);
    }
    // This crash may have taken the last copy of a dead incarnation's changes. What survives is
    // known once the frames the process had sent have arrived and been read (a node reads its
    // frames at its next tick, at their arrival; see `closeAfterCrash`).
    for (let peer = 0; peer < this.nodes.length; peer++) {
      if (peer !== node.index) this.drainedAtMs = Math.max(this.drainedAtMs, this.network.lastDeliveryMs(node.index, peer) + 1);
    }
    this.queue.push(Math.max(this.nowMs, this.drainedAtMs), { kind: 'copies-lost' });
  }

  /**
   * Lowers the truth of every dead incarnation to what survives of it: what the running nodes
   * hold, and what the disks of stopped nodes hold (committed before they stopped).
   */
  private copiesLost(): void {
    // Every crashed node's last frames must have arrived (they may carry a dead incarnation's
    // entries), and a paused node reads what it holds when its pause ends.
    const waitUntilMs = Math.max(this.drainedAtMs, ...this.nodes.map((n) => (n.up && n.pausedUntilMs >= this.nowMs ? n.pausedUntilMs + 1 : 0)));
    if (waitUntilMs > this.nowMs) {
      this.queue.push(waitUntilMs, { kind: 'copies-lost' });
      return;
    }
    const survivors: Holder[] = [];
    for (const node of this.nodes) {
      if (node.up) survivors.push(counterHolder(node.counter));
      else if (node.crashedBy?.kind === 'crash' && node.crashedBy.durable) survivors.push(storedHolder(storedTotals(node.disk.load())));
    }
    for (const replica of this.deadReplicas) {
      this.oracle.crashed(replica, survivors);
      for (const heal of this.pendingHeals) this.oracle.forget(heal.truth, replica);
    }
  }

  /**
   * The requests a crash catches (sim/durable-books.ts): an admission not yet committed never
   * reached the upstream and is charged nothing. If the replica resumes from its disk, a request
   * running, or settled but not yet committed, is ended as interrupted by the restart, which must
   * find exactly these (`interruptedExpected`), with those the last restart ended but had not yet
   * committed; otherwise their charges went with the replica.
   */
  private endRequests(node: SimNode, resumes: boolean): void {
    // A restart's ends of interrupted requests not yet committed: the next restart ends them again.
    const interrupted = new Set<RequestId>(resumes ? node.restoredUncommitted : []);
    // What the restart charges it (src/admission/quota-gate.ts, "Durability"): the estimate on a
    // strict or escrow key, nothing on an eventual one, released as a successor would release it.
    const interrupt = (pending: PendingSettle, truthBefore: number): void => {
      const charged = this.rule.mode === 'eventual' ? 0 : pending.reserved;
      interrupted.add(pending.requestId);
      this.books.charge(node.replica, pending.tenant, charged, 'interrupted');
      this.admittedTruth[pending.tenant] = (this.admittedTruth[pending.tenant] as number) + (charged - truthBefore);
      this.durability.interrupted++;
    };
    for (const { step, pending } of node.unsynced) {
      if (step === 'admitted') {
        this.admittedTruth[pending.tenant] = (this.admittedTruth[pending.tenant] as number) - pending.reserved;
        this.durability.undispatched++;
      } else if (resumes) {
        this.durability.settlementsLost++;
        interrupt(pending, pending.used);
      }
    }
    if (resumes) for (const list of node.settlements.values()) for (const pending of list) interrupt(pending, pending.reserved);
    node.unsynced = [];
    node.settlements.clear();
    node.interruptedExpected = interrupted;
  }

  private expectConvergence(label: string): void {
    this.pendingHeals.push({ atMs: this.nowMs, label, truth: this.oracle.snapshot() });
  }

  // ---- Checks ----

  private check(): void {
    const live = this.nodes.filter((n) => n.up);
    // Safety, every check: no replica holds counts that were never made, nor more of another
    // replica than that replica's disk.
    for (const node of live) {
      const invented = this.oracle.invented(node.counter);
      if (invented !== undefined) this.fail('invariant', invented);
    }
    this.checkSentCommitted(live);
    this.checkQuota();
    this.checkRights(live);
    if (this.options.checkers !== undefined) {
      const view: SimView = {
        nowMs: this.nowMs,
        phase: this.nowMs < this.scenario.durationMs ? 'safety' : 'liveness',
        replicas: this.nodes.map((n) => ({ region: n.id, up: n.up, counter: n.counter })),
        oracle: this.oracle,
      };
      for (const checker of this.options.checkers) {
        const message = checker(view);
        if (message !== undefined) this.fail('custom', message);
      }
    }
    // Convergence of each healed fault: every live node holds everything counted before the heal.
    for (let i = this.pendingHeals.length - 1; i >= 0; i--) {
      const heal = this.pendingHeals[i] as (typeof this.pendingHeals)[number];
      if (live.every((n) => this.oracle.covers(n.counter, heal.truth))) {
        this.convergence.push({ fault: heal.label, convergedAfterMs: this.nowMs - heal.atMs });
        this.pendingHeals.splice(i, 1);
      }
    }
    // Liveness phase: every fault healed, no traffic; all replicas must agree with the oracle.
    if (this.nowMs >= this.scenario.durationMs && this.finalConverged === undefined) {
      // Released first: a successor's release is a change of its own, which must spread too.
      if (
        this.nodes.every((n) => n.up && n.core.released !== undefined) &&
        this.nodes.every((n) => this.oracle.equals(n.counter)) &&
        this.settlementsDone() &&
        this.rightsSettled() === undefined &&
        (this.requests?.flightsOpen ?? 0) === 0
      ) {
        this.finalConverged = this.nowMs;
      }
    }
  }

  /**
   * The rule that makes resuming a replica id safe (src/crdt/windowed-counter.ts, "Durability"):
   * a node commits before it sends, so no node ever holds more of another replica's counter
   * entries, or of its rights rows, than that replica's disk does. Windows the disk may have
   * dropped as expired are left out.
   */
  private checkSentCommitted(live: readonly SimNode[]): void {
    const owners = new Map(live.map((node) => [node.replica, node]));
    for (const holder of live) {
      const wrong = this.heldBeyondDisk(holder, owners);
      if (wrong !== undefined) {
        this.fail('durability', `${holder.replica} holds ${wrong}`);
        return;
      }
    }
  }

  /** The first entry or rights row of another running replica that `holder` holds beyond that replica's disk, described. */
  private heldBeyondDisk(holder: SimNode, owners: ReadonlyMap<ReplicaId, SimNode>): string | undefined {
    for (const key of holder.counter.keys()) {
      for (const [replica, held] of holder.counter.contributions(key)) {
        const owner = owners.get(replica);
        if (owner === undefined || owner === holder || windowEndMs(key.window) < owner.droppedBeforeMs) continue;
        const kept = owner.disk.ownEntry(key) ?? { p: 0, n: 0 };
        if (held.p > kept.p || held.n > kept.n)
          return `${replica}'s ${key.id.split('\u001f').join('/')} at p=${held.p} n=${held.n}, more than its disk (p=${kept.p} n=${kept.n})`;
      }
    }
    for (const { key, row } of holder.escrow.state()) {
      const owner = owners.get(row.owner);
      if (owner === undefined || owner === holder || windowEndMs(key.window) < owner.droppedBeforeMs) continue;
      const stored = owner.disk.rightsRow(key);
      const kept = stored === undefined ? undefined : decodeRightsRow(stored.json)?.row;
      const beyond = row.used > (kept?.used ?? 0) || [...row.cells].some(([to, amount]) => amount > (kept?.cells.get(to) ?? 0));
      if (beyond)
        return `${row.owner}'s rights row of ${key.id.split('\u001f').join('/')} (used ${row.used}), more than its disk (used ${kept?.used ?? 'none'})`;
    }
    return undefined;
  }

  /** Escrow: rights are conserved and never below zero (sim/rights-ledger.ts), reported once a run. */
  private checkRights(live: readonly SimNode[]): void {
    if (this.rule.mode !== 'escrow' || this.rightsReported) return;
    for (const node of live) this.rightsLedger.observe(node.escrow.state());
    for (const [tenant, key] of this.tenantKeys.entries()) {
      const wrong = this.rightsLedger.check(key, this.admittedTruth[tenant] as number);
      if (wrong === undefined) continue;
      this.rightsReported = true;
      this.fail('escrow', wrong);
      return;
    }
  }

  /** Escrow, once the mesh is whole and quiet: the first difference between two nodes' rights rows, or undefined. */
  private rightsSettled(): string | undefined {
    if (this.rule.mode !== 'escrow') return undefined;
    return rightsDisagree(this.nodes.map((n) => ({ name: n.replica, rows: n.escrow.state() })));
  }

  /**
   * Strict and escrow: what admitted requests are truly charged never exceeds a tenant's limit,
   * at any check. Eventual: the largest overshoot is kept for the figures.
   */
  private checkQuota(): void {
    const quota = this.scenario.workload.quota;
    if (quota === undefined) return;
    this.admittedTruth.forEach((admitted, tenant) => {
      const over = admitted - quota.tokensPerDay;
      if (over <= 0) return;
      this.overshootSeenMax = Math.max(this.overshootSeenMax, over);
      if (quota.mode !== 'eventual' && !this.overshootReported.has(tenant)) {
        this.overshootReported.add(tenant);
        this.fail('quota', `tenant-${tenant} was admitted ${admitted} tokens under its ${quota.mode} limit of ${quota.tokensPerDay}`);
      }
    });
  }

  private latencyPercentile(fraction: number): number {
    let total = 0;
    for (const count of this.latencyCounts) total += count;
    if (total === 0) return 0;
    const rank = Math.ceil(total * fraction);
    let seen = 0;
    for (let ms = 0; ms < this.latencyCounts.length; ms++) {
      seen += this.latencyCounts[ms] as number;
      if (seen >= rank) return ms;
    }
    return latencyBucketsMax;
  }

  /** What keeps a node from the end, for the final-read message: ` (2 undecided, not released)`. */
  private stillWaiting(node: SimNode): string {
    const waits = [
      ...(node.deciding > 0 ? [`${node.deciding} undecided`] : []),
      ...(node.settlements.size + node.unsynced.length > 0 ? ['requests unsettled'] : []),
      ...(node.core.released !== undefined ? [] : ['not released']),
    ];
    return waits.length === 0 ? '' : ` (${waits.join(', ')})`;
  }

  private settlementsDone(): boolean {
    // Undecided requests holding a reservation (a strict round in flight) must be decided first;
    // those waiting without one (a strict retry, a batch not yet started) are charged nothing.
    return this.nodes.every((n) => n.settlements.size === 0 && n.unsynced.length === 0 && n.reservations.openCount === 0);
  }

  private sample(): void {
    const watched = this.tenantKeys[0] as CounterKey;
    const values = this.nodes.map((n) => (n.up ? n.counter.value(watched) : Number.NaN));
    const live = values.filter((v) => !Number.isNaN(v));
    this.samples.push({
      atMs: this.nowMs,
      values,
      truth: this.oracle.value(watched),
      divergence: live.length === 0 ? 0 : Math.max(...live) - Math.min(...live),
    });
  }

  private finish(): void {
    // The request books' checks run whatever else happened: an open request is a finding too.
    for (const failure of this.requests?.finish(simEpochMs) ?? []) this.fail(failure.checker, failure.message);
    for (const heal of this.pendingHeals) {
      this.convergence.push({ fault: heal.label, convergedAfterMs: undefined });
      this.fail('convergence', `after ${heal.label} healed at ${heal.atMs} ms, the replicas never caught up`);
    }
    const rightsApart = this.finalConverged === undefined && this.nodes.every((n) => n.up && this.oracle.equals(n.counter)) ? this.rightsSettled() : undefined;
    if (rightsApart !== undefined) {
      this.fail('rights', `rights rows did not converge within ${this.scenario.convergenceBudgetMs} ms of healing: ${rightsApart}`);
    } else if (this.finalConverged === undefined) {
      const detail = this.nodes.map((n) => `${n.id}=${n.up ? n.counter.value(this.tenantKeys[0] as CounterKey) : 'down'}${this.stillWaiting(n)}`).join(' ');
      this.fail(
        'final-read',
        `replicas did not agree with the oracle within ${this.scenario.convergenceBudgetMs} ms of healing (tenant-0: ${detail}, truth ${this.oracle.value(this.tenantKeys[0] as CounterKey)})`,
      );
    } else {
      this.convergence.push({ fault: 'final', convergedAfterMs: this.finalConverged - this.scenario.durationMs });
      if (this.rule.mode === 'eventual') this.checkReleased();
      this.checkBooks();
    }
  }

  /**
   * Once converged, every request is final: each live replica's own entries are what its
   * requests were charged, its disk holds their usage rows, and nothing is left reserved
   * (sim/durable-books.ts).
   */
  private checkBooks(): void {
    for (const node of this.nodes) {
      const wrong = this.books.check(node.replica, node.counter, this.tenantKeys, node.disk.rows);
      if (wrong !== undefined) this.fail('accounting', wrong);
      if (node.reservations.openCount > 0) this.fail('accounting', `${node.replica} still holds ${node.reservations.openCount} open reservations at the end`);
    }
  }

  /**
   * Under an eventual rule, once every replica converged and every request settled, each hold
   * key (src/admission/successor-release.ts) is back at zero: what live nodes reserved they
   * settled, and what crashed incarnations left open their successors released, once. Above zero,
   * the estimates of calls that died are still charged; below, an estimate was released twice.
   * (The tenant's counter itself may end below its settled usage: a settlement made just before
   * a crash without state, never gossiped, is lost with the disk, and the successor releases that
   * request's estimate in full. A crash with state loses nothing committed: see `checkBooks`.)
   */
  private checkReleased(): void {
    const node = this.nodes.find((n) => n.up);
    if (node === undefined) return;
    for (const key of this.tenantKeys) {
      const held = node.counter.value(holdKeyOf(node.counter, key));
      if (held !== 0)
        this.fail(
          'release',
          `${key.subject} still holds ${held} on its hold key at the end: ${held > 0 ? 'estimates of calls that died were not released' : 'an estimate was released twice'}`,
        );
    }
  }

  private quotaFigures(): QuotaFigures {
    const quota = this.scenario.workload.quota as NonNullable<Scenario['workload']['quota']>;
    this.checkQuota();
    const seconds = Math.max(1, this.scenario.durationMs / 1000);
    let maxOneWayMs = 0;
    for (let i = 0; i < this.scenario.regions; i++)
      for (let j = 0; j < this.scenario.regions; j++) maxOneWayMs = Math.max(maxOneWayMs, this.network.rttMs(i, j) / 2);
    const delaySeconds = (this.scenario.gossipIntervalMs + maxOneWayMs + this.scenario.network.jitterMs) / 1000;
    // The bound of the tenant that overshot most (or, with no overshoot, the largest bound).
    let overshootTokensMax = 0;
    let overshootBoundTokens = 0;
    this.admittedTruth.forEach((admitted, t) => {
      const over = Math.max(0, admitted - quota.tokensPerDay);
      const bound = (this.admittedTokens[t] as number[]).reduce((sum, tokens) => sum + tokens / seconds, 0) * delaySeconds;
      if (over > overshootTokensMax || (overshootTokensMax === 0 && bound > overshootBoundTokens)) {
        overshootTokensMax = Math.max(overshootTokensMax, over);
        overshootBoundTokens = Math.round(bound);
      }
    });
    return {
      mode: quota.mode,
      tokensPerDay: quota.tokensPerDay,
      ...this.quota,
      overshootTokensMax: Math.max(overshootTokensMax, quota.mode === 'eventual' ? 0 : this.overshootSeenMax),
      overshootBoundTokens,
      latencyMsP50: this.latencyPercentile(0.5),
      latencyMsP99: this.latencyPercentile(0.99),
    };
  }

  private fail(checker: string, message: string): void {
    if (this.failures.length < 20) this.failures.push({ checker, atMs: this.nowMs, message });
  }

  private hash(a: number, b: number): void {
    this.hashA = Math.imul(this.hashA ^ (a | 0), 0x01000193) >>> 0;
    this.hashB = Math.imul(this.hashB ^ (b | 0) ^ (a * 31), 0x5bd1e995) >>> 0;
  }
}

/** The usage row the gateway writes for a settled request (src/ledger/ledger-row.ts), with what the simulator knows. */
function usageRow(pending: PendingSettle, tenant: string, node: string, nowMs: number): LedgerRow {
  return {
    requestId: pending.requestId,
    role: 'local',
    tenant,
    user: null,
    apiKeyId: null,
    account: null,
    originRegion: node,
    servedRegion: node,
    node,
    model: simModel,
    stream: false,
    inputTokens: 0,
    outputTokens: 0,
    cacheWriteTokens: 0,
    cacheReadTokens: 0,
    weightedTokens: pending.used,
    costMicros: null,
    outcome: 'ok',
    status: 'ok',
    estimated: false,
    clientLeft: false,
    drained: false,
    chargedAtMs: pending.admittedAtMs,
    settledAtMs: nowMs,
    durationMs: Math.max(0, nowMs - pending.admittedAtMs),
  };
}

/** A disk's counter entries by key id and replica, as the oracle counts them. */
function storedTotals(snapshot: NodeSnapshot): Map<string, Map<ReplicaId, Totals>> {
  const totals = new Map<string, Map<ReplicaId, Totals>>();
  for (const entry of snapshot.counterEntries) {
    const key = keyOf([entry.scope, entry.subject, entry.metric, entry.unit, entry.index]);
    if (key === undefined) continue;
    let perReplica = totals.get(key.id);
    if (perReplica === undefined) totals.set(key.id, (perReplica = new Map<ReplicaId, Totals>()));
    perReplica.set(entry.replica as ReplicaId, { p: entry.p, n: entry.n });
  }
  return totals;
}

/** A Poisson-distributed count with the given mean (Knuth's method; means here are small). */
function poisson(random: SeededRandom, mean: number): number {
  if (mean <= 0) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(random)));
  const limit = Math.exp(-mean);
  let product = random.float();
  let count = 0;
  while (product > limit) {
    count++;
    product *= random.float();
  }
  return count;
}

function gaussian(random: SeededRandom): number {
  const u = Math.max(random.float(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.float());
}
