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
  // Field by field, in this order: the first bad count is the one reported.
  const input = countOf(fields.input_tokens);
  if (input === undefined) return err('usage input is not a count');
  const output = countOf(fields.output_tokens);
  if (output === undefined) return err('usage output is not a count');
  const cacheWrite = countOf(fields.cache_creation_input_tokens);
  if (cacheWrite === undefined) return err('usage cacheWrite is not a count');
  const cacheRead = countOf(fields.cache_read_input_tokens);
  if (cacheRead === undefined) return err('usage cacheRead is not a count');
  return ok(Object.freeze({ input, output, cacheWrite, cacheRead }));
}

/** A count as sent: missing or null is zero; anything but a non-negative safe integer is undefined. */
function countOf(value: unknown): number | undefined {
  if (value === undefined || value === null) return 0;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}
