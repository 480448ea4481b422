import { PromptHash } from './prompt-hash.js';
import type { CacheTtl, PromptRequest } from './request-validation.js';
import {
  canonicalJson,
  countBlockTokens,
  countTextTokens,
  type Json,
  messageOverheadTokens,
  requestOverheadTokens,
  systemOverheadTokens,
  toolsOverheadTokens,
} from './token-count.js';

/**
 * A prompt laid out as the API reads it for caching: tools, then the system prompt, then the
 * messages in order, each cut into segments (a tool, a block, a role marker). Each segment knows
 * its tokens, the hash of the prompt up to and including it, and whether it carries a
 * `cache_control` breakpoint. Prompt caching (prompt-cache.ts) keys prefixes by those hashes;
 * the text generator seeds itself from the hash of the whole prompt, so the same prompt (and
 * model) always gets the same answer, whatever `stream` or `max_tokens` say.
 */
export interface PromptSegment {
  readonly tokens: number;
  /** Hash of the model and every segment up to and including this one. */
  readonly prefixHash: string;
  /** The breakpoint this segment carries, if any. */
  readonly cacheTtl: CacheTtl | undefined;
}

export interface PromptLayout {
  readonly segments: readonly PromptSegment[];
  readonly totalTokens: number;
  /** The hash of the whole prompt, as a generator seed. */
  readonly seed: number;
}

export function layOutPrompt(request: PromptRequest): PromptLayout {
  const hash = new PromptHash().update(request.model);
  const segments: PromptSegment[] = [];
  let totalTokens = 0;
  const push = (tokens: number, canonical: string, cacheTtl: CacheTtl | undefined): void => {
    hash.update(canonical);
    totalTokens += tokens;
    segments.push({ tokens, prefixHash: hash.digest(), cacheTtl });
  };
  const pushBlock = (block: Json, extraTokens: number): void => {
    push(countBlockTokens(block) + extraTokens, canonicalJson(block) ?? '', ttlOf(block));
  };

  push(requestOverheadTokens + (request.tools.length > 0 ? toolsOverheadTokens : 0), '\u0000request', undefined);
  for (const tool of request.tools) pushBlock(tool, 0);
  if (typeof request.system === 'string') push(systemOverheadTokens + countTextTokens(request.system), `\u0000system\u0000${request.system}`, undefined);
  else if (request.system !== undefined) {
    push(systemOverheadTokens, '\u0000system', undefined);
    for (const block of request.system) pushBlock(block, 0);
  }
  for (const message of request.messages) {
    if (typeof message.content === 'string') {
      push(messageOverheadTokens + countTextTokens(message.content), `\u0000${message.role}\u0000${message.content}`, undefined);
      continue;
    }
    push(messageOverheadTokens, `\u0000${message.role}`, undefined);
    for (const block of message.content) pushBlock(block, 0);
  }
  // The top-level marker caches the whole prompt: it lands on the last segment.
  const last = segments.at(-1);
  if (request.cacheControl !== undefined && last !== undefined && last.cacheTtl === undefined) {
    segments[segments.length - 1] = { ...last, cacheTtl: request.cacheControl };
  }
  return { segments, totalTokens, seed: hash.seed() };
}

function ttlOf(block: Json): CacheTtl | undefined {
  const marker = block.cache_control;
  if (typeof marker !== 'object' || marker === null) return undefined;
  const ttl = (marker as Json).ttl;
  return ttl === '1h' ? '1h' : '5m';
}
