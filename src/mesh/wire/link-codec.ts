import { type NodeId, isValidId, type ReplicaId } from '../../core/ids.js';
import { counterVersionMax, frameBytesMax, idLengthMax } from '../../core/limits.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited, wireVarint } from './proto-writer.js';

/**
 * The per-link messages of proto/carpool/v1/mesh.proto: the handshake (Hello, Challenge, Proof),
 * DeltaAck, Heartbeat and PolicySync. Field presence is strict: a handshake message missing its
 * member, nonce or proof is rejected here rather than reaching the authentication logic.
 */
export const nonceBytesMin = 16;
export const nonceBytesMax = 64;
export const proofBytes = 32;

export interface Hello {
  readonly protocolVersion: number;
  readonly member: NodeId;
  readonly nonce: Uint8Array;
}

export interface Challenge {
  readonly member: NodeId;
  readonly nonce: Uint8Array;
  readonly proof: Uint8Array;
}

export interface DeltaAck {
  readonly replica: ReplicaId;
  readonly version: number;
}

export function writeHello(writer: ProtoWriter, hello: Hello): void {
  writer.varintField(1, hello.protocolVersion);
  writer.string(2, hello.member);
  writer.bytesField(3, hello.nonce);
}

export function readHello(reader: ProtoReader): Hello {
  let protocolVersion = 0;
  let member: string | undefined;
  let nonce: Uint8Array | undefined;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireVarint, 'Hello.protocol_version');
      protocolVersion = reader.varint();
    } else if (field === 2) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Hello.member');
      member = reader.ascii(idLengthMax);
    } else if (field === 3) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Hello.nonce');
      nonce = reader.bytes(nonceBytesMax);
    } else reader.skipField(wireType);
  }
  return { protocolVersion, member: checkMember(member), nonce: checkNonce(nonce) };
}

export function writeChallenge(writer: ProtoWriter, challenge: Challenge): void {
  writer.string(1, challenge.member);
  writer.bytesField(2, challenge.nonce);
  writer.bytesField(3, challenge.proof);
}

export function readChallenge(reader: ProtoReader): Challenge {
  let member: string | undefined;
  let nonce: Uint8Array | undefined;
  let proof: Uint8Array | undefined;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Challenge.member');
      member = reader.ascii(idLengthMax);
    } else if (field === 2) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Challenge.nonce');
      nonce = reader.bytes(nonceBytesMax);
    } else if (field === 3) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Challenge.proof');
      proof = reader.bytes(proofBytes);
    } else reader.skipField(wireType);
  }
  return { member: checkMember(member), nonce: checkNonce(nonce), proof: checkProof(proof) };
}

export function writeProof(writer: ProtoWriter, proof: Uint8Array): void {
  writer.bytesField(1, proof);
}

export function readProof(reader: ProtoReader): Uint8Array {
  let proof: Uint8Array | undefined;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Proof.proof');
      proof = reader.bytes(proofBytes);
    } else reader.skipField(wireType);
  }
  return checkProof(proof);
}

export function writeDeltaAck(writer: ProtoWriter, ack: DeltaAck): void {
  writer.string(1, ack.replica);
  writer.varintField(2, ack.version);
}

export function readDeltaAck(reader: ProtoReader): DeltaAck {
  let replica: string | undefined;
  let version = 0;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireLengthDelimited, 'DeltaAck.replica');
      replica = reader.ascii(idLengthMax);
    } else if (field === 2) {
      reader.expectWireType(wireType, wireVarint, 'DeltaAck.version');
      version = reader.varint();
    } else reader.skipField(wireType);
  }
  if (replica === undefined || !isValidId(replica)) fail('bad-string', 'DeltaAck needs a replica id');
  if (version > counterVersionMax) fail('out-of-range', 'version too large');
  return { replica: replica as ReplicaId, version };
}

export function readHeartbeat(reader: ProtoReader): void {
  while (!reader.done) reader.skipField(reader.tag()[1]);
}

export function writePolicySync(writer: ProtoWriter, message: Uint8Array): void {
  writer.bytesField(1, message);
}

export function readPolicySync(reader: ProtoReader): Uint8Array {
  let message: Uint8Array = new Uint8Array(0);
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireLengthDelimited, 'PolicySync.message');
      message = reader.bytes(frameBytesMax);
    } else reader.skipField(wireType);
  }
  return message;
}

function checkMember(member: string | undefined): NodeId {
  if (member === undefined || !isValidId(member)) return fail('bad-string', 'a member id is required');
  return member as NodeId;
}

function checkNonce(nonce: Uint8Array | undefined): Uint8Array {
  if (nonce === undefined || nonce.length < nonceBytesMin) return fail('out-of-range', `a nonce of ${nonceBytesMin} to ${nonceBytesMax} bytes is required`);
  return nonce;
}

function checkProof(proof: Uint8Array | undefined): Uint8Array {
  if (proof === undefined || proof.length !== proofBytes) return fail('out-of-range', `a proof is ${proofBytes} bytes`);
  return proof;
}
