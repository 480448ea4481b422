import { assert } from '../../core/assert.js';

/**
 * A minimal protocol-buffers writer for the frames in proto/carpool/v1/mesh.proto: varints up to
 * 2⁵³ (counters are JavaScript numbers, never BigInts), zigzag varints, ASCII strings, packed
 * repeated fields and nested messages. Hand-written instead of generated because it writes
 * numbers without Long objects, knows our strings are ASCII, and allocates one buffer per frame;
 * test/mesh/wire checks its output against protobufjs reading the .proto file.
 */
export const wireVarint = 0;
export const wireLengthDelimited = 2;

export class ProtoWriter {
  private buffer: Uint8Array;
  private position = 0;

  constructor(capacity = 256) {
    this.buffer = new Uint8Array(capacity);
  }

  get length(): number {
    return this.position;
  }

  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.position);
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.position++] = value;
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  varint(value: number): void {
    this.reserve(10);
    let v = value;
    if (v < 0x8000_0000) {
      while (v > 0x7f) {
        this.buffer[this.position++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buffer[this.position++] = v;
      return;
    }
    assert(Number.isSafeInteger(v) && v >= 0, 'varints encode non-negative safe integers');
    while (v > 0x7f) {
      this.buffer[this.position++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buffer[this.position++] = v;
  }

  /** An ASCII string field (ids and names are ASCII by construction). */
  string(field: number, text: string): void {
    this.tag(field, wireLengthDelimited);
    this.varint(text.length);
    this.reserve(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      assert(c < 0x80, 'wire strings are ASCII');
      this.buffer[this.position++] = c;
    }
  }

  /** A bytes field. */
  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, wireLengthDelimited);
    this.varint(bytes.length);
    this.raw(bytes);
  }

  /** A singular varint field; proto3 leaves zero unwritten. */
  varintField(field: number, value: number): void {
    if (value === 0) return;
    this.tag(field, wireVarint);
    this.varint(value);
  }

  /** A packed repeated varint field; nothing is written for an empty column. */
  packed(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    let size = 0;
    for (let i = 0; i < values.length; i++) size += varintSize(values[i] as number);
    this.tag(field, wireLengthDelimited);
    this.varint(size);
    for (let i = 0; i < values.length; i++) this.varint(values[i] as number);
  }

  /**
   * A column that often repeats one value (the sending replica, zero refunds, one metric): written
   * packed as `denseField`, or as (value, run length) pairs in `runsField`, whichever is smaller.
   */
  packedOrRuns(denseField: number, runsField: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    let denseSize = 0;
    let runsSize = 0;
    const runs: number[] = [];
    for (let i = 0; i < values.length;) {
      const value = values[i] as number;
      let end = i + 1;
      while (end < values.length && values[end] === value) end++;
      runs.push(value, end - i);
      runsSize += varintSize(value) + varintSize(end - i);
      for (let k = i; k < end; k++) denseSize += varintSize(value);
      i = end;
    }
    if (runsSize < denseSize) this.packed(runsField, runs);
    else this.packed(denseField, values);
  }

  /** A packed repeated `sint64` field: zigzag-encoded signed values. */
  packedSigned(field: number, values: ArrayLike<number>): void {
    const encoded = new Array<number>(values.length);
    for (let i = 0; i < values.length; i++) encoded[i] = zigzag(values[i] as number);
    this.packed(field, encoded);
  }

  /**
   * A nested message field, written in place: `write` appends the body after room for a
   * five-byte length, and the body moves back once its length is known. No scratch writer is
   * allocated, which matters when every gossip frame nests two messages.
   */
  message(field: number, write: (writer: ProtoWriter) => void): void {
    this.tag(field, wireLengthDelimited);
    this.reserve(5);
    const lengthAt = this.position;
    this.position += 5;
    write(this);
    const length = this.position - lengthAt - 5;
    const lengthBytes = varintSize(length);
    this.buffer.copyWithin(lengthAt + lengthBytes, lengthAt + 5, this.position);
    // Written by hand: `varint` may grow the buffer, and a grow keeps only what lies before
    // the current position, which here would lose the body.
    let v = length;
    let at = lengthAt;
    while (v > 0x7f) {
      this.buffer[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buffer[at++] = v;
    this.position = at + length;
  }

  /** Bytes the buffer holds, for callers that bound a reused writer's memory. */
  get capacity(): number {
    return this.buffer.length;
  }

  /** Forgets what was written, keeping the buffer: for a writer reused frame after frame. */
  reset(): void {
    this.position = 0;
  }

  private reserve(extra: number): void {
    if (this.position + extra <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.position + extra) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.position));
    this.buffer = grown;
  }
}

export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let size = 4;
  let v = Math.floor(value / 0x1000_0000);
  while (v > 0) {
    size++;
    v = Math.floor(v / 0x80);
  }
  return size;
}

/** Zigzag maps signed to unsigned so small magnitudes stay small: 0, −1, 1, −2 → 0, 1, 2, 3. */
export function zigzag(value: number): number {
  assert(Number.isSafeInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER / 2, 'zigzag range');
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

export function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}
