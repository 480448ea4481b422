import type { Random } from '../src/core/random.js';
import type { NetworkProfile, PartitionKind } from './scenario.js';
import { rttMatrixMs } from './scenario.js';

/**
 * The simulated network between region nodes: latency from the inter-region RTT matrix plus
 * jitter, per-link bandwidth, loss and duplication of droppable frames, and partitions.
 *
 * Model. Mesh links are WebSockets over TCP, and the simulator keeps their contract: while a
 * connection is up, it delivers frames in order, exactly once, unless the sender marked the
 * frame droppable (gossip deltas, acks, heartbeats), in which case it may be lost or duplicated
 * (the send queue of a real link drops them under pressure, and resends duplicate them).
 * A partition makes a pair unreachable in one or both directions; TCP needs both directions, so
 * any partition between two nodes cuts their connection once the peers notice (the heartbeat
 * timeout) and stops new ones from opening until it heals. Frames in flight on a cut connection
 * are lost, except those a crashed node had sent: its kernel still delivers them.
 */
export class SimNetwork {
  /** blocked[i][j]: frames from i to j are dropped. */
  private readonly blocked: boolean[][];
  /** Per directed pair: when the link is free again (bandwidth) and the last delivery time (FIFO). */
  private readonly busyUntil: number[][];
  private readonly lastDelivery: number[][];
  /** The profile's slow and muted links, read for every frame: kept once rather than defaulted per call. */
  private readonly slowLinks: NonNullable<NetworkProfile['slowLinks']>;
  private readonly mutedLinks: NonNullable<NetworkProfile['mutedLinks']>;

  constructor(
    readonly size: number,
    private readonly profile: NetworkProfile,
    private readonly random: Random,
  ) {
    this.blocked = matrix(size, false);
    this.busyUntil = matrix(size, 0);
    this.lastDelivery = matrix(size, 0);
    this.slowLinks = profile.slowLinks ?? [];
    this.mutedLinks = profile.mutedLinks ?? [];
  }

  reachable(i: number, j: number): boolean {
    return !(this.blocked[i] as boolean[])[j] && !(this.blocked[j] as boolean[])[i];
  }

  rttMs(i: number, j: number): number {
    return (rttMatrixMs[i] as readonly number[])[j] as number;
  }

  /** When the last frame sent so far from i to j arrives (0 if none). */
  lastDeliveryMs(i: number, j: number): number {
    return (this.lastDelivery[i] as number[])[j] as number;
  }

  /**
   * When a frame of `bytes` sent now from i to j arrives: half the RTT, jitter, the time to put it
   * on the wire, and never before the previous frame on the same link (links are ordered).
   */
  deliveryTime(nowMs: number, i: number, j: number, bytes: number): number {
    const busy = this.busyUntil[i] as number[];
    const last = this.lastDelivery[i] as number[];
    const transmitMs = this.profile.bytesPerMs > 0 ? bytes / this.profile.bytesPerMs : 0;
    const start = Math.max(nowMs, busy[j] as number);
    busy[j] = start + transmitMs;
    const jitter = this.profile.jitterMs > 0 ? this.random.float() * this.profile.jitterMs : 0;
    // Whole milliseconds, like the clocks the nodes read in production.
    const at = Math.max(Math.ceil(start + transmitMs + this.rttMs(i, j) / 2 + jitter + this.extraMs(i, j)), last[j] as number);
    last[j] = at;
    return at;
  }

  /** The scenario's extra one-way delay from i to j (`NetworkProfile.slowLinks`). */
  private extraMs(i: number, j: number): number {
    let extra = 0;
    for (const link of this.slowLinks) if (link.from === i && link.to === j) extra += link.extraMs;
    return extra;
  }

  /**
   * Whether a droppable frame sent now from i to j is lost: always on a muted link
   * (`NetworkProfile.mutedLinks`), else drawn; then whether it is duplicated, drawn in that order.
   */
  dropDroppable(nowMs: number, i: number, j: number): boolean {
    for (const link of this.mutedLinks) if (link.from === i && link.to === j && nowMs >= link.fromMs && nowMs < link.toMs) return true;
    return this.profile.loss > 0 && this.random.float() < this.profile.loss;
  }

  duplicateDroppable(): boolean {
    return this.profile.duplicate > 0 && this.random.float() < this.profile.duplicate;
  }

  /** Forgets the FIFO position of a pair: a new connection starts empty. */
  resetLink(i: number, j: number): void {
    (this.lastDelivery[i] as number[])[j] = 0;
    (this.lastDelivery[j] as number[])[i] = 0;
  }

  /** Applies a partition; returns the directed pairs it blocks so the caller can undo them. */
  partition(kind: PartitionKind, node: number | undefined): [number, number][] {
    const pairs = partitionPairs(this.size, kind, node);
    for (const [i, j] of pairs) (this.blocked[i] as boolean[])[j] = true;
    return pairs;
  }

  unblock(pairs: readonly [number, number][]): void {
    for (const [i, j] of pairs) (this.blocked[i] as boolean[])[j] = false;
  }

  healAll(): void {
    for (const row of this.blocked) row.fill(false);
  }
}

/** The directed pairs (from, to) a partition blocks among `size` nodes. */
export function partitionPairs(size: number, kind: PartitionKind, node: number | undefined): [number, number][] {
  const pairs: [number, number][] = [];
  const cut = (a: number, b: number): void => {
    pairs.push([a, b], [b, a]);
  };
  const target = node ?? 0;
  switch (kind) {
    case 'isolate':
      for (let j = 0; j < size; j++) if (j !== target) cut(target, j);
      break;
    case 'one-way':
      for (let j = 0; j < size; j++) if (j !== target) pairs.push([target, j]);
      break;
    case 'majority': {
      // The first ⌈n/2⌉ nodes (rotated by `node`) against the rest.
      const side = (i: number): boolean => (i - target + size) % size < Math.ceil(size / 2);
      for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) if (side(i) !== side(j)) cut(i, j);
      break;
    }
    case 'ring':
      // Each node keeps only its two ring neighbours.
      for (let i = 0; i < size; i++) {
        for (let j = i + 1; j < size; j++) {
          const distance = Math.min(j - i, size - (j - i));
          if (distance > 1) cut(i, j);
        }
      }
      break;
    case 'bridge': {
      // Two halves that only the bridge node (`node`) connects.
      const bridge = target;
      const others = Array.from({ length: size }, (_, i) => i).filter((i) => i !== bridge);
      const half = Math.ceil(others.length / 2);
      const left = new Set(others.slice(0, half));
      for (const i of others) for (const j of others) if (i < j && left.has(i) !== left.has(j)) cut(i, j);
      break;
    }
  }
  return pairs;
}

function matrix<T>(size: number, value: T): T[][] {
  return Array.from({ length: size }, () => new Array<T>(size).fill(value));
}
