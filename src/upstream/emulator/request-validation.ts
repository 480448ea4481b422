import {
  emulatorCacheBreakpointsMax,
  emulatorMaxTokensMax,
  emulatorMessagesMax,
  emulatorStopSequencesMax,
} from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { isJson, type Json } from './token-count.js';

/**
 * Validation of the bodies of `POST /v1/messages` and `POST /v1/messages/count_tokens`, with the
 * real API's checks on the fields the emulator reads, and its way of naming a bad field by its
 * dotted path (`messages.0.content.1.text: Field required`).
 *
 * Checked: `model` a non-empty string; `max_tokens` an integer from 1 to `emulatorMaxTokensMax`
 * (messages only); `messages` a non-empty array of `{role: "user"|"assistant", content}` where
 * content is a non-empty string or a non-empty array of blocks, each an object with a string
 * `type` (text blocks need non-empty `text`); `system` a string or an array of text blocks;
 * `stream` a boolean; `metadata.user_id` a string when given; `stop_sequences` an array of
 * non-empty strings; `temperature` and `top_p` from 0 to 1; `top_k` a non-negative integer;
 * `tools` an array of objects; every `cache_control` `{type: "ephemeral", ttl?: "5m"|"1h"}`, at
 * most `emulatorCacheBreakpointsMax` of them. Fields the emulator does not read (thinking,
 * tool_choice, output_config, ...) pass unchecked, so requests from newer SDKs still work.
 */
export type Role = 'user' | 'assistant';

export interface MessageParam {
  readonly role: Role;
  readonly content: string | readonly Json[];
}

export type CacheTtl = '5m' | '1h';

/** What both endpoints read: the prompt. */
export interface PromptRequest {
  readonly model: string;
  readonly messages: readonly MessageParam[];
  readonly system: string | readonly Json[] | undefined;
  readonly tools: readonly Json[];
  /** The top-level `cache_control`, which marks the last block of the prompt. */
  readonly cacheControl: CacheTtl | undefined;
}

export interface MessagesRequest extends PromptRequest {
  readonly maxTokens: number;
  readonly stream: boolean;
  readonly stopSequences: readonly string[];
  readonly userId: string | undefined;
}

export interface InvalidRequest {
  readonly kind: 'invalid-request';
  /** The dotted path of the bad field, as the real API names it. */
  readonly field: string;
  readonly message: string;
}

const invalid = (field: string, message: string): Result<never, InvalidRequest> => err({ kind: 'invalid-request', field, message });

export function validateMessagesRequest(body: unknown): Result<MessagesRequest, InvalidRequest> {
  if (!isJson(body)) return invalid('body', 'Input should be a valid JSON object');
  const prompt = validatePrompt(body);
  if (!prompt.ok) return prompt;
  const maxTokens = body.max_tokens;
  if (maxTokens === undefined) return invalid('max_tokens', 'Field required');
  if (typeof maxTokens !== 'number' || !Number.isSafeInteger(maxTokens)) return invalid('max_tokens', 'Input should be a valid integer');
  if (maxTokens < 1) return invalid('max_tokens', 'Input should be greater than or equal to 1');
  if (maxTokens > emulatorMaxTokensMax) {
    return invalid('max_tokens', `${maxTokens} > ${emulatorMaxTokensMax}, which is the maximum allowed number of output tokens for ${prompt.value.model}`);
  }
  const stream = body.stream ?? false;
  if (typeof stream !== 'boolean') return invalid('stream', 'Input should be a valid boolean');
  const stopSequences = validateStopSequences(body.stop_sequences);
  if (!stopSequences.ok) return stopSequences;
  let userId: string | undefined;
  if (body.metadata !== undefined && body.metadata !== null) {
    if (!isJson(body.metadata)) return invalid('metadata', 'Input should be a valid dictionary');
    const raw = body.metadata.user_id;
    if (raw !== undefined && raw !== null && typeof raw !== 'string') return invalid('metadata.user_id', 'Input should be a valid string');
    userId = raw ?? undefined;
  }
  for (const name of ['temperature', 'top_p'] as const) {
    const value = body[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) return invalid(name, 'Input should be a valid number');
    if (value < 0 || value > 1) return invalid(name, 'Input should be between 0 and 1');
  }
  const topK = body.top_k;
  if (topK !== undefined && topK !== null && (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0)) {
    return invalid('top_k', 'Input should be a non-negative integer');
  }
  // Spelled out rather than spread: V8 copies a spread followed by more fields slowly, and this
  // runs on every request.
  const { model, messages, system, tools, cacheControl } = prompt.value;
  return ok({ model, messages, system, tools, cacheControl, maxTokens, stream, stopSequences: stopSequences.value, userId });
}

export function validateCountTokensRequest(body: unknown): Result<PromptRequest, InvalidRequest> {
  if (!isJson(body)) return invalid('body', 'Input should be a valid JSON object');
  return validatePrompt(body);
}

function validatePrompt(body: Json): Result<PromptRequest, InvalidRequest> {
  const breakpoints = { count: 0 };
  const model = body.model;
  if (model === undefined) return invalid('model', 'Field required');
  if (typeof model !== 'string' || model.length === 0) return invalid('model', 'Input should be a non-empty string');

  const rawMessages = body.messages;
  if (rawMessages === undefined) return invalid('messages', 'Field required');
  if (!Array.isArray(rawMessages)) return invalid('messages', 'Input should be a valid list');
  if (rawMessages.length === 0) return invalid('messages', 'at least one message is required');
  if (rawMessages.length > emulatorMessagesMax) return invalid('messages', `at most ${emulatorMessagesMax} messages are allowed`);
  const messages: MessageParam[] = [];
  for (const [i, raw] of (rawMessages as unknown[]).entries()) {
    const field = `messages.${i}`;
    if (!isJson(raw)) return invalid(field, 'Input should be a valid dictionary');
    if (raw.role === undefined) return invalid(`${field}.role`, 'Field required');
    if (raw.role !== 'user' && raw.role !== 'assistant') return invalid(`${field}.role`, "Input should be 'user' or 'assistant'");
    const content = validateContent(raw.content, `${field}.content`, breakpoints, 'any');
    if (!content.ok) return content;
    messages.push({ role: raw.role, content: content.value });
  }

  let system: PromptRequest['system'];
  if (body.system !== undefined && body.system !== null) {
    if (typeof body.system === 'string') system = body.system;
    else {
      const blocks = validateContent(body.system, 'system', breakpoints, 'text');
      if (!blocks.ok) return blocks;
      if (typeof blocks.value === 'string') return invalid('system', 'Input should be a valid string or list of text blocks');
      system = blocks.value;
    }
  }

  const tools: Json[] = [];
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) return invalid('tools', 'Input should be a valid list');
    for (const [i, tool] of (body.tools as unknown[]).entries()) {
      if (!isJson(tool)) return invalid(`tools.${i}`, 'Input should be a valid dictionary');
      if (typeof tool.name !== 'string' || tool.name.length === 0) return invalid(`tools.${i}.name`, 'Field required');
      const marked = validateCacheControl(tool.cache_control, `tools.${i}.cache_control`, breakpoints);
      if (!marked.ok) return marked;
      tools.push(tool);
    }
  }

  let cacheControl: CacheTtl | undefined;
  if (body.cache_control !== undefined && body.cache_control !== null) {
    const marked = validateCacheControl(body.cache_control, 'cache_control', breakpoints);
    if (!marked.ok) return marked;
    cacheControl = marked.value;
  }
  return ok({ model, messages, system, tools, cacheControl });
}

function validateContent(
  raw: unknown,
  field: string,
  breakpoints: { count: number },
  allowed: 'any' | 'text',
): Result<string | readonly Json[], InvalidRequest> {
  if (raw === undefined) return invalid(field, 'Field required');
  if (typeof raw === 'string') {
    if (raw.length === 0) return invalid(field, 'text content must be non-empty');
    return ok(raw);
  }
  if (!Array.isArray(raw)) return invalid(field, 'Input should be a valid string or list of content blocks');
  if (raw.length === 0 && allowed === 'any') return invalid(field, 'at least one content block is required');
  const blocks: Json[] = [];
  for (const [i, block] of (raw as unknown[]).entries()) {
    const blockField = `${field}.${i}`;
    if (!isJson(block)) return invalid(blockField, 'Input should be a valid dictionary');
    if (typeof block.type !== 'string' || block.type.length === 0) return invalid(`${blockField}.type`, 'Field required');
    if (allowed === 'text' && block.type !== 'text') return invalid(`${blockField}.type`, "Input should be 'text'");
    if (block.type === 'text') {
      if (block.text === undefined) return invalid(`${blockField}.text`, 'Field required');
      if (typeof block.text !== 'string') return invalid(`${blockField}.text`, 'Input should be a valid string');
      if (block.text.length === 0) return invalid(`${blockField}.text`, 'text content blocks must be non-empty');
    }
    const marked = validateCacheControl(block.cache_control, `${blockField}.cache_control`, breakpoints);
    if (!marked.ok) return marked;
    blocks.push(block);
  }
  return ok(blocks);
}

/** The ttl a block's `cache_control` asks for, undefined when it has none. */
function validateCacheControl(raw: unknown, field: string, breakpoints: { count: number }): Result<CacheTtl | undefined, InvalidRequest> {
  if (raw === undefined || raw === null) return ok(undefined);
  if (!isJson(raw)) return invalid(field, 'Input should be a valid dictionary');
  if (raw.type !== 'ephemeral') return invalid(`${field}.type`, "Input should be 'ephemeral'");
  const ttl = raw.ttl ?? '5m';
  if (ttl !== '5m' && ttl !== '1h') return invalid(`${field}.ttl`, "Input should be '5m' or '1h'");
  breakpoints.count += 1;
  if (breakpoints.count > emulatorCacheBreakpointsMax) {
    return invalid(field, `A maximum of ${emulatorCacheBreakpointsMax} blocks with cache_control may be provided. Found ${breakpoints.count}.`);
  }
  return ok(ttl);
}

function validateStopSequences(raw: unknown): Result<readonly string[], InvalidRequest> {
  if (raw === undefined || raw === null) return ok([]);
  if (!Array.isArray(raw)) return invalid('stop_sequences', 'Input should be a valid list');
  if (raw.length > emulatorStopSequencesMax) return invalid('stop_sequences', `at most ${emulatorStopSequencesMax} stop sequences are allowed`);
  for (const [i, sequence] of (raw as unknown[]).entries()) {
    if (typeof sequence !== 'string' || sequence.length === 0) return invalid(`stop_sequences.${i}`, 'Input should be a non-empty string');
  }
  return ok(raw as string[]);
}

/** The message the API puts in an invalid_request_error for a bad field. */
export function invalidRequestMessage(error: InvalidRequest): string {
  return `${error.field}: ${error.message}`;
}
