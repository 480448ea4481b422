import type { ChatUsage } from './chat-shapes.js';

/**
 * Anthropic usage in OpenAI's terms. Anthropic counts the input in three parts that do not
 * overlap: `input_tokens` (after the last cache breakpoint), `cache_creation_input_tokens`
 * (written to the cache) and `cache_read_input_tokens` (read from it). OpenAI's `prompt_tokens`
 * is the whole prompt and `prompt_tokens_details.cached_tokens` the part of it served from the
 * cache, so:
 *
 *   prompt_tokens     = input + cache_creation + cache_read
 *   cached_tokens     = cache_read
 *   cache_write_tokens = cache_creation
 *   completion_tokens = output
 *   total_tokens      = prompt_tokens + completion_tokens
 *
 * No reasoning, audio or prediction tokens: the translated requests never ask for thinking,
 * audio or predicted outputs, so those counts are zero, written out as OpenAI writes them.
 */
export interface UsageCounts {
  readonly input: number;
  readonly output: number;
  readonly cacheWrite: number;
  readonly cacheRead: number;
}

export const zeroUsage: UsageCounts = Object.freeze({ input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });

/**
 * The counts of an Anthropic `usage` object, each taken from `usage` when it holds a count and
 * from `previous` otherwise. A stream reports usage twice (message_start, then message_delta with
 * the final output and, from newer API versions, the input counts again), so the later report
 * wins field by field. The gateway has already checked the counts it charges; here a field that
 * is not a count keeps the earlier value instead of failing the answer.
 */
export function usageCountsOf(usage: unknown, previous: UsageCounts = zeroUsage): UsageCounts {
  if (typeof usage !== 'object' || usage === null) return previous;
  const fields = usage as Readonly<Record<string, unknown>>;
  return {
    input: countOr(fields.input_tokens, previous.input),
    output: countOr(fields.output_tokens, previous.output),
    cacheWrite: countOr(fields.cache_creation_input_tokens, previous.cacheWrite),
    cacheRead: countOr(fields.cache_read_input_tokens, previous.cacheRead),
  };
}

function countOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : fallback;
}

export function chatUsageOf(counts: UsageCounts): ChatUsage {
  const prompt = counts.input + counts.cacheWrite + counts.cacheRead;
  return {
    prompt_tokens: prompt,
    completion_tokens: counts.output,
    total_tokens: prompt + counts.output,
    prompt_tokens_details: { cached_tokens: counts.cacheRead, cache_write_tokens: counts.cacheWrite, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}
