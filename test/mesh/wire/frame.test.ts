// Proves the frame codec's envelope checks, its compactness, and wire compatibility with
// protobufjs reading proto/carpool/v1/mesh.proto (so other languages can speak the mesh).
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { asNodeId, asReplicaId } from '../../../src/core/ids.js';
import { frameBytesMax } from '../../../src/core/limits.js';
import { counterKey } from '../../../src/crdt/counter-key.js';
import type { CounterDelta } from '../../../src/crdt/windowed-counter.js';
import { crc32c } from '../../../src/mesh/wire/crc32c.js';
import { decodeFrame, encodeFrame, type Frame } from '../../../src/mesh/wire/frame.js';

const root = protobuf.loadSync(new URL('../../../proto/carpool/v1/mesh.proto', import.meta.url).pathname);
const FrameType = root.lookupType('carpool.v1.Frame');

const a = asReplicaId('us-east-1');
const b = asReplicaId('eu-west-1');
const day = { unit: 'day' as const, index: 20418 };
const tokens = counterKey('tenant', 'acme', 'weighted_tokens', day);
const requests = counterKey('tenant', 'acme', 'requests', { unit: 'minute', index: 29_401_234 });

const sample: CounterDelta = {
  entries: [
    { key: tokens, replica: a, p: 1_234_567, n: 890, version: 7 },
    { key: tokens, replica: b, p: 9_007_199_254_740_991, n: 0, version: 3 },
    { key: requests, replica: a, p: 12, n: 0, version: 6 },
  ],
  ranges: [{ replica: a, from: 5, to: 7 }],
};

function encode(frame: Frame): Uint8Array {
  const result = encodeFrame(frame);
  if (!result.ok) throw new Error('unexpected frame-too-large');
  return result.value;
}

/** Wraps a protobuf `Frame` body in the envelope (magic, version, CRC). */
function envelope(body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(body.length + 6);
  bytes[0] = 0xca;
  bytes[1] = 0x01;
  bytes.set(body, 2);
  const crc = crc32c(bytes, 0, body.length + 2);
  new DataView(bytes.buffer).setUint32(body.length + 2, crc, true);
  return bytes;
}

function reason(bytes: Uint8Array): string {
  const decoded = decodeFrame(bytes);
  return decoded.ok ? 'ok' : decoded.error.reason;
}

describe('frame envelope', () => {
  it('round-trips a counter delta exactly, including the largest safe integer', () => {
    const decoded = decodeFrame(encode({ kind: 'counter-delta', delta: sample }));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok || decoded.value.kind !== 'counter-delta') return;
    const byId = (d: CounterDelta) => d.entries.map((e) => [e.key.id, e.replica, e.p, e.n, e.version].join('|')).sort();
    expect(byId(decoded.value.delta)).toEqual(byId(sample));
    expect(decoded.value.delta.ranges).toEqual(sample.ranges);
  });

  it('rejects short, foreign, future-version and corrupted frames with a reason', () => {
    const good = encode({ kind: 'digest', digest: new Map([[a, 3]]) });
    expect(reason(good)).toBe('ok');
    expect(reason(good.subarray(0, 5))).toBe('too-short');
    expect(reason(Uint8Array.from([0x7b, ...good.subarray(1)]))).toBe('bad-magic');
    expect(reason(Uint8Array.from([0xca, 0x02, ...good.subarray(2)]))).toBe('bad-version');
    const flipped = good.slice();
    flipped[4]! ^= 0x10;
    expect(reason(flipped)).toBe('checksum');
    expect(reason(new Uint8Array(frameBytesMax + 1))).toBe('too-long');
  });

  it('reads a body of a kind a newer build added as a heartbeat, so a rolling upgrade does not close links', () => {
    // Field 99, length-delimited, three bytes: a Frame.body this build does not know.
    const decoded = decodeFrame(envelope(Uint8Array.from([(99 << 3) | 2, 0x03, 1, 2, 3].flatMap((b) => (b > 0x7f ? [(b & 0x7f) | 0x80, b >> 7] : [b])))));
    expect(decoded.ok && decoded.value).toEqual({ kind: 'heartbeat' });
    // The health records of this build round-trip as themselves.
    const health: Frame = { kind: 'health-delta', records: [] };
    const encoded = encodeFrame(health);
    expect(encoded.ok && decodeFrame(encoded.value)).toEqual({ ok: true, value: health });
  });

  it('rejects well-checksummed frames whose content is inconsistent', () => {
    // Two bodies in one frame.
    const digest = FrameType.encode(FrameType.fromObject({ digest: { replicas: ['a'], versions: [1] } })).finish();
    expect(reason(envelope(Uint8Array.from([...digest, ...digest])))).toBe('inconsistent');
    // No body.
    expect(reason(envelope(new Uint8Array(0)))).toBe('inconsistent');
    // A digest with more versions than replicas.
    const uneven = FrameType.encode(FrameType.fromObject({ digest: { replicas: ['a'], versions: [1, 2] } })).finish();
    expect(reason(envelope(uneven))).toBe('inconsistent');
    // An entry that refers to a replica the table does not have.
    const dangling = FrameType.encode(
      FrameType.fromObject({
        counterDelta: {
          table: {
            replicas: ['a'],
            strings: ['tenant', 'acme', 'requests'],
            windowUnits: [4],
            windowIndexes: [1],
            keyScopes: [0],
            keySubjects: [1],
            keyMetrics: [2],
            keyWindows: [0],
          },
          entryReplicas: [3],
          entryP: [1],
          entryN: [0],
          entryVersionLags: [0],
        },
      }),
    ).finish();
    expect(reason(envelope(dangling))).toBe('out-of-range');
    // A scope that is not a lowercase name.
    const badScope = FrameType.encode(
      FrameType.fromObject({
        counterDelta: {
          table: {
            replicas: ['a'],
            strings: ['Tenant', 'acme', 'requests'],
            windowUnits: [4],
            windowIndexes: [1],
            keyScopes: [0],
            keySubjects: [1],
            keyMetrics: [2],
            keyWindows: [0],
          },
          entryReplicas: [0],
          entryP: [1],
          entryN: [0],
          entryVersionLags: [0],
        },
      }),
    ).finish();
    expect(reason(envelope(badScope))).toBe('bad-string');
    // A varint above 2^53 - 1.
    expect(reason(envelope(Uint8Array.from([0x12, 0x0b, 0x12, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])))).toBe('out-of-range');
  });

  it('round-trips a frame that outgrows the shared writer, and a small one after it', () => {
    const entries = Array.from({ length: 20_000 }, (_, i) => ({
      key: counterKey('tenant', `tenant-with-a-long-name-${i}`, 'requests', day),
      replica: i % 2 === 0 ? a : b,
      p: i * 1_000_003,
      n: i,
      version: 1 + (i % 5),
    }));
    const big = encode({ kind: 'counter-delta', delta: { entries, ranges: [] } });
    expect(big.length).toBeGreaterThan(256 * 1024);
    const decoded = decodeFrame(big);
    expect(decoded.ok && decoded.value.kind === 'counter-delta' ? decoded.value.delta.entries.length : 0).toBe(20_000);
    if (decoded.ok && decoded.value.kind === 'counter-delta') {
      const last = decoded.value.delta.entries.find((e) => e.key.subject.endsWith('-19999'));
      expect(last).toMatchObject({ p: 19_999 * 1_000_003, n: 19_999, version: 5, replica: b });
    }
    const small = decodeFrame(encode({ kind: 'digest', digest: new Map([[a, 1]]) }));
    expect(small.ok && small.value.kind === 'digest' ? [...small.value.digest] : []).toEqual([[a, 1]]);
  });

  it('refuses to encode a frame over frameBytesMax', () => {
    // 60,000 keys with 64-character subjects: about 76 bytes each, over 4 MiB in all.
    const entries = Array.from({ length: 60_000 }, (_, i) => ({
      key: counterKey('tenant', String(i).padStart(64, 'x'), 'requests', day),
      replica: a,
      p: i,
      n: 0,
      version: 1,
    }));
    const result = encodeFrame({ kind: 'counter-delta', delta: { entries, ranges: [] } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.bytes).toBeGreaterThan(frameBytesMax);
  });
});

describe('wire compatibility with protobufjs', () => {
  it('protobufjs reads a relayed recovery probe and its reply as the .proto describes them; inconsistent probes are refused', () => {
    const probe = encode({ kind: 'quorum-read', round: 41, keys: [], since: new Map([[a, 9]]), relay: asNodeId('eu-west') });
    const read = FrameType.toObject(FrameType.decode(probe.subarray(2, probe.length - 4)), { longs: Number, arrays: true }) as {
      quorumRead: { round: number; since: { replicas: string[]; versions: number[] }; relay: string };
    };
    expect(read.quorumRead).toMatchObject({ round: 41, since: { replicas: ['us-east-1'], versions: [9] }, relay: 'eu-west' });
    const reply = encode({ kind: 'quorum-reply', round: 41, entries: [], relayed: asNodeId('eu-west') });
    const answered = FrameType.toObject(FrameType.decode(reply.subarray(2, reply.length - 4)), { longs: Number }) as {
      quorumReply: { round: number; relayed: string };
    };
    expect(answered.quorumReply).toMatchObject({ round: 41, relayed: 'eu-west' });
    const decoded = decodeFrame(reply);
    expect(decoded.ok && decoded.value).toEqual({ kind: 'quorum-reply', round: 41, entries: [], relayed: 'eu-west' });
    // A read with keys is no probe; a relay needs the prober's digest (its answer is what the prober lacks).
    const keys = {
      replicas: [],
      strings: ['tenant', 'acme', 'requests'],
      windowUnits: [4],
      windowIndexes: [1],
      keyScopes: [0],
      keySubjects: [1],
      keyMetrics: [2],
      keyWindows: [0],
    };
    const read1 = FrameType.encode(FrameType.fromObject({ quorumRead: { round: 1, keys } })).finish();
    expect(reason(envelope(read1))).toBe('ok');
    const withKeys = FrameType.encode(FrameType.fromObject({ quorumRead: { round: 1, keys, since: { replicas: ['a'], versions: [1] } } })).finish();
    expect(reason(envelope(withKeys))).toBe('inconsistent');
    const noDigest = FrameType.encode(FrameType.fromObject({ quorumRead: { round: 1, relay: 'eu-west' } })).finish();
    expect(reason(envelope(noDigest))).toBe('inconsistent');
    const badRelay = FrameType.encode(FrameType.fromObject({ quorumRead: { round: 1, since: {}, relay: 'eu west' } })).finish();
    expect(reason(envelope(badRelay))).toBe('bad-string');
  });

  it('protobufjs reads our counter delta as the .proto describes it', () => {
    const bytes = encode({ kind: 'counter-delta', delta: sample });
    const message = FrameType.decode(bytes.subarray(2, bytes.length - 4));
    const object = FrameType.toObject(message, { longs: Number, arrays: true }) as {
      counterDelta: {
        table: { replicas: string[]; strings: string[]; windowUnits: number[]; windowIndexes: number[]; keyScopes: number[]; keySubjects: number[] };
        keyEntryCounts: number[];
        entryReplicas: number[];
        entryP: number[];
        entryN: number[];
        entryVersionLags: number[];
        rangeReplicas: number[];
        rangeFrom: number[];
        rangeTo: number[];
      };
    };
    const delta = object.counterDelta;
    expect(delta.table.replicas).toEqual(['us-east-1', 'eu-west-1']);
    expect(delta.table.strings).toEqual(['tenant', 'acme', 'weighted_tokens', 'requests']);
    expect(delta.table.windowUnits).toEqual([4, 1]);
    expect(delta.table.windowIndexes).toEqual([20418, 29_401_234]);
    expect(delta.keyEntryCounts).toEqual([2, 1]);
    expect(delta.entryReplicas).toEqual([0, 1, 0]);
    expect(delta.entryP).toEqual([1_234_567, 9_007_199_254_740_991, 12]);
    expect(delta.entryN).toEqual([890, 0, 0]);
    // Versions relative to the range's `to` (7) for replica 0; replica 1 has no range.
    expect(delta.entryVersionLags).toEqual([0, -3, 1]);
    expect([delta.rangeReplicas, delta.rangeFrom, delta.rangeTo]).toEqual([[0], [5], [7]]);
  });

  it('writes repetitive columns as runs, which protobufjs reads and we round-trip', () => {
    const owner = Array.from({ length: 100 }, (_, i) => ({
      key: counterKey('tenant', `t${i}`, 'requests', day),
      replica: a,
      p: i + 1,
      n: 0,
      version: 7,
    }));
    const bytes = encode({ kind: 'counter-delta', delta: { entries: owner, ranges: [{ replica: a, from: 6, to: 7 }] } });
    const object = FrameType.toObject(FrameType.decode(bytes.subarray(2, bytes.length - 4)), { longs: Number, arrays: true }) as {
      counterDelta: {
        entryReplicas: number[];
        entryReplicasRuns: number[];
        entryNRuns: number[];
        entryVersionLagsRuns: number[];
        table: { keyScopesRuns: number[] };
      };
    };
    expect(object.counterDelta.entryReplicas).toEqual([]);
    expect(object.counterDelta.entryReplicasRuns).toEqual([0, 100]);
    expect(object.counterDelta.entryNRuns).toEqual([0, 100]);
    expect(object.counterDelta.entryVersionLagsRuns).toEqual([0, 100]);
    expect(object.counterDelta.table.keyScopesRuns).toEqual([0, 100]);
    const decoded = decodeFrame(bytes);
    expect(decoded.ok && decoded.value.kind === 'counter-delta' ? decoded.value.delta.entries.map((e) => e.version) : []).toEqual(new Array(100).fill(7));
  });

  it('rejects a column written both dense and as runs, and runs that expand too far', () => {
    const table = {
      replicas: ['a'],
      strings: ['tenant', 'acme', 'requests'],
      windowUnits: [4],
      windowIndexes: [1],
      keyScopes: [0],
      keySubjects: [1],
      keyMetrics: [2],
      keyWindows: [0],
    };
    const both = FrameType.encode(
      FrameType.fromObject({ counterDelta: { table, entryReplicas: [0], entryReplicasRuns: [0, 1], entryP: [1], entryN: [0], entryVersionLags: [0] } }),
    ).finish();
    expect(reason(envelope(both))).toBe('inconsistent');
    const huge = FrameType.encode(
      FrameType.fromObject({ counterDelta: { table, entryReplicasRuns: [0, 2 ** 40], entryP: [1], entryN: [0], entryVersionLags: [0] } }),
    ).finish();
    expect(reason(envelope(huge))).toBe('too-many');
  });

  it('we read what protobufjs writes, unpacked fields and unknown fields included', () => {
    const body = FrameType.encode(
      FrameType.fromObject({
        rightsDelta: {
          table: {
            replicas: ['a', 'b'],
            strings: ['tenant', 'acme', 'requests'],
            windowUnits: [6],
            windowIndexes: [680],
            keyScopes: [0],
            keySubjects: [1],
            keyMetrics: [2],
            keyWindows: [0],
          },
          rowKeys: [0],
          rowOwners: [0],
          rowUsed: [40],
          rowCellCounts: [2],
          cellTo: [0, 1],
          cellAmounts: [100, 25],
        },
      }),
    ).finish();
    // Append an unknown field (number 15, varint) to the Frame: a newer peer's addition.
    const decoded = decodeFrame(envelope(Uint8Array.from([...body, 0x78, 0x05])));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok || decoded.value.kind !== 'rights-delta') return;
    const [row] = decoded.value.rows;
    expect(row?.key.id).toBe(counterKey('tenant', 'acme', 'requests', { unit: 'day30', index: 680 }).id);
    expect(row?.row.used).toBe(40);
    expect([...(row?.row.cells ?? [])]).toEqual([
      ['a', 100],
      ['b', 25],
    ]);
    // An unpacked repeated field (wire type 0, one value per tag) decodes the same as packed.
    const unpacked = Uint8Array.from([0x12, 0x07, 0x0a, 0x01, 0x61, 0x10, 0x05, 0x10, 0x06]);
    const digestDecoded = decodeFrame(envelope(unpacked));
    expect(digestDecoded.ok).toBe(false); // one replica, two versions: inconsistent
    const unpackedOk = Uint8Array.from([0x12, 0x05, 0x0a, 0x01, 0x61, 0x10, 0x05]);
    const okDecoded = decodeFrame(envelope(unpackedOk));
    expect(okDecoded.ok && okDecoded.value.kind === 'digest' ? [...okDecoded.value.digest] : undefined).toEqual([['a', 5]]);
  });
});
