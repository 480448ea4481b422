import type { ApiErrorType } from './api-error.js';
import type { CacheUsage } from './prompt-cache.js';
import type { GeneratedText } from './text-generator.js';

/**
 * The body of a Messages answer, whole (JSON) or as the server-sent events of a stream, in the
 * real API's shapes. A stream runs:
 *
 *   message_start        the message shell, no content, usage with the input side and
 *                        output_tokens 1 (the real API's placeholder)
 *   content_block_start  index 0, {"type":"text","text":""}
 *   ping
 *   content_block_delta  text_delta, `deltaTokens` tokens each
 *   content_block_stop
 *   message_delta        stop_reason, stop_sequence, and cumulative usage: every input count again
 *                        and the final output_tokens
 *   message_stop
 *
 * each framed as `event: <type>\ndata: <json>\n\n`. An `error` event
 * (`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`) may end a
 * stream anywhere when a fault asks for it.
 *
 * Each event says how many output tokens it produced, so the server can charge the account's
 * output bucket as the tokens go out; the events of one answer produce `outputTokens` in all.
 */
export interface MessageOutcome {
  readonly id: string;
  readonly model: string;
  readonly usage: CacheUsage;
  readonly generated: GeneratedText;
}

export interface StreamEvent {
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** Output tokens this event produced. */
  readonly outputTokens: number;
}

/** The events before the first text delta (message_start, content_block_start, ping). */
export const streamHeadEvents = 3;

/** Tokens per text delta: the real API sends a few tokens in each. */
export const deltaTokens = 3;

function usageJson(usage: CacheUsage, outputTokens: number): Record<string, unknown> {
  return {
    input_tokens: usage.inputTokens,
    cache_creation_input_tokens: usage.cacheCreationInputTokens,
    cache_read_input_tokens: usage.cacheReadInputTokens,
    cache_creation: { ephemeral_5m_input_tokens: usage.cacheCreation5mInputTokens, ephemeral_1h_input_tokens: usage.cacheCreation1hInputTokens },
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

/** The JSON body of a non-streaming answer. */
export function messageBody(outcome: MessageOutcome): Record<string, unknown> {
  const { generated } = outcome;
  return {
    id: outcome.id,
    type: 'message',
    role: 'assistant',
    model: outcome.model,
    content: [{ type: 'text', text: generated.text }],
    stop_reason: generated.stopReason,
    stop_sequence: generated.stopSequence,
    usage: usageJson(outcome.usage, generated.outputTokens),
  };
}

export function streamEvents(outcome: MessageOutcome): StreamEvent[] {
  const { generated, usage } = outcome;
  const events: StreamEvent[] = [
    {
      type: 'message_start',
      data: {
        type: 'message_start',
        message: {
          id: outcome.id,
          type: 'message',
          role: 'assistant',
          model: outcome.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: usageJson(usage, 1),
        },
      },
      outputTokens: 0,
    },
    { type: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, outputTokens: 0 },
    { type: 'ping', data: { type: 'ping' }, outputTokens: 0 },
  ];
  const pieces = generated.pieces;
  for (let i = 0; i < pieces.length; i += deltaTokens) {
    const chunk = pieces.slice(i, i + deltaTokens);
    events.push({
      type: 'content_block_delta',
      data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: chunk.join('') } },
      outputTokens: chunk.length,
    });
  }
  events.push({ type: 'content_block_stop', data: { type: 'content_block_stop', index: 0 }, outputTokens: 0 });
  events.push({
    type: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: generated.stopReason, stop_sequence: generated.stopSequence },
      usage: {
        input_tokens: usage.inputTokens,
        cache_creation_input_tokens: usage.cacheCreationInputTokens,
        cache_read_input_tokens: usage.cacheReadInputTokens,
        output_tokens: generated.outputTokens,
      },
    },
    // The tokens of a stop sequence were generated but never sent: they are billed here.
    outputTokens: generated.outputTokens - pieces.length,
  });
  events.push({ type: 'message_stop', data: { type: 'message_stop' }, outputTokens: 0 });
  return events;
}

export function sseFrame(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function errorEventFrame(errorType: ApiErrorType, message: string): string {
  return sseFrame('error', { type: 'error', error: { type: errorType, message } });
}
