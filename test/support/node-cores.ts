// The cores of one region node built by hand over the in-memory mesh (counter, MeshNode, escrow,
// reservations, quota gate, request claims, tier queue, account pool), with one table of the sizes
// of everything each holds. Built here rather than through a NodeCore so the bound tests can run
// today; once src/engine/node-core.ts owns these cores, `buildNodeCores` can build one of those.
import { EscrowBook } from '../../src/admission/escrow.js';
import { QuotaGate } from '../../src/admission/quota-gate.js';
import { RequestClaims } from '../../src/admission/request-claims.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asRegionId, asReplicaId, type AccountId, type NodeId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { type Member, Membership } from '../../src/mesh/membership.js';
import { MeshNode, type MeshTimings } from '../../src/mesh/mesh-node.js';
import { QuorumRounds } from '../../src/mesh/quorum.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { AccountPool } from '../../src/pool/account-pool.js';
import { TierQueue } from '../../src/schedule/tier-queue.js';
import { emptyPolicy, testCrypto, testSecret } from './mesh-network.js';

export interface NodeCores {
  readonly mesh: MeshNode;
  readonly rounds: QuorumRounds;
  readonly counter: WindowedCounter;
  readonly escrow: EscrowBook;
  readonly reservations: ReservationTable;
  readonly gate: QuotaGate;
  readonly claims: RequestClaims;
  readonly queue: TierQueue;
  readonly pool: AccountPool;
}

export interface NodeCoresOptions {
  /** Strict rounds' and handshakes' timeouts; a coarse virtual step needs more than production's. */
  readonly quorumTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
  /** Accounts of the pool, the same at every node (the policy's). */
  readonly accounts: readonly Account[];
  /** Gossip, digest and heartbeat intervals; a coarse virtual step wants them in whole steps. */
  readonly timings?: MeshTimings;
}

export const region = asRegionId('us-east');

/** An API-key account homed in `region`, with no limits of its own. */
export function poolAccount(id: string, concurrencyMax: number): Account {
  return { id: id as AccountId, kind: 'api-key', homeRegion: region, weight: 1, concurrencyMax, limits: [] };
}

/** One member's cores, wired as src/node/mesh-runtime.ts wires them (the gateway's call path aside). */
export function buildNodeCores(id: NodeId, all: readonly Member[], seed: number, options: NodeCoresOptions): NodeCores {
  const membership = Membership.create(id, all);
  if (!membership.ok) throw new Error(membership.error.reason);
  const random = new SeededRandom(seed);
  const replica = asReplicaId(`${id}~1`);
  const counter = new WindowedCounter(replica);
  const escrow = new EscrowBook(replica, counter);
  const reservations = new ReservationTable(counter);
  let rounds: QuorumRounds | undefined;
  const mesh = new MeshNode({
    membership: membership.value,
    replica,
    secret: testSecret,
    crypto: testCrypto(random),
    counter,
    policy: emptyPolicy(options.timings),
    rights: escrow,
    rounds: (parts) => (rounds = new QuorumRounds(parts)),
    ...(options.quorumTimeoutMs === undefined ? {} : { quorumTimeoutMs: options.quorumTimeoutMs }),
    ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: options.handshakeTimeoutMs }),
  });
  if (rounds === undefined) throw new Error('the mesh node builds its rounds in its constructor');
  const gate = new QuotaGate(counter, reservations, escrow, mesh, all.length, new SeededRandom(seed + 1));
  const claims = new RequestClaims(counter, mesh, new SeededRandom(seed + 2));
  const queue = new TierQueue();
  const pool = new AccountPool({ random: new SeededRandom(seed + 3), shared: { node: id, region } });
  pool.update(options.accounts);
  return { mesh, rounds, counter, escrow, reservations, gate, claims, queue, pool };
}

/** Runs the cores' timers that the mesh network does not (it ticks the MeshNodes). */
export function tickCores(cores: NodeCores, nowMs: number): void {
  if (cores.gate.nextTickMs(nowMs) <= nowMs) cores.gate.tick(nowMs);
  if (cores.claims.nextTickMs(nowMs) <= nowMs) cores.claims.tick(nowMs);
  cores.pool.tick(nowMs);
}

/** Every table the node's cores hold, by `core.table`: what a bound test watches. */
export function coreTableSizes(cores: NodeCores): Record<string, number> {
  const sizes: Record<string, number> = { 'counter.keys': cores.counter.size, 'counter.replicas': cores.counter.replicaCount };
  const add = (core: string, tables: Readonly<Record<string, number>>): void => {
    for (const [table, size] of Object.entries(tables)) sizes[`${core}.${table}`] = size;
  };
  add('mesh', cores.mesh.tableSizes());
  add('rounds', cores.rounds.tableSizes());
  add('escrow', cores.escrow.tableSizes());
  add('reservations', cores.reservations.tableSizes());
  add('gate', cores.gate.tableSizes());
  add('claims', cores.claims.tableSizes());
  add('queue', cores.queue.tableSizes());
  add('pool', { accounts: cores.pool.size, ...cores.pool.totals() });
  return sizes;
}
