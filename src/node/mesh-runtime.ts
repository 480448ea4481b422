import { randomBytes } from 'node:crypto';
import type { EscrowBook } from '../admission/escrow.js';
import type { QuotaDecision, QuotaGate, QuotaRequest } from '../admission/quota-gate.js';
import type { ClaimHandle, ClaimOutcome, RequestClaims } from '../admission/request-claims.js';
import type { ReservationTable, Settlement } from '../admission/reservations.js';
import type { ReleaseReport } from '../admission/successor-release.js';
import type { ReplicaId, RequestId } from '../core/ids.js';
import { SeededRandom } from '../core/random.js';
import { frameBytesMax, linkSendQueueBytesMax } from '../core/limits.js';
import type { CounterKey } from '../crdt/counter-key.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';
import { NodeCore, type RestartReport } from '../engine/node-core.js';
import type { MeshNode } from '../mesh/mesh-node.js';
import type { RoundOutcome } from '../mesh/quorum.js';
import type { PolicyDocument } from '../mesh/policy/policy-document.js';
import { WsTransport, type WsTransportStats } from '../net/ws-transport.js';
import type { AccountPool } from '../pool/account-pool.js';
import type { AccountUsage } from '../pool/account-usage.js';
import type { BaseStrategyName } from '../pool/strategies.js';
import { decodeStoredAnswer, type DurableJournal } from '../ledger/durable-journal.js';
import type { LedgerRow } from '../ledger/ledger-row.js';
import type { AnswerBook, NodeSnapshot, StateStore, StoreError } from '../ledger/node-state.js';
import { err, ok, type Result } from '../core/result.js';
import { hmacMeshCrypto } from '../platform/mesh-crypto.js';
import type { AnswerCodec, AnswerLedger, KeptEntry } from './answer-ledger.js';
import type { NodeConfig } from './node-config.js';

export type { RestartReport } from '../engine/node-core.js';

/**
 * One node wired to the world: the sans-I/O `NodeCore` (src/engine/node-core.ts), which owns the
 * mesh node, counter, policy, quota gate, claims, books, pool and durable journal, driven by the
 * system clock and timers, its frames carried by `WsTransport`, its store opened by the caller.
 * This file holds only I/O: the simulator (sim/simulator.ts) drives the same core under virtual
 * time instead.
 *
 * Scheduling. The core is ticked when `nextTickMs` says (its timers, a refused commit's retry),
 * and soon after frames arrive or a call changes it (`setImmediate`, coalesced), never inside the
 * socket callback. Each tick commits before any frame is handed to the transport (the core holds
 * frames back until a commit covers them); then waiters on counter values are checked.
 *
 * Calls. `admit`, `claim` and `round` wrap the core's completions in promises and drain them at
 * once after the call (the core never answers from inside a call), then pump, so a strict round's
 * frames leave at once instead of at the next timer.
 *
 * Predecessors, accounts and durability are the core's: it releases what dead incarnations left
 * reserved once every peer has sent its state (`released`), keeps the pool equal to the policy
 * (listeners added with `onPoolChange` hear after every tick and policy update), and with a store
 * resumes the replica the store names. While the store refuses writes the node sends nothing and
 * `storeFailing` says why, so the gateway refuses work. Without a store, or with an empty one,
 * every start is a new replica, the safe path of a lost disk.
 */
export interface MeshRuntimeOptions {
  readonly config: NodeConfig;
  readonly secret: Uint8Array;
  readonly tls?: { readonly certPem: string; readonly keyPem: string; readonly caPem?: string };
  readonly log?: (line: string) => void;
  /** How the pool picks among accounts for requests without a session key; sessions stick either way. */
  readonly poolStrategy?: BaseStrategyName;
  /** The node's durable store, opened; none keeps nothing across restarts. */
  readonly store?: StateStore;
}

interface Waiter {
  readonly key: CounterKey;
  readonly atLeast: number;
  readonly resolve: (value: number | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

/** Pending long-polls on counter values; more are refused. */
const waitersMax = 10_000;

export class MeshRuntime {
  /** The node's cores, one incarnation (src/engine/node-core.ts); the fields below are its parts. */
  readonly core: NodeCore;
  readonly node: MeshNode;
  readonly counter: WindowedCounter;
  readonly policy: PolicyDocument;
  readonly reservations: ReservationTable;
  readonly escrow: EscrowBook;
  readonly gate: QuotaGate;
  readonly claims: RequestClaims;
  readonly pool: AccountPool;
  /** The accounts' usage in the mesh counter: the pool's quota room, and what account calls charge. */
  readonly accountUsage: AccountUsage;
  readonly replica: ReplicaId;
  readonly config: NodeConfig;
  /** The mesh secret, which also authenticates forwarded calls between members (src/node/forward/). */
  readonly secret: Uint8Array;
  /** The group commit, with a store. */
  readonly journal: DurableJournal | undefined;
  /** What the store gave back at start, with a store. */
  readonly restart: RestartReport | undefined;
  meshPort = 0;

  private readonly transport: WsTransport;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  /** When `timer` fires (Date.now() milliseconds); infinite when none is set. */
  private timerDueMs = Number.POSITIVE_INFINITY;
  private immediate: NodeJS.Immediate | undefined;
  private waiters = new Set<Waiter>();
  private stopped = false;
  /** Stored answers by book, until their ledger attaches (`attachBook`). */
  private keptAnswers = new Map<AnswerBook, KeptEntry[]>();

  private constructor(options: MeshRuntimeOptions) {
    const { config } = options;
    this.config = config;
    this.secret = options.secret;
    this.log = options.log ?? (() => {});
    const snapshot = options.store?.load();
    const seed = (): SeededRandom => new SeededRandom(randomBytes(4).readUInt32LE(0));
    this.core = new NodeCore({
      self: config.node,
      region: config.region,
      members: config.members,
      secret: options.secret,
      crypto: hmacMeshCrypto(() => new Uint8Array(randomBytes(16))),
      incarnation: `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`,
      // Strict retries, claim retries and the pool's backoffs are jittered per node, each from its own seed.
      randoms: { gate: seed(), claims: seed(), pool: seed() },
      ...(options.store === undefined || snapshot === undefined ? {} : { store: { store: options.store, snapshot, nowMs: Date.now() } }),
      log: this.log,
      ...(options.poolStrategy === undefined ? {} : { poolStrategy: options.poolStrategy }),
      journalElapsedMs: () => performance.now(),
    });
    const core = this.core;
    if (core.restart !== undefined && !core.restart.ok) throw new Error(core.restart.error);
    this.restart = core.restart?.value;
    ({ mesh: this.node, counter: this.counter, policy: this.policy, reservations: this.reservations, escrow: this.escrow } = core);
    ({ gate: this.gate, claims: this.claims, pool: this.pool, accountUsage: this.accountUsage, replica: this.replica, journal: this.journal } = core);
    if (this.restart?.resumed === true && snapshot !== undefined) this.keepAnswers(snapshot);
    const heartbeatMs = this.policy.settings().heartbeatIntervalMs;
    this.transport = new WsTransport(
      {
        listenHost: config.listen.host,
        listenPort: config.listen.port,
        ...(options.tls === undefined ? {} : { tls: options.tls }),
        peers: this.node.membership.dialTargets().map((m) => ({ peer: m.id, url: m.url })),
        frameBytesMax,
        sendQueueBytesMax: linkSendQueueBytesMax,
        pingIntervalMs: Math.max(heartbeatMs, 250),
        pongTimeoutMs: Math.max(4 * heartbeatMs, 1_000),
        // A healed partition must converge within a second, so redials are capped at half of
        // that; with at most meshMembersMax peers the redial rate stays small.
        backoffInitialMs: 50,
        backoffMaxMs: 500,
        random: Math.random,
      },
      {
        onOpen: (link, info) => {
          this.core.onLinkOpen(
            link,
            { direction: info.direction, ...(info.dialedPeer === undefined ? {} : { dialedPeer: info.dialedPeer as NodeConfig['node'] }) },
            Date.now(),
          );
          this.soon();
        },
        onMessage: (link, bytes) => {
          this.core.onFrame(link, bytes);
          this.soon();
        },
        onClose: (link, info) => {
          this.core.onLinkClosed(link);
          if (info.code >= 4000) this.log(`link ${link} closed: ${info.reason}`);
        },
      },
    );
  }

  static async start(options: MeshRuntimeOptions): Promise<MeshRuntime> {
    const runtime = new MeshRuntime(options);
    const { port } = await runtime.transport.start();
    runtime.meshPort = port;
    runtime.pump();
    return runtime;
  }

  /** The quota decision for one request, in its limits' modes (see QuotaGate). */
  admit(request: QuotaRequest, nowMs: number = Date.now()): Promise<QuotaDecision> {
    return new Promise((resolve) => {
      this.core.admit(request, nowMs, resolve);
      // A decision made at once is delivered now, outside the call, not at the next pump.
      this.core.drainCompletions();
      this.soon();
    });
  }

  /** Claims a request id mesh-wide (see RequestClaims); `subject` is the digest of tenant and id. */
  claim(subject: string): Promise<ClaimOutcome> {
    if (this.stopped) return Promise.resolve({ kind: 'no-quorum', retryAfterMs: 1_000 });
    return new Promise((resolve) => {
      this.core.claim(subject, Date.now(), resolve);
      this.core.drainCompletions();
      this.soon();
    });
  }

  /** Gives back a granted claim of a request that never reached the model. */
  withdrawClaim(claim: ClaimHandle): void {
    this.core.withdrawClaim(claim);
    this.soon();
  }

  /**
   * Resolves once everything this node did before the call is on disk (the next group commit), or
   * with the store's error; at once without a store. See src/ledger/durable-journal.ts.
   */
  durable(): Promise<Result<undefined, StoreError>> {
    if (this.journal === undefined) return Promise.resolve(ok(undefined));
    if (this.stopped) return Promise.resolve(err({ kind: 'io', message: 'the node is stopping' }));
    const done = this.journal.durable();
    this.soon();
    return done;
  }

  /** Whether this node keeps a durable store. */
  get keepsState(): boolean {
    return this.journal !== undefined;
  }

  /** Why the store refuses writes now (the node must refuse work), or undefined. */
  get storeFailing(): StoreError | undefined {
    return this.journal?.failing;
  }

  /** Appends a usage row to the next group commit; nothing without a store. */
  appendRow(row: LedgerRow): void {
    if (this.journal === undefined) return;
    this.journal.appendRow(row);
    this.soon();
  }

  /**
   * Makes an answer ledger durable: its kept entries come back from the store (a running one as
   * the codec's interrupted answer) and its changes join every group commit. Nothing without a store.
   */
  attachBook<Answer>(book: AnswerBook, ledger: AnswerLedger<Answer>, codec: AnswerCodec<Answer>): void {
    if (this.journal === undefined) return;
    ledger.keepDurable(codec);
    ledger.restore(this.keptAnswers.get(book) ?? [], Date.now());
    this.keptAnswers.delete(book);
    this.journal.addBook(book, ledger);
  }

  /** What this node released of its dead predecessors' reservations, once it has (see the file comment). */
  get released(): (ReleaseReport & { readonly atMs: number }) | undefined {
    return this.core.released;
  }

  /**
   * A quorum read of `keys` (DESIGN.md §4's read phase, with nothing of its own to write): joins
   * every replica's entries that R members hold into this node's counter, so a read of the keys
   * afterwards includes every strict admission that completed anywhere. For GetUsage at QUORUM.
   */
  readRound(keys: readonly CounterKey[]): Promise<RoundOutcome> {
    return this.round([], keys);
  }

  /**
   * A strict round: this node's own entries of `writeKeys` made durable at W members, then every
   * replica's entries of `readKeys` joined from R members (DESIGN.md §4). An operator's credit
   * (src/node/admin/admin-service.ts) uses it to check that no concurrent credit took a key
   * below zero.
   */
  round(writeKeys: readonly CounterKey[], readKeys: readonly CounterKey[]): Promise<RoundOutcome> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: 'no-quorum' });
    return new Promise((resolve) => {
      this.core.round(writeKeys, readKeys, Date.now(), resolve);
      this.core.drainCompletions();
      this.soon();
    });
  }

  /** Settles an admitted request with its actual usage per metric. */
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[] {
    const settlements = this.core.settle(requestId, used);
    this.soon();
    return settlements;
  }

  /** Withdraws an admitted request that reached no upstream model; its id may be used again (see QuotaGate). */
  withdraw(requestId: RequestId): boolean {
    const withdrawn = this.core.withdraw(requestId);
    this.soon();
    return withdrawn;
  }

  /**
   * Calls `listener` after every pool tick and every policy update of the pool; returns the
   * unsubscribe. At most `poolChangeListenersMax` listeners; listeners must not throw.
   */
  onPoolChange(listener: () => void): () => void {
    return this.core.onPoolChange(listener);
  }

  transportStats(): WsTransportStats {
    return this.transport.stats();
  }

  /**
   * Resolves with the key's value once it is at least `atLeast`, or with undefined after
   * `timeoutMs`. Checked after every tick, so the answer is as fresh as the node's own view.
   */
  waitFor(key: CounterKey, atLeast: number, timeoutMs: number): Promise<number | undefined> {
    const now = this.counter.value(key);
    if (now >= atLeast) return Promise.resolve(now);
    if (this.waiters.size >= waitersMax || this.stopped) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        key,
        atLeast,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          resolve(undefined);
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    // What the last requests settled is written before the node goes.
    this.journal?.commit();
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(undefined);
    }
    this.waiters.clear();
    this.core.dispose();
    await this.transport.stop();
  }

  /** Ticks the core (timers, group commit, completions), sends what the commit covers, checks waiters, sets the next timer. */
  private pump(): void {
    if (this.stopped) return;
    this.core.tick(Date.now());
    this.flush();
    this.checkWaiters();
    const later = Date.now();
    const dueMs = later + Math.max(1, this.core.nextTickMs(later) - later);
    // A timer already due no later is kept: firing early only pumps once more, which reschedules.
    // The pump runs after nearly every call, and a timer set anew each time was a Timeout object
    // and two timer-list operations per call.
    if (this.timer !== undefined && this.timerDueMs <= dueMs && this.timerDueMs >= later) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueMs = Number.POSITIVE_INFINITY;
      this.pump();
    }, dueMs - later);
  }

  private keepAnswers(snapshot: NodeSnapshot): void {
    for (const answer of snapshot.answers) {
      const decoded = decodeStoredAnswer(answer);
      if (decoded === undefined) continue;
      let kept = this.keptAnswers.get(answer.book);
      if (kept === undefined) this.keptAnswers.set(answer.book, (kept = []));
      kept.push({ key: answer.key, owner: decoded.owner, atMs: answer.atMs, json: decoded.json });
    }
  }

  private soon(): void {
    if (this.immediate !== undefined || this.stopped) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
  }

  private flush(): void {
    for (const out of this.core.drainOutbox()) {
      if (out.kind === 'send') this.transport.send(out.link, out.bytes, out.droppable);
      else this.transport.close(out.link, out.code, out.reason);
    }
  }

  private checkWaiters(): void {
    for (const waiter of this.waiters) {
      const value = this.counter.value(waiter.key);
      if (value >= waiter.atLeast) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve(value);
      }
    }
  }
}
