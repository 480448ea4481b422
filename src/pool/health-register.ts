import { compareStamps, type HlcStamp, HybridClock } from '../core/hlc.js';
import type { AccountId, NodeId, RegionId } from '../core/ids.js';
import { healthDetailLengthMax, healthRecordsMax } from '../core/limits.js';
import type { DisableReason } from './account-health.js';

/**
 * Account health shared by the whole mesh: per account, one last-writer-wins register stamped
 * with a hybrid logical clock (src/core/hlc.ts), replicated like the escrow rights — the records
 * that changed go to every peer each gossip interval, the whole register to a peer whose link
 * opens, and a record a join raised is passed on, so a bridge node carries it across a partition.
 *
 * Why a register and not the policy document or the counters:
 *  - The state is a value that is replaced, not a sum: "paused until T", "disabled because X",
 *    "available". Counters add; only a register says which word is the latest.
 *  - The policy document is the operator's desired state, audited, persisted and compacted; health
 *    changes with every exhausted window, from every region, and has no place in its history.
 *  - An HLC rather than wall time alone: an operator's re-enable made after a pause was heard
 *    must win over that pause even where the clocks disagree by more than the gap between them;
 *    the HLC orders a write after every write its node had seen. Concurrent writes (two regions
 *    that had not heard each other) fall to wall time, then node id: the same winner everywhere.
 *
 * Merge is the maximum by stamp, so it is commutative, associative and idempotent
 * (test/pool/health-register.prop.test.ts), and every replica that has received the same records
 * holds the same value. A region cut off from the rest keeps the last record it heard.
 *
 * Bounded by `healthRecordsMax`; past it the record with the oldest stamp is dropped (the policy
 * allows half as many accounts, so only records of long-removed accounts ever go).
 */
export const pauseCauses = ['throttled', 'exhausted', 'overloaded', 'circuit-open'] as const;
export type PauseCause = (typeof pauseCauses)[number];

export type SharedHealth =
  /** The account may serve: written by a success after a pause, and by an operator's re-enable. */
  | { readonly kind: 'available' }
  /** Nobody calls it before `untilMs`; after it, the home region's one probe decides (see AccountPool). */
  | { readonly kind: 'paused'; readonly cause: PauseCause; readonly untilMs: number }
  /** Until an operator re-enables it or its credential is replaced. */
  | { readonly kind: 'disabled'; readonly reason: DisableReason };

export interface HealthRecord {
  readonly account: AccountId;
  readonly health: SharedHealth;
  readonly stamp: HlcStamp;
  /** The writer's region: the account's home for pauses, anywhere for an operator's word. */
  readonly region: RegionId;
}

/** What the mesh needs from the register: the shape of `RightsReplica`, with the clock for stamps. */
export interface HealthReplica {
  takeChanged(): HealthRecord[];
  state(): HealthRecord[];
  join(records: readonly HealthRecord[], nowMs: number): void;
}

export interface HealthRegisterStats {
  writes: number;
  /** Records a join took (newer than what was held). */
  applied: number;
  /** Records a join left (older or equal). */
  stale: number;
  evicted: number;
}

/** The record as the wire carries it: a credential's detail cut to `healthDetailLengthMax`. */
function bounded(health: SharedHealth): SharedHealth {
  if (health.kind !== 'disabled' || health.reason.kind !== 'credential' || health.reason.detail.length <= healthDetailLengthMax) return health;
  return { kind: 'disabled', reason: { kind: 'credential', detail: health.reason.detail.slice(0, healthDetailLengthMax) } };
}

export class HealthRegister implements HealthReplica {
  readonly stats: HealthRegisterStats = { writes: 0, applied: 0, stale: 0, evicted: 0 };
  private readonly records = new Map<AccountId, HealthRecord>();
  private changed = new Map<AccountId, HealthRecord>();
  private readonly clock: HybridClock;

  /** `onApplied` hears every record that replaced the one held, own writes included. */
  constructor(
    node: NodeId,
    private readonly region: RegionId,
    private readonly onApplied: (record: HealthRecord, nowMs: number) => void = () => {},
  ) {
    this.clock = new HybridClock(node);
  }

  get size(): number {
    return this.records.size;
  }

  get(account: AccountId): HealthRecord | undefined {
    return this.records.get(account);
  }

  /** Records a new word on an account, stamped after everything this node has seen. */
  write(account: AccountId, health: SharedHealth, nowMs: number): HealthRecord {
    const record: HealthRecord = { account, health: bounded(health), stamp: this.clock.now(nowMs), region: this.region };
    this.stats.writes++;
    this.put(record, nowMs);
    return record;
  }

  join(records: readonly HealthRecord[], nowMs: number): void {
    for (const record of records) {
      this.clock.observe(record.stamp, nowMs);
      const held = this.records.get(record.account);
      if (held !== undefined && compareStamps(record.stamp, held.stamp) <= 0) {
        this.stats.stale++;
        continue;
      }
      this.stats.applied++;
      this.put(record, nowMs);
    }
  }

  takeChanged(): HealthRecord[] {
    if (this.changed.size === 0) return [];
    const changed = [...this.changed.values()];
    this.changed = new Map();
    return changed;
  }

  state(): HealthRecord[] {
    return [...this.records.values()];
  }

  private put(record: HealthRecord, nowMs: number): void {
    if (!this.records.has(record.account) && this.records.size >= healthRecordsMax) this.evictOldest();
    this.records.set(record.account, record);
    this.changed.set(record.account, record);
    this.onApplied(record, nowMs);
  }

  private evictOldest(): void {
    let oldest: HealthRecord | undefined;
    for (const record of this.records.values()) if (oldest === undefined || compareStamps(record.stamp, oldest.stamp) < 0) oldest = record;
    if (oldest === undefined) return;
    this.records.delete(oldest.account);
    this.changed.delete(oldest.account);
    this.stats.evicted++;
  }
}
