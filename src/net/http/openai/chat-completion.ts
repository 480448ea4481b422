import { err, ok, type Result } from '../../../core/result.js';
import type { ChatCompletion, ChatToolCall } from './chat-shapes.js';
import { chatUsageOf, usageCountsOf } from './chat-usage.js';
import { finishReasonOf } from './finish-reason.js';
import { fieldsOf, isFields } from './json-fields.js';

/**
 * A whole Messages answer (`"type": "message"`) as an OpenAI `chat.completion`:
 *
 *   content[] text blocks      → message.content, joined in order (null when there is none and
 *                                the answer is tool calls only, as OpenAI writes it)
 *   content[] tool_use blocks  → message.tool_calls[] {id, type: "function",
 *                                function: {name, arguments: JSON text of input}}
 *   other blocks (thinking, server tools) → left out: no translated request asks for them
 *   stop_reason                → finish_reason (./finish-reason.ts)
 *   usage                      → usage (./chat-usage.ts)
 *   model                      → model (the upstream's; the requested one when it names none)
 *
 * `id` and `created` come from the route, which has the request id and the clock: see
 * `ChatContext`. The message is bytes, text or parsed JSON from the upstream; one that is not a
 * JSON object is an upstream failure the route answers with 502, never a made-up empty answer.
 */
export interface ChatContext {
  /** The completion id: `chatCompletionId(requestId)`. */
  readonly id: string;
  /** Unix time in seconds when the request was received. */
  readonly created: number;
  /** The model the client asked for, named when the upstream names none. */
  readonly model: string;
  /** Streams only: end with a chunk that carries the usage (`stream_options.include_usage`). */
  readonly includeUsage: boolean;
}

/** The completion id of a request: OpenAI's `chatcmpl-` prefix and the carpool's request id, so the two can be matched. */
export function chatCompletionId(requestId: string): string {
  return `chatcmpl-${requestId}`;
}

export interface UnreadableMessage {
  readonly kind: 'unreadable-message';
  readonly detail: string;
}

export function messageToChatCompletion(message: unknown, context: ChatContext): Result<ChatCompletion, UnreadableMessage> {
  const fields = fieldsOf(message);
  if (fields === undefined) return err({ kind: 'unreadable-message', detail: 'the upstream answer is not a JSON object' });
  const content = fields.content;
  if (!Array.isArray(content)) return err({ kind: 'unreadable-message', detail: 'the upstream answer has no content array' });
  let text: string | null = null;
  const toolCalls: ChatToolCall[] = [];
  for (const block of content as unknown[]) {
    if (!isFields(block)) continue;
    if (block.type === 'text' && typeof block.text === 'string') text = (text ?? '') + block.text;
    else if (block.type === 'tool_use' && typeof block.id === 'string' && typeof block.name === 'string') {
      toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    }
  }
  return ok({
    id: context.id,
    object: 'chat.completion',
    created: context.created,
    model: typeof fields.model === 'string' && fields.model.length > 0 ? fields.model : context.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text ?? (toolCalls.length > 0 ? null : ''),
          refusal: null,
          ...(toolCalls.length === 0 ? {} : { tool_calls: toolCalls }),
        },
        finish_reason: finishReasonOf(fields.stop_reason),
        logprobs: null,
      },
    ],
    usage: chatUsageOf(usageCountsOf(fields.usage)),
  });
}
