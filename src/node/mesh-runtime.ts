import { createHmac, randomBytes } from 'node:crypto';
import { EscrowBook } from '../admission/escrow.js';
import { type QuotaDecision, QuotaGate, type QuotaRequest } from '../admission/quota-gate.js';
import { type ClaimHandle, type ClaimOutcome, RequestClaims } from '../admission/request-claims.js';
import { ReservationTable, type Settlement } from '../admission/reservations.js';
import { releasePredecessors, type ReleaseReport } from '../admission/successor-release.js';
import { assert } from '../core/assert.js';
import { asReplicaId, type ReplicaId, type RequestId } from '../core/ids.js';
import { SeededRandom } from '../core/random.js';
import { frameBytesMax, linkSendQueueBytesMax, poolChangeListenersMax } from '../core/limits.js';
import type { CounterKey } from '../crdt/counter-key.js';
import { WindowedCounter } from '../crdt/windowed-counter.js';
import type { MeshCrypto } from '../mesh/handshake.js';
import { Membership } from '../mesh/membership.js';
import { MeshNode } from '../mesh/mesh-node.js';
import type { RoundOutcome } from '../mesh/quorum.js';
import { PolicyDocument } from '../mesh/policy/policy-document.js';
import { WsTransport, type WsTransportStats } from '../net/ws-transport.js';
import { AccountPool } from '../pool/account-pool.js';
import { defaultPoolSettings, type PoolSettings, strategyFor } from '../mesh/policy/policy-schema.js';
import { AccountUsage } from '../pool/account-usage.js';
import type { BaseStrategyName } from '../pool/strategies.js';
import { decodeStoredAnswer, DurableJournal } from '../ledger/durable-journal.js';
import type { LedgerRow } from '../ledger/ledger-row.js';
import type { AnswerBook, NodeSnapshot, StateStore, StoreError } from '../ledger/node-state.js';
import { interruptedRow } from '../ledger/request-context.js';
import { restoreNode, type RestoreReport } from '../ledger/restore-node.js';
import { err, ok, type Result } from '../core/result.js';
import type { AnswerCodec, AnswerLedger, KeptEntry } from './answer-ledger.js';
import type { NodeConfig } from './node-config.js';

/**
 * One node's mesh, wired to the world: the sans-I/O `MeshNode` driven by the system clock and
 * timers, its frames carried by `WsTransport`. This is the only place that reads the clock for
 * the mesh; the simulator replaces exactly this file.
 *
 * Scheduling. The node is ticked when its next timer is due, and soon after frames arrive
 * (`setImmediate`, coalesced), never inside the socket callback. After every tick the outbox is
 * drained into the transport and waiters on counter values are checked.
 *
 * Admission. The runtime also holds the node's quota gate (src/admission/quota-gate.ts) with its
 * reservation and escrow books: `admit` wraps the gate's callback in a promise and pumps, so a
 * strict round's frames leave at once instead of at the next timer. `claim` does the same for
 * request-id claims (src/admission/request-claims.ts).
 *
 * Predecessors. Every start is a new replica of this member; once every peer has sent its whole
 * state, the runtime releases what the member's dead incarnations left reserved
 * (src/admission/successor-release.ts), once, and reports it in `released`.
 *
 * Accounts. The runtime holds the node's account pool (src/pool/account-pool.ts), kept equal to
 * the policy's accounts (at start and after every policy change, local or gossiped) and with
 * the accounts' quota room read from the mesh counter. The pump ticks it, and listeners added
 * with `onPoolChange` (an `AccountCaller`, which owns the pool's event outbox) hear after every
 * tick and update, so a queued call learns of an eviction at once. The caller itself is not
 * built here: it needs the accounts' credentials, which are not in the replicated policy.
 *
 * Durability. With a store (`dataDir` in the config, src/ledger/), the node resumes under the
 * replica id the store names, with its own counter entries, rights rows, open requests and policy
 * put back (src/ledger/restore-node.ts), and every pump commits what changed before it sends a
 * frame (src/ledger/durable-journal.ts). While the store refuses writes the node sends nothing
 * and `storeFailing` says why, so the gateway refuses work. Without a store, or with an empty
 * one, every start is a new replica, the safe path of a lost disk.
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

/** What the store gave back at start. */
export interface RestartReport extends RestoreReport {
  /** This start's number for the replica id (1 for its first). */
  readonly starts: number;
  /** Whether the replica id came from the store (a restart with state). */
  readonly resumed: boolean;
}

/** A store retries a refused commit this often, while it keeps refusing. */
const storeRetryMs = 1_000;
/** Expired counter windows leave the store this often. */
const storeExpiryEveryMs = 60_000;

interface Waiter {
  readonly key: CounterKey;
  readonly atLeast: number;
  readonly resolve: (value: number | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

/** Pending long-polls on counter values; more are refused. */
const waitersMax = 10_000;

export class MeshRuntime {
  readonly node: MeshNode;
  readonly counter: WindowedCounter;
  readonly policy: PolicyDocument;
  readonly reservations: ReservationTable;
  readonly escrow: EscrowBook;
  readonly gate: QuotaGate;
  readonly claims: RequestClaims;
  private poolSettingsApplied: PoolSettings | undefined;
  private readonly poolStrategyOption: BaseStrategyName | undefined;
  readonly pool: AccountPool;
  /** The accounts' usage in the mesh counter: the pool's quota room, and what account calls charge. */
  readonly accountUsage: AccountUsage;
  readonly replica: ReplicaId;
  readonly config: NodeConfig;
  /** The mesh secret, which also authenticates forwarded calls between members (src/node/forward/). */
  readonly secret: Uint8Array;
  meshPort = 0;

  private readonly transport: WsTransport;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private waiters = new Set<Waiter>();
  private readonly poolListeners = new Set<() => void>();
  private readonly unsubscribePolicy: () => void;
  private stopped = false;
  /** What the dead incarnations of this member had left reserved, once released. */
  private releaseReport: (ReleaseReport & { readonly atMs: number }) | undefined;
  /** The group commit, with a store. */
  readonly journal: DurableJournal | undefined;
  /** What the store gave back at start, with a store. */
  readonly restart: RestartReport | undefined;
  private readonly store: StateStore | undefined;
  /** Stored answers by book, until their ledger attaches (`attachBook`). */
  private keptAnswers = new Map<AnswerBook, KeptEntry[]>();
  private nextStoreExpiryMs = 0;

  private constructor(options: MeshRuntimeOptions) {
    const { config } = options;
    this.config = config;
    this.secret = options.secret;
    this.log = options.log ?? (() => {});
    const membership = Membership.create(config.node, config.members);
    if (!membership.ok) throw new Error(membership.error.reason);
    // A node restarted without its state must not reuse its replica id (see pn-counter.ts): the
    // incarnation suffix makes every start a new replica. One with its state resumes its own.
    this.store = options.store;
    const snapshot = options.store?.load();
    const kept = snapshot?.meta.get('replica');
    const resumed = kept !== undefined && kept.startsWith(`${config.node}~`);
    if (kept !== undefined && !resumed) throw new Error(`the data directory holds the state of replica ${kept}, not of node ${config.node}: give each node its own dataDir`);
    this.replica = resumed ? asReplicaId(kept) : asReplicaId(`${config.node}~${Date.now().toString(36)}${randomBytes(2).toString('hex')}`);
    const starts = resumed ? Number(snapshot?.meta.get('starts') ?? '0') + 1 : 1;
    this.counter = new WindowedCounter(this.replica);
    // A new Yjs client id per start: structs an earlier start wrote but never saved cannot collide.
    this.policy = new PolicyDocument(yjsClientId(asReplicaId(starts === 1 ? this.replica : `${this.replica}#${starts}`)));
    const crypto: MeshCrypto = {
      hmacSha256: (key, message) => new Uint8Array(createHmac('sha256', key).update(message).digest()),
      nonce: () => new Uint8Array(randomBytes(16)),
    };
    this.reservations = new ReservationTable(this.counter);
    this.escrow = new EscrowBook(this.replica, this.counter);
    // Jitter of account backoffs and tie-breaks, seeded per node like the gate's, from its own seed.
    this.poolStrategyOption = options.poolStrategy;
    this.accountUsage = new AccountUsage(this.counter);
    this.pool = new AccountPool({
      random: new SeededRandom(randomBytes(4).readUInt32LE(0)),
      strategy: options.poolStrategy ?? defaultPoolSettings.strategy,
      sticky: true,
      room: this.accountUsage,
      shared: { node: config.node, region: config.region },
    });
    this.node = new MeshNode({
      membership: membership.value,
      replica: this.replica,
      secret: options.secret,
      crypto,
      counter: this.counter,
      policy: this.policy,
      rights: this.escrow,
      ...(this.pool.register === undefined ? {} : { health: this.pool.register }),
      // What a restarted node holds of its peers is what its last commit had, not what they hold
      // now: it answers no quorum read until every peer has sent its state, with or without a store.
      recovering: true,
    });
    // Strict retries are jittered per node, so the node's own seed.
    const seed = randomBytes(4).readUInt32LE(0);
    this.gate = new QuotaGate(this.counter, this.reservations, this.escrow, this.node, membership.value.members.length, new SeededRandom(seed));
    this.claims = new RequestClaims(this.counter, this.node, new SeededRandom(randomBytes(4).readUInt32LE(0)));
    if (options.store !== undefined && snapshot !== undefined) {
      const parts = { counter: this.counter, escrow: this.escrow, gate: this.gate, policy: this.policy };
      this.journal = new DurableJournal(options.store, parts, () => performance.now());
      const restored = resumed ? restoreNode(snapshot, parts, Date.now()) : ok(emptyRestore);
      if (!restored.ok) throw new Error(restored.error);
      this.restart = { ...restored.value, starts, resumed };
      this.journal.setMeta('replica', this.replica);
      this.journal.setMeta('starts', String(starts));
      if (resumed) this.keepAnswers(snapshot);
      const nowMs = Date.now();
      for (const ended of restored.value.interrupted) {
        const row = interruptedRow(ended, config.node, config.region, nowMs);
        if (row !== undefined) this.journal.appendRow(row);
      }
    }
    this.pool.update(this.policy.accounts().values());
    this.configurePool();
    this.unsubscribePolicy = this.policy.onChange(() => {
      this.pool.update(this.policy.accounts().values());
      this.configurePool();
      this.notifyPool();
    });
    const heartbeatMs = this.policy.settings().heartbeatIntervalMs;
    this.transport = new WsTransport(
      {
        listenHost: config.listen.host,
        listenPort: config.listen.port,
        ...(options.tls === undefined ? {} : { tls: options.tls }),
        peers: membership.value.dialTargets().map((m) => ({ peer: m.id, url: m.url })),
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
          this.node.onLinkOpen(link, { direction: info.direction, ...(info.dialedPeer === undefined ? {} : { dialedPeer: info.dialedPeer as NodeConfig['node'] }) }, Date.now());
          this.flush();
        },
        onMessage: (link, bytes) => {
          this.node.onFrame(link, bytes);
          this.soon();
        },
        onClose: (link, info) => {
          this.node.onLinkClosed(link);
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
      this.gate.admit(request, nowMs, resolve);
      this.soon();
    });
  }

  /** Claims a request id mesh-wide (see RequestClaims); `subject` is the digest of tenant and id. */
  claim(subject: string): Promise<ClaimOutcome> {
    if (this.stopped) return Promise.resolve({ kind: 'no-quorum', retryAfterMs: 1_000 });
    return new Promise((resolve) => {
      this.claims.claim(subject, Date.now(), resolve);
      this.soon();
    });
  }

  /** Gives back a granted claim of a request that never reached the model. */
  withdrawClaim(claim: ClaimHandle): void {
    this.claims.withdraw(claim);
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
    return this.releaseReport;
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
      this.node.startRound({ writeKeys, readKeys }, Date.now(), (outcome) => resolve(outcome));
      this.soon();
    });
  }

  /** Settles an admitted request with its actual usage per metric. */
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[] {
    const settlements = this.gate.settle(requestId, used);
    this.soon();
    return settlements;
  }

  /** Withdraws an admitted request that reached no upstream model; its id may be used again (see QuotaGate). */
  withdraw(requestId: RequestId): boolean {
    const withdrawn = this.gate.withdraw(requestId);
    this.soon();
    return withdrawn;
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
    this.unsubscribePolicy();
    this.poolListeners.clear();
    await this.transport.stop();
  }

  /**
   * The policy's pool settings into the pool, when they changed: the strategy for this region
   * (the node's option, for tests, over the policy's), stickiness and health timings.
   */
  private configurePool(): void {
    const settings = this.policy.poolSettings();
    if (settings === this.poolSettingsApplied) return;
    this.poolSettingsApplied = settings;
    this.pool.configure({ strategy: this.poolStrategyOption ?? strategyFor(settings, this.config.region), sticky: settings.sticky, timings: settings.health });
  }

  /** Ticks if due, drains the outbox, checks waiters, and sets the next timer. */
  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.node.nextTickMs(now) <= now) this.node.tick(now);
    if (this.gate.nextTickMs(now) <= now) this.gate.tick(now);
    if (this.claims.nextTickMs(now) <= now) this.claims.tick(now);
    if (this.releaseReport === undefined && this.node.rounds.allPeersSynced) this.releasePredecessors(now);
    // Cheap when nothing is due: the pool peeks its deadline heap.
    this.pool.tick(now);
    this.notifyPool();
    // The group commit, then the frames: no peer may see what the disk does not hold.
    const saved = this.journal === undefined || this.journal.commit();
    if (saved) this.flush();
    if (saved && this.store !== undefined && now >= this.nextStoreExpiryMs) {
      this.nextStoreExpiryMs = now + storeExpiryEveryMs;
      try {
        this.store.dropExpired(now - this.counter.horizonMs);
      } catch (error) {
        // A store that cannot delete now (full, read-only) keeps the expired rows until the next
        // try; restore skips expired windows anyway.
        this.log(`store: dropping expired counter windows failed: ${(error as Error).message}`);
      }
    }
    this.checkWaiters();
    if (this.timer !== undefined) clearTimeout(this.timer);
    const later = Date.now();
    const due = Math.min(this.node.nextTickMs(later), this.gate.nextTickMs(later), this.claims.nextTickMs(later), saved ? Number.POSITIVE_INFINITY : later + storeRetryMs);
    const delay = Math.max(1, due - later);
    this.timer = setTimeout(() => this.pump(), delay);
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

  private releasePredecessors(nowMs: number): void {
    const report = releasePredecessors(this.counter, this.reservations.openHolds());
    this.releaseReport = { ...report, atMs: nowMs };
    if (report.amount > 0) this.log(`released ${report.amount} units on ${report.keys} counter key(s) that a dead incarnation of ${this.config.node} left reserved`);
  }

  private soon(): void {
    if (this.immediate !== undefined || this.stopped) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
  }

  private flush(): void {
    for (const out of this.node.drainOutbox()) {
      if (out.kind === 'send') this.transport.send(out.link, out.bytes, out.droppable);
      else this.transport.close(out.link, out.code, out.reason);
    }
  }

  private notifyPool(): void {
    for (const listener of this.poolListeners) listener();
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

const emptyRestore: RestoreReport = Object.freeze({ counterEntries: 0, rightsRows: 0, policyUpdates: 0, interrupted: [], skipped: 0 });

/** Yjs needs a distinct 32-bit client id per incarnation: FNV-1a of the replica id. */
export function yjsClientId(replica: ReplicaId): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < replica.length; i++) {
    hash ^= replica.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}
