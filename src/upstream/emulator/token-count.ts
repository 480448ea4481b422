/**
 * The emulator's tokenizer: a deterministic approximation of Claude's, cheap enough to run on
 * every request and simple enough to predict in a test. The real tokenizer is not public, and
 * nothing downstream needs its exact counts, only counts that are stable, grow with the text,
 * and agree between `count_tokens` and `messages` (both call this file).
 *
 * Text is read code point by code point into runs:
 *   - a run of letters, digits and combining marks (a word) counts one token per five
 *     characters, rounded up: "the" and "hello" are one token, "tokenization" three;
 *   - a Han, kana or Hangul character counts one token on its own, as real tokenizers give
 *     these scripts roughly a token per character;
 *   - every other non-space character (punctuation, symbols, emoji) is one token;
 *   - a single space or line end rides with the token after it and counts nothing; a longer
 *     run of white space (indentation) counts one token per four characters after its first.
 *
 * Structure adds fixed overheads like the real chat template does: a few tokens for the request,
 * each message and the system prompt, a fixed charge for an image or document (its real cost
 * depends on pixels the emulator does not decode), and the tool-use preamble when tools are
 * offered. Blocks of other types count the tokens of their JSON.
 */
export type Json = Readonly<Record<string, unknown>>;

/** Tokens of the request frame itself (the turn markers around the conversation). */
export const requestOverheadTokens = 4;
/** Tokens of one message's role marker. */
export const messageOverheadTokens = 3;
/** Tokens of the system prompt's marker, when there is a system prompt. */
export const systemOverheadTokens = 3;
/** Tokens of the tool-use preamble the API adds to the prompt when tools are offered. */
export const toolsOverheadTokens = 300;
/** Tokens of an image or document block, whatever its size. */
export const mediaBlockTokens = 1_500;

/** Letters per token of a word run. */
const wordCharsPerToken = 5;
/** Characters per token of a white-space run past its first character. */
const spaceCharsPerToken = 4;

const wordPattern = /[\p{L}\p{N}\p{M}]/u;
const wideScriptPattern = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
const spacePattern = /\s/u;

type CharClass = 'word' | 'wide' | 'space' | 'mark';

function classify(codePoint: number, char: string): CharClass {
  if (codePoint < 0x80) {
    if ((codePoint >= 0x30 && codePoint <= 0x39) || (codePoint >= 0x41 && codePoint <= 0x5a) || (codePoint >= 0x61 && codePoint <= 0x7a)) return 'word';
    if (codePoint === 0x20 || (codePoint >= 0x09 && codePoint <= 0x0d)) return 'space';
    return 'mark';
  }
  if (wideScriptPattern.test(char)) return 'wide';
  if (wordPattern.test(char)) return 'word';
  if (spacePattern.test(char)) return 'space';
  return 'mark';
}

/**
 * The class of every Latin-1 code point, worked out once by `classify`: Latin-1 text (English,
 * most JSON) never reaches the Unicode property patterns, which cost more than the rest of the count.
 */
const latin1Classes: readonly CharClass[] = Array.from({ length: 0x100 }, (_, codePoint) => classify(codePoint, String.fromCharCode(codePoint)));

/** Tokens a run of `length` characters of class `run` counts once it ends. */
function runTokens(run: CharClass | undefined, length: number): number {
  if (run === 'word') return Math.ceil(length / wordCharsPerToken);
  if (run === 'space' && length > 1) return Math.ceil((length - 1) / spaceCharsPerToken);
  return 0;
}

/**
 * Tokens of a piece of text, by the rules above. It walks UTF-16 units and steps over a
 * surrogate pair as one code point, as iterating the string would, without making a string per
 * character.
 */
export function countTextTokens(text: string): number {
  let tokens = 0;
  let run: CharClass | undefined;
  let runLength = 0;
  for (let i = 0; i < text.length;) {
    const unit = text.charCodeAt(i);
    let cls: CharClass;
    if (unit < 0x100) {
      cls = latin1Classes[unit] as CharClass;
      i += 1;
    } else {
      const codePoint = text.codePointAt(i) as number;
      const width = codePoint > 0xffff ? 2 : 1;
      cls = classify(codePoint, text.slice(i, i + width));
      i += width;
    }
    if (cls === 'wide' || cls === 'mark') {
      tokens += runTokens(run, runLength) + 1;
      run = undefined;
      runLength = 0;
      continue;
    }
    if (cls !== run) {
      tokens += runTokens(run, runLength);
      run = cls;
      runLength = 0;
    }
    runLength += 1;
  }
  return tokens + runTokens(run, runLength);
}

/**
 * A value as JSON, without the `cache_control` marker of a block (a marker changes where the
 * cache breaks, not what the model reads). Undefined when the value cannot be serialized, as a
 * value nested deeper than the serializer's stack can be.
 */
export function canonicalJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, (key, inner: unknown) => (key === 'cache_control' ? undefined : inner));
  } catch {
    return undefined;
  }
}

/**
 * Tokens of one content block. `depth` guards the one level of nesting the API has (the blocks
 * inside a tool_result); deeper nesting is counted as JSON. `canonical` is the block's
 * `canonicalJson` when the caller has made it already, so that a block counted by its JSON (a
 * tool definition, say) is not serialized twice.
 */
export function countBlockTokens(block: Json, depth = 0, canonical?: string): number {
  switch (block.type) {
    case 'text':
      return typeof block.text === 'string' ? countTextTokens(block.text) : 0;
    case 'image':
    case 'document':
      return mediaBlockTokens;
    case 'thinking':
      return typeof block.thinking === 'string' ? countTextTokens(block.thinking) : 0;
    case 'tool_use':
      return (typeof block.name === 'string' ? countTextTokens(block.name) : 0) + countTextTokens(canonicalJson(block.input ?? {}) ?? '');
    case 'tool_result': {
      const content = block.content;
      if (typeof content === 'string') return countTextTokens(content);
      if (Array.isArray(content) && depth === 0) {
        let tokens = 0;
        for (const inner of content as unknown[]) if (isJson(inner)) tokens += countBlockTokens(inner, depth + 1);
        return tokens;
      }
      return countTextTokens(canonicalJson(content ?? '') ?? '');
    }
    default:
      return countTextTokens(canonical ?? canonicalJson(block) ?? '');
  }
}

export function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
