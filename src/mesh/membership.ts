import type { NodeId, RegionId } from '../core/ids.js';
import { isValidId } from '../core/ids.js';
import { meshMembersMax } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';

/**
 * The mesh members come from configuration, never from who happens to be connected: quorum
 * sizes for strict quotas must not shrink when a partition hides half the mesh. Liveness is a
 * separate, local opinion derived from heartbeats.
 */
export interface Member {
  readonly id: NodeId;
  readonly region: RegionId;
  /** Where its mesh endpoint listens, e.g. `ws://10.0.0.5:7400`. */
  readonly url: string;
}

export interface QuorumSizes {
  readonly members: number;
  readonly write: number;
  readonly read: number;
}

export type Liveness = 'alive' | 'suspect' | 'dead';

export interface MembershipError {
  readonly kind: 'bad-membership';
  readonly reason: string;
}

export class Membership {
  private readonly byId: ReadonlyMap<NodeId, Member>;

  private constructor(
    readonly self: Member,
    readonly members: readonly Member[],
  ) {
    this.byId = new Map(members.map((m) => [m.id, m]));
  }

  static create(selfId: NodeId, members: readonly Member[]): Result<Membership, MembershipError> {
    if (members.length === 0 || members.length > meshMembersMax) {
      return err({ kind: 'bad-membership', reason: `a mesh has 1 to ${meshMembersMax} members, got ${members.length}` });
    }
    const ids = new Set<string>();
    for (const member of members) {
      if (!isValidId(member.id) || !isValidId(member.region)) return err({ kind: 'bad-membership', reason: `invalid member or region id "${member.id}"` });
      if (ids.has(member.id)) return err({ kind: 'bad-membership', reason: `member "${member.id}" is listed twice` });
      ids.add(member.id);
    }
    const self = members.find((m) => m.id === selfId);
    if (self === undefined) return err({ kind: 'bad-membership', reason: `this node "${selfId}" is not a configured member` });
    return ok(new Membership(self, [...members]));
  }

  get peers(): readonly Member[] {
    return this.members.filter((m) => m.id !== this.self.id);
  }

  isPeer(id: NodeId): boolean {
    return id !== this.self.id && this.byId.has(id);
  }

  member(id: NodeId): Member | undefined {
    return this.byId.get(id);
  }

  /**
   * One connection per pair: the member with the smaller id dials the larger. Both sides agree
   * without talking, and a restarted node is redialed by, or redials, the same peers.
   */
  dialTargets(): readonly Member[] {
    return this.peers.filter((m) => m.id > this.self.id);
  }

  /** Majority quorums over the configured members: W + R > N, so every read meets every write. */
  quorum(): QuorumSizes {
    const members = this.members.length;
    const majority = Math.floor(members / 2) + 1;
    return { members, write: majority, read: majority };
  }
}

/**
 * A peer is alive while it was heard from within 4 heartbeat intervals, suspect within 12, and
 * dead after that or if never heard from.
 */
export function livenessOf(lastHeardMs: number | undefined, nowMs: number, heartbeatIntervalMs: number): Liveness {
  if (lastHeardMs === undefined) return 'dead';
  const silentMs = nowMs - lastHeardMs;
  if (silentMs <= 4 * heartbeatIntervalMs) return 'alive';
  if (silentMs <= 12 * heartbeatIntervalMs) return 'suspect';
  return 'dead';
}
