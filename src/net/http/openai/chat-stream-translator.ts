import type { ChatContext } from './chat-completion.js';
import { type ChatFailure, chatErrorBody, statusOfAnthropicError } from './chat-error.js';
import type { ChatCompletionChunk, ChatDelta, FinishReason } from './chat-shapes.js';
import { chatUsageOf, type UsageCounts, usageCountsOf, zeroUsage } from './chat-usage.js';
import { finishReasonOf } from './finish-reason.js';
import { fieldsOf, type Fields, isFields } from './json-fields.js';

/**
 * The events of a Messages stream, one at a time, into the server-sent events of an OpenAI chat
 * completion stream: `data: <chat.completion.chunk JSON>\n\n` each, no `event:` line, and
 * `data: [DONE]\n\n` last. State per stream, no I/O: the route writes what each call returns.
 *
 *   Messages event                              chunks returned
 *   message_start                               role: {"role":"assistant","content":"","refusal":null}
 *   content_block_start  text                   a content delta if the block opens with text
 *   content_block_start  tool_use               tool call head: {index, id, type, function: {name, arguments: ""}}
 *   content_block_delta  text_delta             {"content": text}
 *   content_block_delta  input_json_delta       {"tool_calls": [{index, function: {arguments: partial_json}}]}
 *   content_block_stop   of a tool_use          {"arguments": "{}"} when the call streamed no arguments,
 *                                               so that the arguments always parse as the non-streamed ones do
 *   message_delta                               finish: {} with finish_reason (./finish-reason.ts)
 *   message_stop, ping, thinking and other      nothing
 *     deltas, events this file does not know
 *   error                                       `data: {"error": {...}}` (OpenAI's shape, which the SDKs
 *                                               raise as an APIError); the stream is over
 *
 *   end()            the finish chunk if no message_delta came; with include_usage, a chunk with
 *                    `"choices": []` and the usage; then `data: [DONE]`
 *   error(failure)   a failure after the stream started (the route's, not the upstream's): the
 *                    error chunk; the stream is over
 *
 * Tool calls are numbered 0, 1, ... in the order their blocks open, which is OpenAI's `index`,
 * not Anthropic's block index (text blocks take no number). With include_usage every chunk
 * carries `"usage": null` and the usage chunk the totals, as OpenAI writes them; usage is the
 * latest report of each count (message_start, then message_delta), so it equals what the whole
 * message reports.
 *
 * Bounded by construction: a Messages stream opens one block at a time, so one open block is
 * kept; a delta for any other block is ignored, and a block that opens while another is open
 * closes that one first. After the stream is over, everything returns nothing.
 */
export interface ChatStreamEvent {
  /** The event name (`message_start`, ...). */
  readonly type: string;
  /** The event's data: parsed JSON, or its text or UTF-8 bytes as the upstream sent them. */
  readonly data: unknown;
}

type OpenBlock =
  | { readonly kind: 'text'; readonly index: number }
  | { readonly kind: 'tool'; readonly index: number; readonly toolIndex: number; argumentsSent: boolean }
  | { readonly kind: 'other'; readonly index: number };

/** `open`: chunks may follow; `finished`: the finish chunk went out; `closed`: [DONE] or an error went out. */
type Phase = 'open' | 'finished' | 'closed';

export class ChatStreamTranslator {
  private phase: Phase = 'open';
  /** The text before each chunk's delta; fixed by the first chunk, so every chunk names one model. */
  private head: string | undefined;
  private model: string;
  private block: OpenBlock | undefined;
  private toolCalls = 0;
  private usage: UsageCounts = zeroUsage;
  private stopReason: unknown = undefined;

  constructor(private readonly context: ChatContext) {
    this.model = context.model;
  }

  /** Whether any chunk went out: before it, a failure can still be an HTTP error status. */
  get started(): boolean {
    return this.head !== undefined;
  }

  push(event: ChatStreamEvent): string[] {
    if (this.phase === 'closed') return [];
    const data = fieldsOf(event.data);
    if (data === undefined) return [];
    const out: string[] = [];
    switch (event.type) {
      case 'message_start':
        this.onMessageStart(data, out);
        break;
      case 'content_block_start':
        if (this.phase === 'open') this.onBlockStart(data, out);
        break;
      case 'content_block_delta':
        if (this.phase === 'open') this.onBlockDelta(data, out);
        break;
      case 'content_block_stop':
        if (this.phase === 'open' && data.index === this.block?.index) this.closeBlock(out);
        break;
      case 'message_delta':
        this.onMessageDelta(data, out);
        break;
      case 'error':
        this.onError(data, out);
        break;
    }
    return out;
  }

  end(): string[] {
    if (this.phase === 'closed') return [];
    const out: string[] = [];
    if (this.phase === 'open') this.finish(out);
    if (this.context.includeUsage) out.push(this.usageChunk());
    out.push('data: [DONE]\n\n');
    this.phase = 'closed';
    return out;
  }

  error(failure: ChatFailure): string[] {
    if (this.phase === 'closed') return [];
    this.phase = 'closed';
    return [`data: ${JSON.stringify(chatErrorBody(failure))}\n\n`];
  }

  private onMessageStart(data: Fields, out: string[]): void {
    const message = isFields(data.message) ? data.message : {};
    if (!this.started && typeof message.model === 'string' && message.model.length > 0) this.model = message.model;
    this.usage = usageCountsOf(message.usage, this.usage);
    this.start(out);
  }

  private onBlockStart(data: Fields, out: string[]): void {
    this.closeBlock(out);
    const index = typeof data.index === 'number' ? data.index : -1;
    const block = isFields(data.content_block) ? data.content_block : {};
    if (block.type === 'text') {
      this.block = { kind: 'text', index };
      if (typeof block.text === 'string' && block.text.length > 0) this.emit(out, { content: block.text });
    } else if (block.type === 'tool_use' && typeof block.id === 'string' && typeof block.name === 'string') {
      // A start that already holds the whole input (not the API's `{}` placeholder) sends it as the arguments.
      const input = isFields(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : '';
      const toolIndex = this.toolCalls++;
      this.block = { kind: 'tool', index, toolIndex, argumentsSent: input.length > 0 };
      this.emit(out, { tool_calls: [{ index: toolIndex, id: block.id, type: 'function', function: { name: block.name, arguments: input } }] });
    } else {
      this.block = { kind: 'other', index };
    }
  }

  private onBlockDelta(data: Fields, out: string[]): void {
    const block = this.block;
    const delta = data.delta;
    if (block === undefined || data.index !== block.index || !isFields(delta)) return;
    if (block.kind === 'text' && delta.type === 'text_delta' && typeof delta.text === 'string' && delta.text.length > 0) {
      this.emit(out, { content: delta.text });
    } else if (block.kind === 'tool' && delta.type === 'input_json_delta' && typeof delta.partial_json === 'string' && delta.partial_json.length > 0) {
      block.argumentsSent = true;
      this.emit(out, { tool_calls: [{ index: block.toolIndex, function: { arguments: delta.partial_json } }] });
    }
  }

  /** Closes the open block: a tool call that streamed no arguments gets `{}`, what its input was. */
  private closeBlock(out: string[]): void {
    const block = this.block;
    this.block = undefined;
    if (block?.kind === 'tool' && !block.argumentsSent) this.emit(out, { tool_calls: [{ index: block.toolIndex, function: { arguments: '{}' } }] });
  }

  private onMessageDelta(data: Fields, out: string[]): void {
    this.usage = usageCountsOf(data.usage, this.usage);
    const delta = isFields(data.delta) ? data.delta : {};
    if (delta.stop_reason !== undefined && delta.stop_reason !== null) this.stopReason = delta.stop_reason;
    if (this.phase === 'open') this.finish(out);
  }

  private onError(data: Fields, out: string[]): void {
    const error = isFields(data.error) ? data.error : {};
    const message = typeof error.message === 'string' && error.message.length > 0 ? error.message : 'The upstream model failed while streaming.';
    out.push(...this.error({ status: statusOfAnthropicError(error.type), message }));
  }

  /** The open block closed, then the chunk with the finish reason. */
  private finish(out: string[]): void {
    this.closeBlock(out);
    this.emit(out, {}, finishReasonOf(this.stopReason));
    this.phase = 'finished';
  }

  /** The role chunk, once: the first chunk of every stream, whichever event comes first. Returns the head. */
  private start(out: string[]): string {
    if (this.head !== undefined) return this.head;
    const head = `data: {"id":${JSON.stringify(this.context.id)},"object":"chat.completion.chunk","created":${this.context.created},"model":${JSON.stringify(this.model)},"choices":[{"index":0,"delta":`;
    this.head = head;
    out.push(this.chunkText(head, { role: 'assistant', content: '', refusal: null }, null));
    return head;
  }

  private emit(out: string[], delta: ChatDelta, finishReason: FinishReason | null = null): void {
    out.push(this.chunkText(this.start(out), delta, finishReason));
  }

  /**
   * One chunk's SSE text. Every chunk writes the fields before its delta the same way, so that
   * text (`head`) is built once per stream.
   */
  private chunkText(head: string, delta: ChatDelta, finishReason: FinishReason | null): string {
    const finish = finishReason === null ? 'null' : `"${finishReason}"`;
    const usage = this.context.includeUsage ? ',"usage":null' : '';
    return `${head}${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish}}]${usage}}\n\n`;
  }

  private usageChunk(): string {
    const chunk: ChatCompletionChunk = {
      id: this.context.id,
      object: 'chat.completion.chunk',
      created: this.context.created,
      model: this.model,
      choices: [],
      usage: chatUsageOf(this.usage),
    };
    return `data: ${JSON.stringify(chunk)}\n\n`;
  }
}
