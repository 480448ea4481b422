import { ok, type Result } from '../../../core/result.js';
import { textBlocksOf, userBlocksOf } from './chat-content.js';
import { describe, type Fields, isAbsent, isFields, unknownKey, unknownKeyMessage } from './json-fields.js';
import type { AssistantBlock, MessageTurn, TextBlock, ToolResultBlock, ToolUseBlock, UserBlock } from './messages-body.js';
import { invalid, type TranslationError, unsupported } from './translation-error.js';

/**
 * A Chat Completions `messages` array into the Messages API's `system` and `messages`.
 *
 *   system, developer   → text blocks of `system`, in order, wherever they stand. The Messages
 *                         API takes a system message inside `messages` only after a user turn
 *                         and before an assistant turn (or at the end), a rule an OpenAI
 *                         conversation need not follow; one rule for all of them (the system
 *                         prompt) beats one that moves some and not others
 *   user                → a user turn (content parts: ./chat-content.ts)
 *   assistant           → an assistant turn: its text (and `refusal` text), then one `tool_use`
 *                         block per tool call, `input` parsed from `function.arguments`
 *   tool                → a `tool_result` block for `tool_call_id`, in a user turn
 *   function            → refused: the legacy function-calling messages (use tools)
 *
 * The Messages API wants turns that alternate, starting with a user turn, and every `tool_use` of
 * an assistant turn answered by a `tool_result` in the user turn right after it. So consecutive
 * messages of one side are merged into one turn (the tool messages answering an assistant's calls
 * become one user turn, with a user message that follows them appended after the results), and
 * the rules OpenAI itself applies are checked here, so that a client hears about a broken
 * conversation in OpenAI's terms: every tool call is answered by a tool message before the next
 * user or assistant message, and a tool message answers a call of the assistant message just
 * before. A conversation that opens with an assistant message is refused (a Messages conversation
 * starts with the user), and so is one with no user or assistant message.
 *
 * An assistant message with no text and no tool calls is left out: it carries nothing for the
 * model. A user message with no content is refused: the Messages API takes no empty turn.
 * `name` (a participant's name) has no Messages counterpart and is refused rather than dropped.
 * A conversation that ends with an assistant message is sent as it is: Anthropic then continues
 * that message (a "prefill") where OpenAI would answer after it.
 */
export interface Conversation {
  readonly system: TextBlock[];
  readonly messages: MessageTurn[];
}

export function translateMessages(raw: unknown): Result<Conversation, TranslationError> {
  if (!Array.isArray(raw) || raw.length === 0) return invalid('messages', "'messages' must be a non-empty array of messages.");
  const builder = new ConversationBuilder();
  for (const [i, message] of (raw as unknown[]).entries()) {
    const added = addMessage(builder, message, `messages[${i}]`);
    if (!added.ok) return added;
  }
  return builder.finish();
}

const knownKeys: Readonly<Record<string, readonly string[]>> = {
  system: ['role', 'content', 'name'],
  developer: ['role', 'content', 'name'],
  user: ['role', 'content', 'name'],
  assistant: ['role', 'content', 'refusal', 'tool_calls', 'name', 'audio', 'function_call'],
  tool: ['role', 'content', 'tool_call_id'],
};

function addMessage(builder: ConversationBuilder, message: unknown, param: string): Result<void, TranslationError> {
  if (!isFields(message)) return invalid(param, `'${param}' must be a message object.`);
  const role = message.role;
  if (role === 'function') {
    return unsupported(
      `${param}.role`,
      `'${param}' is a legacy function message; this endpoint translates tools: send the result as a 'tool' message with its tool_call_id.`,
    );
  }
  const known = typeof role === 'string' && Object.hasOwn(knownKeys, role) ? knownKeys[role] : undefined;
  if (known === undefined)
    return invalid(`${param}.role`, `'${param}.role' must be 'system', 'developer', 'user', 'assistant' or 'tool'; got ${describe(role)}.`);
  const unknown = unknownKey(message, known);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  if (!isAbsent(message.name)) {
    return unsupported(
      `${param}.name`,
      `'${param}.name' names a participant, which the Anthropic Messages API has no place for; put the name in the content instead.`,
    );
  }
  switch (role) {
    case 'system':
    case 'developer': {
      const blocks = textBlocksOf(message.content, `${param}.content`);
      if (!blocks.ok) return blocks;
      builder.addSystem(blocks.value);
      return ok(undefined);
    }
    case 'user': {
      const blocks = userBlocksOf(message.content, `${param}.content`);
      if (!blocks.ok) return blocks;
      if (blocks.value.length === 0)
        return unsupported(`${param}.content`, `'${param}.content' is empty; the Anthropic Messages API takes no empty user turn.`);
      return builder.addUser(blocks.value, param);
    }
    case 'assistant':
      return addAssistant(builder, message, param);
    default:
      return addTool(builder, message, param);
  }
}

function addAssistant(builder: ConversationBuilder, message: Fields, param: string): Result<void, TranslationError> {
  if (!isAbsent(message.audio)) return unsupported(`${param}.audio`, `'${param}.audio' refers to an audio answer; the Anthropic Messages API takes no audio.`);
  if (!isAbsent(message.function_call)) {
    return unsupported(`${param}.function_call`, `'${param}.function_call' is legacy function calling; this endpoint translates tool_calls.`);
  }
  const text = assistantTextOf(message.content, `${param}.content`);
  if (!text.ok) return text;
  const blocks: AssistantBlock[] = [...text.value];
  if (!isAbsent(message.refusal)) {
    if (typeof message.refusal !== 'string') return invalid(`${param}.refusal`, `'${param}.refusal' must be a string.`);
    if (message.refusal.length > 0) blocks.push({ type: 'text', text: message.refusal });
  }
  const calls = toolUsesOf(message.tool_calls, `${param}.tool_calls`);
  if (!calls.ok) return calls;
  blocks.push(...calls.value);
  return builder.addAssistant(blocks, calls.value, param);
}

/** Assistant content: a string, or text and refusal parts; a refusal part is text the model wrote. */
function assistantTextOf(content: unknown, param: string): Result<TextBlock[], TranslationError> {
  if (isAbsent(content)) return ok([]);
  if (!Array.isArray(content)) return textBlocksOf(content, param);
  const parts = (content as unknown[]).map((part) =>
    isFields(part) && part.type === 'refusal' && typeof part.refusal === 'string' && unknownKey(part, ['type', 'refusal']) === undefined
      ? { type: 'text', text: part.refusal }
      : part,
  );
  return textBlocksOf(parts, param);
}

function toolUsesOf(raw: unknown, param: string): Result<ToolUseBlock[], TranslationError> {
  if (isAbsent(raw)) return ok([]);
  if (!Array.isArray(raw)) return invalid(param, `'${param}' must be an array.`);
  const uses: ToolUseBlock[] = [];
  for (const [i, call] of (raw as unknown[]).entries()) {
    const use = toolUseOf(call, `${param}[${i}]`);
    if (!use.ok) return use;
    if (uses.some((other) => other.id === use.value.id))
      return invalid(`${param}[${i}].id`, `'${param}[${i}].id' repeats the id of an earlier tool call of this message.`);
    uses.push(use.value);
  }
  return ok(uses);
}

function toolUseOf(call: unknown, param: string): Result<ToolUseBlock, TranslationError> {
  if (!isFields(call)) return invalid(param, `'${param}' must be a tool call object.`);
  if (call.type === 'custom') return unsupported(`${param}.type`, `'${param}' is a custom tool call; this endpoint translates function tool calls only.`);
  if (call.type !== 'function') return invalid(`${param}.type`, `'${param}.type' must be 'function'; got ${describe(call.type)}.`);
  const unknown = unknownKey(call, ['id', 'type', 'function']);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  if (typeof call.id !== 'string' || call.id.length === 0) return invalid(`${param}.id`, `'${param}.id' must be a non-empty string.`);
  const fn = call.function;
  if (!isFields(fn) || typeof fn.name !== 'string' || fn.name.length === 0)
    return invalid(`${param}.function.name`, `'${param}.function.name' must be a non-empty string.`);
  const args = fn.arguments;
  const argsParam = `${param}.function.arguments`;
  if (typeof args !== 'string') return invalid(argsParam, `'${argsParam}' must be a string of JSON.`);
  const input = argumentsObjectOf(args);
  if (input === undefined) {
    return unsupported(
      argsParam,
      `'${argsParam}' is not a JSON object; Anthropic tool input is an object, so only calls whose arguments are one can be sent back.`,
    );
  }
  return ok({ type: 'tool_use', id: call.id, name: fn.name, input });
}

/** Tool call arguments as an object: blank text stands for no arguments; undefined when not an object. */
function argumentsObjectOf(text: string): Record<string, unknown> | undefined {
  if (text.trim().length === 0) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isFields(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function addTool(builder: ConversationBuilder, message: Fields, param: string): Result<void, TranslationError> {
  const id = message.tool_call_id;
  if (typeof id !== 'string' || id.length === 0) return invalid(`${param}.tool_call_id`, `'${param}.tool_call_id' must be a non-empty string.`);
  const blocks = textBlocksOf(message.content, `${param}.content`);
  if (!blocks.ok) return blocks;
  const result: ToolResultBlock =
    blocks.value.length === 0 ? { type: 'tool_result', tool_use_id: id } : { type: 'tool_result', tool_use_id: id, content: blocks.value };
  return builder.addToolResult(result, param);
}

/** Tool calls of the last assistant message still waiting for their tool messages. */
interface PendingCalls {
  readonly ids: string[];
  readonly param: string;
}

/** Appends blocks turn by turn, merging consecutive blocks of one side into one turn. */
class ConversationBuilder {
  private readonly system: TextBlock[] = [];
  private readonly turns: MessageTurn[] = [];
  private pending: PendingCalls | undefined;

  addSystem(blocks: readonly TextBlock[]): void {
    this.system.push(...blocks);
  }

  addUser(blocks: readonly UserBlock[], param: string): Result<void, TranslationError> {
    const unanswered = this.unanswered(param);
    if (!unanswered.ok) return unanswered;
    this.userTurn().push(...blocks);
    return ok(undefined);
  }

  addAssistant(blocks: readonly AssistantBlock[], uses: readonly ToolUseBlock[], param: string): Result<void, TranslationError> {
    const unanswered = this.unanswered(param);
    if (!unanswered.ok) return unanswered;
    if (blocks.length === 0) return ok(undefined);
    const last = this.turns.at(-1);
    if (last?.role === 'assistant') last.content.push(...blocks);
    else this.turns.push({ role: 'assistant', content: [...blocks] });
    if (uses.length > 0) this.pending = { ids: uses.map((use) => use.id), param };
    return ok(undefined);
  }

  addToolResult(result: ToolResultBlock, param: string): Result<void, TranslationError> {
    const pending = this.pending;
    const at = pending === undefined ? -1 : pending.ids.indexOf(result.tool_use_id);
    if (pending === undefined || at < 0) {
      return invalid(
        `${param}.tool_call_id`,
        `'${param}.tool_call_id' is ${describe(result.tool_use_id)}, which answers no tool call of the assistant message before it.`,
      );
    }
    pending.ids.splice(at, 1);
    if (pending.ids.length === 0) this.pending = undefined;
    this.userTurn().push(result);
    return ok(undefined);
  }

  finish(): Result<Conversation, TranslationError> {
    const unanswered = this.unanswered(undefined);
    if (!unanswered.ok) return unanswered;
    const first = this.turns[0];
    if (first === undefined) return invalid('messages', "'messages' holds no user or assistant message to answer.");
    if (first.role !== 'user') {
      return unsupported('messages', "'messages' opens with an assistant message; a conversation of the Anthropic Messages API starts with a user message.");
    }
    return ok({ system: this.system, messages: this.turns });
  }

  /** An error when tool calls are still unanswered as the message `param` arrives, or at the end (undefined). */
  private unanswered(param: string | undefined): Result<void, TranslationError> {
    if (this.pending === undefined) return ok(undefined);
    const ids = this.pending.ids.map((id) => describe(id)).join(', ');
    const where = param === undefined ? '' : ` before '${param}'`;
    return invalid(
      param ?? this.pending.param,
      `The tool calls of '${this.pending.param}' (${ids}) have no tool message answering them${where}; every tool call needs one.`,
    );
  }

  private userTurn(): UserBlock[] {
    const last = this.turns.at(-1);
    if (last?.role === 'user') return last.content;
    const turn: MessageTurn = { role: 'user', content: [] };
    this.turns.push(turn);
    return turn.content;
  }
}
