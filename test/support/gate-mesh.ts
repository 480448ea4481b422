// Quota gates on NodeCores over the in-memory network: one node core per member (counter,
// reservations, escrow book replicated as rights, quota gate, claims, pool), driven by virtual time.
import type { EscrowBook } from '../../src/admission/escrow.js';
import type { QuotaDecision, QuotaGate, QuotaRequest } from '../../src/admission/quota-gate.js';
import type { ReservationTable } from '../../src/admission/reservations.js';
import { asTenantId, type NodeId, type RequestId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import type { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { NodeCore } from '../../src/engine/node-core.js';
import type { Member } from '../../src/mesh/membership.js';
import type { MeshNode, PolicyReplica } from '../../src/mesh/mesh-node.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { emptyPolicy, members, MemoryNetwork, type NetworkFaults, testCrypto, testSecret } from './mesh-network.js';

export interface GateNode {
  readonly core: NodeCore;
  readonly mesh: MeshNode;
  readonly counter: WindowedCounter;
  readonly escrow: EscrowBook;
  readonly reservations: ReservationTable;
  readonly gate: QuotaGate;
}

export interface GateNodeOptions {
  readonly quorumTimeoutMs?: number;
  /** What the mesh replicates as policy; a stub that holds nothing unless given. */
  readonly policy?: PolicyReplica;
}

/** One member's node core, started fresh (no recovery: every node starts at once, empty). */
export function makeGateNode(id: NodeId, all: readonly Member[], random: SeededRandom, options: GateNodeOptions = {}): GateNode {
  const member = all.find((m) => m.id === id);
  if (member === undefined) throw new Error(`${id} is not a member`);
  const core = new NodeCore({
    self: id,
    region: member.region,
    members: all,
    secret: testSecret,
    crypto: testCrypto(random),
    incarnation: '1',
    // The gate's jitter as QuotaGate seeds it by default; the claims' and pool's from the member count too.
    randoms: { gate: new SeededRandom(all.length), claims: new SeededRandom(all.length + 1), pool: new SeededRandom(all.length + 2) },
    recovering: false,
    meshPolicy: options.policy ?? emptyPolicy(),
    ...(options.quorumTimeoutMs === undefined ? {} : { quorumTimeoutMs: options.quorumTimeoutMs }),
  });
  return { core, mesh: core.mesh, counter: core.counter, escrow: core.escrow, reservations: core.reservations, gate: core.gate };
}

/** Every decision a gate delivered, by request id: a request must get exactly one. */
export class Decisions {
  readonly byId = new Map<string, QuotaDecision[]>();
  /** When each request arrived: rejections carry retry hints from that time. */
  readonly arrivedAtMs = new Map<string, number>();
  /** Whether the last `admit` was decided on the node's own view: by the drain right after the call, with no frame or tick between. */
  lastSynchronous = false;

  record(id: string): (decision: QuotaDecision) => void {
    return (decision) => {
      const list = this.byId.get(id) ?? [];
      list.push(decision);
      this.byId.set(id, list);
    };
  }

  /** The only decision for `id`, or undefined while none came; throws on a second one. */
  of(id: string): QuotaDecision | undefined {
    const list = this.byId.get(id);
    if (list !== undefined && list.length > 1) throw new Error(`request ${id} was decided ${list.length} times`);
    return list?.[0];
  }
}

export class GateMesh {
  readonly nodes: GateNode[];
  readonly network: MemoryNetwork<NodeCore>;
  readonly decisions = new Decisions();

  constructor(count: number, seed: number, faults: NetworkFaults = { loss: 0, duplicate: 0, latencyMsMax: 5 }, options: GateNodeOptions = {}) {
    const random = new SeededRandom(seed);
    const all = members(count);
    this.nodes = all.map((m) => makeGateNode(m.id, all, random, options));
    this.network = new MemoryNetwork(
      this.nodes.map((n) => n.core),
      random,
      faults,
    );
  }

  get nowMs(): number {
    return this.network.nowMs;
  }

  /** Admits at node `index` now, recording the decision under the request id. */
  admit(index: number, request: QuotaRequest): void {
    const id = request.requestId;
    let decided = false;
    const record = this.decisions.record(id);
    this.decisions.arrivedAtMs.set(id, this.nowMs);
    const { core } = this.nodes[index]!;
    core.admit(request, this.nowMs, (decision) => {
      decided = true;
      record(decision);
    });
    // The core never answers from inside the call; a decision on its own view is ready at once.
    core.drainCompletions();
    this.decisions.lastSynchronous = decided;
  }

  /** Advances virtual time: the network routes frames and ticks each node core when due (its mesh, gate and claims). */
  step(stepMs = 5): void {
    this.network.step(stepMs);
  }

  run(durationMs: number, stepMs = 5): void {
    for (let t = 0; t < durationMs; t += stepMs) this.step(stepMs);
  }

  /** Steps until `done()` holds; false if it still does not after `limitMs`. */
  runUntil(done: () => boolean, limitMs: number, stepMs = 5): boolean {
    for (let t = 0; t < limitMs; t += stepMs) {
      if (done()) return true;
      this.step(stepMs);
    }
    return done();
  }
}

export const tenant = asTenantId('acme');

/** A request of tenant `acme` under `rules`, with an estimate per metric. */
export function quotaRequest(id: string, rules: readonly LimitRule[], amounts: Record<string, number>, leaseMs = 600_000): QuotaRequest {
  return {
    requestId: id as RequestId,
    tenant,
    subjects: [{ scope: 'tenant', subject: 'acme', rules }],
    amounts: new Map(Object.entries(amounts)),
    leaseMs,
  };
}
