import type { TokenUsage } from '../admission/estimate.js';

/**
 * The charge of a stream cancelled under a tenant's `abort` policy (src/mesh/policy/policy-schema.ts
 * `ClientCancelMode`): the one place where what a tenant and an account are charged is an
 * estimate, not the upstream's own count. Every other way out charges the usage the upstream
 * reported.
 *
 * Aborting stops the upstream before its final `message_delta`, which is where the API reports the
 * output tokens; the stream said only its input side (`message_start`) and the text it sent. So:
 *
 *   input, cache write, cache read   as `message_start` reported them (zero if it never came);
 *   output, when a `message_delta`    its cumulative `output_tokens`: exact, and not an estimate;
 *     reported it
 *   output, otherwise                 ceil(relayed bytes / 4), where relayed bytes are the UTF-8
 *                                     bytes of the text, thinking and tool-input JSON in the
 *                                     content deltas the client accepted before it left (each
 *                                     node counts the deltas its own sink accepted: the region
 *                                     node its client's, a home node its origin's).
 *
 * Four bytes a token is the usual figure for English text; it errs high for short words and low
 * for scripts of three-byte characters. `message_start`'s output placeholder is not counted.
 */
export const relayedBytesPerToken = 4;

/** What the stream itself said, as `MessageStream` keeps it. */
export interface StreamReport {
  readonly usage: TokenUsage;
  readonly outputTokensReported: boolean;
}

export interface RelayedUsage {
  readonly usage: TokenUsage;
  /** Whether the output count is the estimate from relayed text rather than the upstream's count. */
  readonly estimated: boolean;
}

export function relayedUsage(stream: StreamReport, relayedBytes: number): RelayedUsage {
  if (stream.outputTokensReported) return { usage: stream.usage, estimated: false };
  const { input, cacheWrite, cacheRead } = stream.usage;
  return { usage: { input, output: Math.ceil(relayedBytes / relayedBytesPerToken), cacheWrite, cacheRead }, estimated: true };
}
