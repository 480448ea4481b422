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
 * its tokens, whether it carries a `cache_control` breakpoint and, if it does, the hash of the
 * prompt up to and including it (a segment without a breakpoint never keys the cache, so its
 * hash is not spelled out). Prompt caching (prompt-cache.ts) keys prefixes by those hashes;
 * the text generator seeds itself from the hash of the whole prompt, so the same prompt (and
 * model) always gets the same answer, whatever `stream` or `max_tokens` say.
 */
export type PromptSegment =
  | { readonly tokens: number; readonly cacheTtl: undefined; readonly prefixHash: undefined }
  | { readonly tokens: number; readonly cacheTtl: CacheTtl; readonly prefixHash: string };

export interface PromptLayout {
  readonly segments: readonly PromptSegment[];
  readonly totalTokens: number;
  /** The hash of the whole prompt, as a generator seed. */
  readonly seed: number;
}

export function layOutPrompt(request: PromptRequest): PromptLayout {
  const layout = new LayoutBuilder(request.model);
  layout.push(requestOverheadTokens + (request.tools.length > 0 ? toolsOverheadTokens : 0), '\u0000request', undefined);
  for (const tool of request.tools) layout.pushBlock(tool);
  if (typeof request.system === 'string') layout.push(systemOverheadTokens + countTextTokens(request.system), `\u0000system\u0000${request.system}`, undefined);
  else if (request.system !== undefined) {
    layout.push(systemOverheadTokens, '\u0000system', undefined);
    for (const block of request.system) layout.pushBlock(block);
  }
  for (const message of request.messages) {
    if (typeof message.content === 'string') {
      layout.push(messageOverheadTokens + countTextTokens(message.content), `\u0000${message.role}\u0000${message.content}`, undefined);
      continue;
    }
    layout.push(messageOverheadTokens, `\u0000${message.role}`, undefined);
    for (const block of message.content) layout.pushBlock(block);
  }
  return layout.finish(request.cacheControl);
}

/** Feeds segments to the running hash in prompt order (a class, not closures: it runs on every request). */
class LayoutBuilder {
  private readonly hash: PromptHash;
  private readonly segments: PromptSegment[] = [];
  private totalTokens = 0;

  constructor(model: string) {
    this.hash = new PromptHash().update(model);
  }

  push(tokens: number, canonical: string, cacheTtl: CacheTtl | undefined): void {
    this.hash.update(canonical);
    this.totalTokens += tokens;
    this.segments.push(cacheTtl === undefined ? { tokens, cacheTtl, prefixHash: undefined } : { tokens, cacheTtl, prefixHash: this.hash.digest() });
  }

  pushBlock(block: Json): void {
    const canonical = canonicalJson(block) ?? '';
    this.push(countBlockTokens(block, 0, canonical), canonical, ttlOf(block));
  }

  finish(cacheControl: CacheTtl | undefined): PromptLayout {
    const { segments } = this;
    // The top-level marker caches the whole prompt: it lands on the last segment, whose prefix
    // is everything hashed so far.
    const last = segments.at(-1);
    if (cacheControl !== undefined && last !== undefined && last.cacheTtl === undefined) {
      segments[segments.length - 1] = { tokens: last.tokens, cacheTtl: cacheControl, prefixHash: this.hash.digest() };
    }
    return { segments, totalTokens: this.totalTokens, seed: this.hash.seed() };
  }
}

function ttlOf(block: Json): CacheTtl | undefined {
  const marker = block.cache_control;
  if (typeof marker !== 'object' || marker === null) return undefined;
  const ttl = (marker as Json).ttl;
  return ttl === '1h' ? '1h' : '5m';
}
