import { frameBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { KeyedRightsRow } from '../../crdt/bounded-counter.js';
import type { CounterDelta, Digest } from '../../crdt/windowed-counter.js';
import { readCounterDelta, writeCounterDelta } from './counter-delta-codec.js';
import { crc32c } from './crc32c.js';
import { readDigest, writeDigest } from './digest-codec.js';
import { DecodeFailure, type DecodeReason, fail, ProtoReader } from './proto-reader.js';
import { ProtoWriter, wireLengthDelimited } from './proto-writer.js';
import {
  type Challenge,
  type DeltaAck,
  type Hello,
  readChallenge,
  readDeltaAck,
  readHeartbeat,
  readHello,
  readPolicySync,
  readProof,
  writeChallenge,
  writeDeltaAck,
  writeHello,
  writePolicySync,
  writeProof,
} from './link-codec.js';
import {
  type QuorumAck,
  type QuorumRead,
  type QuorumReply,
  type QuorumWrite,
  readQuorumAck,
  readQuorumEntries,
  readQuorumRead,
  writeQuorumAck,
  writeQuorumEntries,
  writeQuorumRead,
} from './quorum-codec.js';
import { readRightsDelta, writeRightsDelta } from './rights-delta-codec.js';
import { readHealthDelta, writeHealthDelta } from './health-codec.js';
import type { HealthRecord } from '../../pool/health-register.js';

/**
 * The mesh frame envelope (see the top of proto/carpool/v1/mesh.proto):
 *
 *   0xCA 0x01 <protobuf Frame> <CRC-32C, 4 bytes little-endian>
 *
 * `decodeFrame` is the wire boundary: whatever the bytes, it returns a frame or a `FrameError`
 * and never throws.
 */
export type Frame =
  /** `sentAtMs`: the sender's clock when it made the batch, for lag metrics only (0 = unknown). */
  | { readonly kind: 'counter-delta'; readonly delta: CounterDelta; readonly sentAtMs?: number }
  | { readonly kind: 'digest'; readonly digest: Digest }
  | { readonly kind: 'rights-delta'; readonly rows: readonly KeyedRightsRow[] }
  | ({ readonly kind: 'hello' } & Hello)
  | ({ readonly kind: 'challenge' } & Challenge)
  | { readonly kind: 'proof'; readonly proof: Uint8Array }
  | ({ readonly kind: 'delta-ack' } & DeltaAck)
  | { readonly kind: 'heartbeat' }
  /** One y-protocols sync message for the policy document. */
  | { readonly kind: 'policy-sync'; readonly message: Uint8Array }
  /** Strict-mode quorum rounds (src/mesh/quorum.ts). */
  | ({ readonly kind: 'quorum-write' } & QuorumWrite)
  | ({ readonly kind: 'quorum-ack' } & QuorumAck)
  | ({ readonly kind: 'quorum-read' } & QuorumRead)
  | ({ readonly kind: 'quorum-reply' } & QuorumReply)
  /** Records of the accounts' shared health register (src/pool/health-register.ts). */
  | { readonly kind: 'health-delta'; readonly records: readonly HealthRecord[] };

export type FrameKind = Frame['kind'];

export interface FrameError {
  readonly kind: 'bad-frame';
  /** A bounded set, usable as a metric label. */
  readonly reason: DecodeReason | 'internal';
  readonly detail: string;
}

export interface FrameTooLarge {
  readonly kind: 'frame-too-large';
  readonly bytes: number;
  readonly bytesMax: number;
}

const scratchBytesInitial = 64 * 1024;
const scratchBytesKept = 1024 * 1024;
let scratch = new ProtoWriter(scratchBytesInitial);

export const frameMagic = 0xca;
export const frameVersion = 0x01;
const headerBytes = 2;
const checksumBytes = 4;

/** Field numbers of `Frame.body`: the frame's type tag. */
const bodyField: Readonly<Record<FrameKind, number>> = {
  'counter-delta': 1,
  digest: 2,
  'rights-delta': 3,
  hello: 4,
  challenge: 5,
  proof: 6,
  'delta-ack': 7,
  heartbeat: 8,
  'policy-sync': 9,
  'quorum-write': 10,
  'quorum-ack': 11,
  'quorum-read': 12,
  'quorum-reply': 13,
  'health-delta': 14,
};
const bodyFieldMax = 14;

/** Encodes a frame; fails if it would exceed `frameBytesMax` (split the batch and retry). */
export function encodeFrame(frame: Frame): Result<Uint8Array, FrameTooLarge> {
  // One writer for every frame: encoding is synchronous, and the result is copied out below.
  const writer = scratch;
  writer.reset();
  writer.byte(frameMagic);
  writer.byte(frameVersion);
  writer.message(bodyField[frame.kind], (body) => {
    switch (frame.kind) {
      case 'counter-delta':
        writeCounterDelta(body, frame.delta, frame.sentAtMs ?? 0);
        return;
      case 'digest':
        writeDigest(body, frame.digest);
        return;
      case 'rights-delta':
        writeRightsDelta(body, frame.rows);
        return;
      case 'hello':
        writeHello(body, frame);
        return;
      case 'challenge':
        writeChallenge(body, frame);
        return;
      case 'proof':
        writeProof(body, frame.proof);
        return;
      case 'delta-ack':
        writeDeltaAck(body, frame);
        return;
      case 'heartbeat':
        return;
      case 'policy-sync':
        writePolicySync(body, frame.message);
        return;
      case 'quorum-write':
      case 'quorum-reply':
        writeQuorumEntries(body, frame);
        return;
      case 'quorum-ack':
        writeQuorumAck(body, frame);
        return;
      case 'quorum-read':
        writeQuorumRead(body, frame);
        return;
      case 'health-delta':
        writeHealthDelta(body, frame.records);
        return;
    }
  });
  const checksum = crc32c(writer.bytes());
  writer.byte(checksum & 0xff);
  writer.byte((checksum >>> 8) & 0xff);
  writer.byte((checksum >>> 16) & 0xff);
  writer.byte(checksum >>> 24);
  const bytes = writer.bytes().slice();
  // A huge frame (a full state) grows the shared writer; don't keep that memory around.
  if (writer.capacity > scratchBytesKept) scratch = new ProtoWriter(scratchBytesInitial);
  if (bytes.length > frameBytesMax) return err({ kind: 'frame-too-large', bytes: bytes.length, bytesMax: frameBytesMax });
  return ok(bytes);
}

export function decodeFrame(bytes: Uint8Array): Result<Frame, FrameError> {
  try {
    return ok(decodeOrThrow(bytes));
  } catch (error) {
    if (error instanceof DecodeFailure) return err({ kind: 'bad-frame', reason: error.reason, detail: error.detail });
    // Not reachable for any input we know of (the property tests feed mutated frames); if it
    // happens the bytes are still rejected rather than the exception escaping to the transport.
    return err({ kind: 'bad-frame', reason: 'internal', detail: String(error) });
  }
}

function readBody(field: number, body: ProtoReader): Frame {
  switch (field) {
    case 1: {
      const { delta, sentAtMs } = readCounterDelta(body);
      return { kind: 'counter-delta', delta, sentAtMs };
    }
    case 2:
      return { kind: 'digest', digest: readDigest(body) };
    case 3:
      return { kind: 'rights-delta', rows: readRightsDelta(body) };
    case 4:
      return { kind: 'hello', ...readHello(body) };
    case 5:
      return { kind: 'challenge', ...readChallenge(body) };
    case 6:
      return { kind: 'proof', proof: readProof(body) };
    case 7:
      return { kind: 'delta-ack', ...readDeltaAck(body) };
    case 8:
      readHeartbeat(body);
      return { kind: 'heartbeat' };
    case 9:
      return { kind: 'policy-sync', message: readPolicySync(body) };
    case 10:
      return { kind: 'quorum-write', ...readQuorumEntries(body, 'QuorumWrite') };
    case 11:
      return { kind: 'quorum-ack', ...readQuorumAck(body) };
    case 12:
      return { kind: 'quorum-read', ...readQuorumRead(body) };
    case 14:
      return { kind: 'health-delta', records: readHealthDelta(body) };
    default:
      return { kind: 'quorum-reply', ...readQuorumEntries(body, 'QuorumReply') };
  }
}

function decodeOrThrow(bytes: Uint8Array): Frame {
  if (bytes.length < headerBytes + checksumBytes) fail('too-short', `${bytes.length} bytes`);
  if (bytes.length > frameBytesMax) fail('too-long', `${bytes.length} bytes`);
  if (bytes[0] !== frameMagic) fail('bad-magic', `first byte ${bytes[0]}`);
  if (bytes[1] !== frameVersion) fail('bad-version', `envelope version ${bytes[1]}`);
  const end = bytes.length - checksumBytes;
  const expected = ((bytes[end] as number) | ((bytes[end + 1] as number) << 8) | ((bytes[end + 2] as number) << 16) | ((bytes[end + 3] as number) << 24)) >>> 0;
  if (crc32c(bytes, 0, end) !== expected) fail('checksum', 'CRC-32C mismatch');
  const reader = new ProtoReader(bytes, headerBytes, end);
  let frame: Frame | undefined;
  let unknownBody = false;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field < 1 || field > bodyFieldMax) {
      reader.skipField(wireType);
      unknownBody ||= field > bodyFieldMax && wireType === wireLengthDelimited;
      continue;
    }
    if (frame !== undefined) fail('inconsistent', 'a frame carries one body');
    reader.expectWireType(wireType, wireLengthDelimited, 'Frame.body');
    frame = readBody(field, reader.lengthDelimited());
  }
  // A body of a kind a newer build added (this build added `health-delta` after others were
  // deployed) is read as a heartbeat: the peer is alive and its frame intact, and closing the
  // link over it would make every rolling upgrade flap the mesh. Nothing else is taken from it.
  if (frame === undefined && unknownBody) return { kind: 'heartbeat' };
  if (frame === undefined) fail('inconsistent', 'a frame without a body');
  return frame;
}
