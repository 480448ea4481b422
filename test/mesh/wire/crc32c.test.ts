// Proves the CRC-32C matches the published check values, including across the 8-byte fast path.
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../../src/mesh/wire/crc32c.js';

/** A plain bitwise CRC-32C: slow, obviously correct, the reference for the sliced version. */
function reference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0x82f63b78 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check values (RFC 3720 appendix B.4)', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  it('agrees with the bitwise reference on every length and offset up to 40 bytes', () => {
    const bytes = Uint8Array.from({ length: 48 }, (_, i) => (i * 37 + 11) & 0xff);
    for (let start = 0; start < 8; start++) {
      for (let end = start; end <= 48; end++) {
        expect(crc32c(bytes, start, end)).toBe(reference(bytes.subarray(start, end)));
      }
    }
  });
});
