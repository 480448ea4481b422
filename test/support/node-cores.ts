// One region node's cores as a NodeCore over the in-memory mesh, with one table of the sizes of
// everything its cores hold: what the bound tests drive and watch.
import type { EscrowBook } from '../../src/admission/escrow.js';
import type { QuotaGate } from '../../src/admission/quota-gate.js';
import type { RequestClaims } from '../../src/admission/request-claims.js';
import type { ReservationTable } from '../../src/admission/reservations.js';
import { asRegionId, type AccountId, type NodeId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import type { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { NodeCore } from '../../src/engine/node-core.js';
import type { Member } from '../../src/mesh/membership.js';
import type { MeshNode, MeshTimings } from '../../src/mesh/mesh-node.js';
import { QuorumRounds } from '../../src/mesh/quorum.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import type { AccountPool } from '../../src/pool/account-pool.js';
import { defaultTierQueueLimits, type TierQueue } from '../../src/schedule/tier-queue.js';
import { emptyPolicy, testCrypto, testSecret } from './mesh-network.js';

export interface NodeCores {
  /** The node core that owns every table below; the mesh network drives it. */
  readonly core: NodeCore;
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

/** One member's node core, as src/node/mesh-runtime.ts builds it (the gateway's call path aside). */
export function buildNodeCores(id: NodeId, all: readonly Member[], seed: number, options: NodeCoresOptions): NodeCores {
  const random = new SeededRandom(seed);
  let rounds: QuorumRounds | undefined;
  const core = new NodeCore({
    self: id,
    region,
    members: all,
    secret: testSecret,
    crypto: testCrypto(random),
    incarnation: '1',
    randoms: { gate: new SeededRandom(seed + 1), claims: new SeededRandom(seed + 2), pool: new SeededRandom(seed + 3) },
    meshPolicy: emptyPolicy(options.timings),
    queueLimits: defaultTierQueueLimits,
    // Every node starts fresh at once: nothing to recover.
    recovering: false,
    rounds: (parts) => (rounds = new QuorumRounds(parts)),
    ...(options.quorumTimeoutMs === undefined ? {} : { quorumTimeoutMs: options.quorumTimeoutMs }),
    ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: options.handshakeTimeoutMs }),
  });
  if (rounds === undefined || core.queue === undefined) throw new Error('the core builds its rounds and its queue in its constructor');
  core.pool.update(options.accounts);
  const { mesh, counter, escrow, reservations, gate, claims, pool, queue } = core;
  return { core, mesh, rounds, counter, escrow, reservations, gate, claims, queue, pool };
}

/** Hands out what the core's calls completed; the mesh network ticks the core itself (mesh, gate, claims, pool). */
export function tickCores(cores: NodeCores, nowMs: number): void {
  if (cores.core.nextTickMs(nowMs) <= nowMs) cores.core.tick(nowMs);
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
