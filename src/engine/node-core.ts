import { EscrowBook } from '../admission/escrow.js';
import { type QuotaDecision, QuotaGate, type QuotaRequest } from '../admission/quota-gate.js';
import { type ClaimHandle, type ClaimOutcome, RequestClaims } from '../admission/request-claims.js';
import { ReservationTable, type Settlement } from '../admission/reservations.js';
import { releasePredecessors, type ReleaseReport } from '../admission/successor-release.js';
import { assert } from '../core/assert.js';
import type { NodeId, RegionId, ReplicaId, RequestId } from '../core/ids.js';
import { poolChangeListenersMax } from '../core/limits.js';
import type { Random } from '../core/random.js';
import { err, ok, type Result } from '../core/result.js';
import type { CounterKey } from '../crdt/counter-key.js';
import { WindowedCounter } from '../crdt/windowed-counter.js';
import { DurableJournal } from '../ledger/durable-journal.js';
import type { NodeSnapshot, StateStore } from '../ledger/node-state.js';
import { interruptedRow } from '../ledger/request-context.js';
import { restoreNode, type RestoreReport } from '../ledger/restore-node.js';
import type { MeshCrypto } from '../mesh/handshake.js';
import { type Member, Membership } from '../mesh/membership.js';
import { type LinkId, type MeshOutput, MeshNode, type MeshNodeOptions, type PolicyReplica } from '../mesh/mesh-node.js';
import { PolicyDocument } from '../mesh/policy/policy-document.js';
import { defaultPoolSettings, type PoolSettings, strategyFor } from '../mesh/policy/policy-schema.js';
import type { RoundOutcome } from '../mesh/quorum.js';
import { AccountPool } from '../pool/account-pool.js';
import { AccountUsage } from '../pool/account-usage.js';
import type { BaseStrategyName } from '../pool/strategies.js';
import { TierQueue, type TierQueueLimits, type TierQueueOptions } from '../schedule/tier-queue.js';
import { replicaIdentity } from './replica-identity.js';

/**
 * One incarnation of a node, sans I/O: the cores a region node runs (counter, policy, mesh node,
 * reservation and escrow books, quota gate, request claims, account pool, and with a store the
 * durable journal), wired once, for production (src/node/mesh-runtime.ts), the simulator
 * (sim/simulator.ts) and the test meshes (test/support/gate-mesh.ts) alike. A driver supplies
 * time, the transport and the disk; this object never reads a clock or sets a timer.
 *
 *   driver                              NodeCore
 *   ──────                              ────────
 *   link opened / frame / link closed ─▶ onLinkOpen / onFrame / onLinkClosed
 *   admit / claim / round(…, done)    ─▶ queued on the cores; `done` waits in the completions
 *   at nextTickMs(now), or soon after
 *   any call above                    ─▶ tick(now) = advance(now) + commit(now) + drainCompletions()
 *   drainOutbox()                     ◀─ frames the last successful commit covers
 *
 * Completions. `admit`, `claim` and `round` never call their callback from inside the call, even
 * when the answer is known at once (an eventual admission): the callback is queued and runs from
 * `tick` or `drainCompletions`. So a caller never sees its callback run before the call returns,
 * and a completion never runs inside another core's frame handling. Production drains right after
 * each call (outside it), keeping the latency it had.
 *
 * Durability. "No peer may see what the disk does not hold": with a store, frames leave the mesh
 * node's outbox only at a successful group commit (`commit`), and `drainOutbox` hands out only
 * those. A refused commit sends nothing; `nextTickMs` asks for a retry `storeRetryMs` later.
 * Without a store nothing is ever more durable than it is now, so `drainOutbox` hands out every
 * frame at once.
 *
 * Split steps. `advance` (the timers) and `commit` (the group commit) are also public, for a
 * driver that models the disk's latency between them: the simulator commits one simulated sync
 * after the change, and whatever happens meanwhile joins the same commit.
 */
export interface NodeCoreOptions {
  /** This member and the configured members (itself included). */
  readonly self: NodeId;
  readonly region: RegionId;
  readonly members: readonly Member[];
  readonly secret: Uint8Array;
  readonly crypto: MeshCrypto;
  /** The suffix of a new replica id (`self~incarnation`), used when the store names none to resume. */
  readonly incarnation: string;
  /** Seeded sources: strict retries' jitter, claim retries' jitter, the pool's backoffs and tie-breaks. */
  readonly randoms: { readonly gate: Random; readonly claims: Random; readonly pool: Random };
  /** The node's durable store, with what it held at start (loaded by the driver) and the node's clock then. */
  readonly store?: { readonly store: StateStore; readonly snapshot: NodeSnapshot; readonly nowMs: number };
  readonly log?: (line: string) => void;
  /** How the pool picks among accounts for requests without a session key, over the policy's choice. */
  readonly poolStrategy?: BaseStrategyName;
  /** A tier queue for the request path, with these limits; none unless given. */
  readonly queueLimits?: TierQueueLimits;
  /** The queue's schedule settings and tenant usage, which may read the node's replicated counter; defaults unless given. */
  readonly queueOptions?: (counter: WindowedCounter) => TierQueueOptions;
  /** Reads a monotonic clock in ms, for the journal's commit timings only. */
  readonly journalElapsedMs?: () => number;
  /** Whether the start recovers before serving quorum reads (see src/mesh/quorum.ts); true unless a test starts every node fresh at once. */
  readonly recovering?: boolean;
  /** Test and simulator overrides of the mesh node. */
  readonly rounds?: MeshNodeOptions['rounds'];
  readonly decode?: MeshNodeOptions['decode'];
  readonly quorumTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
  /** What the mesh replicates as policy, in place of the core's own document: for tests of the counter path alone. */
  readonly meshPolicy?: PolicyReplica;
  /** Runs on the new policy document before anything reads it (the simulator's common settings). */
  readonly preparePolicy?: (policy: PolicyDocument) => void;
  /** Runs on the new counter before anything uses it: a test's broken replica. */
  readonly instrumentCounter?: (counter: WindowedCounter) => void;
  /** Builds the escrow book over the new counter (the simulator's observed book, a test's mutant); a plain one by default. */
  readonly escrowBook?: (replica: ReplicaId, counter: WindowedCounter) => EscrowBook;
  /** Builds the mesh node from the options the core chose (the simulator's observed node, a test's mutant); a plain one by default. */
  readonly meshNode?: (options: MeshNodeOptions) => MeshNode;
  /** Hears every change of this replica's own counter entries (the simulator's oracle and books). */
  readonly onOwnChange?: NodeOwnChange;
}

/**
 * A change of this replica's own entry of `key`, after it is made: `increment` added to p,
 * `decrement` to n; `byRelease` when it is the release of what dead predecessors left reserved
 * (src/admission/successor-release.ts), not a request's own reservation, refund or claim.
 */
export type NodeOwnChange = (key: CounterKey, increment: number, decrement: number, byRelease: boolean) => void;

/** What the store gave back at start. */
export interface RestartReport extends RestoreReport {
  /** This start's number for the replica id (1 for its first). */
  readonly starts: number;
  /** Whether the replica id came from the store (a restart with state). */
  readonly resumed: boolean;
}

/** A store retries a refused commit this often, while it keeps refusing. */
export const storeRetryMs = 1_000;
/** Expired counter windows leave the store this often. */
export const storeExpiryEveryMs = 60_000;

const emptyRestore: RestoreReport = Object.freeze({ counterEntries: 0, rightsRows: 0, policyUpdates: 0, interrupted: [], skipped: 0 });

export class NodeCore {
  readonly self: NodeId;
  readonly region: RegionId;
  readonly replica: ReplicaId;
  readonly counter: WindowedCounter;
  readonly policy: PolicyDocument;
  readonly reservations: ReservationTable;
  readonly escrow: EscrowBook;
  readonly mesh: MeshNode;
  readonly gate: QuotaGate;
  readonly claims: RequestClaims;
  readonly pool: AccountPool;
  /** The accounts' usage in the mesh counter: the pool's quota room, and what account calls charge. */
  readonly accountUsage: AccountUsage;
  /** The request path's tier queue, when the driver asked for one (`queueLimits`). */
  readonly queue: TierQueue | undefined;
  /** The group commit, with a store. */
  readonly journal: DurableJournal | undefined;
  /** What the store gave back at start, with a store; an error when its state does not restore. */
  readonly restart: Result<RestartReport, string> | undefined;

  private readonly store: StateStore | undefined;
  private readonly log: (line: string) => void;
  private readonly poolStrategy: BaseStrategyName | undefined;
  private poolSettingsApplied: PoolSettings | undefined;
  private readonly poolListeners = new Set<() => void>();
  private readonly unsubscribePolicy: () => void;
  /**
   * Callbacks of calls whose answer is known, waiting for `drainCompletions`. Bounded by what may
   * be in flight: one per admission, claim or round the gate, the claims and the round runner
   * accepted, each of them bounded in src/core/limits.ts; drained at every tick.
   */
  private completions: (() => void)[] = [];
  private draining = false;
  /** Frames a successful commit covers, until the driver drains them. */
  private committed: MeshOutput[] = [];
  private commitRetryAtMs = Number.POSITIVE_INFINITY;
  private nextStoreExpiryMs = 0;
  private expiredBefore = Number.NEGATIVE_INFINITY;
  private releaseReport: (ReleaseReport & { readonly atMs: number }) | undefined;
  /** True while the release of dead predecessors' reservations writes (for `onOwnChange`). */
  private releasing = false;

  constructor(options: NodeCoreOptions) {
    this.self = options.self;
    this.region = options.region;
    this.log = options.log ?? (() => {});
    this.poolStrategy = options.poolStrategy;
    const membership = Membership.create(options.self, options.members);
    if (!membership.ok) throw new Error(membership.error.reason);
    const stored = options.store;
    this.store = stored?.store;
    const identity = replicaIdentity(options.self, stored?.snapshot, options.incarnation);
    this.replica = identity.replica;
    const observer = options.onOwnChange;
    this.counter = new WindowedCounter(
      this.replica,
      observer === undefined ? {} : { onOwnChange: (key, increment, decrement) => observer(key, increment, decrement, this.releasing) },
    );
    options.instrumentCounter?.(this.counter);
    this.policy = new PolicyDocument(identity.policyClientId);
    options.preparePolicy?.(this.policy);
    this.reservations = new ReservationTable(this.counter);
    this.escrow = options.escrowBook?.(this.replica, this.counter) ?? new EscrowBook(this.replica, this.counter);
    this.accountUsage = new AccountUsage(this.counter);
    this.pool = new AccountPool({
      random: options.randoms.pool,
      strategy: options.poolStrategy ?? defaultPoolSettings.strategy,
      sticky: true,
      room: this.accountUsage,
      shared: { node: options.self, region: options.region },
    });
    this.queue = options.queueLimits === undefined ? undefined : new TierQueue(options.queueLimits, options.queueOptions?.(this.counter));
    const meshOptions: MeshNodeOptions = {
      membership: membership.value,
      replica: this.replica,
      secret: options.secret,
      crypto: options.crypto,
      counter: this.counter,
      policy: options.meshPolicy ?? this.policy,
      rights: this.escrow,
      ...(this.pool.register === undefined ? {} : { health: this.pool.register }),
      // What a restarted node holds of its peers is what its last commit had, not what they hold
      // now: it answers no quorum read until every peer has sent its state, with or without a store.
      recovering: options.recovering ?? true,
      ...(options.decode === undefined ? {} : { decode: options.decode }),
      ...(options.rounds === undefined ? {} : { rounds: options.rounds }),
      ...(options.quorumTimeoutMs === undefined ? {} : { quorumTimeoutMs: options.quorumTimeoutMs }),
      ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: options.handshakeTimeoutMs }),
    };
    this.mesh = options.meshNode?.(meshOptions) ?? new MeshNode(meshOptions);
    this.gate = new QuotaGate(this.counter, this.reservations, this.escrow, this.mesh, membership.value.members.length, options.randoms.gate);
    this.claims = new RequestClaims(this.counter, this.mesh, options.randoms.claims);
    if (stored === undefined) {
      this.journal = undefined;
      this.restart = undefined;
    } else {
      const parts = { counter: this.counter, escrow: this.escrow, gate: this.gate, policy: this.policy };
      this.journal = new DurableJournal(stored.store, parts, options.journalElapsedMs);
      this.restart = this.restore(stored.snapshot, stored.nowMs, identity.resumed, identity.starts);
      this.journal.setMeta('replica', this.replica);
      this.journal.setMeta('starts', String(identity.starts));
    }
    this.pool.update(this.policy.accounts().values());
    this.configurePool();
    this.unsubscribePolicy = this.policy.onChange(() => {
      this.pool.update(this.policy.accounts().values());
      this.configurePool();
      this.notifyPool();
    });
  }

  // ---- The driver's surface ----

  /** Runs what is due at `nowMs`, commits, and delivers the completions that are ready. */
  tick(nowMs: number): void {
    this.advance(nowMs);
    this.commit(nowMs);
    this.drainCompletions();
  }

  /**
   * The timers: the mesh node's, the gate's and the claims' when due; the release of what dead
   * predecessors left reserved once every peer has sent its state (once); the pool's.
   */
  advance(nowMs: number): void {
    if (this.mesh.nextTickMs(nowMs) <= nowMs) this.mesh.tick(nowMs);
    if (this.gate.nextTickMs(nowMs) <= nowMs) this.gate.tick(nowMs);
    if (this.claims.nextTickMs(nowMs) <= nowMs) this.claims.tick(nowMs);
    if (this.releaseReport === undefined && this.mesh.rounds.allPeersSynced) this.releasePredecessors(nowMs);
    // Cheap when nothing is due: the pool peeks its deadline heap.
    this.pool.tick(nowMs);
    this.notifyPool();
  }

  /**
   * The group commit, then the frames it covers become drainable: no peer may see what the disk
   * does not hold. Returns false when the store refused (nothing may be sent; retried at
   * `nextTickMs`). Every `storeExpiryEveryMs` a successful commit also drops expired windows.
   */
  commit(nowMs: number): boolean {
    if (this.journal !== undefined && !this.journal.commit()) {
      this.commitRetryAtMs = nowMs + storeRetryMs;
      return false;
    }
    this.commitRetryAtMs = Number.POSITIVE_INFINITY;
    for (const out of this.mesh.drainOutbox()) this.committed.push(out);
    if (this.store !== undefined && nowMs >= this.nextStoreExpiryMs) {
      this.nextStoreExpiryMs = nowMs + storeExpiryEveryMs;
      this.expiredBefore = Math.max(this.expiredBefore, nowMs - this.counter.horizonMs);
      try {
        this.store.dropExpired(nowMs - this.counter.horizonMs);
      } catch (error) {
        // A store that cannot delete now (full, read-only) keeps the expired rows until the next
        // try; restore skips expired windows anyway.
        this.log(`store: dropping expired counter windows failed: ${(error as Error).message}`);
      }
    }
    return true;
  }

  /** When `tick` next has work: a timer, a completion waiting, or a refused commit's retry. */
  nextTickMs(nowMs: number): number {
    if (this.completions.length > 0) return nowMs;
    return Math.min(this.mesh.nextTickMs(nowMs), this.gate.nextTickMs(nowMs), this.claims.nextTickMs(nowMs), Math.max(nowMs, this.commitRetryAtMs));
  }

  /** The frames to send and links to close, in order; with a store, only what a commit covers. */
  drainOutbox(): MeshOutput[] {
    if (this.journal === undefined) for (const out of this.mesh.drainOutbox()) this.committed.push(out);
    const out = this.committed;
    this.committed = [];
    return out;
  }

  onLinkOpen(link: LinkId, info: { readonly direction: 'inbound' | 'outbound'; readonly dialedPeer?: NodeId }, nowMs: number): void {
    this.mesh.onLinkOpen(link, info, nowMs);
  }

  onFrame(link: LinkId, bytes: Uint8Array): void {
    this.mesh.onFrame(link, bytes);
  }

  onLinkClosed(link: LinkId): void {
    this.mesh.onLinkClosed(link);
  }

  /**
   * Runs the callbacks of calls whose answer is known, in the order they were answered; those a
   * callback's own calls answer run in the same drain. Returns how many ran. A drain from inside
   * a callback returns at once (the outer one goes on).
   */
  drainCompletions(): number {
    if (this.draining) return 0;
    this.draining = true;
    let ran = 0;
    try {
      while (ran < this.completions.length) (this.completions[ran++] as () => void)();
    } finally {
      this.completions = this.completions.slice(ran);
      this.draining = false;
    }
    return ran;
  }

  // ---- Calls with completions ----

  /** The quota decision for one request, in its limits' modes (see QuotaGate); `done` runs from a drain. */
  admit(request: QuotaRequest, nowMs: number, done: (decision: QuotaDecision) => void): void {
    this.gate.admit(request, nowMs, (decision) => this.complete(() => done(decision)));
  }

  /** Claims a request id mesh-wide (see RequestClaims); `done` runs from a drain. */
  claim(subject: string, nowMs: number, done: (outcome: ClaimOutcome) => void): void {
    this.claims.claim(subject, nowMs, (outcome) => this.complete(() => done(outcome)));
  }

  /** Gives back a granted claim of a request that never reached the model. */
  withdrawClaim(claim: ClaimHandle): void {
    this.claims.withdraw(claim);
  }

  /** A strict round (DESIGN.md §4): own entries of `writeKeys` to W members, then `readKeys` from R; `done` runs from a drain. */
  round(writeKeys: readonly CounterKey[], readKeys: readonly CounterKey[], nowMs: number, done: (outcome: RoundOutcome) => void): void {
    this.mesh.startRound({ writeKeys, readKeys }, nowMs, (outcome) => this.complete(() => done(outcome)));
  }

  /** Settles an admitted request with its actual usage per metric. */
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[] {
    return this.gate.settle(requestId, used);
  }

  /** Withdraws an admitted request that reached no upstream model (see QuotaGate). */
  withdraw(requestId: RequestId): boolean {
    return this.gate.withdraw(requestId);
  }

  // ---- Observers ----

  /** What this node released of its dead predecessors' reservations, once it has. */
  get released(): (ReleaseReport & { readonly atMs: number }) | undefined {
    return this.releaseReport;
  }

  /** The store may have dropped every counter window that ended before this (its last expiry, by the node's clock). */
  get expiredBeforeMs(): number {
    return this.expiredBefore;
  }

  /**
   * Calls `listener` after every pool tick and every policy update of the pool; returns the
   * unsubscribe. At most `poolChangeListenersMax` listeners; listeners must not throw.
   */
  onPoolChange(listener: () => void): () => void {
    const entry = (): void => listener();
    assert(this.poolListeners.size < poolChangeListenersMax, 'pool listeners stay within poolChangeListenersMax');
    this.poolListeners.add(entry);
    return () => {
      this.poolListeners.delete(entry);
    };
  }

  /** Stops hearing policy changes and drops the pool listeners: the incarnation ends. */
  dispose(): void {
    this.unsubscribePolicy();
    this.poolListeners.clear();
  }

  // ---- Inside ----

  private complete(run: () => void): void {
    this.completions.push(run);
  }

  /** Puts a resumed replica's state back, and appends the rows of the requests it ended. */
  private restore(snapshot: NodeSnapshot, nowMs: number, resumed: boolean, starts: number): Result<RestartReport, string> {
    const journal = this.journal as DurableJournal;
    const restored = resumed
      ? restoreNode(snapshot, { counter: this.counter, escrow: this.escrow, gate: this.gate, policy: this.policy }, nowMs)
      : ok(emptyRestore);
    if (!restored.ok) return err(restored.error);
    for (const ended of restored.value.interrupted) {
      const row = interruptedRow(ended, this.self, this.region, nowMs);
      if (row !== undefined) journal.appendRow(row);
    }
    return ok({ ...restored.value, starts, resumed });
  }

  /**
   * The policy's pool settings into the pool, when they changed: the strategy for this region
   * (the node's option, for tests, over the policy's), stickiness and health timings.
   */
  private configurePool(): void {
    const settings = this.policy.poolSettings();
    if (settings === this.poolSettingsApplied) return;
    this.poolSettingsApplied = settings;
    this.pool.configure({ strategy: this.poolStrategy ?? strategyFor(settings, this.region), sticky: settings.sticky, timings: settings.health });
  }

  private releasePredecessors(nowMs: number): void {
    this.releasing = true;
    let report: ReleaseReport;
    try {
      report = releasePredecessors(this.counter, this.reservations.openHolds());
    } finally {
      this.releasing = false;
    }
    this.releaseReport = { ...report, atMs: nowMs };
    if (report.amount > 0) this.log(`released ${report.amount} units on ${report.keys} counter key(s) that a dead incarnation of ${this.self} left reserved`);
  }

  private notifyPool(): void {
    for (const listener of this.poolListeners) listener();
  }
}
