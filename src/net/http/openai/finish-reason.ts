import type { FinishReason } from './chat-shapes.js';

/**
 * Anthropic `stop_reason` → OpenAI `finish_reason`:
 *
 *   end_turn, stop_sequence, pause_turn   → stop           (the model stopped, or hit a `stop`)
 *   max_tokens, model_context_window_exceeded → length     (cut by a token bound)
 *   tool_use                              → tool_calls
 *   refusal                               → content_filter (the safety classifiers stopped it)
 *
 * `pause_turn` comes only with server tools, which no translated request carries; a reason this
 * table does not know (a newer API's), or none, reads as `stop`: the answer did end.
 */
const finishReasons: ReadonlyMap<string, FinishReason> = new Map([
  ['end_turn', 'stop'],
  ['stop_sequence', 'stop'],
  ['pause_turn', 'stop'],
  ['max_tokens', 'length'],
  ['model_context_window_exceeded', 'length'],
  ['tool_use', 'tool_calls'],
  ['refusal', 'content_filter'],
]);

export function finishReasonOf(stopReason: unknown): FinishReason {
  return (typeof stopReason === 'string' ? finishReasons.get(stopReason) : undefined) ?? 'stop';
}
