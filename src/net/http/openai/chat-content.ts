import { ok, type Result } from '../../../core/result.js';
import { describe, type Fields, isAbsent, isFields, unknownKey, unknownKeyMessage } from './json-fields.js';
import type { CacheControl, DocumentBlock, ImageBlock, ImageMediaType, TextBlock, UserBlock } from './messages-body.js';
import { invalid, type TranslationError, unsupported } from './translation-error.js';

/**
 * Message content: a string, or an array of content parts, into Messages content blocks.
 *
 *   "text"                       {"type":"text","text":...}; a string is one text part
 *   {"type":"text"}              text block
 *   {"type":"image_url"}         image block: a `data:image/...;base64,` URL → base64 source;
 *                                an http(s) URL → url source (Anthropic fetches it). `detail`
 *                                has no counterpart (Anthropic sizes images itself) and is ignored.
 *   {"type":"file"}              a PDF given as `file_data` (a `data:application/pdf;base64,` URL)
 *                                → document block titled with `filename`; `file_id` refers to
 *                                OpenAI's file store, which the carpool does not have: refused
 *   {"type":"input_audio"}       refused: the Messages API takes no audio
 *   prompt_cache_breakpoint      {"mode":"explicit"} on a part → `cache_control: ephemeral` on
 *                                its block, Anthropic's way of marking a cache breakpoint
 *
 * Empty text is left out (the Messages API refuses an empty text block, and it says nothing);
 * whether a message may end up empty is the caller's rule.
 */

/** The formats the Messages API takes; `image/jpg` is a common misspelling of the first. */
const imageMediaTypes: ReadonlyMap<string, ImageMediaType> = new Map([
  ['image/jpeg', 'image/jpeg'],
  ['image/jpg', 'image/jpeg'],
  ['image/png', 'image/png'],
  ['image/gif', 'image/gif'],
  ['image/webp', 'image/webp'],
]);

/** `data:<media type>[;params];base64,<data>`; the media type is matched case-insensitively. */
const base64DataUrl = /^data:([^;,]+)((?:;[^;,]*)*);base64,/i;

type PartKind = 'user' | 'text-only';

/** Blocks of a user message. */
export function userBlocksOf(content: unknown, param: string): Result<UserBlock[], TranslationError> {
  return blocksOf(content, param, 'user');
}

/** Blocks of content that only text parts may make up: system, developer and tool messages. */
export function textBlocksOf(content: unknown, param: string): Result<TextBlock[], TranslationError> {
  return blocksOf(content, param, 'text-only') as Result<TextBlock[], TranslationError>;
}

function blocksOf(content: unknown, param: string, kind: PartKind): Result<UserBlock[], TranslationError> {
  if (typeof content === 'string') return ok(content.length === 0 ? [] : [{ type: 'text', text: content }]);
  if (!Array.isArray(content)) return invalid(param, `'${param}' must be a string or an array of content parts.`);
  const blocks: UserBlock[] = [];
  for (const [i, part] of (content as unknown[]).entries()) {
    const block = blockOf(part, `${param}[${i}]`, kind);
    if (!block.ok) return block;
    if (block.value !== undefined) blocks.push(block.value);
  }
  return ok(blocks);
}

function blockOf(part: unknown, param: string, kind: PartKind): Result<UserBlock | undefined, TranslationError> {
  if (!isFields(part)) return invalid(param, `'${param}' must be a content part object.`);
  const cache = cacheControlOf(part, param);
  if (!cache.ok) return cache;
  switch (part.type) {
    case 'text':
      return textBlockOf(part, param, cache.value);
    case 'image_url':
      if (kind === 'text-only') return unsupported(`${param}.type`, textOnlyMessage(param, 'image_url'));
      return imageBlockOf(part, param, cache.value);
    case 'file':
      if (kind === 'text-only') return unsupported(`${param}.type`, textOnlyMessage(param, 'file'));
      return documentBlockOf(part, param, cache.value);
    case 'input_audio':
      return unsupported(`${param}.type`, `'${param}' is audio input, which the Anthropic Messages API behind this endpoint does not take.`);
    default:
      return invalid(`${param}.type`, `'${param}.type' must be one of 'text', 'image_url', 'file' or 'input_audio'; got ${describe(part.type)}.`);
  }
}

function textOnlyMessage(param: string, type: string): string {
  return `'${param}' is a '${type}' part, but this message takes only text parts.`;
}

function textBlockOf(part: Fields, param: string, cache: CacheControl | undefined): Result<TextBlock | undefined, TranslationError> {
  const unknown = unknownKey(part, ['type', 'text', 'prompt_cache_breakpoint']);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  if (typeof part.text !== 'string') return invalid(`${param}.text`, `'${param}.text' must be a string.`);
  if (part.text.length === 0) return ok(undefined);
  return ok(cache === undefined ? { type: 'text', text: part.text } : { type: 'text', text: part.text, cache_control: cache });
}

function imageBlockOf(part: Fields, param: string, cache: CacheControl | undefined): Result<ImageBlock, TranslationError> {
  const unknown = unknownKey(part, ['type', 'image_url', 'prompt_cache_breakpoint']);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  const image = part.image_url;
  if (!isFields(image) || typeof image.url !== 'string') return invalid(`${param}.image_url.url`, `'${param}.image_url.url' must be a string.`);
  const imageUnknown = unknownKey(image, ['url', 'detail']);
  if (imageUnknown !== undefined) return unsupported(`${param}.image_url.${imageUnknown}`, unknownKeyMessage(`${param}.image_url`, imageUnknown));
  const urlParam = `${param}.image_url.url`;
  const url = image.url;
  const dataUrl = base64DataUrl.exec(url);
  let block: ImageBlock;
  if (dataUrl !== null) {
    const mediaType = imageMediaTypes.get(dataUrl[1]!.toLowerCase());
    if (mediaType === undefined) {
      return unsupported(urlParam, `'${urlParam}' is a ${dataUrl[1]} image; the Anthropic Messages API takes image/jpeg, image/png, image/gif and image/webp.`);
    }
    block = { type: 'image', source: { type: 'base64', media_type: mediaType, data: url.slice(dataUrl[0].length) } };
  } else if (/^https?:\/\//i.test(url)) {
    block = { type: 'image', source: { type: 'url', url } };
  } else {
    return invalid(urlParam, `'${urlParam}' must be an http(s) URL or a data URL of the form data:image/png;base64,<data>.`);
  }
  return ok(cache === undefined ? block : { ...block, cache_control: cache });
}

function documentBlockOf(part: Fields, param: string, cache: CacheControl | undefined): Result<DocumentBlock, TranslationError> {
  const unknown = unknownKey(part, ['type', 'file', 'prompt_cache_breakpoint']);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  const file = part.file;
  if (!isFields(file)) return invalid(`${param}.file`, `'${param}.file' must be an object.`);
  const fileUnknown = unknownKey(file, ['file_data', 'file_id', 'filename']);
  if (fileUnknown !== undefined) return unsupported(`${param}.file.${fileUnknown}`, unknownKeyMessage(`${param}.file`, fileUnknown));
  if (!isAbsent(file.file_id)) {
    return unsupported(
      `${param}.file.file_id`,
      `'${param}.file.file_id' refers to OpenAI's file store, which this endpoint does not have; send the file inline as file_data.`,
    );
  }
  const data = file.file_data;
  const dataParam = `${param}.file.file_data`;
  if (typeof data !== 'string') return invalid(dataParam, `'${dataParam}' must be a data URL of the form data:application/pdf;base64,<data>.`);
  const dataUrl = base64DataUrl.exec(data);
  if (dataUrl === null) return invalid(dataParam, `'${dataParam}' must be a data URL of the form data:application/pdf;base64,<data>.`);
  if (dataUrl[1]!.toLowerCase() !== 'application/pdf') {
    return unsupported(dataParam, `'${dataParam}' is ${dataUrl[1]}; the Anthropic Messages API behind this endpoint takes PDF files (application/pdf) only.`);
  }
  const title = typeof file.filename === 'string' && file.filename.length > 0 ? file.filename : undefined;
  return ok({
    type: 'document',
    source: { type: 'base64', media_type: 'application/pdf', data: data.slice(dataUrl[0].length) },
    ...(title === undefined ? {} : { title }),
    ...(cache === undefined ? {} : { cache_control: cache }),
  });
}

function cacheControlOf(part: Fields, param: string): Result<CacheControl | undefined, TranslationError> {
  const breakpoint = part.prompt_cache_breakpoint;
  if (isAbsent(breakpoint)) return ok(undefined);
  if (!isFields(breakpoint) || breakpoint.mode !== 'explicit') {
    return invalid(`${param}.prompt_cache_breakpoint`, `'${param}.prompt_cache_breakpoint' must be {"mode": "explicit"}.`);
  }
  return ok({ type: 'ephemeral' });
}
