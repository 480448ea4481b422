import { idLengthMax } from '../../core/limits.js';
import { isValidId, type NodeId } from '../../core/ids.js';
import type { CounterKey } from '../../crdt/counter-key.js';
import type { CounterEntry, Digest } from '../../crdt/windowed-counter.js';
import { readCounterDelta, writeCounterDelta } from './counter-delta-codec.js';
import { readDigest, writeDigest } from './digest-codec.js';
import { KeyTableBuilder, readKeyTable } from './key-table.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited, wireVarint } from './proto-writer.js';

/**
 * The strict-mode quorum messages of proto/carpool/v1/mesh.proto (flow in src/mesh/quorum.ts):
 * `QuorumWrite` carries the coordinator's own counter entries, `QuorumAck` confirms they are
 * held, `QuorumRead` names the keys to read and `QuorumReply` returns every replica's entry for
 * them. Entries travel in the `CounterDelta` encoding without version ranges: they are joined like
 * a repair chunk and never advance a digest on their own.
 *
 * A `QuorumRead` without keys is a recovery probe. With `since` (the prober's digest) the member
 * first sends everything it holds beyond that digest; with `relay` as well, it first collects the
 * named peer's whole state the same way, and its `QuorumReply` names that peer in `relayed`
 * (src/mesh/quorum.ts, "Recovery through a relay"). Older members skip these fields and answer a
 * plain probe, whose reply names no peer, so a prober never counts a relay that did not happen.
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
  /** A probe's digest: the member answers with what it holds beyond it before the reply. */
  readonly since?: Digest;
  /** A relayed probe: the peer whose whole state the member collects first. */
  readonly relay?: NodeId;
}

export interface QuorumReply {
  readonly round: number;
  readonly entries: readonly CounterEntry[];
  /** The answer to a relayed probe: the peer whose whole state went ahead of this reply. */
  readonly relayed?: NodeId;
}

/** `QuorumWrite` and `QuorumReply` share one shape: a round number and entries. */
export function writeQuorumEntries(writer: ProtoWriter, message: QuorumWrite | QuorumReply): void {
  writer.varintField(1, message.round);
  writer.message(2, (nested) => writeCounterDelta(nested, { entries: message.entries, ranges: [] }));
  if ('relayed' in message && message.relayed !== undefined) writer.string(3, message.relayed);
}

export function readQuorumEntries(reader: ProtoReader, what: string): QuorumReply {
  let round: number | undefined;
  let entries: readonly CounterEntry[] = [];
  let relayed: NodeId | undefined;
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
    } else if (field === 3 && what === 'QuorumReply') {
      relayed = readNodeId(reader, wireType, `${what}.relayed`);
    } else reader.skipField(wireType);
  }
  return relayed === undefined ? { round: checkRound(round, what), entries } : { round: checkRound(round, what), entries, relayed };
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
  if (read.since !== undefined) {
    const since = read.since;
    writer.message(3, (nested) => writeDigest(nested, since));
  }
  if (read.relay !== undefined) writer.string(4, read.relay);
}

export function readQuorumRead(reader: ProtoReader): QuorumRead {
  let round: number | undefined;
  let keys: readonly CounterKey[] = [];
  let since: Digest | undefined;
  let relay: NodeId | undefined;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireVarint, 'QuorumRead.round');
      round = reader.varint();
    } else if (field === 2) {
      reader.expectWireType(wireType, wireLengthDelimited, 'QuorumRead.keys');
      keys = readKeyTable(reader.lengthDelimited()).keys;
    } else if (field === 3) {
      reader.expectWireType(wireType, wireLengthDelimited, 'QuorumRead.since');
      since = readDigest(reader.lengthDelimited());
    } else if (field === 4) {
      relay = readNodeId(reader, wireType, 'QuorumRead.relay');
    } else reader.skipField(wireType);
  }
  if (keys.length > 0 && (since !== undefined || relay !== undefined)) fail('inconsistent', 'QuorumRead with keys carries no probe fields');
  if (relay !== undefined && since === undefined) fail('inconsistent', "a relayed QuorumRead carries the prober's digest");
  return { round: checkRound(round, 'QuorumRead'), keys, ...(since === undefined ? {} : { since }), ...(relay === undefined ? {} : { relay }) };
}

function readNodeId(reader: ProtoReader, wireType: number, what: string): NodeId {
  reader.expectWireType(wireType, wireLengthDelimited, what);
  const id = reader.ascii(idLengthMax);
  if (!isValidId(id)) fail('bad-string', `${what} is not a valid member id`);
  return id as NodeId;
}

/** Round numbers start at 1, so a missing field (proto3's 0) is caught as an error. */
function checkRound(round: number | undefined, what: string): number {
  if (round === undefined || round < 1) fail('out-of-range', `${what}.round missing or zero`);
  return round;
}
