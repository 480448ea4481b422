import { assert } from '../../core/assert.js';
import type { ReplicaId } from '../../core/ids.js';
import { counterVersionMax, frameEntriesMax, replicasMax } from '../../core/limits.js';
import type { CounterDelta, CounterEntry, VersionRange } from '../../crdt/windowed-counter.js';
import { KeyTableBuilder, readKeyTable, type KeyTable } from './key-table.js';
import { columnOf, fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, unzigzag, wireLengthDelimited, wireVarint, zigzag } from './proto-writer.js';

/**
 * `CounterDelta` (proto/carpool/v1/mesh.proto): entries grouped by key in key-table order,
 * replica indexes ascending inside a key, versions written relative to the frame's ranges.
 * Duplicate (key, replica) entries in the input are merged by maximum, which is what a join
 * would do with them anyway.
 */
export function writeCounterDelta(writer: ProtoWriter, delta: CounterDelta, sentAtMs = 0): void {
  const table = new KeyTableBuilder();
  // Replica indexes first, so entries can be sorted by them inside each key.
  const rangeTo = new Map<number, number>();
  const rangeReplicas: number[] = [];
  const rangeFrom: number[] = [];
  const rangeToColumn: number[] = [];
  for (const range of delta.ranges) {
    const r = table.replica(range.replica);
    assert(!rangeTo.has(r), 'a delta holds at most one range per replica');
    rangeTo.set(r, range.to);
    rangeReplicas.push(r);
    rangeFrom.push(range.from);
    rangeToColumn.push(range.to);
  }
  const byKey: { r: number; entry: CounterEntry }[][] = [];
  for (const entry of delta.entries) {
    const r = table.replica(entry.replica);
    const k = table.key(entry.key);
    const group = byKey[k] ?? (byKey[k] = []);
    group.push({ r, entry });
  }
  const counts: number[] = [];
  const replicas: number[] = [];
  const pColumn: number[] = [];
  const nColumn: number[] = [];
  const lags: number[] = [];
  let allSingle = true;
  for (const group of byKey) {
    if (group.length > 1) group.sort((a, b) => a.r - b.r);
    let count = 0;
    for (let i = 0; i < group.length; i++) {
      const { r, entry } = group[i] as { r: number; entry: CounterEntry };
      const last = replicas.length - 1;
      if (count > 0 && replicas[last] === r) {
        // The same (key, replica) twice: keep the maximum of each column.
        pColumn[last] = Math.max(pColumn[last] as number, entry.p);
        nColumn[last] = Math.max(nColumn[last] as number, entry.n);
        const to = rangeTo.get(r) ?? 0;
        lags[last] = Math.min(lags[last] as number, to - entry.version);
        continue;
      }
      replicas.push(r);
      pColumn.push(entry.p);
      nColumn.push(entry.n);
      lags.push((rangeTo.get(r) ?? 0) - entry.version);
      count++;
    }
    counts.push(count);
    if (count !== 1) allSingle = false;
  }
  writer.message(1, (nested) => table.write(nested));
  if (!allSingle) writer.packed(2, counts);
  writer.packedOrRuns(3, 11, replicas);
  writer.packed(4, pColumn);
  writer.packedOrRuns(5, 12, nColumn);
  writer.packedOrRuns(6, 13, lags.map(zigzag));
  writer.packed(7, rangeReplicas);
  writer.packed(8, rangeFrom);
  writer.packed(9, rangeToColumn);
  writer.varintField(10, sentAtMs);
}

export function readCounterDelta(reader: ProtoReader): { delta: CounterDelta; sentAtMs: number } {
  let table: KeyTable = { replicas: [], keys: [] };
  const counts: number[] = [];
  const replicasDense: number[] = [];
  const replicasRuns: number[] = [];
  const pColumn: number[] = [];
  const nDense: number[] = [];
  const nRuns: number[] = [];
  const lagsDense: number[] = [];
  const lagsRuns: number[] = [];
  const rangeReplicas: number[] = [];
  const rangeFrom: number[] = [];
  const rangeTo: number[] = [];
  let sentAtMs = 0;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        reader.expectWireType(wireType, wireLengthDelimited, 'CounterDelta.table');
        table = readKeyTable(reader.lengthDelimited());
        break;
      case 2:
        reader.repeatedVarint(wireType, counts, frameEntriesMax);
        break;
      case 3:
        reader.repeatedVarint(wireType, replicasDense, frameEntriesMax);
        break;
      case 4:
        reader.repeatedVarint(wireType, pColumn, frameEntriesMax);
        break;
      case 5:
        reader.repeatedVarint(wireType, nDense, frameEntriesMax);
        break;
      case 6:
        reader.repeatedVarint(wireType, lagsDense, frameEntriesMax);
        break;
      case 11:
        reader.repeatedVarint(wireType, replicasRuns, 2 * frameEntriesMax);
        break;
      case 12:
        reader.repeatedVarint(wireType, nRuns, 2 * frameEntriesMax);
        break;
      case 13:
        reader.repeatedVarint(wireType, lagsRuns, 2 * frameEntriesMax);
        break;
      case 7:
        reader.repeatedVarint(wireType, rangeReplicas, replicasMax);
        break;
      case 8:
        reader.repeatedVarint(wireType, rangeFrom, replicasMax);
        break;
      case 9:
        reader.repeatedVarint(wireType, rangeTo, replicasMax);
        break;
      case 10:
        reader.expectWireType(wireType, wireVarint, 'CounterDelta.sent_at_ms');
        sentAtMs = reader.varint();
        break;
      default:
        reader.skipField(wireType);
    }
  }
  const replicas = columnOf(replicasDense, replicasRuns, frameEntriesMax, 'CounterDelta.entry_replicas');
  const nColumn = columnOf(nDense, nRuns, frameEntriesMax, 'CounterDelta.entry_n');
  const lags = columnOf(lagsDense, lagsRuns, frameEntriesMax, 'CounterDelta.entry_version_lags');
  const entryCount = replicas.length;
  if (pColumn.length !== entryCount || nColumn.length !== entryCount || lags.length !== entryCount) {
    fail('inconsistent', 'entry columns differ in length');
  }
  if (rangeFrom.length !== rangeReplicas.length || rangeTo.length !== rangeReplicas.length) {
    fail('inconsistent', 'range columns differ in length');
  }
  const toByReplica = new Map<number, number>();
  const ranges: VersionRange[] = [];
  for (let i = 0; i < rangeReplicas.length; i++) {
    const r = rangeReplicas[i] as number;
    const replica = table.replicas[r];
    if (replica === undefined) fail('out-of-range', 'range refers past the replica table');
    if (toByReplica.has(r)) fail('inconsistent', 'two ranges for one replica');
    const from = rangeFrom[i] as number;
    const to = rangeTo[i] as number;
    if (from > to || to > counterVersionMax) fail('out-of-range', 'range bounds out of order or too large');
    toByReplica.set(r, to);
    ranges.push({ replica, from, to });
  }
  const keys = table.keys;
  if (counts.length === 0) {
    if (entryCount !== keys.length) fail('inconsistent', 'one entry per key expected');
  } else if (counts.length !== keys.length) {
    fail('inconsistent', 'entry counts and keys differ in length');
  }
  const entries: CounterEntry[] = new Array<CounterEntry>(entryCount);
  let e = 0;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k] as (typeof keys)[number];
    const count = counts.length === 0 ? 1 : (counts[k] as number);
    if (count === 0) fail('inconsistent', 'a key without entries');
    if (e + count > entryCount) fail('inconsistent', 'entry counts exceed the entries');
    let previous = -1;
    for (let end = e + count; e < end; e++) {
      const r = replicas[e] as number;
      if (r <= previous) fail('inconsistent', 'replicas inside a key must ascend');
      previous = r;
      const replica: ReplicaId | undefined = table.replicas[r];
      if (replica === undefined) fail('out-of-range', 'entry refers past the replica table');
      const version = (toByReplica.get(r) ?? 0) - unzigzag(lags[e] as number);
      if (version < 0 || version > counterVersionMax) fail('out-of-range', 'entry version out of range');
      entries[e] = { key, replica, p: pColumn[e] as number, n: nColumn[e] as number, version };
    }
  }
  if (e !== entryCount) fail('inconsistent', 'entries left over after the keys');
  return { delta: { entries, ranges }, sentAtMs };
}
