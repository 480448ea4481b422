import { emulatorCacheBreakpointsMax, emulatorMaxTokensMax, emulatorMessagesMax, emulatorStopSequencesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { isJson, type Json } from './token-count.js';

/**
 * Validation of the bodies of `POST /v1/messages` and `POST /v1/messages/count_tokens`, with the
 * real API's checks on the fields the emulator reads, and its way of naming a bad field by its
 * dotted path (`messages.0.content.1.text: Field required`).
 *
 * Checked: `model` a non-empty string; `max_tokens` an integer from 1 to `emulatorMaxTokensMax`
 * (messages only); `messages` a non-empty array of `{role: "user"|"assistant"|"system", content}`
 * where content is a non-empty string or a non-empty array of blocks, each an object with a string
 * `type` (text blocks need non-empty `text`); `system` a string or an array of text blocks;
 * `stream` a boolean; `metadata.user_id` a string when given; `stop_sequences` an array of
 * non-empty strings; `temperature` and `top_p` from 0 to 1; `top_k` a non-negative integer;
 * `tools` an array of objects; every `cache_control` `{type: "ephemeral", ttl?: "5m"|"1h"}`, at
 * most `emulatorCacheBreakpointsMax` of them. Fields the emulator does not read (thinking,
 * tool_choice, output_config, ...) pass unchecked, so requests from newer SDKs still work.
 *
 * Mid-conversation system messages (`role: "system"` inside `messages`, which Claude Code sends on
 * its first request) follow the real API's rules, with its wording:
 *   - content is a string or text blocks (with the `mid-conversation-tool-changes-2026-07-01` beta
 *     also `tool_addition` and `tool_removal` blocks);
 *   - such a message must follow a user message (or an assistant message ending in a server tool
 *     result) and must precede an assistant message or end the array;
 *   - `output_config` ({effort}) on it needs the `per-turn-control-2026-07-01` beta, which also
 *     allows the directive-only form (`content: []` or none, with `output_config`) anywhere;
 *     without the beta `output_config` there is an extra input the API refuses.
 * The betas come from the `anthropic-beta` header (`requestBetas`).
 */
export type Role = 'user' | 'assistant' | 'system';

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

/** The betas of the `anthropic-beta` header that change what a body may hold. */
export interface RequestBetas {
  /** `per-turn-control-2026-07-01`: `output_config` on a system message, and the directive-only form. */
  readonly perTurnControl: boolean;
  /** `mid-conversation-tool-changes-2026-07-01`: `tool_addition` and `tool_removal` blocks in a system message. */
  readonly toolChanges: boolean;
}

export const perTurnControlBeta = 'per-turn-control-2026-07-01';
export const toolChangesBeta = 'mid-conversation-tool-changes-2026-07-01';
export const noBetas: RequestBetas = Object.freeze({ perTurnControl: false, toolChanges: false });

/** The betas a request's `anthropic-beta` header (comma-separated, possibly repeated) turns on. */
export function requestBetas(header: string | readonly string[] | undefined): RequestBetas {
  if (header === undefined) return noBetas;
  const names = new Set<string>();
  for (const value of typeof header === 'string' ? [header] : header) for (const name of value.split(',')) names.add(name.trim());
  return { perTurnControl: names.has(perTurnControlBeta), toolChanges: names.has(toolChangesBeta) };
}

const invalid = (field: string, message: string): Result<never, InvalidRequest> => err({ kind: 'invalid-request', field, message });

export function validateMessagesRequest(body: unknown, betas: RequestBetas = noBetas): Result<MessagesRequest, InvalidRequest> {
  if (!isJson(body)) return invalid('body', 'Input should be a valid JSON object');
  const prompt = validatePrompt(body, betas);
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

export function validateCountTokensRequest(body: unknown, betas: RequestBetas = noBetas): Result<PromptRequest, InvalidRequest> {
  if (!isJson(body)) return invalid('body', 'Input should be a valid JSON object');
  return validatePrompt(body, betas);
}

function validatePrompt(body: Json, betas: RequestBetas): Result<PromptRequest, InvalidRequest> {
  const breakpoints = { count: 0 };
  const model = body.model;
  if (model === undefined) return invalid('model', 'Field required');
  if (typeof model !== 'string' || model.length === 0) return invalid('model', 'Input should be a non-empty string');

  const messages = validateMessages(body.messages, breakpoints, betas);
  if (!messages.ok) return messages;

  let system: PromptRequest['system'];
  if (body.system !== undefined && body.system !== null) {
    if (typeof body.system === 'string') system = body.system;
    else {
      const blocks = validateContent(body.system, 'system', breakpoints, systemPromptContent);
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
  return ok({ model, messages: messages.value, system, tools, cacheControl });
}

function validateMessages(raw: unknown, breakpoints: { count: number }, betas: RequestBetas): Result<MessageParam[], InvalidRequest> {
  if (raw === undefined) return invalid('messages', 'Field required');
  if (!Array.isArray(raw)) return invalid('messages', 'Input should be a valid list');
  if (raw.length === 0) return invalid('messages', 'at least one message is required');
  if (raw.length > emulatorMessagesMax) return invalid('messages', `at most ${emulatorMessagesMax} messages are allowed`);
  const messages: MessageParam[] = [];
  // Positions of the system messages that carry content: where they sit is checked once every
  // message is known to be well formed, as the API reports a bad field before a bad order.
  const placed: number[] = [];
  for (const [i, message] of (raw as unknown[]).entries()) {
    const field = `messages.${i}`;
    if (!isJson(message)) return invalid(field, 'Input should be a valid dictionary');
    if (message.role === undefined) return invalid(`${field}.role`, 'Field required');
    if (message.role === 'system') {
      const system = validateSystemMessage(message, field, breakpoints, betas);
      if (!system.ok) return system;
      messages.push({ role: 'system', content: system.value.content });
      if (!system.value.directiveOnly) placed.push(i);
      continue;
    }
    if (message.role !== 'user' && message.role !== 'assistant') return invalid(`${field}.role`, "Input should be 'user', 'assistant' or 'system'");
    const content = validateContent(message.content, `${field}.content`, breakpoints, messageContent);
    if (!content.ok) return content;
    messages.push({ role: message.role, content: content.value });
  }
  for (const i of placed) {
    const placement = checkSystemPlacement(messages, i);
    if (!placement.ok) return placement;
  }
  return ok(messages);
}

const systemPlacementNote = 'the directive-only form (content: [] with output_config) is accepted at any position';

/**
 * A system message with content must follow a user message (or an assistant message whose last
 * block is a server tool's result) and precede an assistant message or end the array. A system
 * message first, or two in a row, fails the first rule.
 */
function checkSystemPlacement(messages: readonly MessageParam[], i: number): Result<void, InvalidRequest> {
  const before = messages[i - 1];
  const after = messages[i + 1];
  const followsUser = before?.role === 'user' || (before?.role === 'assistant' && endsInServerToolResult(before));
  if (!followsUser) {
    return invalid(
      `messages.${i}`,
      `role 'system' must follow a 'user' message or an 'assistant' message ending in a server tool result; ${systemPlacementNote}`,
    );
  }
  if (after !== undefined && after.role !== 'assistant') {
    return invalid(`messages.${i}`, `role 'system' must precede an 'assistant' message or end the array; ${systemPlacementNote}`);
  }
  return ok(undefined);
}

/** Whether an assistant turn ends in a server tool's result (`web_search_tool_result` and the like). */
function endsInServerToolResult(message: MessageParam): boolean {
  if (typeof message.content === 'string') return false;
  const type = message.content.at(-1)?.type;
  return typeof type === 'string' && type !== 'tool_result' && type.endsWith('_tool_result');
}

const efforts: readonly unknown[] = ['low', 'medium', 'high', 'xhigh', 'max'];

/**
 * A `role: "system"` message of `messages`: its content (empty for the directive-only form) and
 * whether it is directive-only, which exempts it from the placement rules.
 */
function validateSystemMessage(
  message: Json,
  field: string,
  breakpoints: { count: number },
  betas: RequestBetas,
): Result<{ content: string | readonly Json[]; directiveOnly: boolean }, InvalidRequest> {
  const hasConfig = message.output_config !== undefined && message.output_config !== null;
  if (hasConfig) {
    if (!betas.perTurnControl) return invalid(`${field}.output_config`, 'Extra inputs are not permitted');
    const config = message.output_config;
    if (!isJson(config)) return invalid(`${field}.output_config`, 'Input should be a valid dictionary');
    if (config.effort !== undefined && config.effort !== null && !efforts.includes(config.effort)) {
      return invalid(`${field}.output_config.effort`, "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'");
    }
  }
  const raw = message.content;
  if ((raw === undefined || (Array.isArray(raw) && raw.length === 0)) && hasConfig) return ok({ content: [], directiveOnly: true });
  if (raw === undefined) return invalid(`${field}.content`, 'Field required');
  const content = validateContent(raw, `${field}.content`, breakpoints, betas.toolChanges ? systemMessageToolContent : systemMessageContent);
  if (!content.ok) return content;
  return ok({ content: content.value, directiveOnly: false });
}

/** What a list of content blocks may hold at one place of the body. */
interface ContentRule {
  /** The block types allowed; undefined allows any. */
  readonly types: ReadonlySet<string> | undefined;
  /** The reason given for a block of another type. */
  readonly typeMessage: string;
  readonly emptyAllowed: boolean;
}

const messageContent: ContentRule = { types: undefined, typeMessage: '', emptyAllowed: false };
const systemPromptContent: ContentRule = { types: new Set(['text']), typeMessage: "Input should be 'text'", emptyAllowed: true };
const systemMessageContent: ContentRule = { types: new Set(['text']), typeMessage: "Input should be 'text'", emptyAllowed: false };
const systemMessageToolContent: ContentRule = {
  types: new Set(['text', 'tool_addition', 'tool_removal']),
  typeMessage: "Input should be 'text', 'tool_addition' or 'tool_removal'",
  emptyAllowed: false,
};

function validateContent(raw: unknown, field: string, breakpoints: { count: number }, rule: ContentRule): Result<string | readonly Json[], InvalidRequest> {
  if (raw === undefined) return invalid(field, 'Field required');
  if (typeof raw === 'string') {
    if (raw.length === 0) return invalid(field, 'text content must be non-empty');
    return ok(raw);
  }
  if (!Array.isArray(raw)) return invalid(field, 'Input should be a valid string or list of content blocks');
  if (raw.length === 0 && !rule.emptyAllowed) return invalid(field, 'at least one content block is required');
  const blocks: Json[] = [];
  for (const [i, block] of (raw as unknown[]).entries()) {
    const blockField = `${field}.${i}`;
    if (!isJson(block)) return invalid(blockField, 'Input should be a valid dictionary');
    if (typeof block.type !== 'string' || block.type.length === 0) return invalid(`${blockField}.type`, 'Field required');
    if (rule.types !== undefined && !rule.types.has(block.type)) return invalid(`${blockField}.type`, rule.typeMessage);
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
