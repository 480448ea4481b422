import { type TokenUsage, zeroUsage } from '../admission/estimate.js';
import { upstreamContentBlocksMax, upstreamMessageCharsMax } from '../core/limits.js';
import { err, OK_VOID, type Result } from '../core/result.js';
import type { SseEvent } from './sse-parser.js';

/**
 * Rebuilds an Anthropic Messages API response from its stream of events, and keeps the usage
 * that billing needs at every point, so that a stream cut off by the client or the upstream is
 * still charged for what it used:
 *
 *   message_start        the message shell; usage with input, cache-write and cache-read tokens
 *   content_block_start  a block at `index` (text, tool_use, thinking, ...)
 *   content_block_delta  text_delta, input_json_delta, thinking_delta, signature_delta
 *   content_block_stop
 *   message_delta        stop_reason and stop_sequence; usage counts are cumulative
 *   message_stop         the end
 *   ping                 nothing
 *   error                an error mid-stream (overloaded_error, api_error, ...): the end
 *
 * Event types and delta types not listed are ignored, as the API's versioning policy asks of
 * clients. Malformed JSON, events out of order, or a message past its bounds are error values.
 */
export interface ContentBlock {
  readonly type: string;
  /** Text of text blocks, thinking of thinking blocks, the raw JSON of tool_use input. */
  readonly text: string;
  /** The block as it started, for the fields a proxy passes through (tool id, name, ...). */
  readonly start: Readonly<Record<string, unknown>>;
}

export interface StreamedMessage {
  readonly id: string;
  readonly model: string;
  readonly content: readonly ContentBlock[];
  readonly stopReason: string | null;
  readonly stopSequence: string | null;
  readonly usage: TokenUsage;
}

export type StreamError =
  | { readonly kind: 'bad-event'; readonly event: string; readonly detail: string }
  | { readonly kind: 'message-too-large'; readonly detail: string }
  | { readonly kind: 'upstream-error'; readonly errorType: string; readonly message: string };

type Json = Readonly<Record<string, unknown>>;

interface Block {
  readonly type: string;
  readonly start: Json;
  readonly parts: string[];
  stopped: boolean;
}

export class MessageStream {
  private id = '';
  private model = '';
  private started = false;
  private stopped = false;
  private failure: StreamError | undefined;
  private readonly blocks: Block[] = [];
  private chars = 0;
  private textBytes = 0;
  private outputReported = false;
  private stopReason: string | null = null;
  private stopSequence: string | null = null;
  private currentUsage: TokenUsage = zeroUsage;

  /** Usage as far as the stream told it: what a cut-off stream is charged. */
  get usage(): TokenUsage {
    return this.currentUsage;
  }

  /**
   * UTF-8 bytes of the content read so far (text, thinking, and tool input JSON): what a stream's
   * output is estimated from when it ends before its usage (src/upstream/relayed-usage.ts).
   */
  get contentBytes(): number {
    return this.textBytes;
  }

  /** Whether a message_delta reported the output tokens, which then are the exact count so far. */
  get outputTokensReported(): boolean {
    return this.outputReported;
  }

  /** Whether the stream ended, by message_stop or an error event. */
  get done(): boolean {
    return this.stopped || this.failure !== undefined;
  }

  onEvent(event: SseEvent): Result<undefined, StreamError> {
    if (this.failure !== undefined) return err(this.failure);
    if (this.stopped) return this.bad(event.event, 'an event after message_stop');
    let body: unknown;
    try {
      body = JSON.parse(event.data);
    } catch (error) {
      return this.bad(event.event, `data is not JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!isJson(body)) return this.bad(event.event, 'data is not a JSON object');
    switch (event.event) {
      case 'message_start':
        return this.onStart(body);
      case 'content_block_start':
        return this.onBlockStart(body);
      case 'content_block_delta':
        return this.onBlockDelta(body);
      case 'content_block_stop':
        return this.onBlockStop(body);
      case 'message_delta':
        return this.onMessageDelta(body);
      case 'message_stop':
        if (!this.started) return this.bad(event.event, 'message_stop before message_start');
        this.stopped = true;
        return OK_VOID;
      case 'error': {
        const error = isJson(body.error) ? body.error : {};
        this.failure = {
          kind: 'upstream-error',
          errorType: typeof error.type === 'string' ? error.type : 'unknown_error',
          message: typeof error.message === 'string' ? error.message : '',
        };
        return err(this.failure);
      }
      default:
        // ping, and event types newer than this code.
        return OK_VOID;
    }
  }

  /** The whole message, once message_stop arrived. */
  message(): StreamedMessage | undefined {
    if (!this.stopped) return undefined;
    return {
      id: this.id,
      model: this.model,
      content: this.blocks.map((block) => ({ type: block.type, text: block.parts.join(''), start: block.start })),
      stopReason: this.stopReason,
      stopSequence: this.stopSequence,
      usage: this.currentUsage,
    };
  }

  private onStart(body: Json): Result<undefined, StreamError> {
    if (this.started) return this.bad('message_start', 'a second message_start');
    const message = body.message;
    if (!isJson(message) || typeof message.id !== 'string') return this.bad('message_start', 'no message with an id');
    this.started = true;
    this.id = message.id;
    this.model = typeof message.model === 'string' ? message.model : '';
    return this.takeUsage('message_start', message.usage);
  }

  private onBlockStart(body: Json): Result<undefined, StreamError> {
    if (!this.started) return this.bad('content_block_start', 'before message_start');
    const block = body.content_block;
    if (!isJson(block) || typeof block.type !== 'string') return this.bad('content_block_start', 'no content_block with a type');
    if (body.index !== this.blocks.length) return this.bad('content_block_start', `index ${String(body.index)} where ${this.blocks.length} was next`);
    if (this.blocks.length >= upstreamContentBlocksMax) return this.tooLarge(`more than ${upstreamContentBlocksMax} content blocks`);
    const initial = typeof block.text === 'string' ? block.text : typeof block.thinking === 'string' ? block.thinking : '';
    this.blocks.push({ type: block.type, start: block, parts: [], stopped: false });
    return this.append(this.blocks.length - 1, initial);
  }

  private onBlockDelta(body: Json): Result<undefined, StreamError> {
    const block = this.openBlock(body.index);
    if (block === undefined) return this.bad('content_block_delta', `no open block ${String(body.index)}`);
    const delta = body.delta;
    if (!isJson(delta) || typeof delta.type !== 'string') return this.bad('content_block_delta', 'no delta with a type');
    const piece =
      delta.type === 'text_delta'
        ? delta.text
        : delta.type === 'input_json_delta'
          ? delta.partial_json
          : delta.type === 'thinking_delta'
            ? delta.thinking
            : undefined;
    // signature_delta and delta types newer than this code carry no text of the block.
    if (piece === undefined) return OK_VOID;
    if (typeof piece !== 'string') return this.bad('content_block_delta', `${delta.type} without its text`);
    return this.append(body.index as number, piece);
  }

  private onBlockStop(body: Json): Result<undefined, StreamError> {
    const block = this.openBlock(body.index);
    if (block === undefined) return this.bad('content_block_stop', `no open block ${String(body.index)}`);
    block.stopped = true;
    return OK_VOID;
  }

  private onMessageDelta(body: Json): Result<undefined, StreamError> {
    if (!this.started) return this.bad('message_delta', 'before message_start');
    const delta = isJson(body.delta) ? body.delta : {};
    if (typeof delta.stop_reason === 'string') this.stopReason = delta.stop_reason;
    if (typeof delta.stop_sequence === 'string') this.stopSequence = delta.stop_sequence;
    if (body.usage === undefined) return OK_VOID;
    const taken = this.takeUsage('message_delta', body.usage);
    if (taken.ok && isJson(body.usage) && typeof body.usage.output_tokens === 'number') this.outputReported = true;
    return taken;
  }

  /**
   * Usage counts are cumulative: a later event repeats or raises them, so each field keeps its
   * maximum. A field an event leaves out keeps its value (message_delta often carries only
   * output_tokens).
   */
  private takeUsage(event: string, usage: unknown): Result<undefined, StreamError> {
    if (usage === undefined) return OK_VOID;
    if (!isJson(usage)) return this.bad(event, 'usage is not an object');
    const fields = [
      ['input', usage.input_tokens],
      ['output', usage.output_tokens],
      ['cacheWrite', usage.cache_creation_input_tokens],
      ['cacheRead', usage.cache_read_input_tokens],
    ] as const;
    const next: Record<keyof TokenUsage, number> = { ...this.currentUsage };
    for (const [name, value] of fields) {
      if (value === undefined || value === null) continue;
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return this.bad(event, `usage ${name} is not a count`);
      next[name] = Math.max(next[name], value);
    }
    this.currentUsage = Object.freeze(next);
    return OK_VOID;
  }

  private openBlock(index: unknown): Block | undefined {
    if (typeof index !== 'number') return undefined;
    const block = this.blocks[index];
    return block === undefined || block.stopped ? undefined : block;
  }

  private append(index: number, piece: string): Result<undefined, StreamError> {
    if (piece === '') return OK_VOID;
    this.chars += piece.length;
    this.textBytes += utf8Length(piece);
    if (this.chars > upstreamMessageCharsMax) return this.tooLarge(`more than ${upstreamMessageCharsMax} characters of content`);
    (this.blocks[index] as Block).parts.push(piece);
    return OK_VOID;
  }

  private bad(event: string, detail: string): Result<undefined, StreamError> {
    this.failure = { kind: 'bad-event', event, detail };
    return err(this.failure);
  }

  private tooLarge(detail: string): Result<undefined, StreamError> {
    this.failure = { kind: 'message-too-large', detail };
    return err(this.failure);
  }
}

/** UTF-8 length of a string without encoding it: 1 to 3 bytes a UTF-16 unit, 4 a surrogate pair. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
