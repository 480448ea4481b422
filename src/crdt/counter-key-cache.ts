import { assert } from '../core/assert.js';
import { counterKeyCacheKeysMax, counterKeyCacheSeriesPerSubjectMax, counterKeyCacheSeriesTypesMax } from '../core/limits.js';
import { checkedCounterKey, type CounterKey, isValidKeyParts } from './counter-key.js';
import { windowUnitCodes, type WindowUnit } from './window.js';

/**
 * A bounded cache of counter keys by their parts, for the admission read path: a decision reads
 * the same few keys of a subject over and over (today's window, the sub-buckets of the last
 * minute), and building each one afresh (validating the parts, joining the id, hashing the new
 * string in a map lookup) cost far more than reading the counter itself.
 *
 * Keys are grouped per subject into series, one per (scope, metric, unit); a series holds a
 * small ring of windows by index, enough for the sub-buckets of a sliding minute. A series'
 * parts are validated once, when it is made; a key's index when the key is built. So a hit
 * returns a key exactly as `counterKey` would have built it, and a part `counterKey` would
 * assert on asserts here too.
 *
 * Each cached key carries a hint, a number its owner attaches to it (the windowed counter: the
 * slot that holds the key, or that it holds none), so a hit can skip the id lookup as well.
 * Hints are stamped with the owner's epoch: when the owner moves its epoch on (its slots changed
 * hands), a row's hints are cleared on its next use. Between epochs the owner keeps them true
 * with `setHintOf` when a key gains a slot.
 *
 * Layout. With thousands of subjects the cache outgrows the processor caches, and a read pays a
 * memory round trip for every object it visits. So what a hit reads lives in one Int32Array, the
 * pool, in rows of `rowCells` cells: a subject maps to its first row (a number, stored in the
 * map itself), a row holds `seriesPerRow` series and links to the subject's next row. A series
 * is its type (a small number for its (scope, metric, unit)), the window index per ring position
 * and the hint per ring position. A hit visits the subject map, a small type table and one row.
 * The keys themselves, read only to build or return them, sit in a plain array beside the pool.
 *
 * Bounds: at most `keysMax` keys and as many rows. To make room the cache drops its oldest
 * subject whole (maps iterate in insertion order) and counts it in `subjectsEvicted`; a dropped
 * key is built again on its next use, so eviction costs time, never correctness. One subject
 * holds at most `counterKeyCacheSeriesPerSubjectMax` series, far fewer keys than `keysMax`, so there is always
 * another subject to drop. Series types are bounded by `counterKeyCacheSeriesTypesMax`; past it
 * the whole cache is cleared (counted in `resets`).
 */

/** Windows a series holds: the seven 10-second sub-buckets a sliding minute reads, rounded up. */
const seriesRing = 8;
const seriesRingMask = seriesRing - 1;
/** Series per row: a decision under a fixed and a sliding rule reads one row. */
const seriesPerRow = 2;

// Row cells.
const rowNext = 0; // the subject's next row, −1 for none
const rowEpoch = 1; // the owner's epoch of the row's hints
const rowKeys = 2; // in a subject's first row: the keys its rows hold
const rowHeader = 3;
// Series cells, from the series' base: its type + 1 (0: free), then per ring position the window
// index (−1: empty), then per ring position the hint (−1: none).
const seriesIndexes = 1;
const seriesCells = 1 + 2 * seriesRing;
const rowCells = rowHeader + seriesPerRow * seriesCells;
const keysPerRow = seriesPerRow * seriesRing;
/** Rows the pool starts with; it doubles as needed, up to `keysMax` rows. */
const poolRowsInitial = 64;

/** Window indexes the pool can hold; a larger one (centuries away) is rebuilt on every use. */
const indexCachedMax = 0x7fff_ffff;

interface SeriesType {
  readonly scope: string;
  readonly metric: string;
  readonly unit: WindowUnit;
}

export class CounterKeyCache {
  /** Subjects dropped whole to make room for new keys. */
  subjectsEvicted = 0;
  /** Times the cache was cleared because it met more series types than it may hold. */
  resets = 0;

  private pool = new Int32Array(poolRowsInitial * rowCells);
  /** The key of each ring position: row × `keysPerRow` + series × `seriesRing` + position. */
  private keys: (CounterKey | undefined)[] = [];
  private rowsHigh = 0;
  private freeRows: number[] = [];
  private readonly rows = new Map<string, number>();
  private keysHeld = 0;

  /** scope → metric → per unit code: the series type + 1, or 0. */
  private typeIds = new Map<string, Map<string, Int32Array>>();
  private types: SeriesType[] = [];

  /** The subject and first row of the last `series` call: the rules of one decision ask in a row. */
  private lastSubject: string | undefined;
  private lastRow = -1;

  constructor(readonly keysMax: number = counterKeyCacheKeysMax) {
    assert(
      Number.isSafeInteger(keysMax) && keysMax > counterKeyCacheSeriesPerSubjectMax * seriesRing && keysMax <= counterKeyCacheKeysMax,
      'keysMax out of range',
    );
  }

  /** Keys held. */
  get size(): number {
    return this.keysHeld;
  }

  /**
   * The base of the series of `(scope, subject, metric, unit)`, made if new (asserting that the
   * parts are valid), with its row's hints cleared if they are older than `epoch`. The base is
   * good until the next `series` call.
   */
  series(scope: string, subject: string, metric: string, unit: WindowUnit, epoch: number): number {
    let row: number;
    if (subject === this.lastSubject) row = this.lastRow;
    else {
      row = this.rows.get(subject) ?? -1;
      this.lastSubject = subject;
      this.lastRow = row;
    }
    const type = this.typeOf(scope, metric, unit);
    if (type > 0) {
      const pool = this.pool;
      for (; row >= 0; row = pool[row * rowCells + rowNext] as number) {
        const base = row * rowCells;
        for (let s = base + rowHeader; s < base + rowCells; s += seriesCells) {
          if (pool[s] !== type) continue;
          if (pool[base + rowEpoch] !== epoch) this.clearHints(base, epoch);
          return s;
        }
      }
    }
    return this.addSeries(scope, subject, metric, unit, epoch);
  }

  /**
   * The entry of window `index` in the series at `series`, with its key built there if it was not
   * cached (asserting that the index is valid).
   */
  entry(series: number, index: number): number {
    const at = series + seriesIndexes + (index & seriesRingMask);
    // An empty position holds −1: an index below zero must miss, so that it asserts.
    return this.pool[at] === index && index >= 0 ? at : this.addEntry(series, at, index);
  }

  key(entry: number): CounterKey {
    return this.keys[keyIndex(entry)] as CounterKey;
  }

  /** The hint at `entry` (−1 if none). */
  hint(entry: number): number {
    return this.pool[entry + seriesRing] as number;
  }

  setHint(entry: number, hint: number): void {
    this.pool[entry + seriesRing] = hint;
  }

  /**
   * Sets the hint of `key` if the cache holds it; nothing otherwise. Leaves the current subject
   * alone, so a caller between `series` and `entry` is not disturbed.
   */
  setHintOf(key: CounterKey, hint: number): void {
    const type = this.typeOf(key.scope, key.metric, key.window.unit);
    if (type === 0) return;
    const pool = this.pool;
    const index = key.window.index;
    for (let row = this.rows.get(key.subject) ?? -1; row >= 0; row = pool[row * rowCells + rowNext] as number) {
      const base = row * rowCells;
      for (let s = base + rowHeader; s < base + rowCells; s += seriesCells) {
        if (pool[s] !== type) continue;
        const at = s + seriesIndexes + (index & seriesRingMask);
        if (pool[at] === index) pool[at + seriesRing] = hint;
        return;
      }
    }
  }

  // The cold paths live in their own methods, so that the hit paths above stay small enough for
  // the compiler to inline into the counter's reads.

  /** The type + 1 of `(scope, metric, unit)`, or 0 if it has none yet. */
  private typeOf(scope: string, metric: string, unit: WindowUnit): number {
    const units = this.typeIds.get(scope)?.get(metric);
    return units === undefined ? 0 : (units[windowUnitCodes[unit]] as number);
  }

  private addSeries(scope: string, subject: string, metric: string, unit: WindowUnit, epoch: number): number {
    assert(isValidKeyParts(scope, subject, metric, { unit, index: 0 }), `invalid counter key parts ${scope}/${subject}/${metric}`);
    let type = this.typeOf(scope, metric, unit);
    if (type === 0) type = this.addType(scope, metric, unit);
    let first = this.rows.get(subject);
    if (first === undefined) {
      first = this.allocateRow(epoch);
      this.rows.set(subject, first);
    }
    this.lastSubject = subject;
    this.lastRow = first;
    // A free series place in the subject's rows, else a new row at the end, else (at the cap) the
    // oldest series' place.
    let count = 0;
    let last = first;
    for (let row = first; row >= 0; row = this.pool[row * rowCells + rowNext] as number) {
      last = row;
      for (let s = row * rowCells + rowHeader; s < (row + 1) * rowCells; s += seriesCells) {
        if (this.pool[s] === 0) return this.initSeries(s, type, epoch);
        count++;
      }
    }
    if (count >= counterKeyCacheSeriesPerSubjectMax) {
      const s = first * rowCells + rowHeader;
      this.dropKeys(s, first);
      return this.initSeries(s, type, epoch);
    }
    const row = this.allocateRow(epoch);
    this.pool[last * rowCells + rowNext] = row;
    return this.initSeries(row * rowCells + rowHeader, type, epoch);
  }

  private addType(scope: string, metric: string, unit: WindowUnit): number {
    if (this.types.length >= counterKeyCacheSeriesTypesMax) this.clear();
    let byMetric = this.typeIds.get(scope);
    if (byMetric === undefined) {
      byMetric = new Map();
      this.typeIds.set(scope, byMetric);
    }
    let units = byMetric.get(metric);
    if (units === undefined) {
      units = new Int32Array(Object.keys(windowUnitCodes).length);
      byMetric.set(metric, units);
    }
    this.types.push({ scope, metric, unit });
    units[windowUnitCodes[unit]] = this.types.length;
    return this.types.length;
  }

  private initSeries(s: number, type: number, epoch: number): number {
    const base = Math.floor(s / rowCells) * rowCells;
    // The row's other hints may be older than `epoch`: stamping the row must not vouch for them.
    if (this.pool[base + rowEpoch] !== epoch) this.clearHints(base, epoch);
    this.pool[s] = type;
    this.pool.fill(-1, s + seriesIndexes, s + seriesCells);
    return s;
  }

  private addEntry(series: number, at: number, index: number): number {
    assert(Number.isSafeInteger(index) && index >= 0, `invalid counter key window index ${index}`);
    const k = keyIndex(at);
    if (this.keys[k] === undefined) this.makeRoom();
    const type = this.types[(this.pool[series] as number) - 1] as SeriesType;
    this.keys[k] = checkedCounterKey(type.scope, this.lastSubject as string, type.metric, { unit: type.unit, index });
    // An index the pool cannot hold is left uncached: `entry` then rebuilds its key on every use.
    this.pool[at] = index <= indexCachedMax ? index : -1;
    this.pool[at + seriesRing] = -1;
    return at;
  }

  private clearHints(base: number, epoch: number): void {
    for (let s = base + rowHeader; s < base + rowCells; s += seriesCells) this.pool.fill(-1, s + seriesIndexes + seriesRing, s + seriesCells);
    this.pool[base + rowEpoch] = epoch;
  }

  /** Counts one more key for the current subject, first dropping the oldest other subjects if full. */
  private makeRoom(): void {
    while (this.keysHeld >= this.keysMax) this.evictOldest();
    const first = this.lastRow * rowCells;
    this.pool[first + rowKeys] = (this.pool[first + rowKeys] as number) + 1;
    this.keysHeld++;
  }

  /** Drops the oldest subject other than the current one. */
  private evictOldest(): void {
    for (const [subject, first] of this.rows) {
      if (subject === this.lastSubject) continue;
      this.rows.delete(subject);
      this.keysHeld -= this.pool[first * rowCells + rowKeys] as number;
      for (let row = first; row >= 0; row = this.pool[row * rowCells + rowNext] as number) {
        this.keys.fill(undefined, row * keysPerRow, (row + 1) * keysPerRow);
        this.freeRows.push(row);
      }
      this.subjectsEvicted++;
      return;
    }
    // Only the current subject is left, and one subject holds far fewer keys than `keysMax`
    // (asserted in the constructor), so this cannot happen.
    assert(false, 'the key cache is full of one subject');
  }

  /** Forgets the keys of the series at `s` (in row `row`) and counts them out of its subject. */
  private dropKeys(s: number, first: number): void {
    const k = keyIndex(s + seriesIndexes);
    let held = 0;
    for (let i = k; i < k + seriesRing; i++) {
      if (this.keys[i] !== undefined) held++;
      this.keys[i] = undefined;
    }
    this.pool[first * rowCells + rowKeys] = (this.pool[first * rowCells + rowKeys] as number) - held;
    this.keysHeld -= held;
  }

  private allocateRow(epoch: number): number {
    while (this.freeRows.length === 0 && this.rowsHigh >= this.keysMax) this.evictOldest();
    let row = this.freeRows.pop();
    if (row === undefined) {
      row = this.rowsHigh++;
      if (this.rowsHigh * rowCells > this.pool.length) {
        const grown = new Int32Array(Math.min(this.keysMax, 2 * (this.pool.length / rowCells)) * rowCells);
        grown.set(this.pool);
        this.pool = grown;
      }
    }
    const base = row * rowCells;
    this.pool.fill(0, base, base + rowCells);
    this.pool[base + rowNext] = -1;
    this.pool[base + rowEpoch] = epoch;
    return row;
  }

  private clear(): void {
    this.pool = new Int32Array(poolRowsInitial * rowCells);
    this.keys = [];
    this.rowsHigh = 0;
    this.freeRows = [];
    this.rows.clear();
    this.keysHeld = 0;
    this.typeIds = new Map();
    this.types = [];
    this.lastSubject = undefined;
    this.lastRow = -1;
    this.resets++;
  }
}

/** The place in `keys` of the entry at pool cell `entry`. */
function keyIndex(entry: number): number {
  const row = Math.floor(entry / rowCells);
  const inRow = entry - row * rowCells - rowHeader;
  const series = Math.floor(inRow / seriesCells);
  return row * keysPerRow + series * seriesRing + (inRow - series * seriesCells - seriesIndexes);
}
