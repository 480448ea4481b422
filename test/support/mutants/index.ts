// The mutant catalogue: one-line-in-spirit breaks of the protocols, each substituted through the simulator's test hooks (never a flag in production code), and the swarm that must catch it.
import { MeshNode } from '../../../src/mesh/mesh-node.js';
import type { RunOptions } from '../../../sim/simulator.js';
import type { Scenario } from '../../../sim/scenario.js';
import { LaggingStore } from '../lagging-store.js';
import { LocalOnlyRounds } from '../local-only-rounds.js';
import { SingleRoundApplyAndRead } from '../unsafe-rounds.js';
import { NoHeldRepair } from './no-held-repair.js';
import { OverdrawingEscrowBook } from './overdrawing-escrow.js';

/** The swarm bases (sim/scenarios/swarm-*.json) the catalogue draws its seeds on. */
export type MutantSwarm = 'swarm-hot-strict' | 'swarm-hot-escrow' | 'swarm-hot-mesh' | 'swarm-claims' | 'swarm-hot-durable';

export interface Mutant {
  readonly name: string;
  /** What the one-line change is, and why it is wrong. */
  readonly change: string;
  readonly swarm: MutantSwarm;
  /** The swarm's base shortened to this many simulated ms, if set (`--duration`). */
  readonly durationMs?: number;
  /** The checkers expected to fire (any one of them catching it counts). */
  readonly caughtBy: readonly string[];
  /**
   * The first seed of `swarm` (1, 2, …) on which the checkers catch it, as `MUTANT_SEEDS=100`
   * found it: what `npm test` replays. Undefined: not caught within the budget yet.
   */
  readonly witness: number | undefined;
  readonly options: (scenario: Scenario) => RunOptions;
}

export const mutants: readonly Mutant[] = [
  {
    name: 'single-round',
    witness: 8,
    change:
      'strict rounds apply the write and read in the same round trip (test/support/unsafe-rounds.ts): three concurrent batches can each see only one other',
    swarm: 'swarm-hot-strict',
    caughtBy: ['quota', 'quorum'],
    options: () => ({ rounds: (parts) => new SingleRoundApplyAndRead(parts) }),
  },
  {
    name: 'recovery-fence-off',
    witness: 8,
    change:
      'a node that starts without the state of its earlier incarnation serves quorum reads at once instead of recovering first (MeshNodeOptions.recovering false)',
    swarm: 'swarm-hot-strict',
    caughtBy: ['quota', 'quorum'],
    options: () => ({ mesh: (options) => new MeshNode({ ...options, recovering: false, syncPeers: true }) }),
  },
  {
    name: 'escrow-overdraw',
    witness: 3,
    change: 'an escrow spend may take a replica’s rights one unit below zero (test/support/mutants/overdrawing-escrow.ts)',
    swarm: 'swarm-hot-escrow',
    caughtBy: ['escrow', 'quota'],
    options: () => ({ escrow: (replica, counter) => new OverdrawingEscrowBook(replica, counter) }),
  },
  {
    name: 'rights-delta-dropped',
    witness: 1,
    change: 'every rights-delta frame is lost on the wire: escrow transfers and claims never reach the other nodes',
    swarm: 'swarm-hot-escrow',
    caughtBy: ['rights', 'final-read'],
    options: () => ({ dropFrame: (frame) => frame.kind === 'rights-delta' }),
  },
  {
    name: 'no-held-repair',
    witness: 50,
    change:
      'the digest exchange no longer repairs entries held above a peer’s digest (MeshNode.heldAbove always false, test/support/mutants/no-held-repair.ts)',
    swarm: 'swarm-hot-mesh',
    caughtBy: ['convergence', 'final-read', 'invariant'],
    options: () => ({ mesh: (options) => new NoHeldRepair(options) }),
  },
  {
    name: 'local-only-claims',
    witness: 1,
    change: 'request-id claims consult only their own region (test/support/local-only-rounds.ts)',
    swarm: 'swarm-claims',
    durationMs: 5_000,
    caughtBy: ['claims', 'quorum'],
    options: () => ({ rounds: () => new LocalOnlyRounds() }),
  },
  {
    name: 'lagging-disk',
    witness: 1,
    change:
      'the disk acknowledges a commit before it is durable (test/support/lagging-store.ts): a restarted node resumes its replica after losing what it sent',
    swarm: 'swarm-hot-durable',
    caughtBy: ['durability', 'invariant', 'quota', 'escrow', 'accounting'],
    options: () => ({ store: (disk) => new LaggingStore(disk) }),
  },
  {
    name: 'all-member-writes',
    witness: 7,
    change: 'strict writes wait for every member instead of a majority (W = N, R = 1: still safe, since W + R > N), so one node down stops admission',
    swarm: 'swarm-hot-strict',
    caughtBy: ['availability'],
    options: (scenario) => ({ mesh: (options) => new MeshNode({ ...options, quorum: { members: scenario.regions, write: scenario.regions, read: 1 } }) }),
  },
];
