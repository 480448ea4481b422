import { asReplicaId, type NodeId, type ReplicaId } from '../core/ids.js';
import type { NodeSnapshot } from '../ledger/node-state.js';

/**
 * Which replica a start of a member is (src/crdt/pn-counter.ts, "Durability"). A node restarted
 * without its state must not reuse its replica id: the incarnation suffix makes such a start a new
 * replica. One whose store names a replica of this member resumes it, and counts its starts, so
 * each start still gets its own Yjs client id (structs an earlier start wrote but never saved
 * cannot collide).
 */
export interface ReplicaIdentity {
  readonly replica: ReplicaId;
  /** This start's number for the replica id (1 for its first). */
  readonly starts: number;
  /** Whether the replica id came from the store (a restart with state). */
  readonly resumed: boolean;
  /** The policy document's Yjs client id for this start. */
  readonly policyClientId: number;
}

/**
 * The identity of a start of `member`: the replica its stored state names, or a new one,
 * `member~incarnation`. Throws when the store holds another member's state: a configuration
 * error (two nodes sharing one data directory) that no node should run with.
 */
export function replicaIdentity(member: NodeId, snapshot: NodeSnapshot | undefined, incarnation: string): ReplicaIdentity {
  const kept = snapshot?.meta.get('replica');
  const resumed = kept !== undefined && kept.startsWith(`${member}~`);
  if (kept !== undefined && !resumed)
    throw new Error(`the data directory holds the state of replica ${kept}, not of node ${member}: give each node its own dataDir`);
  const replica = resumed ? asReplicaId(kept) : asReplicaId(`${member}~${incarnation}`);
  const starts = resumed ? Number(snapshot?.meta.get('starts') ?? '0') + 1 : 1;
  return { replica, starts, resumed, policyClientId: yjsClientId(starts === 1 ? replica : asReplicaId(`${replica}#${starts}`)) };
}

/** Yjs needs a distinct 32-bit client id per incarnation: FNV-1a of the replica id. */
export function yjsClientId(replica: ReplicaId): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < replica.length; i++) {
    hash ^= replica.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}
