import type { NodeId, ReplicaId } from '../core/ids.js';
import type { CounterKey } from '../crdt/counter-key.js';
import type { WindowedCounter } from '../crdt/windowed-counter.js';

/**
 * What a node that died with requests in flight had reserved, released by its successor: the
 * same node started again (a new replica of the same member id, as every start without state
 * is).
 *
 * The problem. A reservation charges the estimate to the tenant's counters on the node's own
 * entry; settlement refunds the difference. A node killed mid-call never settles, and nobody else
 * may write its entry, so its estimates stayed charged for good (issue 13: a tenant over-charged
 * by about 5% in a kill -9 run).
 *
 * Who may release. Only a node that knows the reserver is dead: a partitioned node cannot be
 * told from a dead one, and if a survivor released a partitioned node's reservation that node
 * could still settle it, refunding it twice. A successor knows: its predecessor's process is
 * gone (one process per member id). It releases once it holds every write its predecessor left
 * anywhere, which is when every peer has sent it its whole state since it started
 * (`RoundRunner.allPeersSynced`): a predecessor's settlement that reached any member is then
 * here, so nothing is refunded twice. A predecessor's write that reached no member counted
 * nowhere.
 *
 * What is released. Reservations record hold keys (`holdKeyOf`, in scope `held_<scope>`): each
 * replica's entry on a hold key is what its open reservations hold on the charged key. Summed
 * over the dead incarnations of this member, less what this replica already released there, it
 * is what is still charged for calls nobody will settle. The successor refunds that on the
 * charged key (its own entry) and records the release on the hold key (its own N), so the sum
 * is then zero and a later successor releases nothing twice.
 *
 * Only limits in `eventual` mode take holds (QuotaGate decides): their estimates are released.
 * What the upstream produced for a call whose node died is not known to the mesh; the release
 * charges nothing for it, and the figures count what was released. Estimates under `strict` and
 * `escrow` limits stay charged: those modes promise never to pass the limit, and a call that may
 * have run must count in full.
 */
export const holdScopePrefix = 'held_';

/** The hold key of a charged key: same subject, metric and window, scope `held_<scope>`. */
export function holdKeyOf(counter: WindowedCounter, key: CounterKey): CounterKey {
  return counter.keyFor(`${holdScopePrefix}${key.scope}`, key.subject, key.metric, key.window);
}

export interface ReleaseReport {
  /** Hold keys on which something was released. */
  readonly keys: number;
  /** Units released, over all keys (weighted tokens and requests alike). */
  readonly amount: number;
}

/** The member id of a replica id (`<node>~<incarnation>`). */
export function nodeOfReplica(replica: ReplicaId): NodeId {
  const cut = replica.lastIndexOf('~');
  return (cut < 0 ? replica : replica.slice(0, cut)) as NodeId;
}

/**
 * Releases what the dead incarnations of this member still hold (see the file comment).
 * `openHolds` is what this replica's own open reservations hold, by hold key id. Call it once
 * every peer has sent its whole state; calling it again releases only what arrived since.
 */
export function releasePredecessors(counter: WindowedCounter, openHolds: ReadonlyMap<string, number>): ReleaseReport {
  const self = counter.self;
  const node = nodeOfReplica(self);
  let keys = 0;
  let amount = 0;
  // Collected first: the writes below add keys to the map being walked.
  const holds = [...counter.keys()].filter((key) => key.scope.startsWith(holdScopePrefix));
  for (const hold of holds) {
    // Σ over this member's incarnations of (P − N) is what is open here plus what the dead ones
    // left and nobody released; this replica's own open part is `openHolds`.
    let total = 0;
    for (const [replica, { p, n }] of counter.contributions(hold)) if (nodeOfReplica(replica) === node) total += p - n;
    const releasable = total - (openHolds.get(hold.id) ?? 0);
    if (releasable <= 0) continue;
    const charged = counter.keyFor(hold.scope.slice(holdScopePrefix.length), hold.subject, hold.metric, hold.window);
    // Either both writes or neither: a refused key (expired meanwhile) releases nothing.
    if (!counter.decrement(charged, releasable).ok) continue;
    counter.decrement(hold, releasable);
    keys++;
    amount += releasable;
  }
  return { keys, amount };
}
