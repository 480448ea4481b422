// Quota gates on MeshNodes over the in-memory network: the admission stack of one node per member
// (counter, reservations, escrow book replicated as rights, quota gate), driven by virtual time.
import { EscrowBook } from '../../src/admission/escrow.js';
import { type QuotaDecision, QuotaGate, type QuotaRequest } from '../../src/admission/quota-gate.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, asTenantId, type NodeId, type RequestId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { type Member, Membership } from '../../src/mesh/membership.js';
import { MeshNode, type PolicyReplica } from '../../src/mesh/mesh-node.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { emptyPolicy, members, MemoryNetwork, type NetworkFaults, testCrypto, testSecret } from './mesh-network.js';

export interface GateNode {
  readonly mesh: MeshNode;
  readonly counter: WindowedCounter;
  readonly escrow: EscrowBook;
  readonly reservations: ReservationTable;
  readonly gate: QuotaGate;
}

export interface GateNodeOptions {
  readonly quorumTimeoutMs?: number;
  readonly policy?: PolicyReplica;
}

/** One member's admission stack, wired as src/node/mesh-runtime.ts wires it. */
export function makeGateNode(id: NodeId, all: readonly Member[], random: SeededRandom, options: GateNodeOptions = {}): GateNode {
  const membership = Membership.create(id, all);
  if (!membership.ok) throw new Error(membership.error.reason);
  const replica = asReplicaId(`${id}~1`);
  const counter = new WindowedCounter(replica);
  const escrow = new EscrowBook(replica, counter);
  const reservations = new ReservationTable(counter);
  const mesh = new MeshNode({
    membership: membership.value,
    replica,
    secret: testSecret,
    crypto: testCrypto(random),
    counter,
    policy: options.policy ?? emptyPolicy(),
    rights: escrow,
    ...(options.quorumTimeoutMs === undefined ? {} : { quorumTimeoutMs: options.quorumTimeoutMs }),
  });
  const gate = new QuotaGate(counter, reservations, escrow, mesh, all.length);
  return { mesh, counter, escrow, reservations, gate };
}

/** Every decision a gate delivered, by request id: a request must get exactly one. */
export class Decisions {
  readonly byId = new Map<string, QuotaDecision[]>();
  /** When each request arrived: rejections carry retry hints from that time. */
  readonly arrivedAtMs = new Map<string, number>();
  /** Whether the last `admit` was decided before it returned. */
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
  readonly network: MemoryNetwork;
  readonly decisions = new Decisions();

  constructor(count: number, seed: number, faults: NetworkFaults = { loss: 0, duplicate: 0, latencyMsMax: 5 }, options: GateNodeOptions = {}) {
    const random = new SeededRandom(seed);
    const all = members(count);
    this.nodes = all.map((m) => makeGateNode(m.id, all, random, options));
    this.network = new MemoryNetwork(
      this.nodes.map((n) => n.mesh),
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
    this.nodes[index]!.gate.admit(request, this.nowMs, (decision) => {
      decided = true;
      record(decision);
    });
    this.decisions.lastSynchronous = decided;
  }

  /** Advances virtual time: the network (which ticks the mesh nodes), then each gate's timers. */
  step(stepMs = 5): void {
    this.network.step(stepMs);
    for (const { gate } of this.nodes) if (gate.nextTickMs(this.nowMs) <= this.nowMs) gate.tick(this.nowMs);
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
