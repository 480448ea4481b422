import { ok, type Result } from '../../../core/result.js';
import { describe, type Fields, isAbsent, isFields, unknownKey, unknownKeyMessage } from './json-fields.js';
import type { MessagesTool, MessagesToolChoice } from './messages-body.js';
import { invalid, type TranslationError, unsupported } from './translation-error.js';

/**
 * `tools`, `tool_choice` and `parallel_tool_calls` into the Messages API's `tools` and
 * `tool_choice`:
 *
 *   tools[i] {"type":"function","function":{name, description, parameters}}
 *                        → {name, description, input_schema: parameters}; no parameters → an
 *                          object schema without properties; a schema without `type` gets
 *                          `"type": "object"`, any other type is refused (tool input is an object)
 *   function.strict true → refused: the Messages API does not hold tool input to the schema
 *   tools[i] custom      → refused (free-form tool input has no Messages counterpart)
 *   tool_choice "none"   → {"type":"none"};  "auto" → {"type":"auto"};  "required" → {"type":"any"}
 *   {"type":"function","function":{"name"}} → {"type":"tool","name"} (the tool must be declared)
 *   allowed_tools, custom → refused
 *   parallel_tool_calls false → `disable_parallel_tool_use: true` on the tool choice
 *
 * Without tools, "none" and "auto" say nothing and are left out; "required" or a named tool
 * cannot be honoured and are refused, as OpenAI refuses them.
 */
export interface ToolsTranslation {
  readonly tools: MessagesTool[] | undefined;
  readonly toolChoice: MessagesToolChoice | undefined;
}

export function translateTools(body: Fields): Result<ToolsTranslation, TranslationError> {
  const tools = toolsOf(body.tools);
  if (!tools.ok) return tools;
  const names = tools.value.map((tool) => tool.name);
  const choice = toolChoiceOf(body.tool_choice, names);
  if (!choice.ok) return choice;
  const parallel = body.parallel_tool_calls;
  if (!isAbsent(parallel) && typeof parallel !== 'boolean') return invalid('parallel_tool_calls', "'parallel_tool_calls' must be a boolean.");
  if (tools.value.length === 0) return ok({ tools: undefined, toolChoice: undefined });
  let toolChoice = choice.value;
  if (parallel === false && toolChoice?.type !== 'none') toolChoice = { ...(toolChoice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  return ok({ tools: tools.value, toolChoice });
}

function toolsOf(raw: unknown): Result<MessagesTool[], TranslationError> {
  if (isAbsent(raw)) return ok([]);
  if (!Array.isArray(raw)) return invalid('tools', "'tools' must be an array.");
  const tools: MessagesTool[] = [];
  for (const [i, tool] of (raw as unknown[]).entries()) {
    const translated = toolOf(tool, `tools[${i}]`);
    if (!translated.ok) return translated;
    tools.push(translated.value);
  }
  return ok(tools);
}

function toolOf(tool: unknown, param: string): Result<MessagesTool, TranslationError> {
  if (!isFields(tool)) return invalid(param, `'${param}' must be an object.`);
  if (tool.type === 'custom')
    return unsupported(`${param}.type`, `'${param}' is a custom tool; the Anthropic Messages API behind this endpoint takes function tools only.`);
  if (tool.type !== 'function') return invalid(`${param}.type`, `'${param}.type' must be 'function'; got ${describe(tool.type)}.`);
  const unknown = unknownKey(tool, ['type', 'function']);
  if (unknown !== undefined) return unsupported(`${param}.${unknown}`, unknownKeyMessage(param, unknown));
  const fn = tool.function;
  const fnParam = `${param}.function`;
  if (!isFields(fn)) return invalid(fnParam, `'${fnParam}' must be an object.`);
  const fnUnknown = unknownKey(fn, ['name', 'description', 'parameters', 'strict']);
  if (fnUnknown !== undefined) return unsupported(`${fnParam}.${fnUnknown}`, unknownKeyMessage(fnParam, fnUnknown));
  if (typeof fn.name !== 'string' || fn.name.length === 0) return invalid(`${fnParam}.name`, `'${fnParam}.name' must be a non-empty string.`);
  if (!isAbsent(fn.description) && typeof fn.description !== 'string') return invalid(`${fnParam}.description`, `'${fnParam}.description' must be a string.`);
  if (fn.strict === true) {
    return unsupported(
      `${fnParam}.strict`,
      `'${fnParam}.strict' is true, but the Anthropic Messages API behind this endpoint does not hold tool arguments to the schema; leave strict out or set it to false.`,
    );
  }
  if (!isAbsent(fn.strict) && fn.strict !== false) return invalid(`${fnParam}.strict`, `'${fnParam}.strict' must be a boolean.`);
  const schema = inputSchemaOf(fn.parameters, `${fnParam}.parameters`);
  if (!schema.ok) return schema;
  const description = typeof fn.description === 'string' && fn.description.length > 0 ? { description: fn.description } : {};
  return ok({ name: fn.name, ...description, input_schema: schema.value });
}

function inputSchemaOf(parameters: unknown, param: string): Result<MessagesTool['input_schema'], TranslationError> {
  if (isAbsent(parameters)) return ok({ type: 'object', properties: {} });
  if (!isFields(parameters)) return invalid(param, `'${param}' must be a JSON Schema object.`);
  if (parameters.type === undefined) return ok({ type: 'object', ...parameters });
  if (parameters.type !== 'object') {
    return unsupported(
      `${param}.type`,
      `'${param}.type' is ${describe(parameters.type)}; the Anthropic Messages API takes tool arguments as an object, so the schema's type must be 'object'.`,
    );
  }
  return ok(parameters as MessagesTool['input_schema']);
}

function toolChoiceOf(raw: unknown, names: readonly string[]): Result<MessagesToolChoice | undefined, TranslationError> {
  if (isAbsent(raw)) return ok(undefined);
  const noTools = names.length === 0;
  switch (raw) {
    case 'none':
      return ok(noTools ? undefined : { type: 'none' });
    case 'auto':
      return ok(noTools ? undefined : { type: 'auto' });
    case 'required':
      if (noTools) return invalid('tool_choice', "'tool_choice' is 'required', but the request declares no tools.");
      return ok({ type: 'any' });
  }
  if (!isFields(raw))
    return invalid('tool_choice', `'tool_choice' must be 'none', 'auto', 'required' or {"type": "function", "function": {"name": ...}}; got ${describe(raw)}.`);
  if (raw.type === 'allowed_tools' || raw.type === 'custom') {
    return unsupported(
      'tool_choice.type',
      `'tool_choice.type' is '${raw.type}'; this endpoint translates 'none', 'auto', 'required' and a named function only.`,
    );
  }
  const fn = raw.function;
  if (raw.type !== 'function' || !isFields(fn) || typeof fn.name !== 'string') {
    return invalid('tool_choice', `'tool_choice' must be 'none', 'auto', 'required' or {"type": "function", "function": {"name": ...}}.`);
  }
  if (!names.includes(fn.name))
    return invalid('tool_choice.function.name', `'tool_choice.function.name' is ${describe(fn.name)}, which is not one of the request's tools.`);
  return ok({ type: 'tool', name: fn.name });
}
