import { assert } from '../core/assert.js';
import type { NodeId, ReplicaId } from '../core/ids.js';
import {
  counterExpiryIntervalMs,
  deltaAckTimeoutGossipIntervals,
  deltaAckTimeoutMsMin,
  frameBytesMax,
  handshakeFramesMax,
  handshakeNoncesMax,
  handshakeTimeoutMs,
  inboundFramesMax,
  linksMax,
  policySyncEveryDigestRounds,
  healthRowsPerFrameMax,
  quorumRoundTimeoutMs,
  repairChunkEntriesMax,
  rightsCellsPerFrameMax,
  unackedBatchesMax,
} from '../core/limits.js';
import type { Result } from '../core/result.js';
import type { KeyedRightsRow } from '../crdt/bounded-counter.js';
import type { CounterDelta, Digest, WindowedCounter } from '../crdt/windowed-counter.js';
import type { HealthRecord, HealthReplica } from '../pool/health-register.js';
import { constantTimeEqual, handshakeProof, type MeshCrypto, meshProtocolVersion, NonceCache } from './handshake.js';
import { livenessOf, type Liveness, type Membership, type QuorumSizes } from './membership.js';
import { type AuthFailure, MeshStats } from './mesh-stats.js';
import { type OpenPeer, QuorumRounds, type RoundDone, type RoundRequest, type RoundRunner, type RoundRunnerParts } from './quorum.js';
import { decodeFrame, encodeFrame, type Frame, type FrameError } from './wire/frame.js';

/**
 * One mesh node as a state machine (style guide §2): the transport feeds it link events and
 * frames, `tick(nowMs)` does all the work, and the adapter drains `drainOutbox()` into sockets.
 * The simulator drives the very same object over a simulated network.
 *
 * Message flow per link (also at the top of proto/carpool/v1/mesh.proto):
 *
 *   1. Handshake. The dialer sends Hello; the responder answers Challenge with its proof; the
 *      dialer answers Proof. No other frame is accepted until then; anything else closes the
 *      link and counts an auth failure.
 *   2. On open, both sides send their digest and a policy sync step 1. Each answers the other's
 *      digest with exactly the entries it lacks (a full state for a new or long-gone peer), in
 *      chunks whose last one carries the version ranges.
 *   3. Every gossip interval the node takes its own batched delta and sends it to every open
 *      peer (droppable: a full socket queue drops it). Receivers ack the version they hold
 *      contiguously; unacked batches are resent after a timeout, and a peer whose buffer
 *      overflows is left to the digest exchange.
 *   4. Every digest interval each node sends its digest and a policy step 1 to every peer:
 *      this repairs whatever the deltas missed, also through a third node when two nodes
 *      cannot see each other.
 *   5. Heartbeats keep liveness fresh; frames received are queued and applied on the next tick,
 *      never inside the socket callback.
 *   6. Strict quorum rounds (./quorum.ts) ride on the open links: QuorumWrite/QuorumAck, then
 *      QuorumRead/QuorumReply. A node that started without its state probes each peer for its
 *      whole state, through a synced peer that relays it for a peer it cannot reach.
 *   7. Escrow rights rows and the accounts' shared health records go, like policy updates, on
 *      the ordered link: what changed each gossip interval, the whole state when a link opens.
 */
export type LinkId = number;

/** What the mesh needs from the policy document (src/mesh/policy). */
export interface PolicyReplica {
  syncStep1(): Uint8Array;
  onSyncMessage(bytes: Uint8Array): Result<Uint8Array | undefined, { readonly kind: string }>;
  takeUpdates(): Uint8Array[];
  settings(): MeshTimings;
}

/**
 * What the mesh needs from the escrow rights (src/admission/escrow.ts): bounded-counter rows.
 * Rows are whole-row snapshots merged by point-wise maximum, so the node sends the rows that
 * changed each gossip interval (its own writes and rows a join raised, which relays them across
 * a bridge) and the full state to a peer whose link opens.
 */
export interface RightsReplica {
  takeChanged(): KeyedRightsRow[];
  state(): KeyedRightsRow[];
  join(rows: readonly KeyedRightsRow[]): void;
}

export interface MeshTimings {
  readonly gossipIntervalMs: number;
  readonly digestIntervalMs: number;
  readonly heartbeatIntervalMs: number;
}

export interface MeshNodeOptions {
  readonly membership: Membership;
  /** This incarnation's replica id: a node restarted without its state takes a new one. */
  readonly replica: ReplicaId;
  readonly secret: Uint8Array;
  readonly crypto: MeshCrypto;
  readonly counter: WindowedCounter;
  readonly policy: PolicyReplica;
  readonly handshakeTimeoutMs?: number;
  readonly expiryIntervalMs?: number;
  /**
   * The frame decoder; `decodeFrame` unless replaced. The simulator passes one that remembers
   * frames it has decoded, because it hands the same bytes to every peer a delta goes to.
   */
  readonly decode?: (bytes: Uint8Array) => Result<Frame, FrameError>;
  /** Strict-round quorum sizes; majorities of the configured members unless given (W + R > N). */
  readonly quorum?: QuorumSizes;
  readonly quorumTimeoutMs?: number;
  /**
   * Whether this incarnation starts without the state of an earlier one (true in production,
   * where a start is always a new replica): it then recovers before serving quorum reads (see
   * ./quorum.ts). Default false, for tests that start every node fresh at once.
   */
  readonly recovering?: boolean;
  /**
   * Whether to collect every peer's whole state once (`RoundRunner.allPeersSynced`) although the
   * node kept its state: a restart that has not yet released its predecessors' reservations
   * (src/admission/successor-release.ts). Implied by `recovering`.
   */
  readonly syncPeers?: boolean;
  /** Builds the round protocol; `QuorumRounds` unless a test swaps in a variant. */
  readonly rounds?: (parts: RoundRunnerParts) => RoundRunner;
  /** Escrow rights to replicate, if this node keeps any. */
  readonly rights?: RightsReplica;
  /** The accounts' shared health register (src/pool/health-register.ts), replicated like the rights. */
  readonly health?: HealthReplica;
}

/** Close codes in the application range: 44xx mirror HTTP where one fits. */
export const closeCodes = {
  badFrame: 4400,
  unauthenticated: 4401,
  handshakeTimeout: 4408,
  replaced: 4409,
  tooManyLinks: 4429,
} as const;

export type MeshOutput =
  | { readonly kind: 'send'; readonly link: LinkId; readonly bytes: Uint8Array; readonly droppable: boolean }
  | { readonly kind: 'close'; readonly link: LinkId; readonly code: number; readonly reason: string };

export interface PeerView {
  readonly peer: NodeId;
  readonly connected: boolean;
  readonly liveness: Liveness;
}

/**
 * A link's phase, with what that phase knows: the responder waits for a Hello; the dialer, which
 * sent its nonce, waits for the Challenge of the member it dialed; the responder, which knows the
 * claimed member and both nonces, waits for the Proof; an open link carries its authenticated
 * peer; a closing one keeps the peer it had when open (to free that peer's slot when it closes).
 */
type LinkPhase =
  | { readonly kind: 'awaiting-hello' }
  | { readonly kind: 'awaiting-challenge'; readonly dialedPeer: NodeId; readonly nonceDialer: Uint8Array }
  | { readonly kind: 'awaiting-proof'; readonly peer: NodeId; readonly nonceDialer: Uint8Array; readonly nonceResponder: Uint8Array }
  | { readonly kind: 'open'; readonly peer: NodeId }
  | { readonly kind: 'closing'; readonly peer: NodeId | undefined };

interface LinkState {
  readonly id: LinkId;
  readonly direction: 'inbound' | 'outbound';
  readonly openedAtMs: number;
  phase: LinkPhase;
  /** Digests received on this link; the first one is answered without a grace interval. */
  digestsReceived: number;
  /** Per replica, the held version this link was last repaired up to (see `onDigest`). */
  repairedHeld: Map<ReplicaId, number>;
  inbound: Uint8Array[];
}

/** A link in its open phase: its peer is known without a cast. */
type OpenLink = LinkState & { phase: Extract<LinkPhase, { kind: 'open' }> };

function isOpen(state: LinkState): state is OpenLink {
  return state.phase.kind === 'open';
}

interface UnackedBatch {
  readonly to: number;
  readonly bytes: Uint8Array;
  lastSentMs: number;
}

interface PeerState {
  link: LinkId | undefined;
  lastHeardMs: number | undefined;
  unacked: UnackedBatch[];
}

export class MeshNode {
  readonly stats = new MeshStats();
  readonly membership: Membership;
  readonly replica: ReplicaId;
  readonly counter: WindowedCounter;
  readonly policy: PolicyReplica;
  readonly rounds: RoundRunner;
  readonly rights: RightsReplica | undefined;
  readonly health: HealthReplica | undefined;

  private readonly secret: Uint8Array;
  private readonly crypto: MeshCrypto;
  private readonly handshakeTimeoutMs: number;
  private readonly expiryIntervalMs: number;
  private readonly decode: (bytes: Uint8Array) => Result<Frame, FrameError>;
  private readonly links = new Map<LinkId, LinkState>();
  private readonly peers = new Map<NodeId, PeerState>();
  private readonly nonces = new NonceCache(handshakeNoncesMax);
  private outbox: MeshOutput[] = [];
  private started = false;
  private nextGossipMs = 0;
  private nextDigestMs = 0;
  private nextHeartbeatMs = 0;
  private nextExpiryMs = 0;
  private pendingFrames = 0;
  private digestRounds = 0;
  /** Our digest as of the previous digest round: what every peer should hold by now. */
  private previousDigest: Digest = new Map();
  /** Our held versions as of the previous digest round. */
  private previousHeld: Digest = new Map();

  constructor(options: MeshNodeOptions) {
    this.membership = options.membership;
    this.replica = options.replica;
    this.counter = options.counter;
    this.policy = options.policy;
    this.secret = options.secret;
    this.crypto = options.crypto;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? handshakeTimeoutMs;
    this.expiryIntervalMs = options.expiryIntervalMs ?? counterExpiryIntervalMs;
    this.decode = options.decode ?? decodeFrame;
    this.rights = options.rights;
    this.health = options.health;
    assert(options.counter.self === options.replica, 'the counter must belong to this replica');
    assert(this.secret.length >= 16, 'the mesh secret must be at least 16 bytes');
    for (const member of this.membership.peers) this.peers.set(member.id, { link: undefined, lastHeardMs: undefined, unacked: [] });
    const links = {
      openPeers: (): OpenPeer[] => this.openLinks().map((state) => ({ link: state.id, peer: state.phase.peer })),
      send: (link: LinkId, frame: Frame): void => {
        const state = this.links.get(link);
        if (state !== undefined && isOpen(state)) this.send(state, frame, false);
      },
      sendState: (link: LinkId, since: Digest): void => {
        const state = this.links.get(link);
        if (state === undefined || !isOpen(state)) return;
        const repair = this.counter.deltaSince(since);
        this.stats.repairEntriesSent += repair.entries.length;
        this.sendChunked(state, repair);
      },
    };
    const parts: RoundRunnerParts = {
      self: this.self,
      counter: this.counter,
      sizes: options.quorum ?? this.membership.quorum(),
      links,
      timeoutMs: options.quorumTimeoutMs ?? quorumRoundTimeoutMs,
      recovering: options.recovering ?? false,
      syncPeers: options.syncPeers ?? false,
      peers: this.membership.peers.map((member) => member.id),
    };
    this.rounds = options.rounds?.(parts) ?? new QuorumRounds(parts);
  }

  /**
   * Starts a strict quorum round over this node's own entries for `request.writeKeys` (raised by
   * the caller beforehand); `done` is called from a later `tick`.
   */
  startRound(request: RoundRequest, nowMs: number, done: RoundDone): void {
    this.rounds.start(request, nowMs, done);
  }

  get self(): NodeId {
    return this.membership.self.id;
  }

  // ---- Transport events ----

  onLinkOpen(link: LinkId, info: { readonly direction: 'inbound' | 'outbound'; readonly dialedPeer?: NodeId }, nowMs: number): void {
    assert(!this.links.has(link), `link ${link} opened twice`);
    const state: LinkState = {
      id: link,
      direction: info.direction,
      openedAtMs: nowMs,
      phase: { kind: 'awaiting-hello' },
      inbound: [],
      digestsReceived: 0,
      repairedHeld: new Map(),
    };
    this.links.set(link, state);
    if (this.links.size > linksMax) {
      this.close(state, closeCodes.tooManyLinks, 'too many links');
      return;
    }
    if (info.direction === 'outbound') {
      if (info.dialedPeer === undefined || !this.membership.isPeer(info.dialedPeer)) {
        this.close(state, closeCodes.unauthenticated, 'dialed a non-member');
        return;
      }
      const nonceDialer = this.crypto.nonce();
      state.phase = { kind: 'awaiting-challenge', dialedPeer: info.dialedPeer, nonceDialer };
      this.send(state, { kind: 'hello', protocolVersion: meshProtocolVersion, member: this.self, nonce: nonceDialer }, false);
    }
  }

  /** Queues a frame; it is decoded and applied on the next tick. */
  onFrame(link: LinkId, bytes: Uint8Array): void {
    const state = this.links.get(link);
    if (state === undefined || state.phase.kind === 'closing') return;
    this.stats.framesReceived++;
    this.stats.bytesReceived += bytes.length;
    if (!isOpen(state) && state.inbound.length >= handshakeFramesMax) {
      // A handshake takes two or three frames (and the dialer's first digest, policy and delta
      // may follow its Proof before we read it); a peer that floods before it is known is cut off.
      this.authFailure(state, 'unauthenticated-frame', closeCodes.unauthenticated);
      return;
    }
    if (state.inbound.length >= inboundFramesMax) {
      this.stats.inboundDropped++;
      return;
    }
    state.inbound.push(bytes);
    this.pendingFrames++;
  }

  onLinkClosed(link: LinkId): void {
    const state = this.links.get(link);
    if (state === undefined) return;
    this.pendingFrames -= state.inbound.length;
    this.links.delete(link);
    this.stats.linksClosed++;
    const peerId = state.phase.kind === 'open' || state.phase.kind === 'closing' ? state.phase.peer : undefined;
    if (peerId !== undefined) {
      const peer = this.peers.get(peerId);
      if (peer !== undefined && peer.link === link) {
        peer.link = undefined;
        peer.unacked = [];
      }
    }
  }

  // ---- The clock ----

  /**
   * When the node next wants `tick`, on its own clock: now if frames are waiting, else its next
   * timer. A timer is never further away than its interval, so a clock that jumps backwards
   * (NTP step, VM migration) delays the node by one interval at most instead of stalling it.
   */
  nextTickMs(nowMs: number): number {
    if (!this.started || this.pendingFrames > 0 || this.rounds.hasCompletions) return nowMs;
    const timings = this.policy.settings();
    return Math.min(
      this.rounds.nextDeadlineMs(),
      Math.min(this.nextGossipMs, nowMs + timings.gossipIntervalMs),
      Math.min(this.nextHeartbeatMs, nowMs + timings.heartbeatIntervalMs),
      Math.min(this.nextDigestMs, nowMs + timings.digestIntervalMs),
      Math.min(this.nextExpiryMs, nowMs + this.expiryIntervalMs),
    );
  }

  tick(nowMs: number): void {
    const timings = this.policy.settings();
    if (!this.started) {
      this.started = true;
      this.nextGossipMs = nowMs + timings.gossipIntervalMs;
      this.nextDigestMs = nowMs + timings.digestIntervalMs;
      this.nextHeartbeatMs = nowMs + timings.heartbeatIntervalMs;
      this.nextExpiryMs = nowMs + this.expiryIntervalMs;
    }
    // Found by the simulator's clock-skew faults: after the clock stepped back, timers set on
    // the old clock lay far in the future and the node stopped gossiping until they came due.
    this.nextGossipMs = Math.min(this.nextGossipMs, nowMs + timings.gossipIntervalMs);
    this.nextHeartbeatMs = Math.min(this.nextHeartbeatMs, nowMs + timings.heartbeatIntervalMs);
    this.nextDigestMs = Math.min(this.nextDigestMs, nowMs + timings.digestIntervalMs);
    this.nextExpiryMs = Math.min(this.nextExpiryMs, nowMs + this.expiryIntervalMs);
    for (const state of [...this.links.values()]) this.applyInbound(state, nowMs);
    for (const state of this.links.values()) {
      if (state.phase.kind !== 'open' && state.phase.kind !== 'closing' && nowMs - state.openedAtMs > this.handshakeTimeoutMs) {
        this.authFailure(state, 'handshake-timeout', closeCodes.handshakeTimeout);
      }
    }
    this.rounds.tick(nowMs);
    if (nowMs >= this.nextGossipMs) {
      this.gossip(nowMs);
      if (this.rights !== undefined) this.sendRights(this.openLinks(), this.rights.takeChanged());
      if (this.health !== undefined) this.sendHealth(this.openLinks(), this.health.takeChanged());
      this.resend(nowMs, timings);
      this.nextGossipMs = Math.max(this.nextGossipMs + timings.gossipIntervalMs, nowMs + 1);
    }
    this.broadcastPolicyUpdates();
    if (nowMs >= this.nextDigestMs) {
      // Policy updates are broadcast as they happen; the periodic step 1 only repairs what a
      // missing link kept from a peer, so it runs less often than the counter digest (a step 2
      // reply carries the document's whole delete set, even between peers already in sync).
      const withPolicy = ++this.digestRounds % policySyncEveryDigestRounds === 0;
      for (const state of this.openLinks()) this.sendDigestRound(state, withPolicy);
      this.previousDigest = this.counter.digest();
      this.previousHeld = this.counter.heldVersions();
      this.nextDigestMs = Math.max(this.nextDigestMs + timings.digestIntervalMs, nowMs + 1);
    }
    if (nowMs >= this.nextHeartbeatMs) {
      for (const state of this.openLinks()) this.send(state, { kind: 'heartbeat' }, true);
      this.nextHeartbeatMs = Math.max(this.nextHeartbeatMs + timings.heartbeatIntervalMs, nowMs + 1);
    }
    if (nowMs >= this.nextExpiryMs) {
      this.counter.expire(nowMs);
      this.nextExpiryMs = nowMs + this.expiryIntervalMs;
    }
  }

  drainOutbox(): MeshOutput[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /**
   * The node's tables, for the bound tests: `links` ≤ `linksMax` (closed past it); `inbound` the
   * frames queued on all links (≤ `inboundFramesMax` each); `unacked` the batches kept for resending
   * (≤ `unackedBatchesMax` per peer); `outbox` what the owner has not drained since the last tick.
   */
  tableSizes(): { readonly links: number; readonly inbound: number; readonly unacked: number; readonly outbox: number } {
    let unacked = 0;
    for (const peer of this.peers.values()) unacked += peer.unacked.length;
    return { links: this.links.size, inbound: this.pendingFrames, unacked, outbox: this.outbox.length };
  }

  /** Whether the link to `peer` is open (authenticated) right now. */
  peerConnected(peer: NodeId): boolean {
    return this.peers.get(peer)?.link !== undefined;
  }

  peerViews(nowMs: number): PeerView[] {
    const heartbeatMs = this.policy.settings().heartbeatIntervalMs;
    return [...this.peers].map(([peer, state]) => ({
      peer,
      connected: state.link !== undefined,
      liveness: livenessOf(state.lastHeardMs, nowMs, heartbeatMs),
    }));
  }

  // ---- Inbound frames ----

  private applyInbound(state: LinkState, nowMs: number): void {
    const frames = state.inbound;
    state.inbound = [];
    this.pendingFrames -= frames.length;
    for (const bytes of frames) {
      if (state.phase.kind === 'closing') return;
      const decoded = this.decode(bytes);
      if (!decoded.ok) {
        this.stats.countBadFrame(decoded.error.reason);
        if (isOpen(state)) this.close(state, closeCodes.badFrame, `bad frame: ${decoded.error.reason}`);
        else this.authFailure(state, 'unauthenticated-frame', closeCodes.unauthenticated);
        return;
      }
      this.applyFrame(state, decoded.value, nowMs);
    }
  }

  private applyFrame(state: LinkState, frame: Frame, nowMs: number): void {
    if (isOpen(state)) return this.onOpenFrame(state, frame, nowMs);
    const phase = state.phase;
    switch (phase.kind) {
      case 'awaiting-hello':
        return this.onHello(state, frame);
      case 'awaiting-challenge':
        return this.onChallenge(state, phase, frame, nowMs);
      case 'awaiting-proof':
        return this.onProof(state, phase, frame, nowMs);
      case 'open':
      case 'closing':
        return;
    }
  }

  private onHello(state: LinkState, frame: Frame): void {
    if (frame.kind !== 'hello') return this.authFailure(state, 'unauthenticated-frame', closeCodes.unauthenticated);
    if (frame.protocolVersion !== meshProtocolVersion) return this.authFailure(state, 'bad-protocol-version', closeCodes.unauthenticated);
    if (!this.membership.isPeer(frame.member)) return this.authFailure(state, 'unknown-member', closeCodes.unauthenticated);
    if (!this.nonces.remember(frame.nonce)) return this.authFailure(state, 'replayed-handshake', closeCodes.unauthenticated);
    const nonceResponder = this.crypto.nonce();
    const proof = handshakeProof(this.crypto, this.secret, 'responder', frame.nonce, nonceResponder, frame.member, this.self);
    state.phase = { kind: 'awaiting-proof', peer: frame.member, nonceDialer: frame.nonce, nonceResponder };
    this.send(state, { kind: 'challenge', member: this.self, nonce: nonceResponder, proof }, false);
  }

  private onChallenge(state: LinkState, phase: Extract<LinkPhase, { kind: 'awaiting-challenge' }>, frame: Frame, nowMs: number): void {
    if (frame.kind !== 'challenge') return this.authFailure(state, 'unauthenticated-frame', closeCodes.unauthenticated);
    if (frame.member !== phase.dialedPeer) return this.authFailure(state, 'wrong-member', closeCodes.unauthenticated);
    const { nonceDialer } = phase;
    const expected = handshakeProof(this.crypto, this.secret, 'responder', nonceDialer, frame.nonce, this.self, frame.member);
    if (!constantTimeEqual(expected, frame.proof)) return this.authFailure(state, 'bad-proof', closeCodes.unauthenticated);
    const proof = handshakeProof(this.crypto, this.secret, 'dialer', nonceDialer, frame.nonce, this.self, frame.member);
    this.send(state, { kind: 'proof', proof }, false);
    this.authenticated(state, frame.member, nowMs);
  }

  private onProof(state: LinkState, phase: Extract<LinkPhase, { kind: 'awaiting-proof' }>, frame: Frame, nowMs: number): void {
    if (frame.kind !== 'proof') return this.authFailure(state, 'unauthenticated-frame', closeCodes.unauthenticated);
    const expected = handshakeProof(this.crypto, this.secret, 'dialer', phase.nonceDialer, phase.nonceResponder, phase.peer, this.self);
    if (!constantTimeEqual(expected, frame.proof)) return this.authFailure(state, 'bad-proof', closeCodes.unauthenticated);
    this.authenticated(state, phase.peer, nowMs);
  }

  private authenticated(state: LinkState, peerId: NodeId, nowMs: number): void {
    assert(state.phase.kind === 'awaiting-challenge' || state.phase.kind === 'awaiting-proof', 'a link authenticates once, from its handshake');
    const peer = this.peers.get(peerId);
    assert(peer !== undefined, 'authenticated peers are configured members');
    // A peer that reconnects replaces its old link: the old one is half-dead or a duplicate.
    if (peer.link !== undefined && peer.link !== state.id) {
      const old = this.links.get(peer.link);
      if (old !== undefined) this.close(old, closeCodes.replaced, 'replaced by a newer link');
    }
    state.phase = { kind: 'open', peer: peerId };
    peer.link = state.id;
    peer.lastHeardMs = nowMs;
    peer.unacked = [];
    this.stats.linksAuthenticated++;
    // Each side learns what the other lacks from its digest; a new peer gets the full state.
    this.sendDigestRound(state, true);
    if (this.rights !== undefined) this.sendRights([state], this.rights.state());
    if (this.health !== undefined) this.sendHealth([state], this.health.state());
    this.rounds.onLinkOpened(state.id, peerId);
  }

  private onOpenFrame(state: OpenLink, frame: Frame, nowMs: number): void {
    const peer = this.peerOf(state);
    peer.lastHeardMs = nowMs;
    switch (frame.kind) {
      case 'counter-delta':
        return this.onDelta(state, frame.delta, frame.sentAtMs ?? 0, nowMs);
      case 'digest':
        return this.onDigest(state, frame.digest);
      case 'delta-ack':
        if (frame.replica === this.replica) peer.unacked = peer.unacked.filter((batch) => batch.to > frame.version);
        return;
      case 'heartbeat':
        return;
      case 'policy-sync': {
        this.stats.policyMessagesReceived++;
        const reply = this.policy.onSyncMessage(frame.message);
        if (!reply.ok) {
          this.stats.countBadFrame('policy-sync');
          return this.close(state, closeCodes.badFrame, `bad policy sync message: ${reply.error.kind}`);
        }
        if (reply.value !== undefined) this.sendPolicy(state, reply.value);
        return;
      }
      case 'rights-delta':
        this.stats.rightsRowsReceived += frame.rows.length;
        this.rights?.join(frame.rows);
        return;
      case 'health-delta':
        this.stats.healthRecordsReceived += frame.records.length;
        this.health?.join(frame.records, nowMs);
        return;
      case 'quorum-write':
        return this.rounds.onWrite(state.id, frame.round, frame.entries);
      case 'quorum-ack':
        return this.rounds.onAck(state.phase.peer, frame.round);
      case 'quorum-read':
        return this.rounds.onRead(state.id, frame.round, frame.keys, frame);
      case 'quorum-reply':
        return this.rounds.onReply(state.phase.peer, frame.round, frame.entries, frame.relayed);
      case 'hello':
      case 'challenge':
      case 'proof':
        this.stats.countBadFrame('handshake-after-open');
        return this.close(state, closeCodes.badFrame, 'handshake frame on an open link');
    }
  }

  private onDelta(state: LinkState, delta: CounterDelta, sentAtMs: number, nowMs: number): void {
    const report = this.counter.join(delta);
    this.stats.deltasReceived++;
    this.stats.deltaEntriesReceived += report.entriesApplied;
    this.stats.entriesOverflowed += report.entriesOverflowed;
    if (sentAtMs > 0) this.stats.recordLag(nowMs - sentAtMs);
    if (delta.ranges.length === 0) return;
    for (const range of delta.ranges) {
      this.send(state, { kind: 'delta-ack', replica: range.replica, version: this.counter.knownVersion(range.replica) }, true);
    }
  }

  private onDigest(state: LinkState, theirs: Digest): void {
    // Cheap test first: a full scan is only worth it when they lack something. Batches still in
    // flight make every busy peer look behind, so after the first digest on a link we compare
    // with what we held one digest interval ago: what gossip alone should have delivered.
    const first = state.digestsReceived++ === 0;
    const reference = first ? this.counter.digest() : this.previousDigest;
    let ahead = false;
    for (const [replica, version] of reference) {
      if (version > (theirs.get(replica) ?? 0)) {
        ahead = true;
        break;
      }
    }
    // Found by the simulator's swarm: a batch the receiver missed, whose owner then crashed,
    // was held by others only above their contiguous version, so no digest ever showed the gap.
    // Entries held above a peer's digest are repaired too, once per link for each held version.
    const held = first ? this.counter.heldVersions() : this.previousHeld;
    if (!ahead && !this.heldAbove(held, theirs, state.repairedHeld)) return;
    for (const [replica, version] of held) state.repairedHeld.set(replica, version);
    const repair = this.counter.deltaSince(theirs);
    this.stats.digestRepairs++;
    if (theirs.size === 0) this.stats.fullStateTransfers++;
    this.stats.repairEntriesSent += repair.entries.length;
    this.sendChunked(state, repair);
  }

  /**
   * Whether we hold entries of some replica above the peer's digest (`theirs`) that this link was
   * not yet repaired up to (`repaired`). Protected so that a test's mutant can switch the repair
   * off and prove the simulator's checkers notice (test/support/mutants).
   */
  protected heldAbove(held: Digest, theirs: Digest, repaired: ReadonlyMap<ReplicaId, number>): boolean {
    for (const [replica, version] of held) {
      if (version > (theirs.get(replica) ?? 0) && version > (repaired.get(replica) ?? 0)) return true;
    }
    return false;
  }

  // ---- Outbound ----

  private gossip(nowMs: number): void {
    const delta = this.counter.takeDelta();
    if (delta.entries.length === 0) return;
    const open = this.openLinks();
    if (open.length === 0) return; // peers will get it from the digest exchange when they connect
    const range = delta.ranges[0];
    assert(range !== undefined && delta.ranges.length === 1, 'an own batch has exactly one range');
    // An own batch is at most one gossip interval of changes; it still may not fit one frame.
    const frames = this.encodeChunks(delta, Math.max(0, Math.floor(nowMs)));
    for (const state of open) {
      const peer = this.peerOf(state);
      for (const bytes of frames) {
        this.sendBytes(state, bytes, true);
        this.stats.deltasSent++;
        this.stats.deltaBytesSent += bytes.length;
      }
      this.stats.deltaEntriesSent += delta.entries.length;
      if (peer.unacked.length + frames.length > unackedBatchesMax) {
        // A peer this far behind is repaired by the next digest exchange instead.
        peer.unacked = [];
        this.stats.unackedOverflows++;
      } else {
        for (const bytes of frames) peer.unacked.push({ to: range.to, bytes, lastSentMs: nowMs });
      }
    }
  }

  private resend(nowMs: number, timings: MeshTimings): void {
    const ackTimeoutMs = Math.max(deltaAckTimeoutGossipIntervals * timings.gossipIntervalMs, deltaAckTimeoutMsMin);
    for (const state of this.openLinks()) {
      const peer = this.peerOf(state);
      const oldest = peer.unacked[0];
      // A clock that stepped back (lastSentMs in the future) counts as timed out: better one early
      // resend than a stall until the clock catches up.
      if (oldest === undefined || (nowMs >= oldest.lastSentMs && nowMs - oldest.lastSentMs < ackTimeoutMs)) continue;
      for (const batch of peer.unacked) {
        this.sendBytes(state, batch.bytes, true);
        batch.lastSentMs = nowMs;
        this.stats.deltaResends++;
      }
    }
  }

  /**
   * Rights rows go out on the ordered link, never dropped: a lost row would only come back with
   * the owner's next change or a reconnect. Rows are split so every frame stays within bounds.
   */
  private sendRights(links: readonly LinkState[], rows: readonly KeyedRightsRow[]): void {
    if (rows.length === 0 || links.length === 0) return;
    const frames: Uint8Array[] = [];
    let chunk: KeyedRightsRow[] = [];
    let cells = 0;
    const flush = (): void => {
      const encoded = encodeFrame({ kind: 'rights-delta', rows: chunk });
      assert(encoded.ok, 'a rights chunk fits a frame');
      frames.push(encoded.value);
      chunk = [];
      cells = 0;
    };
    for (const row of rows) {
      if (cells + row.row.cells.size + 1 > rightsCellsPerFrameMax && chunk.length > 0) flush();
      chunk.push(row);
      cells += row.row.cells.size + 1;
    }
    flush();
    for (const state of links) for (const bytes of frames) this.sendBytes(state, bytes, false);
    this.stats.rightsRowsSent += rows.length * links.length;
  }

  /** Health records, like rights rows, go on the ordered link and are never dropped. */
  private sendHealth(links: readonly LinkState[], records: readonly HealthRecord[]): void {
    if (records.length === 0 || links.length === 0) return;
    for (let start = 0; start < records.length; start += healthRowsPerFrameMax) {
      const encoded = encodeFrame({ kind: 'health-delta', records: records.slice(start, start + healthRowsPerFrameMax) });
      assert(encoded.ok, 'a health chunk fits a frame');
      for (const state of links) this.sendBytes(state, encoded.value, false);
    }
    this.stats.healthRecordsSent += records.length * links.length;
  }

  private sendDigestRound(state: LinkState, withPolicy: boolean): void {
    this.send(state, { kind: 'digest', digest: this.counter.digest() }, false);
    this.stats.digestsSent++;
    if (withPolicy) this.sendPolicy(state, this.policy.syncStep1());
  }

  private broadcastPolicyUpdates(): void {
    const updates = this.policy.takeUpdates();
    if (updates.length === 0) return;
    for (const state of this.openLinks()) for (const update of updates) this.sendPolicy(state, update);
  }

  private sendPolicy(state: LinkState, message: Uint8Array): void {
    // The limits keep a whole policy inside one frame; should one still outgrow it, the message
    // is skipped and counted rather than crashing the node (chunked policy sync is future work).
    if (message.length > frameBytesMax - 64) {
      this.stats.policyMessagesTooLarge++;
      return;
    }
    this.stats.policyMessagesSent++;
    this.send(state, { kind: 'policy-sync', message }, false);
  }

  /**
   * Sends a repair in chunks that each fit a frame; only the last carries the version ranges,
   * so a receiver advances its digest only once it holds every chunk (the link is ordered, and
   * repairs are never dropped from the send queue: a full queue closes the link instead).
   */
  private sendChunked(state: LinkState, delta: CounterDelta): void {
    for (const bytes of this.encodeChunks(delta, 0)) this.sendBytes(state, bytes, false);
  }

  private encodeChunks(delta: CounterDelta, sentAtMs: number): Uint8Array[] {
    const frames: Uint8Array[] = [];
    const split = (entries: CounterDelta['entries'], last: boolean): void => {
      const chunk: CounterDelta = { entries, ranges: last ? delta.ranges : [] };
      const encoded = entries.length <= repairChunkEntriesMax ? encodeFrame({ kind: 'counter-delta', delta: chunk, sentAtMs }) : undefined;
      if (encoded?.ok === true) {
        frames.push(encoded.value);
        return;
      }
      assert(entries.length > 1, 'a single entry always fits a frame');
      const middle = Math.ceil(entries.length / 2);
      split(entries.slice(0, middle), false);
      split(entries.slice(middle), last);
    };
    split(delta.entries, true);
    return frames;
  }

  /** The peer state of an open link's peer: every authenticated peer is a configured member. */
  private peerOf(state: OpenLink): PeerState {
    const peer = this.peers.get(state.phase.peer);
    assert(peer !== undefined, 'an open link belongs to a configured member');
    return peer;
  }

  private openLinks(): OpenLink[] {
    const open: OpenLink[] = [];
    for (const state of this.links.values()) if (isOpen(state)) open.push(state);
    return open;
  }

  private send(state: LinkState, frame: Frame, droppable: boolean): void {
    const encoded = encodeFrame(frame);
    // Only counter deltas can grow past a frame, and those go through encodeChunks.
    assert(encoded.ok, `a ${frame.kind} frame exceeded the frame size bound`);
    this.sendBytes(state, encoded.value, droppable);
  }

  private sendBytes(state: LinkState, bytes: Uint8Array, droppable: boolean): void {
    this.stats.framesSent++;
    this.stats.bytesSent += bytes.length;
    this.outbox.push({ kind: 'send', link: state.id, bytes, droppable });
  }

  private authFailure(state: LinkState, reason: AuthFailure, code: number): void {
    this.stats.countAuthFailure(reason);
    this.close(state, code, reason);
  }

  private close(state: LinkState, code: number, reason: string): void {
    if (state.phase.kind === 'closing') return;
    state.phase = { kind: 'closing', peer: state.phase.kind === 'open' ? state.phase.peer : undefined };
    this.pendingFrames -= state.inbound.length;
    state.inbound = [];
    this.outbox.push({ kind: 'close', link: state.id, code, reason });
  }
}
