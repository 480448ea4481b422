// An in-memory network for MeshNode tests: links between every pair of nodes, virtual time,
// seeded random interleaving, loss and duplication of droppable frames, and link cuts.
import { asNodeId, asRegionId, asReplicaId, type NodeId } from '../../src/core/ids.js';
import type { SeededRandom } from '../../src/core/random.js';
import { ok } from '../../src/core/result.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { MeshCrypto } from '../../src/mesh/handshake.js';
import { type Member, Membership } from '../../src/mesh/membership.js';
import { type LinkId, MeshNode, type MeshNodeOptions, type MeshTimings, type PolicyReplica } from '../../src/mesh/mesh-node.js';
import { hmacMeshCrypto, seededNonces } from '../../src/platform/mesh-crypto.js';

export const testSecret = new TextEncoder().encode('a mesh secret of at least 16 bytes');

export function testCrypto(random: SeededRandom): MeshCrypto {
  return hmacMeshCrypto(seededNonces(random));
}

/** A policy replica that holds nothing: for tests of the counter path alone. */
export function emptyPolicy(timings: MeshTimings = { gossipIntervalMs: 50, digestIntervalMs: 1000, heartbeatIntervalMs: 250 }): PolicyReplica {
  return {
    syncStep1: () => new Uint8Array([0, 0]),
    onSyncMessage: () => ok(undefined),
    takeUpdates: () => [],
    settings: () => timings,
  };
}

export function members(count: number): Member[] {
  return Array.from({ length: count }, (_, i) => ({ id: asNodeId(`n${i}`), region: asRegionId(`r${i}`), url: `mem://n${i}` }));
}

export function makeNode(
  id: NodeId,
  all: readonly Member[],
  random: SeededRandom,
  policy: PolicyReplica = emptyPolicy(),
  secret = testSecret,
  extra: Pick<MeshNodeOptions, 'health'> = {},
): MeshNode {
  const membership = Membership.create(id, all);
  if (!membership.ok) throw new Error(membership.error.reason);
  const replica = asReplicaId(`${id}~1`);
  return new MeshNode({ membership: membership.value, replica, secret, crypto: testCrypto(random), counter: new WindowedCounter(replica), policy, ...extra });
}

interface Wire {
  /** The other end: node index and its link id. */
  readonly a: { node: number; link: LinkId };
  readonly b: { node: number; link: LinkId };
  up: boolean;
  /** Frames in flight per direction, in order (a link is ordered, like TCP). */
  readonly toA: { atMs: number; bytes: Uint8Array }[];
  readonly toB: { atMs: number; bytes: Uint8Array }[];
}

export interface NetworkFaults {
  /** Probability that a droppable frame is lost. */
  readonly loss: number;
  /** Probability that a droppable frame is delivered twice. */
  readonly duplicate: number;
  readonly latencyMsMax: number;
}

/** What the network drives: a `MeshNode`, or a `NodeCore` (src/engine/node-core.ts), which has the same surface. */
export type MeshEndpoint = Pick<MeshNode, 'self' | 'onLinkOpen' | 'onLinkClosed' | 'onFrame' | 'nextTickMs' | 'tick' | 'drainOutbox'>;

export class MemoryNetwork<Node extends MeshEndpoint = MeshNode> {
  nowMs = 1_764_000_000_000;
  readonly faults: { loss: number; duplicate: number; latencyMsMax: number };
  private readonly wires: Wire[] = [];
  private nextLink = 1;

  constructor(
    readonly nodes: Node[],
    private readonly random: SeededRandom,
    faults: NetworkFaults = { loss: 0, duplicate: 0, latencyMsMax: 5 },
  ) {
    this.faults = { ...faults };
    for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) this.connect(i, j);
  }

  /** Opens a link from the smaller to the larger node id, as the transport would dial it. */
  private connect(i: number, j: number): void {
    const wire: Wire = { a: { node: i, link: this.nextLink++ }, b: { node: j, link: this.nextLink++ }, up: true, toA: [], toB: [] };
    this.wires.push(wire);
    this.nodes[i]!.onLinkOpen(wire.a.link, { direction: 'outbound', dialedPeer: this.nodes[j]!.self }, this.nowMs);
    this.nodes[j]!.onLinkOpen(wire.b.link, { direction: 'inbound' }, this.nowMs);
  }

  /** Cuts the link between two nodes (both sides see it close); `heal` opens a fresh one. */
  cut(i: number, j: number): void {
    for (const wire of this.wires) {
      if (!wire.up || !((wire.a.node === i && wire.b.node === j) || (wire.a.node === j && wire.b.node === i))) continue;
      this.drop(wire);
    }
  }

  heal(i: number, j: number): void {
    const [low, high] = i < j ? [i, j] : [j, i];
    if (this.wires.some((w) => w.up && w.a.node === low && w.b.node === high)) return;
    this.connect(low, high);
  }

  healAll(): void {
    for (let i = 0; i < this.nodes.length; i++) for (let j = i + 1; j < this.nodes.length; j++) this.heal(i, j);
  }

  /** Advances virtual time by `stepMs`: routes outboxes, delivers due frames in random order, ticks nodes. */
  step(stepMs: number): void {
    this.nowMs += stepMs;
    this.route();
    const due: { wire: Wire; toA: boolean }[] = [];
    for (const wire of this.wires) {
      if (!wire.up) continue;
      if (wire.toA.length > 0 && wire.toA[0]!.atMs <= this.nowMs) due.push({ wire, toA: true });
      if (wire.toB.length > 0 && wire.toB[0]!.atMs <= this.nowMs) due.push({ wire, toA: false });
    }
    // Seeded interleaving across links; order within a link is kept.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [due[i], due[j]] = [due[j]!, due[i]!];
    }
    for (const { wire, toA } of due) {
      const queue = toA ? wire.toA : wire.toB;
      const end = toA ? wire.a : wire.b;
      while (wire.up && queue.length > 0 && queue[0]!.atMs <= this.nowMs) this.nodes[end.node]!.onFrame(end.link, queue.shift()!.bytes);
    }
    for (const node of this.nodes) if (node.nextTickMs(this.nowMs) <= this.nowMs) node.tick(this.nowMs);
    this.route();
  }

  run(durationMs: number, stepMs = 10): void {
    for (let t = 0; t < durationMs; t += stepMs) this.step(stepMs);
  }

  private route(): void {
    this.nodes.forEach((node, index) => {
      for (const out of node.drainOutbox()) {
        const wire = this.wires.find((w) => w.up && ((w.a.node === index && w.a.link === out.link) || (w.b.node === index && w.b.link === out.link)));
        if (wire === undefined) continue;
        if (out.kind === 'close') {
          this.drop(wire);
          continue;
        }
        const toA = wire.b.node === index && wire.b.link === out.link;
        const queue = toA ? wire.toA : wire.toB;
        if (out.droppable && this.random.float() < this.faults.loss) continue;
        const last = queue.at(-1)?.atMs ?? 0;
        const atMs = Math.max(last, this.nowMs + 1 + this.random.int(this.faults.latencyMsMax + 1));
        queue.push({ atMs, bytes: out.bytes });
        if (out.droppable && this.random.float() < this.faults.duplicate) queue.push({ atMs, bytes: out.bytes });
      }
    });
  }

  private drop(wire: Wire): void {
    wire.up = false;
    wire.toA.length = 0;
    wire.toB.length = 0;
    this.nodes[wire.a.node]!.onLinkClosed(wire.a.link);
    this.nodes[wire.b.node]!.onLinkClosed(wire.b.link);
  }
}
