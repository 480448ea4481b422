import type { TokenUsage } from '../admission/estimate.js';
import { err, ok, type Result } from '../core/result.js';

/**
 * The usage of a non-streaming Messages API response, the four counts billing weighs apart:
 *
 *   "usage": {"input_tokens": 25, "output_tokens": 42,
 *             "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000}
 *
 * The cache fields are missing (or null) on calls that touch no cache, which reads as zero. A
 * count that is not a non-negative integer, or a message without `usage`, is an error: billing
 * would otherwise charge nothing for a call that ran.
 */
export function parseMessageUsage(message: Readonly<Record<string, unknown>>): Result<TokenUsage, string> {
  const usage = message.usage;
  if (typeof usage !== 'object' || usage === null || Array.isArray(usage)) return err('the message has no usage object');
  const fields = usage as Readonly<Record<string, unknown>>;
  const counts = {
    input: fields.input_tokens,
    output: fields.output_tokens,
    cacheWrite: fields.cache_creation_input_tokens,
    cacheRead: fields.cache_read_input_tokens,
  };
  const parsed: Record<keyof TokenUsage, number> = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
  for (const [name, value] of Object.entries(counts) as [keyof TokenUsage, unknown][]) {
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return err(`usage ${name} is not a count`);
    parsed[name] = value;
  }
  return ok(Object.freeze(parsed));
}
