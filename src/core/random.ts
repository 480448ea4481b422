import { assert } from './assert.js';

/**
 * Randomness reaches the cores only through this interface. Production may back it with a
 * seeded generator too (jitter does not need cryptographic quality); the simulator always does,
 * so the same seed replays the same run.
 */
export interface Random {
  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number;
  /** A uniformly distributed float in [0, 1). */
  float(): number;
  /** A uniformly distributed integer in [0, bound). */
  int(bound: number): number;
}

/**
 * SFC32 (Chris Doty-Humphrey's small fast counting generator): 128 bits of state, passes
 * PractRand, and needs only 32-bit integer arithmetic, which V8 runs without allocation.
 * The state is expanded from the seed with splitmix32 so that nearby seeds give unrelated streams.
 */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `seed must be a safe integer, got ${seed}`);
    let s = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    // Discard the first outputs: SFC32 mixes its state over its first few rounds.
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  int(bound: number): number {
    assert(Number.isSafeInteger(bound) && bound > 0 && bound <= 0x1_0000_0000, `bad bound ${bound}`);
    // Rejection sampling removes the modulo bias that `u32() % bound` would have.
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % bound);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % bound;
    }
  }

  /** An independent generator derived from this one: for giving each component its own stream. */
  fork(): SeededRandom {
    return new SeededRandom(this.u32() * 0x20_0000 + (this.u32() >>> 11));
  }
}
