import { assert } from '../../core/assert.js';
import { emulatorOutputTokensMax } from '../../core/limits.js';
import { SeededRandom } from '../../core/random.js';

/**
 * The emulator's "model": deterministic text from a seed (the emulator's seed mixed with the hash
 * of the prompt), so the same request always gets the same answer and the same usage.
 *
 * The answer is a list of pieces, each exactly one output token: a word of at most five letters
 * (with its leading space), a comma or a full stop. The tokenizer (token-count.ts) counts each
 * piece as one token too, so counting the answer's text agrees with its `output_tokens`.
 *
 * Its natural length is drawn from [lengthMin, lengthMax]. If `max_tokens` cuts it short the stop
 * reason is `max_tokens`; if it ends on its own, `end_turn` (and its last piece is a full stop);
 * if a stop sequence appears in the text, the text ends just before it and the stop reason is
 * `stop_sequence`. As with the real API, the tokens that produced the stop sequence are billed.
 */
export interface GenerationOptions {
  readonly seed: number;
  /** The hash of the prompt (prompt-segments.ts). */
  readonly promptSeed: number;
  readonly maxTokens: number;
  readonly lengthMin: number;
  readonly lengthMax: number;
  readonly stopSequences: readonly string[];
}

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence';

export interface GeneratedText {
  /** The answer cut into text deltas of one token each (the stop sequence cut off). */
  readonly pieces: readonly string[];
  readonly text: string;
  /** Tokens generated, the stop sequence's included. */
  readonly outputTokens: number;
  readonly stopReason: StopReason;
  readonly stopSequence: string | null;
}

const words = [
  'the',
  'a',
  'pool',
  'mesh',
  'car',
  'ride',
  'lane',
  'road',
  'share',
  'seat',
  'key',
  'limit',
  'quota',
  'token',
  'node',
  'peer',
  'delta',
  'merge',
  'count',
  'fair',
  'queue',
  'tier',
  'paid',
  'free',
  'burst',
  'rate',
  'cache',
  'hit',
  'miss',
  'write',
  'read',
  'of',
  'to',
  'and',
  'in',
  'on',
  'with',
  'from',
  'every',
  'each',
  'one',
  'two',
  'many',
  'few',
  'more',
  'less',
  'now',
  'then',
  'soon',
  'late',
  'early',
  'fast',
  'slow',
  'calm',
  'even',
  'safe',
  'sure',
  'clear',
  'plain',
  'small',
  'large',
  'is',
  'was',
  'will',
] as const;

/**
 * Every word as a piece, made once: capitalized when it opens a sentence, after a space unless it
 * opens the answer.
 */
const capitalizedWords: readonly string[] = words.map((word) => word.charAt(0).toUpperCase() + word.slice(1));
const spacedWords: readonly string[] = words.map((word) => ` ${word}`);
const spacedCapitalizedWords: readonly string[] = capitalizedWords.map((word) => ` ${word}`);

/** Words per sentence, at least and at most. */
const sentenceWordsMin = 5;
const sentenceWordsMax = 14;

export function generateText(options: GenerationOptions): GeneratedText {
  const { maxTokens, lengthMin, lengthMax, stopSequences } = options;
  assert(Number.isSafeInteger(maxTokens) && maxTokens >= 1, 'max_tokens is validated before generation');
  assert(
    Number.isSafeInteger(lengthMin) && lengthMin >= 1 && lengthMin <= lengthMax && lengthMax <= emulatorOutputTokensMax,
    'lengths are within 1 to emulatorOutputTokensMax',
  );
  const random = new SeededRandom((options.seed * 0x9e3779b1 + options.promptSeed) % Number.MAX_SAFE_INTEGER);
  const natural = lengthMin + random.int(lengthMax - lengthMin + 1);
  const length = Math.min(maxTokens, natural);

  const pieces: string[] = [];
  // The text so far is needed only to look for stop sequences; otherwise it is joined at the end.
  const watching = stopSequences.length > 0;
  let text = '';
  /** Words left in the current sentence; 0 ends it with a full stop, -1 starts the next one. */
  let sentenceLeft = -1;
  let previous = '';
  for (let i = 0; i < length; i++) {
    let piece: string;
    if (i === natural - 1 || sentenceLeft === 0) {
      piece = '.';
      sentenceLeft = -1;
    } else if (sentenceLeft > 1 && previous !== ',' && random.int(10) === 0) {
      piece = ',';
    } else {
      const index = random.int(words.length);
      if (sentenceLeft === -1) {
        sentenceLeft = sentenceWordsMin + random.int(sentenceWordsMax - sentenceWordsMin + 1);
        piece = (i === 0 ? capitalizedWords : spacedCapitalizedWords)[index] as string;
      } else piece = (i === 0 ? words : spacedWords)[index] as string;
      sentenceLeft -= 1;
    }
    pieces.push(piece);
    previous = piece;
    if (watching) {
      const before = text.length;
      text += piece;
      const stop = findStop(text, stopSequences, before);
      if (stop !== undefined) return cutAtStop(pieces, stop.at, stop.sequence);
    }
  }
  const stopReason: StopReason = length === natural ? 'end_turn' : 'max_tokens';
  return { pieces, text: watching ? text : pieces.join(''), outputTokens: pieces.length, stopReason, stopSequence: null };
}

/**
 * The earliest stop sequence that ends past `before`, the text's length before the last piece:
 * one that ended earlier would have been found at an earlier piece.
 */
function findStop(text: string, stopSequences: readonly string[], before: number): { at: number; sequence: string } | undefined {
  let best: { at: number; sequence: string } | undefined;
  for (const sequence of stopSequences) {
    const at = text.indexOf(sequence, Math.max(0, before - sequence.length + 1));
    if (at !== -1 && (best === undefined || at < best.at)) best = { at, sequence };
  }
  return best;
}

function cutAtStop(pieces: readonly string[], at: number, sequence: string): GeneratedText {
  const kept: string[] = [];
  let length = 0;
  for (const piece of pieces) {
    if (length + piece.length <= at) {
      kept.push(piece);
      length += piece.length;
      continue;
    }
    if (at > length) kept.push(piece.slice(0, at - length));
    break;
  }
  return { pieces: kept, text: kept.join(''), outputTokens: pieces.length, stopReason: 'stop_sequence', stopSequence: sequence };
}
