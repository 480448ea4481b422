import { wireLengthDelimited, wireVarint } from './proto-writer.js';

/**
 * The reading side of `ProtoWriter`. Every read checks bounds; a violation throws
 * `DecodeFailure`, which only the frame decoder catches and turns into an error value, so no
 * exception ever leaves the wire boundary. Varints above 2⁵³ − 1 are rejected rather than
 * rounded: a counter must never change value on its way through the wire.
 */
export type DecodeReason =
  | 'too-short'
  | 'too-long'
  | 'bad-magic'
  | 'bad-version'
  | 'checksum'
  | 'truncated'
  | 'bad-wire-type'
  | 'out-of-range'
  | 'bad-string'
  | 'inconsistent'
  | 'too-many';

export class DecodeFailure extends Error {
  override readonly name = 'DecodeFailure';

  constructor(
    readonly reason: DecodeReason,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export function fail(reason: DecodeReason, detail: string): never {
  throw new DecodeFailure(reason, detail);
}

export class ProtoReader {
  private position: number;

  constructor(
    private readonly source: Uint8Array,
    start = 0,
    private readonly end = source.length,
  ) {
    this.position = start;
  }

  get done(): boolean {
    return this.position >= this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.position >= this.end) fail('truncated', 'varint runs past the end');
      const b = this.source[this.position++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) fail('out-of-range', 'varint above 2^53 - 1');
        return value;
      }
      scale *= 0x80;
    }
    return fail('out-of-range', 'varint longer than ten bytes');
  }

  /** Reads a field key; returns [field number, wire type]. */
  tag(): [number, number] {
    const key = this.varint();
    const field = Math.floor(key / 8);
    if (field === 0) fail('out-of-range', 'field number 0');
    return [field, key % 8];
  }

  /** A length-delimited payload as a sub-reader over the same bytes. */
  lengthDelimited(): ProtoReader {
    const length = this.varint();
    if (length > this.end - this.position) fail('truncated', 'length-delimited field runs past the end');
    const sub = new ProtoReader(this.source, this.position, this.position + length);
    this.position += length;
    return sub;
  }

  /** A string of printable ASCII (all our table strings), at most `lengthMax` characters. */
  ascii(lengthMax: number): string {
    const length = this.varint();
    if (length > this.end - this.position) fail('truncated', 'string runs past the end');
    if (length > lengthMax) fail('bad-string', `string longer than ${lengthMax}`);
    const chars = this.source.subarray(this.position, this.position + length);
    for (let i = 0; i < length; i++) {
      const c = chars[i] as number;
      if (c < 0x21 || c > 0x7e) fail('bad-string', 'strings are printable ASCII without spaces');
    }
    this.position += length;
    // At most `lengthMax` (64) arguments: well inside the engine's argument limit.
    return String.fromCharCode.apply(null, chars as unknown as number[]);
  }

  /** A bytes field of at most `lengthMax` bytes, copied out of the frame. */
  bytes(lengthMax: number): Uint8Array {
    const length = this.varint();
    if (length > this.end - this.position) fail('truncated', 'bytes field runs past the end');
    if (length > lengthMax) fail('too-long', `bytes field longer than ${lengthMax}`);
    const value = this.source.slice(this.position, this.position + length);
    this.position += length;
    return value;
  }

  /**
   * Appends a repeated varint field to `into`, packed (wire type 2) or not (wire type 0), and
   * refuses to grow it past `countMax`.
   */
  repeatedVarint(wireType: number, into: number[], countMax: number): void {
    if (wireType === wireVarint) {
      into.push(this.varint());
    } else if (wireType === wireLengthDelimited) {
      const packed = this.lengthDelimited();
      while (!packed.done) {
        into.push(packed.varint());
        if (into.length > countMax) fail('too-many', `more than ${countMax} values in a column`);
      }
    } else {
      fail('bad-wire-type', `wire type ${wireType} for a repeated varint`);
    }
    if (into.length > countMax) fail('too-many', `more than ${countMax} values in a column`);
  }

  /** Skips a field this decoder does not know (forward compatibility). */
  skipField(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        fail('bad-wire-type', `wire type ${wireType} cannot be skipped`);
    }
  }

  expectWireType(actual: number, expected: number, what: string): void {
    if (actual !== expected) fail('bad-wire-type', `${what} has wire type ${actual}, expected ${expected}`);
  }

  private advance(count: number): void {
    if (count > this.end - this.position) fail('truncated', 'fixed-width field runs past the end');
    this.position += count;
  }
}

/**
 * The values of a column written by `ProtoWriter.packedOrRuns`: the dense form, or the (value,
 * run length) pairs expanded, never both, and never more than `countMax` values.
 */
export function columnOf(dense: readonly number[], runs: readonly number[], countMax: number, what: string): number[] {
  if (runs.length === 0) return dense as number[];
  if (dense.length > 0) fail('inconsistent', `${what} is written both dense and as runs`);
  if (runs.length % 2 !== 0) fail('inconsistent', `${what} runs come in (value, length) pairs`);
  let total = 0;
  for (let i = 1; i < runs.length; i += 2) total += runs[i] as number;
  if (total > countMax) fail('too-many', `${what} runs expand past ${countMax} values`);
  const values = new Array<number>(total);
  let at = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const value = runs[i] as number;
    const length = runs[i + 1] as number;
    if (length === 0) fail('inconsistent', `${what} has an empty run`);
    values.fill(value, at, at + length);
    at += length;
  }
  return values;
}
