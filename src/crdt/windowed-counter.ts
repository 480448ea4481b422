import { assert, isCount } from '../core/assert.js';
import type { ReplicaId } from '../core/ids.js';
import { counterKeysMax, counterValueMax, counterVersionMax, replicasMax, windowExpiryHorizonMs } from '../core/limits.js';
import { err, OK_VOID, type Result } from '../core/result.js';
import type { CounterKey } from './counter-key.js';
import { CounterKeyCache } from './counter-key-cache.js';
import type { PnEntry, PnState } from './pn-counter.js';
import { type Window, windowAt, windowLengthMs, windowOffsetMs, windowUnitCodes, windowUnits, type WindowUnit } from './window.js';

/**
 * A map of PN-counters keyed by `(scope, subject, metric, window)`, replicated as one delta-state
 * CRDT: every key holds one `(p, n)` entry per replica, only the owner writes its entries, and
 * joins take the point-wise maximum (see `pn-counter.ts` for why that converges).
 *
 * Versions and anti-entropy. Each replica numbers its outgoing batches: `takeDelta()` stamps the
 * entries changed since the last batch with the next version `v` and returns them with the claim
 * "this holds every change of replica R with version in (v−1, v]" (a `VersionRange`). A receiver
 * advances its known version of R only when a range starts at or below what it already knows, so
 * a lost batch leaves a gap that the known version does not skip over. The digest is that vector
 * of known versions; `deltaSince(digest)` returns exactly the entries the digest's owner lacks,
 * with ranges that let it advance. A new or long-gone peer sends an empty digest and gets the
 * full state.
 *
 * Memory. Keys map to slots; each slot holds `stride` replica cells of three doubles (p, n,
 * version) side by side, so a join touches one cache line per entry and a key with eight
 * replicas costs 192 bytes instead of eight small objects. Slots live in fixed-size pages: the
 * map grows a page at a time, without copying, so growth never pauses a join and capacity never
 * overshoots by more than one page. `stride` doubles when a new replica arrives past it.
 *
 * Expiry. `expire(nowMs)` drops windows that ended more than `horizonMs` ago and raises a
 * per-unit watermark; joins and increments below the watermark are refused, so a late delta
 * cannot resurrect an expired window. Memory is bounded by live windows and by `keysMax`.
 *
 * A replica that loses its state must rejoin under a new replica id: see `pn-counter.ts`.
 *
 * Durability. A node that keeps its state on disk resumes under its own replica id, which is
 * safe only if no peer ever saw an own entry larger than the disk holds. `takeUnsaved()` hands
 * the owner every own entry changed since the last call, stamped first so that the version saved
 * is the version sent, and every other replica's entry a join raised; the owner writes them before
 * it sends any frame (src/node/mesh-runtime.ts commits, then flushes), so an acknowledged write is
 * on disk. `restore` puts them back at start. Other replicas' entries are kept too because a dead
 * incarnation (one that lost its disk) never sends its own again: found by the simulator's
 * durability swarm, its counts lived only in the memory of the nodes that held them, and a few
 * overlapping restarts with state lost them for good (an escrow claims counter that forgot a
 * claim handed the same rights out twice).
 */

/** One replica's entry for one key, as carried by deltas. */
export interface CounterEntry {
  readonly key: CounterKey;
  readonly replica: ReplicaId;
  readonly p: number;
  readonly n: number;
  /** The owner's batch version at which this entry last changed. */
  readonly version: number;
}

/** A claim that a delta holds every change of `replica` with a version in `(from, to]`. */
export interface VersionRange {
  readonly replica: ReplicaId;
  readonly from: number;
  readonly to: number;
}

/** A delta, a repair or a full state: they have the same shape and the same join. */
export interface CounterDelta {
  readonly entries: readonly CounterEntry[];
  readonly ranges: readonly VersionRange[];
}

/** Per replica, the highest version up to which the digest's owner holds every change. */
export type Digest = ReadonlyMap<ReplicaId, number>;

export type CounterError = { readonly kind: 'keys-full'; readonly keysMax: number } | { readonly kind: 'window-expired'; readonly key: CounterKey };

/** What a join did; entries dropped for overflow mean the state is incomplete (and counted). */
export interface JoinReport {
  readonly entriesApplied: number;
  readonly entriesExpired: number;
  readonly entriesOverflowed: number;
}

export interface WindowedCounterOptions {
  /** Live keys this map may hold; at most `counterKeysMax`. */
  readonly keysMax?: number;
  /** How long after its end a window is kept; see `windowExpiryHorizonMs`. */
  readonly horizonMs?: number;
  /**
   * Hears every change of this replica's own entries (`increment`, `decrement`), after it is
   * made: the simulator's oracle counts what each replica truly did through it. Must not throw.
   */
  readonly onOwnChange?: OwnChangeObserver;
}

/** A change of a replica's own entry of `key`: `increment` added to p, `decrement` to n. */
export type OwnChangeObserver = (key: CounterKey, increment: number, decrement: number) => void;

const emptyDigest: Digest = new Map();
/** A key cache hint: the key holds no slot (hints ≥ 0 are slots, −1 is no hint). */
const slotAbsent = -2;
const strideInitial = 4;
/** Slots per page: 1,024 slots × 4 replicas × 24 bytes = 96 KiB per page at the initial stride. */
const pageShift = 10;
const pageSlots = 1 << pageShift;
const pageMask = pageSlots - 1;
/** Doubles per cell: p, n, version. */
const cellWidth = 3;

export class WindowedCounter {
  readonly keysMax: number;
  readonly horizonMs: number;
  private readonly onOwnChange: OwnChangeObserver | undefined;

  private readonly slotByKey = new Map<string, number>();
  private keyBySlot: (CounterKey | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private slotsUsed = 0;

  private readonly replicaIds: ReplicaId[] = [];
  private readonly replicaIndex = new Map<ReplicaId, number>();
  private stride = strideInitial;
  /** Cell (slot, r) is at `pages[slot >> pageShift]`, offset `((slot & pageMask) × stride + r) × 3`. */
  private pages: Float64Array[] = [];
  /** Per replica index: the version up to which this state holds every change of that replica. */
  private readonly known = new Float64Array(replicasMax);
  /**
   * Per replica index: the highest version of any entry held, contiguous or not. Entries above
   * `known` arrived out of order; they can still be repaired to peers (see `heldVersions`).
   */
  private readonly held = new Float64Array(replicasMax);

  /** Slots whose own entry changed since the last stamp. */
  private dirty: number[] = [];
  /** Slots stamped since the last `takeDelta`. */
  private outgoing: number[] = [];
  /** Slots whose own entry changed since the last `takeUnsaved` (see "Durability" above). */
  private unsaved: number[] = [];
  /**
   * Other replicas' cells a join raised since the last `takeUnsaved`, as `slot × replicasMax +
   * column`; kept only once `keepDurable` was called (an owner then takes them every commit).
   */
  private readonly unsavedPeers = new Set<number>();
  private durable = false;
  /** Per slot: bit 1 = in `dirty`, bit 2 = in `outgoing`, bit 4 = in `unsaved`. */
  private marks = new Uint8Array(pageSlots);
  private ownVersion = 0;
  private takenVersion = 0;

  /** Per unit code: windows with a smaller index are expired. */
  private readonly watermark = new Float64Array(windowUnits.length).fill(-Infinity);

  /** Keys of the read path by their parts, with their slots as hints; made on first use. */
  private keyCache: CounterKeyCache | undefined;
  /** Moves on (wrapping in 32 bits) whenever an expiry frees slots: slot hints older than it may be wrong. */
  private slotEpoch = 0;

  constructor(
    readonly self: ReplicaId,
    options: WindowedCounterOptions = {},
  ) {
    this.keysMax = options.keysMax ?? counterKeysMax;
    this.horizonMs = options.horizonMs ?? windowExpiryHorizonMs;
    this.onOwnChange = options.onOwnChange;
    assert(Number.isSafeInteger(this.keysMax) && this.keysMax > 0 && this.keysMax <= counterKeysMax, 'keysMax out of range');
    assert(this.horizonMs >= 0, 'horizonMs must not be negative');
    this.replicaIds.push(self);
    this.replicaIndex.set(self, 0);
  }

  /** Live keys. */
  get size(): number {
    return this.slotByKey.size;
  }

  /** Replicas this state has entries or versions for, itself included. */
  get replicaCount(): number {
    return this.replicaIds.length;
  }

  /** This replica's latest batch version. */
  get version(): number {
    return this.ownVersion;
  }

  increment(key: CounterKey, amount: number): Result<undefined, CounterError> {
    return this.change(key, amount, true);
  }

  /** Adds to the negative total: refunds of reservations. The value may go below zero. */
  decrement(key: CounterKey, amount: number): Result<undefined, CounterError> {
    return this.change(key, amount, false);
  }

  private change(key: CounterKey, amount: number, positive: boolean): Result<undefined, CounterError> {
    assert(isCount(amount), 'amount must be a non-negative safe integer');
    if (key.window.index < (this.watermark[windowUnitCodes[key.window.unit]] as number)) {
      return err({ kind: 'window-expired', key });
    }
    let slot = this.slotByKey.get(key.id);
    if (slot === undefined) {
      if (this.slotByKey.size >= this.keysMax) return err({ kind: 'keys-full', keysMax: this.keysMax });
      slot = this.allocateSlot(key);
    }
    // Look the page up only now: allocating the slot may have added it. The own replica is
    // always column 0.
    const page = this.pages[slot >> pageShift] as Float64Array;
    const i = (slot & pageMask) * this.stride * cellWidth + (positive ? 0 : 1);
    const next = (page[i] as number) + amount;
    assert(next <= counterValueMax, 'counter entry overflow');
    page[i] = next;
    const mark = this.marks[slot] as number;
    if ((mark & 1) === 0) {
      this.marks[slot] = mark | 1;
      this.dirty.push(slot);
    }
    this.markUnsaved(slot);
    if (this.onOwnChange !== undefined) this.onOwnChange(key, positive ? amount : 0, positive ? 0 : amount);
    return OK_VOID;
  }

  /** Keeps the other replicas' entries joins raise for `takeUnsaved` from now on (see "Durability" above). */
  keepDurable(): void {
    this.durable = true;
  }

  /**
   * This replica's own entries changed since the last call, stamped first, and the other
   * replicas' entries joins raised meanwhile: what the owner must make durable before any frame
   * leaves (see "Durability" above).
   */
  takeUnsaved(): CounterEntry[] {
    this.stamp();
    if (this.unsaved.length === 0 && this.unsavedPeers.size === 0) return [];
    const entries: CounterEntry[] = [];
    for (const slot of this.unsaved) {
      this.marks[slot] = (this.marks[slot] as number) & ~4;
      const key = this.keyBySlot[slot];
      if (key !== undefined) this.pushEntry(entries, key, slot, 0);
    }
    this.unsaved = [];
    for (const cell of this.unsavedPeers) {
      const slot = Math.floor(cell / replicasMax);
      const key = this.keyBySlot[slot];
      if (key !== undefined) this.pushEntry(entries, key, slot, cell % replicasMax);
    }
    this.unsavedPeers.clear();
    return entries;
  }

  /**
   * Puts back the entries a durable store kept, before any join or change. Own entries: the next
   * batches are numbered above the highest version restored, so peers that hold some of them ask
   * only for what they lack. Other replicas' entries count again as held, but claim no contiguous
   * history of their owner (its digest entry stays as it was), so anti-entropy with a live owner
   * starts over. Entries of expired windows, and of replicas past `replicasMax`, are left out;
   * returns how many were restored. `versionFloor` is the own version last saved (`version`):
   * the newest own entries may have expired from the store, but their versions were seen.
   */
  restore(entries: readonly CounterEntry[], versionFloor = 0): number {
    assert(isCount(versionFloor) && versionFloor <= counterVersionMax, 'a version floor is a version');
    let restored = 0;
    for (const { key, replica, p, n, version } of entries) {
      assert(isCount(p) && isCount(n) && isCount(version) && version <= counterVersionMax, 'restored entries hold counts');
      if (key.window.index < (this.watermark[windowUnitCodes[key.window.unit]] as number)) continue;
      // The column first: adding one may widen the pages.
      const r = this.replicaColumn(replica);
      if (r === undefined) continue;
      let slot = this.slotByKey.get(key.id);
      if (slot === undefined) {
        if (this.slotByKey.size >= this.keysMax) continue;
        slot = this.allocateSlot(key);
      }
      const page = this.pages[slot >> pageShift] as Float64Array;
      const i = ((slot & pageMask) * this.stride + r) * cellWidth;
      page[i] = Math.max(page[i] as number, p);
      page[i + 1] = Math.max(page[i + 1] as number, n);
      page[i + 2] = Math.max(page[i + 2] as number, version);
      if (r === 0 && version > this.ownVersion) this.ownVersion = version;
      if (r !== 0 && version > (this.held[r] as number)) this.held[r] = version;
      restored++;
    }
    if (versionFloor > this.ownVersion) this.ownVersion = versionFloor;
    this.takenVersion = this.ownVersion;
    this.known[0] = this.ownVersion;
    this.held[0] = this.ownVersion;
    return restored;
  }

  private markUnsaved(slot: number): void {
    const mark = this.marks[slot] as number;
    if ((mark & 4) === 0) {
      this.marks[slot] = mark | 4;
      this.unsaved.push(slot);
    }
  }

  /**
   * The batch of own changes since the last call, stamped with a new version: what the gossip
   * layer sends every interval. Returns an empty delta when nothing changed.
   */
  takeDelta(): CounterDelta {
    this.stamp();
    if (this.outgoing.length === 0) return { entries: [], ranges: [] };
    const entries: CounterEntry[] = [];
    for (const slot of this.outgoing) {
      this.marks[slot] = (this.marks[slot] as number) & ~2;
      const key = this.keyBySlot[slot];
      if (key !== undefined) this.pushEntry(entries, key, slot, 0);
    }
    this.outgoing = [];
    const ranges = [{ replica: this.self, from: this.takenVersion, to: this.ownVersion }];
    this.takenVersion = this.ownVersion;
    return { entries, ranges };
  }

  /** Per replica, the version up to which this state holds every change. */
  digest(): Digest {
    this.stamp();
    return this.versionMap(this.known);
  }

  /**
   * The version up to which this state holds every change of `replica` (0 if none), without
   * stamping pending own changes: for acknowledging a delta on the hot path.
   */
  knownVersion(replica: ReplicaId): number {
    const r = this.replicaIndex.get(replica);
    return r === undefined ? 0 : (this.known[r] as number);
  }

  /**
   * Per replica, the highest version of any entry held. Where it exceeds a peer's digest this
   * state may hold changes the peer lacks even when `known` does not say so: changes that
   * arrived out of order, whose owner may be gone for good and never fill the gap.
   */
  heldVersions(): Digest {
    this.stamp();
    return this.versionMap(this.held);
  }

  /**
   * Everything this state holds that the owner of `digest` lacks, with the ranges that let it
   * advance its own digest. An empty digest yields the full state.
   */
  deltaSince(digest: Digest): CounterDelta {
    this.stamp();
    const replicaCount = this.replicaIds.length;
    const theirs = new Float64Array(replicaCount);
    const ranges: VersionRange[] = [];
    for (let r = 0; r < replicaCount; r++) {
      const replica = this.replicaIds[r] as ReplicaId;
      const from = digest.get(replica) ?? 0;
      theirs[r] = from;
      const to = this.known[r] as number;
      if (to > from) ranges.push({ replica, from, to });
    }
    const entries: CounterEntry[] = [];
    for (let slot = 0; slot < this.slotsUsed; slot++) {
      const key = this.keyBySlot[slot];
      if (key === undefined) continue;
      const page = this.pages[slot >> pageShift] as Float64Array;
      const base = (slot & pageMask) * this.stride * cellWidth;
      for (let r = 0; r < replicaCount; r++) {
        if ((page[base + r * cellWidth + 2] as number) > (theirs[r] as number)) this.pushEntry(entries, key, slot, r);
      }
    }
    return { entries, ranges };
  }

  /**
   * This replica's own entries for `keys`, stamped with a version first: what a strict quorum
   * round writes to its members. The stamp makes the entries part of the next gossip batch too,
   * so a member that received them by quorum write can repair them to others (held versions)
   * even if this replica dies before it gossips.
   */
  ownEntries(keys: readonly CounterKey[]): CounterEntry[] {
    this.stamp();
    const entries: CounterEntry[] = [];
    for (const key of keys) {
      const slot = this.slotByKey.get(key.id);
      if (slot !== undefined) this.pushEntry(entries, key, slot, 0);
    }
    return entries;
  }

  /**
   * Every replica's entries for `keys` (unknown keys and empty cells left out): a quorum read.
   * Own changes are stamped first, like everywhere entries leave: found by the strict swarm, an
   * unstamped own entry went out under its previous version, so a peer held two values under one
   * version and no digest could ever repair the difference.
   */
  entriesFor(keys: readonly CounterKey[]): CounterEntry[] {
    this.stamp();
    const entries: CounterEntry[] = [];
    for (const key of keys) {
      const slot = this.slotByKey.get(key.id);
      if (slot === undefined) continue;
      const page = this.pages[slot >> pageShift] as Float64Array;
      const base = (slot & pageMask) * this.stride * cellWidth;
      for (let r = 0; r < this.replicaIds.length; r++) {
        if ((page[base + r * cellWidth] as number) !== 0 || (page[base + r * cellWidth + 1] as number) !== 0) this.pushEntry(entries, key, slot, r);
      }
    }
    return entries;
  }

  /** The full state, for a new or long-gone peer. */
  state(): CounterDelta {
    return this.deltaSince(emptyDigest);
  }

  /** Merges a delta, a repair or a full state. */
  join(delta: CounterDelta): JoinReport {
    let entriesApplied = 0;
    let entriesExpired = 0;
    let entriesOverflowed = 0;
    // Replicas some of whose entries were dropped: their ranges must not advance the digest,
    // or the missing entries would never be asked for again.
    let incomplete: Set<ReplicaId> | undefined;
    // Deltas come mostly from one replica: remember its column instead of looking it up per entry.
    let lastReplica: ReplicaId | undefined;
    let lastColumn: number | undefined;
    const watermark = this.watermark;
    for (const entry of delta.entries) {
      const { key, p, n, version } = entry;
      assert(isCount(p) && isCount(n) && isCount(version), 'joined entries hold counts');
      if (p === 0 && n === 0) continue;
      if (key.window.index < (watermark[windowUnitCodes[key.window.unit]] as number)) {
        entriesExpired++;
        continue;
      }
      if (entry.replica !== lastReplica) {
        lastReplica = entry.replica;
        lastColumn = this.replicaColumn(entry.replica);
      }
      const r = lastColumn;
      let slot = this.slotByKey.get(key.id);
      if (slot === undefined && r !== undefined && this.slotByKey.size < this.keysMax) {
        slot = this.allocateSlot(key);
      }
      if (r === undefined || slot === undefined) {
        entriesOverflowed++;
        (incomplete ??= new Set()).add(entry.replica);
        continue;
      }
      const page = this.pages[slot >> pageShift] as Float64Array;
      const i = ((slot & pageMask) * this.stride + r) * cellWidth;
      // Any entry a join raises is saved (see "Durability" above); our own raised by a peer (it
      // held more than our disk) like an own change.
      if (p > (page[i] as number) || n > (page[i + 1] as number)) {
        if (r === 0) this.markUnsaved(slot);
        else if (this.durable) this.unsavedPeers.add(slot * replicasMax + r);
      }
      if (p > (page[i] as number)) page[i] = p;
      if (n > (page[i + 1] as number)) page[i + 1] = n;
      if (version > (page[i + 2] as number)) {
        assert(version <= counterVersionMax, 'version overflow');
        page[i + 2] = version;
        if (version > (this.held[r] as number)) this.held[r] = version;
        // Our own entry at a version we do not remember means we lost state: number the next
        // batches above it so that peers do not mistake them for old ones.
        if (r === 0 && version > this.ownVersion) {
          this.ownVersion = version;
          this.takenVersion = version;
        }
      }
      entriesApplied++;
    }
    for (const range of delta.ranges) {
      assert(isCount(range.from) && isCount(range.to) && range.from <= range.to, 'ranges are ordered counts');
      if (incomplete?.has(range.replica) === true) continue;
      const r = this.replicaColumn(range.replica);
      if (r === undefined) continue;
      if (range.from <= (this.known[r] as number) && range.to > (this.known[r] as number)) this.known[r] = range.to;
    }
    if ((this.known[0] as number) > this.ownVersion) {
      this.ownVersion = this.known[0] as number;
      this.takenVersion = this.ownVersion;
    }
    return { entriesApplied, entriesExpired, entriesOverflowed };
  }

  /** Σp − Σn over all replicas; zero for an unknown key. */
  value(key: CounterKey): number {
    const slot = this.slotByKey.get(key.id);
    if (slot === undefined) return 0;
    const page = this.pages[slot >> pageShift] as Float64Array;
    const base = (slot & pageMask) * this.stride * cellWidth;
    let total = 0;
    for (let r = 0; r < this.replicaIds.length; r++) {
      total += (page[base + r * cellWidth] as number) - (page[base + r * cellWidth + 1] as number);
    }
    return total;
  }

  /** Each replica's entry for one key; replicas without an entry are left out. */
  contributions(key: CounterKey): PnState {
    const result = new Map<ReplicaId, PnEntry>();
    const slot = this.slotByKey.get(key.id);
    if (slot === undefined) return result;
    const page = this.pages[slot >> pageShift] as Float64Array;
    const base = (slot & pageMask) * this.stride * cellWidth;
    for (let r = 0; r < this.replicaIds.length; r++) {
      const p = page[base + r * cellWidth] as number;
      const n = page[base + r * cellWidth + 1] as number;
      if (p !== 0 || n !== 0) result.set(this.replicaIds[r] as ReplicaId, { p, n });
    }
    return result;
  }

  /**
   * The sum over the last `spanMs` ending at `nowMs`, from `bucketUnit` sub-buckets (10-second
   * buckets for per-minute limits). Every bucket that overlaps `(nowMs − spanMs, nowMs]` counts in
   * full, so the sum errs high by at most one bucket: a limit checked against it can reject
   * slightly early, never admit over.
   */
  slidingSum(scope: string, subject: string, metric: string, spanMs: number, nowMs: number, bucketUnit: WindowUnit = 'sec10'): number {
    assert(spanMs > 0, 'span must be positive');
    // `windowAt(bucketUnit, t).index` for both ends, without making two window objects.
    const offsetMs = windowOffsetMs[bucketUnit];
    const lengthMs = windowLengthMs[bucketUnit];
    const first = Math.max(Math.floor((nowMs - spanMs + 1 - offsetMs) / lengthMs), 0);
    const last = Math.floor((nowMs - offsetMs) / lengthMs);
    // Written so that a NaN bound, like an empty span, reads nothing (and validates nothing).
    if (!(first <= last)) return 0;
    const cache = this.cachedKeys();
    const series = cache.series(scope, subject, metric, bucketUnit, this.slotEpoch);
    let total = 0;
    // A sub-bucket below zero counts as zero: it could only come from a refund larger than its
    // charge, which the reservation books refuse, and it must not lend room to its neighbours.
    for (let index = first; index <= last; index++) total += Math.max(0, this.cachedValue(cache, cache.entry(series, index)));
    return total;
  }

  /**
   * The key of these parts, as `counterKey` builds it (and asserting the same), but from a
   * bounded cache: for callers on the request path that charge the same few keys again and
   * again, so that neither the key nor its id string is built per request.
   */
  keyFor(scope: string, subject: string, metric: string, window: Window): CounterKey {
    const cache = this.cachedKeys();
    return cache.key(cache.entry(cache.series(scope, subject, metric, window.unit, this.slotEpoch), window.index));
  }

  /** `value(counterKey(scope, subject, metric, window))`, through the key cache. */
  valueAt(scope: string, subject: string, metric: string, window: Window): number {
    const cache = this.cachedKeys();
    return this.cachedValue(cache, cache.entry(cache.series(scope, subject, metric, window.unit, this.slotEpoch), window.index));
  }

  /** The key cache's size and overflows (see `counterKeyCacheKeysMax`), for metrics. */
  keyCacheStats(): { readonly keys: number; readonly subjectsEvicted: number; readonly resets: number } {
    const cache = this.keyCache;
    return { keys: cache?.size ?? 0, subjectsEvicted: cache?.subjectsEvicted ?? 0, resets: cache?.resets ?? 0 };
  }

  private cachedKeys(): CounterKeyCache {
    return (this.keyCache ??= new CounterKeyCache());
  }

  /**
   * The value of a cached key: its slot from the hint, else looked up by id. Between two expiries
   * a key keeps its slot; an expiry frees slots for other keys, so it moves the epoch on, which
   * drops the hints (see `series`). A key that gains a slot meanwhile has its hint set by
   * `allocateSlot`, so a hint that says "absent" stays true too.
   */
  private cachedValue(cache: CounterKeyCache, entry: number): number {
    let slot = cache.hint(entry);
    if (slot === slotAbsent) return 0;
    if (slot < 0) {
      const found = this.slotByKey.get(cache.key(entry).id);
      cache.setHint(entry, found ?? slotAbsent);
      if (found === undefined) return 0;
      slot = found;
    }
    const page = this.pages[slot >> pageShift] as Float64Array;
    const base = (slot & pageMask) * this.stride * cellWidth;
    let total = 0;
    for (let r = 0; r < this.replicaIds.length; r++) {
      total += (page[base + r * cellWidth] as number) - (page[base + r * cellWidth + 1] as number);
    }
    return total;
  }

  /** Live keys, in no particular order. */
  *keys(): IterableIterator<CounterKey> {
    for (const key of this.keyBySlot) if (key !== undefined) yield key;
  }

  /**
   * Drops windows that ended more than `horizonMs` before `nowMs` and refuses them from now on.
   * Returns how many keys were dropped. Call it every few seconds; it scans the map.
   */
  expire(nowMs: number): number {
    let raised = false;
    for (const unit of windowUnits) {
      const code = windowUnitCodes[unit];
      // The window containing `nowMs − horizon` ends after it, so it is still live.
      const firstLive = windowAt(unit, nowMs - this.horizonMs).index;
      if (firstLive > (this.watermark[code] as number)) {
        this.watermark[code] = firstLive;
        raised = true;
      }
    }
    if (!raised) return 0;
    let dropped = 0;
    for (let slot = 0; slot < this.slotsUsed; slot++) {
      const key = this.keyBySlot[slot];
      if (key === undefined) continue;
      if (key.window.index >= (this.watermark[windowUnitCodes[key.window.unit]] as number)) continue;
      this.slotByKey.delete(key.id);
      this.keyBySlot[slot] = undefined;
      const base = (slot & pageMask) * this.stride * cellWidth;
      (this.pages[slot >> pageShift] as Float64Array).fill(0, base, base + this.stride * cellWidth);
      this.marks[slot] = 0;
      this.freeSlots.push(slot);
      dropped++;
    }
    if (dropped > 0) {
      this.slotEpoch = (this.slotEpoch + 1) | 0;
      // A freed slot may be reused by another key: forget it in the change lists.
      this.dirty = this.dirty.filter((slot) => this.keyBySlot[slot] !== undefined);
      this.outgoing = this.outgoing.filter((slot) => this.keyBySlot[slot] !== undefined);
      this.unsaved = this.unsaved.filter((slot) => this.keyBySlot[slot] !== undefined);
      for (const cell of this.unsavedPeers) if (this.keyBySlot[Math.floor(cell / replicasMax)] === undefined) this.unsavedPeers.delete(cell);
    }
    return dropped;
  }

  /** The non-zero versions of a per-replica column, by replica id. */
  private versionMap(versions: Float64Array): Map<ReplicaId, number> {
    const map = new Map<ReplicaId, number>();
    for (let r = 0; r < this.replicaIds.length; r++) {
      const version = versions[r] as number;
      if (version > 0) map.set(this.replicaIds[r] as ReplicaId, version);
    }
    return map;
  }

  /** Stamps own changes with the next version and moves them to the outgoing batch. */
  private stamp(): void {
    if (this.dirty.length === 0) return;
    assert(this.ownVersion < counterVersionMax, 'version overflow');
    this.ownVersion++;
    this.known[0] = this.ownVersion;
    this.held[0] = this.ownVersion;
    for (const slot of this.dirty) {
      (this.pages[slot >> pageShift] as Float64Array)[(slot & pageMask) * this.stride * cellWidth + 2] = this.ownVersion;
      const mark = this.marks[slot] as number;
      if ((mark & 2) === 0) this.outgoing.push(slot);
      this.marks[slot] = (mark & 4) | 2;
    }
    this.dirty = [];
  }

  private pushEntry(entries: CounterEntry[], key: CounterKey, slot: number, r: number): void {
    const page = this.pages[slot >> pageShift] as Float64Array;
    const i = ((slot & pageMask) * this.stride + r) * cellWidth;
    entries.push({
      key,
      replica: this.replicaIds[r] as ReplicaId,
      p: page[i] as number,
      n: page[i + 1] as number,
      version: page[i + 2] as number,
    });
  }

  /** The column of a replica, added if new; undefined once `replicasMax` replicas are tracked. */
  private replicaColumn(replica: ReplicaId): number | undefined {
    const known = this.replicaIndex.get(replica);
    if (known !== undefined) return known;
    if (this.replicaIds.length >= replicasMax) return undefined;
    const r = this.replicaIds.length;
    this.replicaIds.push(replica);
    this.replicaIndex.set(replica, r);
    if (r >= this.stride) this.widen(this.stride * 2);
    return r;
  }

  private allocateSlot(key: CounterKey): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.slotsUsed++;
      if ((slot & pageMask) === 0) {
        this.pages.push(new Float64Array(pageSlots * this.stride * cellWidth));
        if (this.marks.length < this.pages.length * pageSlots) {
          const marks = new Uint8Array(this.marks.length * 2);
          marks.set(this.marks);
          this.marks = marks;
        }
      }
    }
    this.slotByKey.set(key.id, slot);
    this.keyBySlot[slot] = key;
    this.keyCache?.setHintOf(key, slot);
    return slot;
  }

  /** Rebuilds every page with room for `stride` replicas per slot, keeping every cell. */
  private widen(stride: number): void {
    const from = this.stride * cellWidth;
    const to = stride * cellWidth;
    this.pages = this.pages.map((page) => {
      const wide = new Float64Array(pageSlots * to);
      for (let s = 0; s < pageSlots; s++) wide.set(page.subarray(s * from, (s + 1) * from), s * to);
      return wide;
    });
    this.stride = stride;
  }
}
