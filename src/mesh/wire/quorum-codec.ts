import type { CounterKey } from '../../crdt/counter-key.js';
import type { CounterEntry } from '../../crdt/windowed-counter.js';
import { readCounterDelta, writeCounterDelta } from './counter-delta-codec.js';
import { KeyTableBuilder, readKeyTable } from './key-table.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited, wireVarint } from './proto-writer.js';

/**
 * The strict-mode quorum messages of proto/carpool/v1/mesh.proto (flow in src/mesh/quorum.ts):
 * `QuorumWrite` carries the coordinator's own counter entries, `QuorumAck` confirms they are
 * held, `QuorumRead` names the keys to read and `QuorumReply` returns every replica's entry for
 * them. Entries travel in the `CounterDelta` encoding without version ranges: they are joined like
 * a repair chunk and never advance a digest on their own.
 */
export interface QuorumWrite {
  readonly round: number;
  readonly entries: readonly CounterEntry[];
}

export interface QuorumAck {
  readonly round: number;
}

export interface QuorumRead {
  readonly round: number;
  readonly keys: readonly CounterKey[];
}

export interface QuorumReply {
  readonly round: number;
  readonly entries: readonly CounterEntry[];
}

/** `QuorumWrite` and `QuorumReply` share one shape: a round number and entries. */
export function writeQuorumEntries(writer: ProtoWriter, message: QuorumWrite | QuorumReply): void {
  writer.varintField(1, message.round);
  writer.message(2, (nested) => writeCounterDelta(nested, { entries: message.entries, ranges: [] }));
}

export function readQuorumEntries(reader: ProtoReader, what: string): QuorumWrite {
  let round: number | undefined;
  let entries: readonly CounterEntry[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireVarint, `${what}.round`);
      round = reader.varint();
    } else if (field === 2) {
      reader.expectWireType(wireType, wireLengthDelimited, `${what}.entries`);
      const { delta } = readCounterDelta(reader.lengthDelimited());
      if (delta.ranges.length > 0) fail('inconsistent', `${what} entries carry no version ranges`);
      entries = delta.entries;
    } else reader.skipField(wireType);
  }
  return { round: checkRound(round, what), entries };
}

export function writeQuorumAck(writer: ProtoWriter, ack: QuorumAck): void {
  writer.varintField(1, ack.round);
}

export function readQuorumAck(reader: ProtoReader): QuorumAck {
  let round: number | undefined;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireVarint, 'QuorumAck.round');
      round = reader.varint();
    } else reader.skipField(wireType);
  }
  return { round: checkRound(round, 'QuorumAck') };
}

export function writeQuorumRead(writer: ProtoWriter, read: QuorumRead): void {
  const table = new KeyTableBuilder();
  for (const key of read.keys) table.key(key);
  writer.varintField(1, read.round);
  writer.message(2, (nested) => table.write(nested));
}

export function readQuorumRead(reader: ProtoReader): QuorumRead {
  let round: number | undefined;
  let keys: readonly CounterKey[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireVarint, 'QuorumRead.round');
      round = reader.varint();
    } else if (field === 2) {
      reader.expectWireType(wireType, wireLengthDelimited, 'QuorumRead.keys');
      keys = readKeyTable(reader.lengthDelimited()).keys;
    } else reader.skipField(wireType);
  }
  return { round: checkRound(round, 'QuorumRead'), keys };
}

/** Round numbers start at 1, so a missing field (proto3's 0) is caught as an error. */
function checkRound(round: number | undefined, what: string): number {
  if (round === undefined || round < 1) fail('out-of-range', `${what}.round missing or zero`);
  return round;
}
