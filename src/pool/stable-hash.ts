/**
 * A small, stable, non-cryptographic string hash for placement decisions: rendezvous scores and
 * session keys. It must give the same value on every node and in every release, because two
 * nodes that hash one session key differently would pin it to different accounts and split its
 * prompt cache; so it depends on nothing but the UTF-16 code units of its input.
 *
 * Two 32-bit lanes run side by side, each a multiply-xor over the code units with its own
 * multiplier, and each ends in the MurmurHash3 32-bit finalizer, whose avalanche spreads every
 * input bit over the whole lane. Together they give 53 bits, all a double holds exactly, so a
 * hash is an ordinary number and collisions among a node's live sessions are negligible.
 * Nothing here resists a chosen-input attacker: the worst a crafted key can do is choose its own
 * account, which the client could do by sending another key anyway.
 */

const laneSeedA = 0x811c9dc5;
const laneSeedB = 0x2f8f0f29;
const laneMultiplierA = 0x01000193;
const laneMultiplierB = 0x5bd1e995;
const twoTo32 = 0x1_0000_0000;

/** The MurmurHash3 32-bit finalizer: a bijection on u32 with full avalanche. */
export function mix32(value: number): number {
  let x = value >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * An incremental hasher, for inputs walked piece by piece (a request body) without first joining
 * them into one string. Feeding "ab" then "c" gives the same hash as "abc": callers that need
 * piece boundaries to count feed a separator of their own.
 */
export class StableHasher {
  private a = laneSeedA;
  private b = laneSeedB;
  private length = 0;

  /** Code units fed so far. */
  get chars(): number {
    return this.length;
  }

  update(text: string): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, laneMultiplierA);
      b = Math.imul(b ^ c, laneMultiplierB);
      b ^= b >>> 15;
    }
    this.a = a;
    this.b = b;
    this.length += text.length;
    return this;
  }

  /** The hash of everything fed so far, as a non-negative integer below 2^53. */
  digest(): number {
    // The length goes into both lanes so that inputs differing only in trailing zero code units
    // (which a multiply-xor step can map to the same lane state) still differ.
    const lo = mix32(this.a ^ mix32(this.length));
    const hi = mix32(this.b ^ mix32(lo ^ this.length));
    return (hi >>> 11) * twoTo32 + lo;
  }
}

/** The 53-bit stable hash of `text`. */
export function stableHash(text: string): number {
  return new StableHasher().update(text).digest();
}

/** The low and high 32-bit lanes of a 53-bit hash. */
export function hashLanes(hash: number): readonly [lo: number, hi: number] {
  return [hashLaneLo(hash), hashLaneHi(hash)];
}

/** The low 32-bit lane of a 53-bit hash, without the pair `hashLanes` allocates: for hot loops. */
export function hashLaneLo(hash: number): number {
  // ToUint32 is the value modulo 2^32: `hash % twoTo32 >>> 0` without the floating-point remainder.
  return hash >>> 0;
}

/** The high lane (21 bits) of a 53-bit hash; see `hashLaneLo`. */
export function hashLaneHi(hash: number): number {
  return Math.floor(hash / twoTo32) >>> 0;
}
