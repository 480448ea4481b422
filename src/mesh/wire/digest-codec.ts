import type { ReplicaId } from '../../core/ids.js';
import { isValidId } from '../../core/ids.js';
import { counterVersionMax, idLengthMax, replicasMax } from '../../core/limits.js';
import type { Digest } from '../../crdt/windowed-counter.js';
import { fail, type ProtoReader } from './proto-reader.js';
import { type ProtoWriter, wireLengthDelimited } from './proto-writer.js';

/** `Digest` (proto/carpool/v1/mesh.proto): replica ids and the versions known for them. */
export function writeDigest(writer: ProtoWriter, digest: Digest): void {
  const versions: number[] = [];
  for (const [replica, version] of digest) {
    writer.string(1, replica);
    versions.push(version);
  }
  writer.packed(2, versions);
}

export function readDigest(reader: ProtoReader): Digest {
  const replicas: ReplicaId[] = [];
  const versions: number[] = [];
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      reader.expectWireType(wireType, wireLengthDelimited, 'Digest.replicas');
      if (replicas.length >= replicasMax) fail('too-many', `more than ${replicasMax} replicas`);
      replicas.push(reader.ascii(idLengthMax) as ReplicaId);
    } else if (field === 2) {
      reader.repeatedVarint(wireType, versions, replicasMax);
    } else {
      reader.skipField(wireType);
    }
  }
  if (versions.length !== replicas.length) fail('inconsistent', 'digest columns differ in length');
  const digest = new Map<ReplicaId, number>();
  for (let i = 0; i < replicas.length; i++) {
    const replica = replicas[i] as ReplicaId;
    const version = versions[i] as number;
    if (!isValidId(replica)) fail('bad-string', 'invalid replica id');
    if (digest.has(replica)) fail('inconsistent', 'a replica appears twice');
    if (version > counterVersionMax) fail('out-of-range', 'version too large');
    digest.set(replica, version);
  }
  return digest;
}
