import type { ReplicaId } from '../../core/ids.js';
import { frameRightsCellsMax } from '../../core/limits.js';
import type { KeyedRightsRow } from '../../crdt/bounded-counter.js';
import { KeyTableBuilder, readKeyTable, type KeyTable } from './key-table.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited } from './proto-writer.js';

/** `RightsDelta` (proto/carpool/v1/mesh.proto): rows of escrow rights matrices. */
export function writeRightsDelta(writer: ProtoWriter, rows: readonly KeyedRightsRow[]): void {
  const table = new KeyTableBuilder();
  const rowKeys: number[] = [];
  const rowOwners: number[] = [];
  const rowUsed: number[] = [];
  const rowCellCounts: number[] = [];
  const cellTo: number[] = [];
  const cellAmounts: number[] = [];
  for (const { key, row } of rows) {
    rowKeys.push(table.key(key));
    rowOwners.push(table.replica(row.owner));
    rowUsed.push(row.used);
    rowCellCounts.push(row.cells.size);
    for (const [to, amount] of row.cells) {
      cellTo.push(table.replica(to));
      cellAmounts.push(amount);
    }
  }
  writer.message(1, (nested) => table.write(nested));
  writer.packed(2, rowKeys);
  writer.packed(3, rowOwners);
  writer.packed(4, rowUsed);
  writer.packed(5, rowCellCounts);
  writer.packed(6, cellTo);
  writer.packed(7, cellAmounts);
}

export function readRightsDelta(reader: ProtoReader): KeyedRightsRow[] {
  let table: KeyTable = { replicas: [], keys: [] };
  const rowKeys: number[] = [];
  const rowOwners: number[] = [];
  const rowUsed: number[] = [];
  const rowCellCounts: number[] = [];
  const cellTo: number[] = [];
  const cellAmounts: number[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        reader.expectWireType(wireType, wireLengthDelimited, 'RightsDelta.table');
        table = readKeyTable(reader.lengthDelimited());
        break;
      case 2:
        reader.repeatedVarint(wireType, rowKeys, frameRightsCellsMax);
        break;
      case 3:
        reader.repeatedVarint(wireType, rowOwners, frameRightsCellsMax);
        break;
      case 4:
        reader.repeatedVarint(wireType, rowUsed, frameRightsCellsMax);
        break;
      case 5:
        reader.repeatedVarint(wireType, rowCellCounts, frameRightsCellsMax);
        break;
      case 6:
        reader.repeatedVarint(wireType, cellTo, frameRightsCellsMax);
        break;
      case 7:
        reader.repeatedVarint(wireType, cellAmounts, frameRightsCellsMax);
        break;
      default:
        reader.skipField(wireType);
    }
  }
  const rowCount = rowKeys.length;
  if (rowOwners.length !== rowCount || rowUsed.length !== rowCount || rowCellCounts.length !== rowCount) {
    fail('inconsistent', 'row columns differ in length');
  }
  if (cellAmounts.length !== cellTo.length) fail('inconsistent', 'cell columns differ in length');
  const rows: KeyedRightsRow[] = [];
  const seenRows = new Set<string>();
  let c = 0;
  for (let i = 0; i < rowCount; i++) {
    const key = table.keys[rowKeys[i] as number];
    const owner = table.replicas[rowOwners[i] as number];
    if (key === undefined || owner === undefined) fail('out-of-range', 'row refers past a table');
    const rowId = `${key.id}\u001e${owner}`;
    if (seenRows.has(rowId)) fail('inconsistent', 'a (key, owner) row appears twice');
    seenRows.add(rowId);
    const cellCount = rowCellCounts[i] as number;
    if (c + cellCount > cellTo.length) fail('inconsistent', 'cell counts exceed the cells');
    const cells = new Map<ReplicaId, number>();
    for (const end = c + cellCount; c < end; c++) {
      const to = table.replicas[cellTo[c] as number];
      if (to === undefined) fail('out-of-range', 'cell refers past the replica table');
      if (cells.has(to)) fail('inconsistent', 'a cell appears twice in a row');
      cells.set(to, cellAmounts[c] as number);
    }
    rows.push({ key, row: { owner, cells, used: rowUsed[i] as number } });
  }
  if (c !== cellTo.length) fail('inconsistent', 'cells left over after the rows');
  return rows;
}
