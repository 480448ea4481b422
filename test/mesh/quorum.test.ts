// Proves strict quorum rounds write to W members before reading from R, count each member once per
// phase, fail as no-quorum in a minority, resend a phase on a reopened link, and complete only from tick.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/core/assert.js';
import { asNodeId, asReplicaId, type NodeId } from '../../src/core/ids.js';
import { quorumRoundKeysMax, quorumRoundsOpenMax } from '../../src/core/limits.js';
import { SeededRandom } from '../../src/core/random.js';
import { counterKey, type CounterKey } from '../../src/crdt/counter-key.js';
import { type Digest, WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { Membership, type QuorumSizes } from '../../src/mesh/membership.js';
import { MeshNode, type MeshTimings } from '../../src/mesh/mesh-node.js';
import { type OpenPeer, type QuorumLinks, QuorumRounds, type RoundOutcome, type RoundRunnerParts } from '../../src/mesh/quorum.js';
import type { Frame } from '../../src/mesh/wire/frame.js';
import { emptyPolicy, members, MemoryNetwork, testCrypto, testSecret } from '../support/mesh-network.js';

const key = counterKey('tenant', 'acme', 'requests', { unit: 'day', index: 20416 });
const t0 = 1_764_000_000_000;
const timeoutMs = 400;

/** Links that record what the rounds send, with a peer set the test opens and closes. */
class RecordingLinks implements QuorumLinks {
  peers: OpenPeer[] = [];
  sent: { link: number; frame: Frame }[] = [];
  /** Every send and state transfer in order, as `kind:link` (`state:link` for `sendState`). */
  log: string[] = [];
  states: { link: number; since: Digest }[] = [];

  openPeers(): readonly OpenPeer[] {
    return this.peers;
  }

  send(link: number, frame: Frame): void {
    this.sent.push({ link, frame });
    this.log.push(`${frame.kind}:${link}`);
  }

  sendState(link: number, since: Digest): void {
    this.states.push({ link, since });
    this.log.push(`state:${link}`);
  }

  take(): { link: number; frame: Frame }[] {
    const sent = this.sent;
    this.sent = [];
    return sent;
  }
}

const n = (i: number): NodeId => asNodeId(`n${i}`);

/** A coordinator `n0` with peers n1..n(members-1) on links 11, 12, ... */
function coordinator(sizes: QuorumSizes): { rounds: QuorumRounds; links: RecordingLinks; counter: WindowedCounter } {
  const links = new RecordingLinks();
  links.peers = Array.from({ length: sizes.members - 1 }, (_, i) => ({ link: 11 + i, peer: n(i + 1) }));
  const counter = new WindowedCounter(asReplicaId('n0~1'));
  return { rounds: new QuorumRounds({ self: n(0), counter, sizes, links, timeoutMs, recovering: false }), links, counter };
}

/** Starts a round and returns its outcomes so far (a list, so a second call would show). */
function start(rounds: QuorumRounds, writeKeys: readonly CounterKey[] = [key], readKeys: readonly CounterKey[] = [key], nowMs = t0): RoundOutcome[] {
  const outcomes: RoundOutcome[] = [];
  rounds.start({ writeKeys, readKeys }, nowMs, (outcome) => outcomes.push(outcome));
  return outcomes;
}

function kinds(sent: { frame: Frame }[]): string[] {
  return sent.map((s) => s.frame.kind);
}

describe('QuorumRounds, driven frame by frame', () => {
  it('waits for W distinct acks, then for R distinct replies, and completes only on tick', () => {
    const { rounds, links } = coordinator({ members: 5, write: 3, read: 3 });
    const outcomes = start(rounds);
    const writes = links.take();
    expect(kinds(writes)).toEqual(['quorum-write', 'quorum-write', 'quorum-write', 'quorum-write']);
    const round = writes[0]!.frame.kind === 'quorum-write' ? writes[0]!.frame.round : -1;
    // A duplicated ack is one member: with the coordinator that makes two of three.
    rounds.onAck(n(1), round);
    rounds.onAck(n(1), round);
    // Replies before the read phase are not acks and not replies.
    rounds.onReply(n(2), round, []);
    rounds.tick(t0 + 1);
    expect(links.take()).toEqual([]);
    rounds.onAck(n(2), round);
    // The read goes to every peer, also those that acked.
    expect(kinds(links.take())).toEqual(['quorum-read', 'quorum-read', 'quorum-read', 'quorum-read']);
    // A write ack that arrives in the read phase is not a reply.
    rounds.onAck(n(4), round);
    rounds.onReply(n(3), round, []);
    rounds.onReply(n(3), round, []);
    rounds.tick(t0 + 2);
    expect(outcomes).toEqual([]);
    rounds.onReply(n(4), round, []);
    expect(outcomes).toEqual([]); // not from the frame handler either
    rounds.tick(t0 + 3);
    expect(outcomes).toEqual([{ ok: true }]);
    expect(rounds.stats).toMatchObject({ roundsStarted: 1, roundsSucceeded: 1, roundsFailed: 0 });
    expect(rounds.open).toBe(0);
  });

  it('ignores late and duplicate acks and replies for a finished round, and for unknown rounds', () => {
    const { rounds, links, counter } = coordinator({ members: 3, write: 2, read: 2 });
    const outcomes = start(rounds);
    const round = 1;
    rounds.onAck(n(1), round);
    rounds.onReply(n(2), round, []);
    rounds.tick(t0 + 1);
    expect(outcomes).toEqual([{ ok: true }]);
    links.take();
    const late = [{ key, replica: asReplicaId('n2~1'), p: 99, n: 0, version: 1 }];
    rounds.onAck(n(2), round);
    rounds.onReply(n(1), round, late);
    rounds.onReply(n(2), round, late);
    rounds.onAck(n(1), 77);
    rounds.onReply(n(1), 77, late);
    rounds.tick(t0 + 2);
    rounds.tick(t0 + timeoutMs + 10);
    expect(outcomes).toEqual([{ ok: true }]);
    expect(rounds.stats).toMatchObject({ roundsStarted: 1, roundsSucceeded: 1, roundsFailed: 0 });
    expect(links.take()).toEqual([]);
    expect(counter.value(key)).toBe(0);
  });

  it('joins each reply into the counter, so the coordinator reads the R members it heard', () => {
    const { rounds, counter } = coordinator({ members: 3, write: 2, read: 2 });
    counter.increment(key, 1);
    const outcomes = start(rounds);
    rounds.onAck(n(2), 1);
    rounds.onReply(n(1), 1, [{ key, replica: asReplicaId('n1~1'), p: 40, n: 5, version: 3 }]);
    rounds.tick(t0 + 1);
    expect(outcomes).toEqual([{ ok: true }]);
    expect(counter.value(key)).toBe(1 + 35);
  });

  it('fails as no-quorum exactly at the timeout, and a clock stepped back does not stretch it', () => {
    const { rounds, links } = coordinator({ members: 3, write: 2, read: 2 });
    const outcomes = start(rounds);
    expect(rounds.nextDeadlineMs()).toBe(t0 + timeoutMs);
    rounds.tick(t0 + timeoutMs - 1);
    expect(outcomes).toEqual([]);
    rounds.tick(t0 + timeoutMs);
    expect(outcomes).toEqual([{ ok: false, reason: 'no-quorum' }]);
    expect(rounds.stats.roundsFailed).toBe(1);
    expect(rounds.nextDeadlineMs()).toBe(Infinity);
    // A round started before the clock stepped back ten seconds times out one timeout after the step.
    links.take();
    const stepped = start(rounds, [key], [key], t0);
    rounds.tick(t0 - 10_000);
    expect(rounds.nextDeadlineMs()).toBe(t0 - 10_000 + timeoutMs);
    rounds.tick(t0 - 10_000 + timeoutMs);
    expect(stepped).toEqual([{ ok: false, reason: 'no-quorum' }]);
  });

  it('sends the current phase on a link opened during the round, once per link, never to a member that answered', () => {
    const { rounds, links } = coordinator({ members: 3, write: 2, read: 2 });
    links.peers = [];
    const outcomes = start(rounds);
    expect(links.take()).toEqual([]);
    links.peers = [{ link: 21, peer: n(1) }];
    rounds.tick(t0 + 1);
    expect(links.take().map((s) => [s.link, s.frame.kind])).toEqual([[21, 'quorum-write']]);
    rounds.tick(t0 + 2);
    expect(links.take()).toEqual([]);
    // The link to n1 is replaced by a new one: the write goes out again on it.
    links.peers = [{ link: 22, peer: n(1) }];
    rounds.tick(t0 + 3);
    expect(links.take().map((s) => [s.link, s.frame.kind])).toEqual([[22, 'quorum-write']]);
    rounds.onAck(n(1), 1);
    expect(links.take().map((s) => [s.link, s.frame.kind])).toEqual([[22, 'quorum-read']]);
    // n2 connects during the read phase and gets the read, not the write.
    links.peers = [
      { link: 22, peer: n(1) },
      { link: 23, peer: n(2) },
    ];
    rounds.tick(t0 + 4);
    expect(links.take().map((s) => [s.link, s.frame.kind])).toEqual([[23, 'quorum-read']]);
    rounds.onReply(n(2), 1, []);
    // n1 reconnects after the round is decided: nothing more is sent.
    links.peers = [{ link: 24, peer: n(1) }];
    rounds.tick(t0 + 5);
    expect(outcomes).toEqual([{ ok: true }]);
    expect(links.take()).toEqual([]);
  });

  it('acks a write only when the member holds every entry, and answers reads with every replica', () => {
    const links = new RecordingLinks();
    const full = new WindowedCounter(asReplicaId('n1~1'), { keysMax: 1 });
    full.increment(counterKey('tenant', 'other', 'requests', { unit: 'day', index: 20416 }), 1);
    const member = new QuorumRounds({ self: n(1), counter: full, sizes: { members: 3, write: 2, read: 2 }, links, timeoutMs, recovering: false });
    const entries = [{ key, replica: asReplicaId('n0~1'), p: 5, n: 0, version: 1 }];
    member.onWrite(7, 3, entries);
    expect(links.take()).toEqual([]);
    const roomy = new WindowedCounter(asReplicaId('n2~1'));
    roomy.increment(key, 2);
    const other = new QuorumRounds({ self: n(2), counter: roomy, sizes: { members: 3, write: 2, read: 2 }, links, timeoutMs, recovering: false });
    other.onWrite(8, 3, entries);
    expect(links.take()).toEqual([{ link: 8, frame: { kind: 'quorum-ack', round: 3 } }]);
    other.onRead(8, 4, [key]);
    const reply = links.take();
    expect(reply.map((s) => [s.link, s.frame.kind])).toEqual([[8, 'quorum-reply']]);
    const frame = reply[0]!.frame;
    expect(frame.kind === 'quorum-reply' ? frame.entries.map((e) => [e.replica, e.p]).sort() : []).toEqual([
      ['n0~1', 5],
      ['n2~1', 2],
    ]);
    expect(other.stats).toMatchObject({ writesServed: 1, readsServed: 1 });
  });

  it('never calls done synchronously from start, also for a one-member quorum and for refusals', () => {
    const links = new RecordingLinks();
    const counter = new WindowedCounter(asReplicaId('solo~1'));
    const solo = new QuorumRounds({ self: n(0), counter, sizes: { members: 1, write: 1, read: 1 }, links, timeoutMs, recovering: false });
    expect(solo.hasCompletions).toBe(false);
    const outcomes = start(solo);
    expect(outcomes).toEqual([]);
    expect(solo.hasCompletions).toBe(true);
    solo.tick(t0);
    expect(outcomes).toEqual([{ ok: true }]);
    expect(solo.hasCompletions).toBe(false);
    const tooMany = Array.from({ length: quorumRoundKeysMax + 1 }, (_, i) => counterKey('tenant', 'acme', 'requests', { unit: 'day', index: i }));
    const refused = start(solo, tooMany, []);
    expect(refused).toEqual([]);
    solo.tick(t0);
    expect(refused).toEqual([{ ok: false, reason: 'too-many-keys' }]);
  });

  it('refuses a round with more keys than a round carries, on either side, and accepts exactly the bound', () => {
    const links = new RecordingLinks();
    const solo = new QuorumRounds({
      self: n(0),
      counter: new WindowedCounter(asReplicaId('solo~1')),
      sizes: { members: 1, write: 1, read: 1 },
      links,
      timeoutMs,
      recovering: false,
    });
    const keys = Array.from({ length: quorumRoundKeysMax + 1 }, (_, i) => counterKey('tenant', 'acme', 'requests', { unit: 'day', index: i }));
    const atBound = start(solo, keys.slice(1), keys.slice(1));
    const tooManyWrites = start(solo, keys, []);
    const tooManyReads = start(solo, [], keys);
    solo.tick(t0);
    expect(atBound).toEqual([{ ok: true }]);
    expect(tooManyWrites).toEqual([{ ok: false, reason: 'too-many-keys' }]);
    expect(tooManyReads).toEqual([{ ok: false, reason: 'too-many-keys' }]);
    expect(solo.stats).toMatchObject({ roundsStarted: 3, roundsSucceeded: 1, roundsFailed: 2 });
  });

  it('refuses a round past the open-rounds bound, and takes one again once rounds finish', () => {
    const { rounds } = coordinator({ members: 3, write: 2, read: 2 });
    const outcomes: RoundOutcome[] = [];
    for (let i = 0; i < quorumRoundsOpenMax; i++) rounds.start({ writeKeys: [], readKeys: [] }, t0, (o) => outcomes.push(o));
    expect(rounds.open).toBe(quorumRoundsOpenMax);
    const refused = start(rounds, [], []);
    rounds.tick(t0 + 1);
    expect(refused).toEqual([{ ok: false, reason: 'rounds-full' }]);
    expect(outcomes).toEqual([]);
    rounds.tick(t0 + timeoutMs);
    expect(outcomes.length).toBe(quorumRoundsOpenMax);
    expect(outcomes.every((o) => !o.ok && o.reason === 'no-quorum')).toBe(true);
    expect(rounds.open).toBe(0);
    start(rounds, [], []);
    expect(rounds.open).toBe(1);
  });

  it('refuses quorum sizes where W + R does not exceed N, or that exceed the members', () => {
    const parts = (sizes: QuorumSizes): RoundRunnerParts => ({
      self: n(0),
      counter: new WindowedCounter(asReplicaId('n0~1')),
      sizes,
      links: new RecordingLinks(),
      timeoutMs,
      recovering: false,
    });
    expect(() => new QuorumRounds(parts({ members: 4, write: 2, read: 2 }))).toThrow(AssertionError);
    expect(() => new QuorumRounds(parts({ members: 5, write: 1, read: 4 }))).toThrow(/W \+ R must exceed N/);
    expect(() => new QuorumRounds(parts({ members: 3, write: 4, read: 1 }))).toThrow(AssertionError);
    expect(() => new QuorumRounds(parts({ members: 3, write: 2, read: 2 }))).not.toThrow();
    expect(() => new QuorumRounds(parts({ members: 4, write: 1, read: 4 }))).not.toThrow();
    // The mesh node passes configured sizes through to the same check.
    const all = members(3);
    const membership = Membership.create(all[0]!.id, all);
    if (!membership.ok) throw new Error(membership.error.reason);
    const options = {
      membership: membership.value,
      replica: asReplicaId('n0~1'),
      secret: testSecret,
      crypto: testCrypto(new SeededRandom(1)),
      counter: new WindowedCounter(asReplicaId('n0~1')),
      policy: emptyPolicy(),
    };
    expect(() => new MeshNode({ ...options, quorum: { members: 3, write: 1, read: 2 } })).toThrow(AssertionError);
  });
});

// ---- Rounds between mesh nodes over the in-memory network ----

/** No gossip and no digest rounds after the links open: entries move only by quorum frames. */
const quiet: MeshTimings = { gossipIntervalMs: 1e9, digestIntervalMs: 1e9, heartbeatIntervalMs: 250 };

interface Mesh {
  nodes: MeshNode[];
  network: MemoryNetwork;
  /** Per node, a hook called when it sends its first QuorumRead of a round. */
  onReadPhase: ((node: number) => void)[];
}

function mesh(count: number, seed: number, timings: MeshTimings = quiet): Mesh {
  const random = new SeededRandom(seed);
  const all = members(count);
  const onReadPhase: ((node: number) => void)[] = all.map(() => () => {});
  const nodes = all.map((m, index) => {
    const membership = Membership.create(m.id, all);
    if (!membership.ok) throw new Error(membership.error.reason);
    const replica = asReplicaId(`${m.id}~1`);
    return new MeshNode({
      membership: membership.value,
      replica,
      secret: testSecret,
      crypto: testCrypto(random),
      counter: new WindowedCounter(replica),
      policy: emptyPolicy(timings),
      quorumTimeoutMs: timeoutMs,
      // The production rounds, with a tap on the links that sees the read phase begin.
      rounds: (parts) => {
        const reads = new Set<number>();
        return new QuorumRounds({
          ...parts,
          links: {
            openPeers: () => parts.links.openPeers(),
            sendState: (link, since) => parts.links.sendState(link, since),
            send: (link, frame) => {
              if (frame.kind === 'quorum-read' && !reads.has(frame.round)) {
                reads.add(frame.round);
                onReadPhase[index]!(index);
              }
              parts.links.send(link, frame);
            },
          },
        });
      },
    });
  });
  const network = new MemoryNetwork(nodes, random);
  network.run(100);
  for (const node of nodes) expect(node.stats.linksAuthenticated).toBe(count - 1);
  return { nodes, network, onReadPhase };
}

/** Starts a round at node `index` over `key`, and returns its outcomes with the time of each. */
function round(m: Mesh, index: number): { outcome: RoundOutcome; atMs: number }[] {
  const outcomes: { outcome: RoundOutcome; atMs: number }[] = [];
  m.nodes[index]!.startRound({ writeKeys: [key], readKeys: [key] }, m.network.nowMs, (outcome) => outcomes.push({ outcome, atMs: m.network.nowMs }));
  return outcomes;
}

function runUntil(m: Mesh, done: () => boolean, limitMs: number): void {
  for (let t = 0; t < limitMs && !done(); t++) m.network.step(1);
}

describe('QuorumRounds between mesh nodes', () => {
  for (const count of [3, 5]) {
    it(`${count} nodes: the write reaches W members before the read, and the coordinator ends holding R members' entries`, () => {
      const m = mesh(count, count);
      const { write, read } = m.nodes[0]!.membership.quorum();
      const own = (i: number): number => 100 * (i + 1);
      m.nodes.forEach((node, i) => node.counter.increment(key, own(i)));
      const coordinator = m.nodes[0]!;
      expect(m.nodes[1]!.counter.value(key)).toBe(own(1)); // no gossip: each holds only its own
      let holdersAtRead = -1;
      m.onReadPhase[0] = () => {
        holdersAtRead = m.nodes.slice(1).filter((node) => node.counter.contributions(key).get(coordinator.replica)?.p === own(0)).length;
      };
      const outcomes = round(m, 0);
      expect(outcomes).toEqual([]);
      runUntil(m, () => outcomes.length > 0, timeoutMs - 1);
      expect(outcomes.map((o) => o.outcome)).toEqual([{ ok: true }]);
      expect(holdersAtRead).toBeGreaterThanOrEqual(write - 1);
      const held = coordinator.counter.contributions(key);
      expect(held.size).toBeGreaterThanOrEqual(read);
      let total = 0;
      for (const [replica, entry] of held) {
        const index = m.nodes.findIndex((node) => node.replica === replica);
        expect(entry).toEqual({ p: own(index), n: 0 });
        total += own(index);
      }
      expect(coordinator.counter.value(key)).toBe(total);
      expect(coordinator.rounds.stats).toMatchObject({ roundsStarted: 1, roundsSucceeded: 1, roundsFailed: 0 });
    });
  }

  it('5 nodes split 2 | 3: the minority round fails as no-quorum at the timeout, the majority round succeeds', () => {
    const m = mesh(5, 7, emptyPolicy().settings());
    for (const a of [0, 1]) for (const b of [2, 3, 4]) m.network.cut(a, b);
    m.nodes[0]!.counter.increment(key, 3);
    const startMs = m.network.nowMs;
    const minority = round(m, 0);
    const majority = round(m, 3);
    runUntil(m, () => majority.length > 0, timeoutMs - 1);
    expect(majority.map((o) => o.outcome)).toEqual([{ ok: true }]);
    runUntil(m, () => minority.length > 0, timeoutMs + 50);
    expect(minority.map((o) => o.outcome)).toEqual([{ ok: false, reason: 'no-quorum' }]);
    expect(minority[0]!.atMs - startMs).toBeGreaterThanOrEqual(timeoutMs);
    expect(minority[0]!.atMs - startMs).toBeLessThanOrEqual(timeoutMs + 5);
    expect(m.nodes[0]!.rounds.stats).toMatchObject({ roundsFailed: 1, roundsSucceeded: 0 });
    // The minority member heard the write; no majority member did.
    expect(m.nodes[1]!.counter.contributions(key).get(m.nodes[0]!.replica)).toEqual({ p: 3, n: 0 });
    for (const i of [2, 3, 4]) expect(m.nodes[i]!.counter.contributions(key).get(m.nodes[0]!.replica)).toBeUndefined();
  });

  it('a round whose messages died with a link completes once the link reopens mid-round', () => {
    const m = mesh(3, 9);
    m.nodes[0]!.counter.increment(key, 5);
    const outcomes = round(m, 0);
    // The writes sit in n0's outbox for links that are cut before they are routed.
    m.network.cut(0, 1);
    m.network.cut(0, 2);
    m.network.run(100, 1);
    expect(outcomes).toEqual([]);
    expect(m.nodes[1]!.counter.value(key)).toBe(0);
    const healedMs = m.network.nowMs;
    m.network.heal(0, 1);
    runUntil(m, () => outcomes.length > 0, timeoutMs);
    expect(outcomes.map((o) => o.outcome)).toEqual([{ ok: true }]);
    expect(outcomes[0]!.atMs - healedMs).toBeLessThan(timeoutMs - 100);
    expect(m.nodes[1]!.counter.contributions(key).get(m.nodes[0]!.replica)).toEqual({ p: 5, n: 0 });
  });
});

describe('QuorumRounds, recovering after a start without state', () => {
  function recovering(sizes: QuorumSizes): { rounds: QuorumRounds; links: RecordingLinks } {
    const links = new RecordingLinks();
    links.peers = Array.from({ length: sizes.members - 1 }, (_, i) => ({ link: 11 + i, peer: n(i + 1) }));
    const counter = new WindowedCounter(asReplicaId('n0~2'));
    counter.increment(key, 7);
    return { rounds: new QuorumRounds({ self: n(0), counter, sizes, links, timeoutMs, recovering: true }), links };
  }

  it('acks writes and answers probes, holds reads until N - W + 1 peers sent their state, then answers them', () => {
    const { rounds, links } = recovering({ members: 5, write: 3, read: 3 });
    expect(rounds.recovering).toBe(true);
    // A probe (a read without keys) goes out on every link as it opens.
    for (const peer of links.peers) rounds.onLinkOpened(peer.link, peer.peer);
    const probes = links.take().map((s) => (s.frame.kind === 'quorum-read' ? { link: s.link, round: s.frame.round, keys: s.frame.keys.length } : undefined));
    expect(probes.map((p) => p?.keys)).toEqual([0, 0, 0, 0]);
    // Writes are acked (this node holds what it acks); reads wait; probes are answered.
    rounds.onWrite(11, 70, []);
    rounds.onRead(12, 71, [key]);
    rounds.onRead(13, 72, []);
    expect(links.take().map((s) => `${s.frame.kind}:${s.link}`)).toEqual(['quorum-ack:11', 'quorum-reply:13']);
    // N - W + 1 = 3 peers must answer; a reply from the wrong peer for a probe does not count.
    rounds.onReply(n(4), probes[0]!.round, []);
    rounds.onReply(n(1), probes[0]!.round, []);
    rounds.onReply(n(2), probes[1]!.round, []);
    expect(rounds.recovering).toBe(true);
    expect(links.take()).toEqual([]);
    rounds.onReply(n(3), probes[2]!.round, []);
    expect(rounds.recovering).toBe(false);
    // Recovered: the held read is answered with this node's entries.
    const answered = links.take();
    expect(answered.map((s) => `${s.frame.kind}:${s.link}`)).toEqual(['quorum-reply:12']);
    const reply = answered[0]!.frame;
    expect(reply.kind === 'quorum-reply' ? [reply.round, reply.entries.map((e) => e.p)] : undefined).toEqual([71, [7]]);
  });

  it('does not count itself in its own read phase until recovered, then does', () => {
    const { rounds, links } = recovering({ members: 3, write: 2, read: 2 });
    for (const peer of links.peers) rounds.onLinkOpened(peer.link, peer.peer);
    const probes = links.take().flatMap((s) => (s.frame.kind === 'quorum-read' ? [s.frame.round] : []));
    const outcomes = start(rounds);
    const write = links.take().find((s) => s.frame.kind === 'quorum-write')!;
    const round = write.frame.kind === 'quorum-write' ? write.frame.round : -1;
    rounds.onAck(n(1), round);
    // Read phase: one reply would do for a recovered node (itself plus one), not for this one.
    links.take();
    rounds.onReply(n(1), round, []);
    rounds.tick(t0 + 1);
    expect(outcomes).toEqual([]);
    // N - W + 1 = 2 probes answered: recovered, it counts itself and the round completes.
    rounds.onReply(n(1), probes[0]!, []);
    rounds.onReply(n(2), probes[1]!, []);
    rounds.tick(t0 + 2);
    expect(outcomes).toEqual([{ ok: true }]);
  });
});

describe('QuorumRounds, recovering through a relay (a bridge partition: n0 reaches n2 only through n1)', () => {
  const sizes: QuorumSizes = { members: 3, write: 2, read: 2 };

  /** A recovering n0 whose only open link goes to n1 (link 11); n2 (and n3 in a larger mesh) is configured but not linked. */
  function edge(members = sizes): { rounds: QuorumRounds; links: RecordingLinks; counter: WindowedCounter; probeN1: number } {
    const links = new RecordingLinks();
    links.peers = [{ link: 11, peer: n(1) }];
    const counter = new WindowedCounter(asReplicaId('n0~2'));
    const peers = Array.from({ length: members.members - 1 }, (_, i) => n(i + 1));
    const rounds = new QuorumRounds({ self: n(0), counter, sizes: members, links, timeoutMs, recovering: true, peers });
    rounds.onLinkOpened(11, n(1));
    const probe = links.take()[0]!.frame;
    return { rounds, links, counter, probeN1: probe.kind === 'quorum-read' ? probe.round : -1 };
  }

  function relayedProbes(links: RecordingLinks): { link: number; round: number; relay: string | undefined; since: boolean }[] {
    return links
      .take()
      .flatMap(({ link, frame }) => (frame.kind === 'quorum-read' ? [{ link, round: frame.round, relay: frame.relay, since: frame.since !== undefined }] : []));
  }

  it('asks a synced peer to relay the unreachable one, and recovers on a reply that names it', () => {
    const { rounds, links, probeN1 } = edge();
    // No relay before a peer is synced: its repair would carry its whole state a second time.
    rounds.tick(t0);
    expect(links.take()).toEqual([]);
    rounds.onReply(n(1), probeN1, []);
    expect(rounds.recovering).toBe(true); // one peer of the N - W + 1 = 2 needed
    rounds.tick(t0 + 1);
    const [relayed] = relayedProbes(links);
    expect(relayed && [relayed.link, relayed.relay, relayed.since]).toEqual([11, 'n2', true]);
    // One relay in flight per peer: the next tick sends none.
    rounds.tick(t0 + 2);
    expect(links.take()).toEqual([]);
    // A reply that names no peer (an older member answering a plain probe) proves nothing about n2,
    // nor does one naming another peer, nor one from a member that was not asked.
    rounds.onReply(n(1), relayed!.round, []);
    rounds.onReply(n(1), relayed!.round, [], n(1));
    rounds.onReply(n(2), relayed!.round, [], n(2));
    expect(rounds.recovering).toBe(true);
    expect(rounds.allPeersSynced).toBe(false);
    rounds.onReply(n(1), relayed!.round, [], n(2));
    expect(rounds.recovering).toBe(false);
    expect(rounds.allPeersSynced).toBe(true);
  });

  it('goes on through relays after the recovery until every peer is synced, asks again after the timeout and when the relay link closes', () => {
    // Four members, W = 3: N - W + 1 = 2 direct peers recover the node; n2 still counts for allPeersSynced.
    const { rounds, links, probeN1 } = edge({ members: 4, write: 3, read: 2 });
    links.peers = [...links.peers, { link: 13, peer: n(3) }];
    rounds.onLinkOpened(13, n(3));
    const probeN3 = links.take()[0]!.frame;
    rounds.onReply(n(1), probeN1, []);
    rounds.onReply(n(3), probeN3.kind === 'quorum-read' ? probeN3.round : -1, []);
    expect(rounds.recovering).toBe(false);
    expect(rounds.allPeersSynced).toBe(false);
    rounds.tick(t0);
    const first = relayedProbes(links);
    expect(first.map((p) => [p.link, p.relay])).toEqual([[11, 'n2']]);
    rounds.tick(t0 + timeoutMs - 1);
    expect(links.take()).toEqual([]);
    // Unanswered for the timeout: the next synced peer is asked, and a late answer to the first no longer counts.
    rounds.tick(t0 + timeoutMs);
    const second = relayedProbes(links);
    expect(second.map((p) => [p.link, p.relay])).toEqual([[13, 'n2']]);
    rounds.onReply(n(1), first[0]!.round, [], n(2));
    expect(rounds.allPeersSynced).toBe(false);
    // The link to n3 closes: the relay goes through n1 again at once.
    links.peers = [{ link: 11, peer: n(1) }];
    rounds.tick(t0 + timeoutMs + 1);
    const third = relayedProbes(links);
    expect(third.map((p) => [p.link, p.relay])).toEqual([[11, 'n2']]);
    rounds.onReply(n(1), third[0]!.round, [], n(2));
    expect(rounds.allPeersSynced).toBe(true);
  });

  it('as the bridge: probes the target with its own digest, then passes on what the prober lacks before the reply', () => {
    const links = new RecordingLinks();
    links.peers = [
      { link: 21, peer: n(0) },
      { link: 22, peer: n(2) },
    ];
    const counter = new WindowedCounter(asReplicaId('n1~1'));
    counter.increment(key, 3);
    const rounds = new QuorumRounds({ self: n(1), counter, sizes, links, timeoutMs, recovering: false, peers: [n(0), n(2)] });
    const proberDigest: Digest = new Map([[asReplicaId('n0~2'), 4]]);
    rounds.onRead(21, 90, [], { since: proberDigest, relay: n(2) });
    const [toTarget] = links.take();
    expect(toTarget!.link).toBe(22);
    const probe = toTarget!.frame;
    expect(probe.kind === 'quorum-read' ? [probe.keys.length, probe.relay, [...(probe.since ?? [])]] : undefined).toEqual([
      0,
      undefined,
      [...counter.digest()],
    ]);
    const own = probe.kind === 'quorum-read' ? probe.round : -1;
    // Only the target's reply naming itself (its state went first) completes the relay.
    rounds.onReply(n(0), own, [], n(2));
    rounds.onReply(n(2), own, []);
    expect(links.log).toEqual(['quorum-read:22']);
    rounds.onReply(n(2), own, [], n(2));
    expect(links.log.slice(1)).toEqual(['state:21', 'quorum-reply:21']);
    expect(links.states[0]!.since).toBe(proberDigest);
    const reply = links.sent.at(-1)!.frame;
    expect(reply.kind === 'quorum-reply' ? [reply.round, reply.relayed, reply.entries.length] : undefined).toEqual([90, 'n2', 0]);
    // Once: a duplicated reply relays nothing more.
    rounds.onReply(n(2), own, [], n(2));
    expect(links.log).toHaveLength(3);
  });

  it('as the bridge: relays nothing for a target it cannot reach, or whose link closed before its answer', () => {
    const links = new RecordingLinks();
    links.peers = [
      { link: 21, peer: n(0) },
      { link: 22, peer: n(2) },
    ];
    const rounds = new QuorumRounds({ self: n(1), counter: new WindowedCounter(asReplicaId('n1~1')), sizes, links, timeoutMs, recovering: false });
    rounds.onRead(21, 90, [], { since: new Map(), relay: n(3) });
    rounds.onRead(21, 91, [], { since: new Map(), relay: n(0) });
    expect(links.log).toEqual([]);
    rounds.onRead(21, 92, [], { since: new Map(), relay: n(2) });
    const probe = links.take()[0]!.frame;
    links.peers = [{ link: 21, peer: n(0) }];
    rounds.tick(t0);
    rounds.onReply(n(2), probe.kind === 'quorum-read' ? probe.round : -1, [], n(2));
    expect(links.log).toEqual(['quorum-read:22']);
  });

  it('a probe with a digest is answered with the state beyond it, then a reply naming this node', () => {
    const links = new RecordingLinks();
    const rounds = new QuorumRounds({ self: n(2), counter: new WindowedCounter(asReplicaId('n2~1')), sizes, links, timeoutMs, recovering: true });
    const since: Digest = new Map();
    rounds.onRead(22, 7, [], { since });
    expect(links.log).toEqual(['state:22', 'quorum-reply:22']);
    const reply = links.sent[0]!.frame;
    expect(reply.kind === 'quorum-reply' ? [reply.round, reply.relayed] : undefined).toEqual([7, 'n2']);
  });
});

describe('QuorumRounds between mesh nodes that start inside a bridge partition', () => {
  /** Three nodes n0–n1–n2 that start without state; n0 and n2 never reach each other. */
  function bridgeMesh(
    seed: number,
    replicaOf: (i: number) => string = (i) => `n${i}~1`,
  ): { nodes: MeshNode[]; network: MemoryNetwork; all: ReturnType<typeof members> } {
    const random = new SeededRandom(seed);
    const all = members(3);
    const timings: MeshTimings = { gossipIntervalMs: 50, digestIntervalMs: 1000, heartbeatIntervalMs: 250 };
    const nodes = all.map((_, i) => recoveringNode(all, i, replicaOf(i), random, timings));
    const network = new MemoryNetwork(nodes, random);
    network.cut(0, 2);
    return { nodes, network, all };
  }

  function recoveringNode(
    all: ReturnType<typeof members>,
    i: number,
    replicaId: string,
    random: SeededRandom,
    timings: MeshTimings,
    recovering = true,
  ): MeshNode {
    const membership = Membership.create(all[i]!.id, all);
    if (!membership.ok) throw new Error(membership.error.reason);
    const replica = asReplicaId(replicaId);
    return new MeshNode({
      membership: membership.value,
      replica,
      secret: testSecret,
      crypto: testCrypto(random),
      counter: new WindowedCounter(replica),
      policy: emptyPolicy(timings),
      quorumTimeoutMs: timeoutMs,
      recovering,
    });
  }

  it('every node recovers (the edges through the bridge), and strict rounds then succeed at every node', () => {
    const { nodes, network } = bridgeMesh(17);
    for (let t = 0; t < 3_000 && nodes.some((node) => node.rounds.recovering); t += 10) network.step(10);
    expect(nodes.map((node) => node.rounds.recovering)).toEqual([false, false, false]);
    expect(nodes.map((node) => node.rounds.allPeersSynced)).toEqual([true, true, true]);
    expect(nodes[0]!.peerConnected(asNodeId('n2'))).toBe(false);
    const outcomes = nodes.map((node, i) => {
      node.counter.increment(key, 10 * (i + 1));
      const seen: RoundOutcome[] = [];
      node.startRound({ writeKeys: [key], readKeys: [key] }, network.nowMs, (outcome) => seen.push(outcome));
      return seen;
    });
    for (let t = 0; t < timeoutMs && outcomes.some((seen) => seen.length === 0); t++) network.step(1);
    expect(outcomes).toEqual([[{ ok: true }], [{ ok: true }], [{ ok: true }]]);
    // Each edge read the bridge, and the bridge holds both edges' writes.
    expect(nodes[1]!.counter.value(key)).toBe(60);
  });

  it('a node restarted without its state inside the bridge recovers only once it holds the write its predecessor held with the far edge', () => {
    const random = new SeededRandom(23);
    const all = members(3);
    const timings: MeshTimings = { gossipIntervalMs: 1e9, digestIntervalMs: 1e9, heartbeatIntervalMs: 250 };
    const nodes = all.map((_, i) => recoveringNode(all, i, `n${i}~1`, random, timings, false));
    const network = new MemoryNetwork(nodes, random);
    // n1 is cut off while n2's write completes at {n2, n0}: only n0's first incarnation and n2 hold it.
    network.cut(0, 1);
    network.cut(1, 2);
    network.run(100);
    nodes[2]!.counter.increment(key, 5);
    const write: RoundOutcome[] = [];
    nodes[2]!.startRound({ writeKeys: [key], readKeys: [key] }, network.nowMs, (outcome) => write.push(outcome));
    for (let t = 0; t < timeoutMs && write.length === 0; t++) network.step(1);
    expect(write).toEqual([{ ok: true }]);
    expect(nodes[1]!.counter.value(key)).toBe(0);
    // n0 restarts without its state, inside a bridge: it reaches n1 only, and n1 reaches n2.
    network.cut(0, 2);
    nodes[0] = recoveringNode(all, 0, 'n0~2', random, timings);
    network.heal(0, 1);
    let heldAtRecovery: number | undefined;
    // n1 reaches n2 only 300 ms later: a relay asked before then must wait for it (or be asked again).
    for (let t = 0; t < 3_000 && heldAtRecovery === undefined; t++) {
      if (t === 300) network.heal(1, 2);
      network.step(1);
      if (!nodes[0].rounds.recovering) heldAtRecovery = nodes[0].counter.value(key);
    }
    expect(heldAtRecovery).toBe(5);
    expect(nodes[0].peerConnected(asNodeId('n2'))).toBe(false);
  });
});
