import { SeededRandom } from '../../core/random.js';

/**
 * Request and message ids shaped like the real API's (`req_011CPyM3wrWkTpzYbAfNtmJg`,
 * `msg_01XFDUDYJgAACzvnptvVoYEL`: a prefix, `01`, then base62), drawn from a generator seeded
 * with the emulator's seed, so a run with the same seed and the same requests names them alike.
 */
const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const idChars = 22;

export class EmulatorIds {
  private readonly random: SeededRandom;

  constructor(seed: number) {
    this.random = new SeededRandom(seed);
  }

  next(prefix: 'req_' | 'msg_'): string {
    let id = `${prefix}01`;
    for (let i = 0; i < idChars; i++) id += alphabet.charAt(this.random.int(alphabet.length));
    return id;
  }
}
