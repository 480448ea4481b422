import { assert } from '../../core/assert.js';
import { emulatorCacheEntriesMax } from '../../core/limits.js';
import type { PromptSegment } from './prompt-segments.js';

/**
 * The emulator's prompt cache, after the real API's: a block marked `cache_control` ends a
 * cacheable prefix (tools, system, messages up to and including that block). The first request
 * with a prefix writes it (`cache_creation_input_tokens`); a later request with the identical
 * prefix, same model and same account within its lifetime reads it (`cache_read_input_tokens`),
 * and each read refreshes the lifetime (5 minutes, or an hour for `ttl: "1h"`). With several
 * breakpoints the longest cached prefix is read and the tokens after it up to the last
 * breakpoint are written; tokens after the last breakpoint are plain `input_tokens`. A prefix
 * shorter than `minTokens` is not cached at all, as the real API ignores short prefixes.
 *
 * Caches are per account, like the real API's per-organization caches: a pool that moves a
 * conversation to another account loses its cache hits, which is what sticky routing is for.
 *
 * Two steps, so that a request refused by the rate limiter changes nothing: `plan` reads the
 * cache and says what the request would be billed, `commit` writes what the plan says. The
 * cache is an LRU bounded by `entriesMax`: when full the least recently used entry goes, and is
 * counted in `evictions` unless it had expired anyway. Time comes in as `nowMs`.
 */
export interface CacheUsage {
  readonly inputTokens: number;
  readonly cacheCreationInputTokens: number;
  readonly cacheReadInputTokens: number;
  /** `cacheCreationInputTokens` split by the lifetime the writes asked for. */
  readonly cacheCreation5mInputTokens: number;
  readonly cacheCreation1hInputTokens: number;
}

export interface CachePlan {
  readonly usage: CacheUsage;
  readonly writes: readonly { readonly key: string; readonly ttlMs: number }[];
}

export const cacheTtl5mMs = 5 * 60_000;
export const cacheTtl1hMs = 60 * 60_000;

/** The smallest prefix the real API caches for most models. */
export const cacheMinTokensDefault = 1_024;

export class PromptCache {
  /** Key → expiry; Map order is recency order, least recent first. */
  private readonly entries = new Map<string, number>();
  private evicted = 0;

  constructor(
    private readonly minTokens: number = cacheMinTokensDefault,
    private readonly entriesMax: number = emulatorCacheEntriesMax,
  ) {
    assert(Number.isSafeInteger(minTokens) && minTokens >= 0, 'the minimum prefix is a count');
    assert(
      Number.isSafeInteger(entriesMax) && entriesMax >= 1 && entriesMax <= emulatorCacheEntriesMax,
      'the cache holds 1 to emulatorCacheEntriesMax entries',
    );
  }

  get size(): number {
    return this.entries.size;
  }

  /** Entries dropped because the cache was full. */
  get evictions(): number {
    return this.evicted;
  }

  /** How the prompt's tokens would be billed for `scope` (an account) now. */
  plan(scope: string, segments: readonly PromptSegment[], nowMs: number): CachePlan {
    const breakpoints: { key: string; prefixTokens: number; ttlMs: number }[] = [];
    let totalTokens = 0;
    for (const segment of segments) {
      totalTokens += segment.tokens;
      if (segment.cacheTtl === undefined || totalTokens < this.minTokens) continue;
      breakpoints.push({
        key: `${scope}\u0000${segment.prefixHash}`,
        prefixTokens: totalTokens,
        ttlMs: segment.cacheTtl === '1h' ? cacheTtl1hMs : cacheTtl5mMs,
      });
    }
    let hit = -1;
    for (let i = breakpoints.length - 1; i >= 0; i--) {
      const expiresAtMs = this.entries.get((breakpoints[i] as { key: string }).key);
      if (expiresAtMs !== undefined && expiresAtMs > nowMs) {
        hit = i;
        break;
      }
    }
    const read = hit === -1 ? 0 : (breakpoints[hit] as { prefixTokens: number }).prefixTokens;
    let written5m = 0;
    let written1h = 0;
    let boundary = read;
    for (let i = hit + 1; i < breakpoints.length; i++) {
      const breakpoint = breakpoints[i] as { prefixTokens: number; ttlMs: number };
      const tokens = breakpoint.prefixTokens - boundary;
      if (breakpoint.ttlMs === cacheTtl1hMs) written1h += tokens;
      else written5m += tokens;
      boundary = breakpoint.prefixTokens;
    }
    return {
      usage: {
        inputTokens: totalTokens - boundary,
        cacheCreationInputTokens: written5m + written1h,
        cacheReadInputTokens: read,
        cacheCreation5mInputTokens: written5m,
        cacheCreation1hInputTokens: written1h,
      },
      writes: breakpoints,
    };
  }

  /** Writes and refreshes the prefixes of an admitted request. */
  commit(plan: CachePlan, nowMs: number): void {
    for (const { key, ttlMs } of plan.writes) {
      const previous = this.entries.get(key);
      this.entries.delete(key);
      // A refresh never shortens a lifetime a 1h write gave the same prefix.
      this.entries.set(key, Math.max(previous ?? 0, nowMs + ttlMs));
    }
    this.evict(nowMs);
  }

  private evict(nowMs: number): void {
    // Bounded by the number of entries over the cap, which commit raises by at most its writes.
    while (this.entries.size > this.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      const expiresAtMs = this.entries.get(oldest.value) as number;
      this.entries.delete(oldest.value);
      if (expiresAtMs > nowMs) this.evicted += 1;
    }
  }
}
