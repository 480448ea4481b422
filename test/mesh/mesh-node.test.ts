// Proves the mesh handshake admits only members that know the secret, closes links on anything
// else with a counted reason, and that authenticated nodes exchange deltas, acks and repairs.
import { describe, expect, it } from 'vitest';
import { asNodeId, asReplicaId, type NodeId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { handshakeProof, meshProtocolVersion } from '../../src/mesh/handshake.js';
import { closeCodes, type MeshNode, type MeshOutput } from '../../src/mesh/mesh-node.js';
import { encodeFrame, type Frame, decodeFrame } from '../../src/mesh/wire/frame.js';
import { makeNode, members, MemoryNetwork, testCrypto, testSecret } from '../support/mesh-network.js';

const all = members(3);
const key = counterKey('tenant', 'acme', 'requests', { unit: 'day', index: 20418 });
const t0 = 1_764_000_000_000;

function bytes(frame: Frame): Uint8Array {
  const encoded = encodeFrame(frame);
  if (!encoded.ok) throw new Error('too large');
  return encoded.value;
}

function sent(outputs: MeshOutput[]): Frame[] {
  return outputs.flatMap((o) => {
    if (o.kind !== 'send') return [];
    const decoded = decodeFrame(o.bytes);
    return decoded.ok ? [decoded.value] : [];
  });
}

function closes(outputs: MeshOutput[]): { code: number; reason: string }[] {
  return outputs.flatMap((o) => (o.kind === 'close' ? [{ code: o.code, reason: o.reason }] : []));
}

/** Opens an inbound link on `node`, feeds it frames, ticks once, and returns what it did. */
function feedInbound(node: MeshNode, link: number, frames: (Frame | Uint8Array)[], nowMs = t0): MeshOutput[] {
  node.onLinkOpen(link, { direction: 'inbound' }, nowMs);
  for (const frame of frames) node.onFrame(link, frame instanceof Uint8Array ? frame : bytes(frame));
  node.tick(nowMs);
  return node.drainOutbox();
}

const random = new SeededRandom(11);
const nonce = (fill: number): Uint8Array => new Uint8Array(16).fill(fill);

describe('MeshNode handshake', () => {
  it('authenticates two members and replicates an increment', () => {
    const nodes = all.slice(0, 2).map((m) => makeNode(m.id, all.slice(0, 2), random));
    const network = new MemoryNetwork(nodes, random);
    nodes[0]!.counter.increment(key, 5);
    network.run(200);
    expect(nodes.map((n) => n.stats.linksAuthenticated)).toEqual([1, 1]);
    expect(nodes[1]!.counter.value(key)).toBe(5);
    expect(nodes[0]!.peerViews(network.nowMs)).toEqual([{ peer: nodes[1]!.self, connected: true, liveness: 'alive' }]);
  });

  it('closes a link that sends anything but Hello first, and applies nothing', () => {
    const node = makeNode(all[1]!.id, all, random);
    const sender = makeNode(all[0]!.id, all, random);
    sender.counter.increment(key, 9);
    const out = feedInbound(node, 1, [{ kind: 'counter-delta', delta: sender.counter.takeDelta() }]);
    expect(closes(out)).toEqual([{ code: closeCodes.unauthenticated, reason: 'unauthenticated-frame' }]);
    expect(node.stats.authFailures.get('unauthenticated-frame')).toBe(1);
    expect(node.counter.value(key)).toBe(0);
  });

  it('closes a link that sends garbage before the handshake', () => {
    const node = makeNode(all[1]!.id, all, random);
    const out = feedInbound(node, 1, [new Uint8Array([1, 2, 3, 4, 5, 6, 7])]);
    expect(closes(out)[0]?.code).toBe(closeCodes.unauthenticated);
    expect(node.stats.badFrames.get('bad-magic')).toBe(1);
  });

  it('refuses unknown members and other protocol versions', () => {
    const node = makeNode(all[1]!.id, all, random);
    const out = feedInbound(node, 1, [{ kind: 'hello', protocolVersion: meshProtocolVersion, member: asNodeId('intruder'), nonce: nonce(1) }]);
    expect(closes(out)).toEqual([{ code: closeCodes.unauthenticated, reason: 'unknown-member' }]);
    const out2 = feedInbound(node, 2, [{ kind: 'hello', protocolVersion: 99, member: all[0]!.id, nonce: nonce(2) }]);
    expect(closes(out2)[0]?.reason).toBe('bad-protocol-version');
  });

  it('refuses a dialer without the secret (wrong proof)', () => {
    const node = makeNode(all[1]!.id, all, random);
    const out = feedInbound(node, 1, [{ kind: 'hello', protocolVersion: meshProtocolVersion, member: all[0]!.id, nonce: nonce(3) }]);
    const challenge = sent(out)[0];
    expect(challenge?.kind).toBe('challenge');
    if (challenge?.kind !== 'challenge') return;
    const wrongSecret = new TextEncoder().encode('not the mesh secret, but as long');
    const proof = handshakeProof(testCrypto(random), wrongSecret, 'dialer', nonce(3), challenge.nonce, all[0]!.id, all[1]!.id);
    node.onFrame(1, bytes({ kind: 'proof', proof }));
    node.tick(t0 + 1);
    expect(closes(node.drainOutbox())).toEqual([{ code: closeCodes.unauthenticated, reason: 'bad-proof' }]);
    expect(node.stats.linksAuthenticated).toBe(0);
  });

  it('accepts the right proof, and refuses the same Hello replayed on another link', () => {
    const node = makeNode(all[1]!.id, all, random);
    const hello: Frame = { kind: 'hello', protocolVersion: meshProtocolVersion, member: all[0]!.id, nonce: nonce(4) };
    const challenge = sent(feedInbound(node, 1, [hello]))[0];
    if (challenge?.kind !== 'challenge') throw new Error('expected a challenge');
    const proof = handshakeProof(testCrypto(random), testSecret, 'dialer', nonce(4), challenge.nonce, all[0]!.id, all[1]!.id);
    node.onFrame(1, bytes({ kind: 'proof', proof }));
    node.tick(t0 + 1);
    const opened = node.drainOutbox();
    expect(closes(opened)).toEqual([]);
    expect(sent(opened).map((f) => f.kind)).toEqual(['digest', 'policy-sync']);
    expect(node.stats.linksAuthenticated).toBe(1);
    // An eavesdropper replays the recorded Hello and Proof on a new connection.
    const replay = feedInbound(node, 2, [hello, { kind: 'proof', proof }], t0 + 2);
    expect(closes(replay)).toEqual([{ code: closeCodes.unauthenticated, reason: 'replayed-handshake' }]);
  });

  it('refuses a responder that is not the member it dialed, or whose proof is wrong', () => {
    const dialer = makeNode(all[0]!.id, all, random);
    dialer.onLinkOpen(1, { direction: 'outbound', dialedPeer: all[1]!.id }, t0);
    const hello = sent(dialer.drainOutbox())[0];
    if (hello?.kind !== 'hello') throw new Error('expected a hello');
    const impostor: NodeId = all[2]!.id;
    const proof = handshakeProof(testCrypto(random), testSecret, 'responder', hello.nonce, nonce(5), all[0]!.id, impostor);
    dialer.onFrame(1, bytes({ kind: 'challenge', member: impostor, nonce: nonce(5), proof }));
    dialer.tick(t0);
    expect(closes(dialer.drainOutbox())[0]?.reason).toBe('wrong-member');
    dialer.onLinkOpen(2, { direction: 'outbound', dialedPeer: all[1]!.id }, t0);
    dialer.drainOutbox();
    dialer.onFrame(2, bytes({ kind: 'challenge', member: all[1]!.id, nonce: nonce(6), proof: new Uint8Array(32) }));
    dialer.tick(t0);
    expect(closes(dialer.drainOutbox())[0]?.reason).toBe('bad-proof');
  });

  it('cuts off a link that floods frames before its handshake', () => {
    const node = makeNode(all[1]!.id, all, random);
    node.onLinkOpen(1, { direction: 'inbound' }, t0);
    for (let i = 0; i < 65; i++) node.onFrame(1, bytes({ kind: 'heartbeat' }));
    expect(closes(node.drainOutbox())).toEqual([{ code: closeCodes.unauthenticated, reason: 'unauthenticated-frame' }]);
  });

  it('closes a link whose handshake does not finish in time', () => {
    const node = makeNode(all[1]!.id, all, random);
    feedInbound(node, 1, []);
    node.tick(t0 + 4_000);
    expect(closes(node.drainOutbox())).toEqual([]);
    node.tick(t0 + 6_000);
    expect(closes(node.drainOutbox())).toEqual([{ code: closeCodes.handshakeTimeout, reason: 'handshake-timeout' }]);
  });

  it('closes an authenticated link that sends garbage, leaving the counters alone', () => {
    const nodes = all.slice(0, 2).map((m) => makeNode(m.id, all.slice(0, 2), random));
    const network = new MemoryNetwork(nodes, random);
    network.run(100);
    const before = nodes[1]!.counter.value(key);
    const link = 2; // the responder's side of the only link
    const frame = bytes({ kind: 'heartbeat' });
    frame[frame.length - 1]! ^= 0xff;
    nodes[1]!.onFrame(link, frame);
    nodes[1]!.tick(network.nowMs + 1);
    expect(closes(nodes[1]!.drainOutbox())).toEqual([{ code: closeCodes.badFrame, reason: 'bad frame: checksum' }]);
    expect(nodes[1]!.counter.value(key)).toBe(before);
  });
});

describe('MeshNode replication', () => {
  it('sends one delta per gossip interval, acks it, and prunes the resend buffer', () => {
    const nodes = all.slice(0, 2).map((m) => makeNode(m.id, all.slice(0, 2), random));
    const network = new MemoryNetwork(nodes, random);
    network.run(100);
    for (let i = 0; i < 10; i++) nodes[0]!.counter.increment(key, 1);
    network.run(60);
    expect(nodes[0]!.stats.deltasSent).toBe(1);
    expect(nodes[1]!.counter.value(key)).toBe(10);
    network.run(1_000);
    expect(nodes[0]!.stats.deltaResends).toBe(0);
  });

  it('resends unacked deltas and repairs by digest what the link dropped', () => {
    const nodes = all.slice(0, 2).map((m) => makeNode(m.id, all.slice(0, 2), random));
    const network = new MemoryNetwork(nodes, random, { loss: 1, duplicate: 0, latencyMsMax: 2 });
    network.run(100);
    nodes[0]!.counter.increment(key, 7);
    network.run(400);
    expect(nodes[1]!.counter.value(key)).toBe(0);
    expect(nodes[0]!.stats.deltaResends).toBeGreaterThan(0);
    network.faults.loss = 0;
    network.run(1_200);
    expect(nodes[1]!.counter.value(key)).toBe(7);
  });

  it('gives a node that joins late the full state', () => {
    const three = all.map((m) => makeNode(m.id, all, random));
    three[0]!.counter.increment(key, 3);
    three[1]!.counter.increment(key, 4);
    const network = new MemoryNetwork(three, random);
    network.cut(0, 2);
    network.cut(1, 2);
    network.run(500);
    expect(three[2]!.counter.value(key)).toBe(0);
    network.heal(0, 2);
    network.heal(1, 2);
    network.run(300);
    expect(three[2]!.counter.value(key)).toBe(7);
    expect(three[0]!.stats.fullStateTransfers + three[1]!.stats.fullStateTransfers).toBeGreaterThan(0);
    expect(three[2]!.counter.digest().get(asReplicaId('n0~1'))).toBeGreaterThan(0);
  });

  it('repairs changes held out of order whose owner is gone (found by the simulator)', () => {
    // A dead owner's batches: 1 reached both survivors, 2 reached nobody, 3 reached only n1.
    const owner = new WindowedCounter(asReplicaId('gone~1'));
    const [a, b, c] = ['a', 'b', 'c'].map((subject) => counterKey('tenant', subject, 'requests', { unit: 'day', index: 20418 }));
    owner.increment(a!, 1);
    const batch1 = owner.takeDelta();
    owner.increment(b!, 2);
    owner.takeDelta();
    owner.increment(c!, 3);
    const batch3 = owner.takeDelta();
    const two = all.slice(0, 2);
    const nodes = two.map((m) => makeNode(m.id, two, random));
    nodes[0]!.counter.join(batch1);
    nodes[0]!.counter.join(batch3);
    nodes[1]!.counter.join(batch1);
    // Both survivors hold the owner's changes contiguously up to batch 1 only.
    expect(nodes[0]!.counter.digest().get(asReplicaId('gone~1'))).toBe(1);
    expect(nodes[1]!.counter.digest().get(asReplicaId('gone~1'))).toBe(1);
    const network = new MemoryNetwork(nodes, random);
    network.run(2_500);
    expect(nodes[1]!.counter.value(c!)).toBe(3);
    expect(nodes[1]!.counter.value(b!)).toBe(0);
  });
});
