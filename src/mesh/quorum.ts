import { assert } from '../core/assert.js';
import type { NodeId } from '../core/ids.js';
import { quorumRelaysOpenMax, quorumRoundKeysMax, quorumRoundsOpenMax } from '../core/limits.js';
import type { CounterKey } from '../crdt/counter-key.js';
import type { CounterEntry, Digest, WindowedCounter } from '../crdt/windowed-counter.js';
import type { QuorumSizes } from './membership.js';
import type { Frame } from './wire/frame.js';

/**
 * Two-phase quorum rounds for `strict` limits (DESIGN.md §4), run by the mesh node for the
 * admission layer. The caller has already raised its own reservation entries; a round then
 *
 *   1. writes: sends this replica's entries for `writeKeys` to every open peer and waits until
 *      W members hold them (itself included), then
 *   2. reads: asks every open peer for every replica's entries for `readKeys`, joins each reply
 *      into the local counter and completes once R members answered (itself included).
 *
 * The caller then reads the totals from its own counter, which now holds at least the join of R
 * members' states. W + R > N, so every read quorum meets every completed write quorum. A round
 * that does not reach its quorums within the timeout fails as `no-quorum`; quorum sizes come from
 * configuration, never from who is reachable, which is exactly why a minority partition cannot
 * admit strict requests.
 *
 * Frames: QuorumWrite{round, entries} → QuorumAck{round}; QuorumRead{round, keys} →
 * QuorumReply{round, entries}. Writes are joins of point-wise-maximum state, so a duplicated,
 * late or resent write changes nothing; a reply or ack for a round that is over is ignored. A
 * peer whose link opens during a round gets the current phase's message on the next tick, so a
 * round survives a reconnect. Completions are delivered from `tick`, never from `start`, so the
 * caller never re-enters itself.
 *
 * Recovery. A node that starts without its state (a new replica id) may have been one of the W
 * members holding a completed write; if it answered reads straight away, a read quorum through
 * it could miss that write (its R − 1 other members need not meet the W − 1 others). So it
 * starts `recovering`: it acks writes (it holds what it acks) but answers no reads and does not
 * count itself in its own read phases until N − W + 1 peers have sent it their whole state;
 * those must include one of the W − 1 other holders of any completed write. A peer's whole state
 * is known to have arrived when it answers a recovery probe (a QuorumRead with no keys) sent
 * after the digest that asked for it: the link is ordered, and the peer answers the digest with
 * everything the empty state lacks. The guarantee assumes at most N − W members lose their
 * state at once; beyond that the data is gone and no protocol can count it. Probing goes on
 * after the recovery until every peer has answered (`allPeersSynced`), which is when a node may
 * release what its dead predecessor held (src/admission/successor-release.ts).
 *
 * Recovery through a relay. What the count needs from a peer C is not a link but a fact: this
 * node holds C's whole state as of some moment after this node started (states only grow, so
 * that state holds every write C held at the start). A bridge partition (A–B–C, A and C cut
 * apart) leaves A one direct peer, fewer than N − W + 1 = 2 of three, and before this rule the
 * edge nodes of a mesh that started inside a bridge never recovered, so strict admitted nothing
 * anywhere (issue 17). So a recovering node asks a peer B it has synced to relay C: it sends B a
 * probe naming C with its own digest (`since`); B probes C with B's digest, C sends B everything
 * B lacks and then its reply, and B, holding C's state as of after A's request, sends A
 * everything beyond A's digest and then a reply naming C (`relayed`). Both links are ordered, so
 * when that reply arrives A holds B's state, which holds C's, which holds every write C held when
 * A started: C counts as synced exactly as if it had answered directly, and the argument above is
 * unchanged (it counts distinct peers whose start-time state arrived, whatever the path). A reply
 * that names no peer (an older member, or one that answered a plain probe) proves nothing about
 * C; a relay whose member cannot reach C, or whose link closes, is asked again after the round
 * timeout of another synced peer. The relay moves no more than digest repair would eventually
 * move across the bridge; what it adds is the proof that it arrived.
 */
export type RoundOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: 'no-quorum' | 'rounds-full' | 'too-many-keys' };

/** A round's completion, with the node's clock at that moment (a follow-up round starts then). */
export type RoundDone = (outcome: RoundOutcome, nowMs: number) => void;

export interface RoundRequest {
  /** Keys whose own entries this round makes durable at W members. */
  readonly writeKeys: readonly CounterKey[];
  /** Keys whose every replica entry the round collects from R members. */
  readonly readKeys: readonly CounterKey[];
}

export interface OpenPeer {
  readonly link: number;
  readonly peer: NodeId;
}

/** What the rounds need from the mesh node: its open links and a way to send on one. */
export interface QuorumLinks {
  openPeers(): readonly OpenPeer[];
  send(link: number, frame: Frame): void;
  /** Sends on `link` every counter entry beyond `since`, in repair chunks (the answer to a probe). */
  sendState(link: number, since: Digest): void;
}

/** The recovery-probe fields of a QuorumRead without keys (src/mesh/wire/quorum-codec.ts). */
export interface ProbeFields {
  readonly since?: Digest;
  readonly relay?: NodeId;
}

/** The round protocol as the mesh node drives it; `QuorumRounds` is the one production uses. */
export interface RoundRunner {
  readonly stats: QuorumStats;
  readonly hasCompletions: boolean;
  start(request: RoundRequest, nowMs: number, done: RoundDone): void;
  nextDeadlineMs(): number;
  tick(nowMs: number): void;
  onWrite(link: number, round: number, entries: readonly CounterEntry[]): void;
  onAck(peer: NodeId, round: number): void;
  onRead(link: number, round: number, keys: readonly CounterKey[], probe?: ProbeFields): void;
  onReply(peer: NodeId, round: number, entries: readonly CounterEntry[], relayed?: NodeId): void;
  /** A link to `peer` was authenticated (after this node's digest went out on it). */
  onLinkOpened(link: number, peer: NodeId): void;
  /** Whether the node still recovers its state and serves no reads. */
  readonly recovering: boolean;
  /**
   * Whether every peer has sent its whole state since this node started without its own (always
   * true for a node that started with its state): from then on this node holds every write any
   * member held at its start, including its dead predecessor's (src/admission/successor-release.ts).
   */
  readonly allPeersSynced: boolean;
}

/** What a round runner is built from: a test may build another kind from the same parts. */
export interface RoundRunnerParts {
  readonly self: NodeId;
  readonly counter: WindowedCounter;
  readonly sizes: QuorumSizes;
  readonly links: QuorumLinks;
  readonly timeoutMs: number;
  /** The node starts without its state and must recover before it serves reads (see above). */
  readonly recovering: boolean;
  /** Probe every peer once for its whole state even though the node kept its own (see `allPeersSynced`). */
  readonly syncPeers?: boolean;
  /** The configured peers: a peer without a link is probed through a relay. Without them, only directly. */
  readonly peers?: readonly NodeId[];
}

export interface QuorumStats {
  roundsStarted: number;
  roundsSucceeded: number;
  roundsFailed: number;
  /** Writes and reads answered for other coordinators. */
  writesServed: number;
  readsServed: number;
}

/** A recovery probe in flight: the peer whose state its answer proves, and the relay if any. */
interface Probe {
  readonly peer: NodeId;
  readonly via?: { readonly link: number; readonly peer: NodeId; readonly sentAtMs: number };
}

/** A probe this node relays: whom to answer, with what digest, once `target` answered. */
interface Relay {
  readonly link: number;
  readonly round: number;
  readonly since: Digest;
  readonly target: NodeId;
  readonly targetLink: number;
}

interface Round {
  readonly id: number;
  readonly request: RoundRequest;
  readonly done: RoundDone;
  phase: 'write' | 'read';
  entries: readonly CounterEntry[];
  /** Links the current phase's message went out on (a reopened link gets it again). */
  sentOn: Set<number>;
  /** Members that answered the current phase, this node included. */
  answered: Set<NodeId>;
  deadlineMs: number;
}

export class QuorumRounds implements RoundRunner {
  readonly stats: QuorumStats = { roundsStarted: 0, roundsSucceeded: 0, roundsFailed: 0, writesServed: 0, readsServed: 0 };
  private readonly rounds = new Map<number, Round>();
  private completions: { done: RoundDone; outcome: RoundOutcome }[] = [];
  private nextRound = 1;
  /** Recovery probes in flight, by round number, and the peers whose whole state arrived. */
  private readonly probes = new Map<number, Probe>();
  private readonly synced = new Set<NodeId>();
  /** Probes this node relays for a peer (bounded by `quorumRelaysOpenMax`), by its own round. */
  private readonly relays = new Map<number, Relay>();
  /** Turns through the synced peers a relayed probe may go through, so a retry asks another. */
  private relayTurn = 0;
  private readonly peers: readonly NodeId[];
  private readonly syncedNeeded: number;
  /** Whether this node started without its state and so probes every peer once. */
  private readonly probing: boolean;
  private recoveringNow: boolean;
  /** Whether enough links were ever open for a quorum: before that (a cold start) rounds wait. */
  private hadQuorum = false;
  /** Reads that arrived while recovering: answered once recovered (bounded; more are dropped). */
  private heldReads: { link: number; round: number; keys: readonly CounterKey[] }[] = [];

  private readonly self: NodeId;
  private readonly counter: WindowedCounter;
  private readonly sizes: QuorumSizes;
  private readonly links: QuorumLinks;
  private readonly timeoutMs: number;

  constructor(parts: RoundRunnerParts) {
    ({ self: this.self, counter: this.counter, sizes: this.sizes, links: this.links, timeoutMs: this.timeoutMs } = parts);
    const { sizes, timeoutMs } = parts;
    assert(sizes.write >= 1 && sizes.read >= 1 && sizes.write <= sizes.members && sizes.read <= sizes.members, 'quorums within the members');
    assert(sizes.write + sizes.read > sizes.members, 'W + R must exceed N, or a read could miss a completed write');
    assert(timeoutMs > 0, 'a round needs time');
    this.syncedNeeded = Math.min(sizes.members - sizes.write + 1, sizes.members - 1);
    this.recoveringNow = parts.recovering && this.syncedNeeded > 0;
    this.probing = parts.recovering || parts.syncPeers === true;
    this.peers = parts.peers ?? [];
  }

  get recovering(): boolean {
    return this.recoveringNow;
  }

  get allPeersSynced(): boolean {
    return !this.probing || this.synced.size >= this.sizes.members - 1;
  }

  onLinkOpened(link: number, peer: NodeId): void {
    if (!this.probing || this.synced.has(peer)) return;
    // One probe per peer at a time: a link that closed before the answer takes its probe along.
    for (const [round, probed] of this.probes) if (probed.peer === peer) this.probes.delete(round);
    const round = this.nextRound++;
    this.probes.set(round, { peer });
    this.links.send(link, { kind: 'quorum-read', round, keys: [] });
  }

  get open(): number {
    return this.rounds.size;
  }

  /**
   * The rounds' tables, for the bound tests: `rounds` ≤ `quorumRoundsOpenMax` (refused past it),
   * `heldReads` ≤ `quorumRoundsOpenMax` (dropped past it), `probes` ≤ one per peer, and
   * `completions` empties every tick (one per round started since, so it follows the callers:
   * a batch of the quota gate or the claims starts one round at a time).
   */
  tableSizes(): { readonly rounds: number; readonly completions: number; readonly probes: number; readonly heldReads: number } {
    return { rounds: this.rounds.size, completions: this.completions.length, probes: this.probes.size, heldReads: this.heldReads.length };
  }

  /** Whether `tick` has work now: completions to deliver. */
  get hasCompletions(): boolean {
    return this.completions.length > 0;
  }

  /** Starts a round; `done` is called from a later `tick`, exactly once. */
  start(request: RoundRequest, nowMs: number, done: RoundDone): void {
    this.stats.roundsStarted++;
    if (this.rounds.size >= quorumRoundsOpenMax) return this.finish(undefined, done, { ok: false, reason: 'rounds-full' });
    if (request.writeKeys.length > quorumRoundKeysMax || request.readKeys.length > quorumRoundKeysMax) {
      return this.finish(undefined, done, { ok: false, reason: 'too-many-keys' });
    }
    const round: Round = {
      id: this.nextRound++,
      request,
      done,
      phase: 'write',
      entries: this.counter.ownEntries(request.writeKeys),
      sentOn: new Set(),
      answered: new Set([this.self]),
      deadlineMs: nowMs + this.timeoutMs,
    };
    this.rounds.set(round.id, round);
    if (this.quorumUnreachable()) return this.finish(round, done, { ok: false, reason: 'no-quorum' });
    this.advance(round);
  }

  /**
   * A node that had a quorum of links and lost it (its peers' links closed: a partition or dead
   * peers) refuses at once instead of holding each request for the whole timeout; a cold start,
   * whose links are still opening, waits for them.
   */
  private quorumUnreachable(): boolean {
    const reachable = this.links.openPeers().length + 1;
    const needed = Math.max(this.sizes.write, this.sizes.read);
    if (reachable >= needed) this.hadQuorum = true;
    return this.hadQuorum && reachable < needed;
  }

  /** Earliest time a round times out (Infinity if none). */
  nextDeadlineMs(): number {
    let earliest = Infinity;
    for (const round of this.rounds.values()) earliest = Math.min(earliest, round.deadlineMs);
    return earliest;
  }

  /** Sends each phase to links opened since, times rounds out, delivers completions. */
  tick(nowMs: number): void {
    if (this.relays.size > 0) this.dropDeadRelays();
    if (this.probing && !this.allPeersSynced) this.probeThroughRelays(nowMs);
    const unreachable = this.rounds.size > 0 && this.quorumUnreachable();
    for (const round of [...this.rounds.values()]) {
      // A clock that stepped back must not stretch a round past its timeout.
      round.deadlineMs = Math.min(round.deadlineMs, nowMs + this.timeoutMs);
      if (unreachable || nowMs >= round.deadlineMs) this.finish(round, round.done, { ok: false, reason: 'no-quorum' });
      else this.broadcast(round);
    }
    const completions = this.completions;
    this.completions = [];
    for (const { done, outcome } of completions) done(outcome, nowMs);
  }

  // ---- Frames from peers ----

  /** A coordinator's write: join it, and ack only if every entry was kept. */
  onWrite(link: number, round: number, entries: readonly CounterEntry[]): void {
    const report = this.counter.join({ entries, ranges: [] });
    this.stats.writesServed++;
    if (report.entriesOverflowed > 0) return; // not held: the coordinator must find W others
    this.links.send(link, { kind: 'quorum-ack', round });
  }

  onAck(peer: NodeId, roundId: number): void {
    const round = this.rounds.get(roundId);
    if (round === undefined || round.phase !== 'write') return;
    round.answered.add(peer);
    this.advance(round);
  }

  onRead(link: number, round: number, keys: readonly CounterKey[], probe: ProbeFields = {}): void {
    // A recovery probe (no keys) is answered even while recovering, or a cold-started mesh,
    // where every node recovers, would wait forever; real reads wait for the recovery.
    if (keys.length > 0 && this.recoveringNow) {
      if (this.heldReads.length < quorumRoundsOpenMax) this.heldReads.push({ link, round, keys });
      return;
    }
    if (keys.length === 0 && probe.since !== undefined && probe.relay !== undefined) return this.relayProbe(link, round, probe.since, probe.relay);
    this.stats.readsServed++;
    if (keys.length === 0 && probe.since !== undefined) {
      // A probe with a digest: everything beyond it goes first, and the reply says whose state it was.
      this.links.sendState(link, probe.since);
      this.links.send(link, { kind: 'quorum-reply', round, entries: [], relayed: this.self });
      return;
    }
    this.links.send(link, { kind: 'quorum-reply', round, entries: this.counter.entriesFor(keys) });
  }

  onReply(peer: NodeId, roundId: number, entries: readonly CounterEntry[], relayed?: NodeId): void {
    const relay = this.relays.get(roundId);
    if (relay !== undefined) {
      if (peer !== relay.target || relayed !== relay.target) return;
      this.relays.delete(roundId);
      // The target's whole state arrived ahead of its reply (the link is ordered): pass on what
      // the prober lacks of this node's state, which now holds it, then answer.
      this.links.sendState(relay.link, relay.since);
      this.links.send(relay.link, { kind: 'quorum-reply', round: relay.round, entries: [], relayed: relay.target });
      return;
    }
    const probe = this.probes.get(roundId);
    if (probe !== undefined) {
      // Only the probed peer's answer proves its state arrived; through a relay, only a reply
      // from the member asked that names the peer.
      if (probe.via === undefined ? probe.peer !== peer : probe.via.peer !== peer || relayed !== probe.peer) return;
      this.probes.delete(roundId);
      this.synced.add(probe.peer);
      if (this.recoveringNow && this.synced.size >= this.syncedNeeded) this.recovered();
      return;
    }
    const round = this.rounds.get(roundId);
    if (round === undefined || round.phase !== 'read') return;
    const report = this.counter.join({ entries, ranges: [] });
    if (report.entriesOverflowed > 0) return; // this reply is not fully held: it cannot count
    round.answered.add(peer);
    this.advance(round);
  }

  // ---- Internals ----

  /**
   * Sends a relayed probe for each configured peer that has no open link, is not synced and has
   * none in flight, through a peer already synced (its state is here, so the relay's repair
   * carries only what it got from the target). A relayed probe unanswered after the round
   * timeout, or whose link closed, is sent again through the next synced peer.
   */
  private probeThroughRelays(nowMs: number): void {
    const open = this.links.openPeers();
    const through = open.filter(({ peer }) => this.synced.has(peer));
    for (const [round, probe] of this.probes) {
      // A direct probe whose link closed is never answered (a reopened link sends a new one).
      if (probe.via === undefined) {
        if (!open.some(({ peer }) => peer === probe.peer)) this.probes.delete(round);
        continue;
      }
      const linkOpen = open.some(({ link }) => link === probe.via?.link);
      if (!linkOpen || nowMs < probe.via.sentAtMs || nowMs - probe.via.sentAtMs >= this.timeoutMs) this.probes.delete(round);
    }
    if (through.length === 0) return;
    const inFlight = new Set<NodeId>();
    for (const probe of this.probes.values()) inFlight.add(probe.peer);
    for (const peer of this.peers) {
      if (this.synced.has(peer) || inFlight.has(peer) || open.some((p) => p.peer === peer)) continue;
      const via = through[this.relayTurn++ % through.length] as OpenPeer;
      const round = this.nextRound++;
      this.probes.set(round, { peer, via: { link: via.link, peer: via.peer, sentAtMs: nowMs } });
      this.links.send(via.link, { kind: 'quorum-read', round, keys: [], since: this.counter.digest(), relay: peer });
    }
  }

  /**
   * A peer asks this node to relay `target`'s whole state: probe the target with this node's
   * digest and answer the peer once the target's reply came (`onReply`). A target this node
   * cannot reach gets no probe and the peer no answer: it asks another member after its timeout.
   */
  private relayProbe(link: number, round: number, since: Digest, target: NodeId): void {
    const to = this.links.openPeers().find(({ peer }) => peer === target);
    if (to === undefined || to.link === link || target === this.self || this.relays.size >= quorumRelaysOpenMax) return;
    const own = this.nextRound++;
    this.relays.set(own, { link, round, since, target, targetLink: to.link });
    this.links.send(to.link, { kind: 'quorum-read', round: own, keys: [], since: this.counter.digest() });
  }

  /** Relays whose prober's or target's link closed can no longer be answered in order. */
  private dropDeadRelays(): void {
    const open = new Set(this.links.openPeers().map(({ link }) => link));
    for (const [round, relay] of this.relays) if (!open.has(relay.link) || !open.has(relay.targetLink)) this.relays.delete(round);
  }

  /**
   * Found by the simulator's mode table: at a cold start every node recovers, and reads that
   * arrived meanwhile went unanswered, so every round started in the first second timed out.
   * Held reads are answered now, and rounds in their read phase count this node again.
   */
  private recovered(): void {
    this.recoveringNow = false;
    const held = this.heldReads;
    this.heldReads = [];
    for (const { link, round, keys } of held) this.onRead(link, round, keys);
    for (const round of [...this.rounds.values()]) {
      if (round.phase !== 'read') continue;
      round.answered.add(this.self);
      this.advance(round);
    }
  }

  private advance(round: Round): void {
    if (round.phase === 'write' && round.answered.size >= this.sizes.write) {
      round.phase = 'read';
      round.answered = new Set(this.recoveringNow ? [] : [this.self]);
      round.sentOn = new Set();
      round.entries = [];
    }
    if (round.phase === 'read' && round.answered.size >= this.sizes.read) {
      this.finish(round, round.done, { ok: true });
      return;
    }
    this.broadcast(round);
  }

  private broadcast(round: Round): void {
    for (const { link, peer } of this.links.openPeers()) {
      if (round.sentOn.has(link) || round.answered.has(peer)) continue;
      round.sentOn.add(link);
      if (round.phase === 'write') this.links.send(link, { kind: 'quorum-write', round: round.id, entries: round.entries });
      else this.links.send(link, { kind: 'quorum-read', round: round.id, keys: round.request.readKeys });
    }
  }

  private finish(round: Round | undefined, done: RoundDone, outcome: RoundOutcome): void {
    if (round !== undefined) assert(this.rounds.delete(round.id), 'a round finishes once');
    if (outcome.ok) this.stats.roundsSucceeded++;
    else this.stats.roundsFailed++;
    this.completions.push({ done, outcome });
  }
}
