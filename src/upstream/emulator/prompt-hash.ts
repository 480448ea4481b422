/**
 * A 64-bit running hash of a prompt, fed segment by segment, so that the hash of every prefix
 * (every prompt-cache breakpoint) comes out on the way to the hash of the whole prompt. Two
 * independent 32-bit FNV-1a lanes over UTF-16 code units; each segment is length-prefixed so
 * that ["ab", "c"] and ["a", "bc"] differ. Not cryptographic: it keys an emulator's cache and
 * seeds its text generator, where a collision in 2^64 costs a wrong cache hit in a test.
 */
export class PromptHash {
  private a = 0x811c9dc5;
  private b = 0x050c5d1f;

  /** Feeds one segment. */
  update(text: string): this {
    // The lanes live in locals for the loop: a prompt is hashed unit by unit on every request.
    let a = mixA(this.a, text.length & 0xffff);
    let b = mixB(this.b, text.length & 0xffff);
    a = mixA(a, text.length >>> 16);
    b = mixB(b, text.length >>> 16);
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      a = mixA(a, unit);
      b = mixB(b, unit);
    }
    this.a = a;
    this.b = b;
    return this;
  }

  /** The hash of everything fed so far, as 16 hex digits; feeding may continue. */
  digest(): string {
    return (this.a >>> 0).toString(16).padStart(8, '0') + (this.b >>> 0).toString(16).padStart(8, '0');
  }

  /** The hash as a safe integer (53 bits), for seeding a generator. */
  seed(): number {
    return (this.a >>> 0) * 0x20_0000 + ((this.b >>> 0) >>> 11);
  }
}

function mixA(a: number, unit: number): number {
  return Math.imul(a ^ unit, 0x01000193);
}

/** The second lane mixes each unit differently, so the lanes do not fail together. */
function mixB(b: number, unit: number): number {
  const mixed = Math.imul(b ^ Math.imul(unit + 0x9e37, 0x85ebca6b), 0x01000193);
  return mixed ^ (mixed >>> 15);
}
