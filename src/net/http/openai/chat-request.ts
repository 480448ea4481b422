import { assert } from '../../../core/assert.js';
import { gatewayMaxTokensMax } from '../../../core/limits.js';
import { err, ok, type Result } from '../../../core/result.js';
import { translateMessages } from './chat-messages.js';
import { translateTools } from './chat-tools.js';
import { describe, type Fields, isAbsent, isFields } from './json-fields.js';
import type { MessagesBody } from './messages-body.js';
import { invalid, type TranslationError, unsupported } from './translation-error.js';

/**
 * An OpenAI Chat Completions request (`POST /v1/chat/completions`) translated into an Anthropic
 * Messages request, as a pure function: no I/O, no clock. The route parses the body, calls
 * `chatRequestToMessages`, answers a `TranslationError` with 400 (./chat-error.ts), and sends
 * `messagesBody` through the gateway like any Messages request.
 *
 * Translated:
 *   model                         → model, as given (the tenant's model list decides)
 *   messages                      → system + messages (./chat-messages.ts, ./chat-content.ts):
 *                                   system/developer, user, assistant (+ tool_calls), tool; text,
 *                                   images (data: and http(s) URLs), PDF files; cache breakpoints
 *   max_completion_tokens, max_tokens → max_tokens; absent: `maxTokensDefault` (4,096, an
 *                                   output every current model can produce); above
 *                                   `maxTokensMax` (the gateway's bound): refused. Both given and
 *                                   different: refused.
 *   temperature                   → temperature; above 1 refused (Anthropic's range is 0 to 1)
 *   top_p                         → top_p
 *   stop (string or array)        → stop_sequences (an empty string is refused)
 *   user, safety_identifier       → metadata.user_id (both given and different: refused)
 *   stream                        → stream;  stream_options.include_usage → a last usage chunk
 *   tools, tool_choice, parallel_tool_calls → tools, tool_choice (./chat-tools.ts)
 *
 * Accepted with their neutral value only, refused otherwise (the Messages API cannot do them):
 *   n (1), logprobs (false), top_logprobs (0), presence_penalty (0), frequency_penalty (0),
 *   logit_bias ({}), response_format ({"type":"text"}: JSON mode and json_schema are refused;
 *   a tool whose parameters are the schema is the Messages way), modalities (["text"]),
 *   reasoning_effort ("none"; thinking is not translated), service_tier ("auto", "default"),
 *   store (false).
 *
 * Refused whenever present: audio, prediction, functions and function_call (legacy function
 * calling: use tools), web_search_options, verbosity, moderation; and any parameter this file
 * does not know, as OpenAI refuses an unrecognised argument.
 *
 * Refused inside messages and tools (each file says why): a message's `name`; `function`
 * messages and an assistant's `function_call` or `audio`; `input_audio` parts; files by
 * `file_id` and files that are not PDF; images that are not JPEG, PNG, GIF or WebP; tool call
 * arguments that are not a JSON object; custom tools and custom tool calls; `strict: true`;
 * `tool_choice` of type `allowed_tools` or `custom`; a conversation that opens with an assistant
 * message; tool calls left without a tool message answering them.
 *
 * Accepted and without effect, because they cannot change the answer a client is promised:
 *   seed (OpenAI itself promises only best-effort determinism), metadata (tags for OpenAI's
 *   stored completions, and store is refused), prompt_cache_key, prompt_cache_retention and
 *   prompt_cache_options (cache hints: the carpool routes for the cache by metadata.user_id and
 *   the prompt's prefix), stream_options.include_obfuscation (no obfuscation padding is sent),
 *   image_url.detail (Anthropic sizes images itself).
 *
 * A field set to null counts as absent, everywhere: clients that write every field of their own
 * model send many nulls.
 */
export interface ChatTranslationOptions {
  /** `max_tokens` when the client sets neither `max_completion_tokens` nor `max_tokens`. */
  readonly maxTokensDefault: number;
  /** The largest `max_tokens` taken; a larger one is refused, naming this bound. */
  readonly maxTokensMax: number;
}

/**
 * The output bound of a request that names none. OpenAI's default is "as much as the model can",
 * but the Messages API needs a number, and the carpool reserves all of it against the tenant's
 * quota until the call settles. 4,096 is the largest output every Claude model takes (the
 * smallest models' limit), so a default never makes a request fail.
 */
export const chatMaxTokensDefault = 4_096;

export const defaultChatTranslationOptions: ChatTranslationOptions = Object.freeze({
  maxTokensDefault: chatMaxTokensDefault,
  maxTokensMax: gatewayMaxTokensMax,
});

export interface TranslatedChatRequest {
  readonly messagesBody: MessagesBody;
  readonly stream: boolean;
  /** `stream_options.include_usage`: the stream ends with a chunk that carries the usage. */
  readonly includeUsage: boolean;
  /** The model the client asked for: what the answer names when the upstream names none. */
  readonly model: string;
  /** The end user the client named (`user` or `safety_identifier`), also sent as metadata.user_id. */
  readonly endUser: string | undefined;
}

export function chatRequestToMessages(
  body: unknown,
  options: ChatTranslationOptions = defaultChatTranslationOptions,
): Result<TranslatedChatRequest, TranslationError> {
  assert(options.maxTokensDefault >= 1 && options.maxTokensDefault <= options.maxTokensMax, 'the default max_tokens is within the bound');
  if (!isFields(body)) return invalid('body', 'The request body must be a JSON object.');
  const checked = checkOtherParameters(body);
  if (!checked.ok) return checked;
  const model = body.model;
  if (typeof model !== 'string' || model.length === 0) return invalid('model', "'model' is required: a non-empty string.");
  const streaming = streamingOf(body);
  if (!streaming.ok) return streaming;
  const maxTokens = maxTokensOf(body, options);
  if (!maxTokens.ok) return maxTokens;
  const sampling = samplingOf(body);
  if (!sampling.ok) return sampling;
  const endUser = endUserOf(body);
  if (!endUser.ok) return endUser;
  const tools = translateTools(body);
  if (!tools.ok) return tools;
  const conversation = translateMessages(body.messages);
  if (!conversation.ok) return conversation;
  const { system, messages } = conversation.value;
  const messagesBody: MessagesBody = {
    model,
    max_tokens: maxTokens.value,
    messages,
    ...(system.length === 0 ? {} : { system }),
    ...sampling.value,
    ...(endUser.value === undefined ? {} : { metadata: { user_id: endUser.value } }),
    ...(tools.value.tools === undefined ? {} : { tools: tools.value.tools }),
    ...(tools.value.toolChoice === undefined ? {} : { tool_choice: tools.value.toolChoice }),
    stream: streaming.value.stream,
  };
  return ok({ messagesBody, ...streaming.value, model, endUser: endUser.value });
}

const translatedParameters: ReadonlySet<string> = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'stop',
  'user',
  'safety_identifier',
  'stream',
  'stream_options',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
]);

/** Why a present, non-null value is refused, or undefined when it is taken. */
type Rule = (value: unknown, name: string) => TranslationError | undefined;

/** Taken only with its neutral value: anything else asks for what the Messages API cannot do. */
function neutralOnly(isNeutral: (value: unknown) => boolean, why: string): Rule {
  return (value, name) => (isNeutral(value) ? undefined : { kind: 'unsupported', param: name, message: `'${name}' is ${describe(value)}, but ${why}.` });
}

/** Refused whenever present. */
function refused(why: string): Rule {
  return (_value, name) => ({ kind: 'unsupported', param: name, message: `'${name}' is not translated: ${why}.` });
}

/** Taken and without effect on the answer; only its type is checked. */
function noEffect(isValid: (value: unknown) => boolean, expected: string): Rule {
  return (value, name) => (isValid(value) ? undefined : { kind: 'invalid', param: name, message: `'${name}' must be ${expected}.` });
}

const noLogprobs = 'the Anthropic Messages API returns no log probabilities';
const noPenalty = 'the Anthropic Messages API has no presence or frequency penalty: leave it out or set it to 0';

const otherParameters: ReadonlyMap<string, Rule> = new Map([
  ['n', neutralOnly((v) => v === 1, 'the Anthropic Messages API returns one choice: leave n out or set it to 1')],
  ['logprobs', neutralOnly((v) => v === false, noLogprobs)],
  ['top_logprobs', neutralOnly((v) => v === 0, noLogprobs)],
  ['presence_penalty', neutralOnly((v) => v === 0, noPenalty)],
  ['frequency_penalty', neutralOnly((v) => v === 0, noPenalty)],
  ['logit_bias', neutralOnly((v) => isFields(v) && Object.keys(v).length === 0, 'the Anthropic Messages API has no logit bias')],
  [
    'response_format',
    neutralOnly(
      (v) => isFields(v) && v.type === 'text' && Object.keys(v).length === 1,
      'the Anthropic Messages API has no JSON mode, so only {"type": "text"} is translated; ask for JSON in the prompt, or declare a tool whose parameters are the schema',
    ),
  ],
  ['modalities', neutralOnly((v) => Array.isArray(v) && v.every((m) => m === 'text'), 'the Anthropic Messages API answers in text only')],
  ['reasoning_effort', neutralOnly((v) => v === 'none', 'reasoning (extended thinking) is not translated: leave it out')],
  ['service_tier', neutralOnly((v) => v === 'auto' || v === 'default', "the carpool schedules a request by its tenant's tier, not by this field")],
  ['store', neutralOnly((v) => v === false, 'this endpoint stores no completions')],
  ['audio', refused('the Anthropic Messages API answers in text only')],
  ['prediction', refused('the Anthropic Messages API has no predicted outputs')],
  ['functions', refused('legacy function calling is not translated; declare the functions as tools')],
  ['function_call', refused('legacy function calling is not translated; use tool_choice')],
  ['web_search_options', refused('web search is not translated')],
  ['verbosity', refused('the Anthropic Messages API has no verbosity setting')],
  ['moderation', refused('this endpoint runs no moderation')],
  ['seed', noEffect((v) => Number.isSafeInteger(v), 'an integer')],
  ['metadata', noEffect(isFields, 'an object')],
  ['prompt_cache_key', noEffect((v) => typeof v === 'string', 'a string')],
  ['prompt_cache_retention', noEffect((v) => v === 'in_memory' || v === '24h', "'in_memory' or '24h'")],
  ['prompt_cache_options', noEffect(isFields, 'an object')],
]);

/** Every parameter that is not translated: taken neutral or without effect, or refused by name. */
function checkOtherParameters(body: Fields): Result<void, TranslationError> {
  for (const [name, value] of Object.entries(body)) {
    if (translatedParameters.has(name) || isAbsent(value)) continue;
    const rule = otherParameters.get(name);
    // The empty key is a key too; a param must name something a reader can see.
    if (rule === undefined)
      return unsupported(name.length > 0 ? name : '""', `'${name}' is not a Chat Completions parameter this endpoint knows; leave it out.`);
    const refusal = rule(value, name);
    if (refusal !== undefined) return err(refusal);
  }
  return ok(undefined);
}

function streamingOf(body: Fields): Result<{ readonly stream: boolean; readonly includeUsage: boolean }, TranslationError> {
  const stream = body.stream ?? false;
  if (typeof stream !== 'boolean') return invalid('stream', "'stream' must be a boolean.");
  const options = body.stream_options;
  if (isAbsent(options)) return ok({ stream, includeUsage: false });
  if (!stream) return invalid('stream_options', "'stream_options' is only allowed when 'stream' is true.");
  if (!isFields(options)) return invalid('stream_options', "'stream_options' must be an object.");
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'include_usage' && key !== 'include_obfuscation' && !isAbsent(value)) {
      return unsupported(`stream_options.${key}`, `'stream_options.${key}' is not a stream option this endpoint knows; leave it out.`);
    }
    if (!isAbsent(value) && typeof value !== 'boolean') return invalid(`stream_options.${key}`, `'stream_options.${key}' must be a boolean.`);
  }
  return ok({ stream, includeUsage: options.include_usage === true });
}

function maxTokensOf(body: Fields, options: ChatTranslationOptions): Result<number, TranslationError> {
  const completion = body.max_completion_tokens ?? undefined;
  const legacy = body.max_tokens ?? undefined;
  if (completion !== undefined && legacy !== undefined && completion !== legacy) {
    return invalid('max_tokens', `'max_tokens' (${describe(legacy)}) and 'max_completion_tokens' (${describe(completion)}) disagree; send one of them.`);
  }
  const value = completion ?? legacy;
  const name = completion === undefined ? 'max_tokens' : 'max_completion_tokens';
  if (value === undefined) return ok(options.maxTokensDefault);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    return invalid(name, `'${name}' must be a positive integer; got ${describe(value)}.`);
  if (value > options.maxTokensMax) return invalid(name, `'${name}' is ${value}, over this endpoint's bound of ${options.maxTokensMax} output tokens.`);
  return ok(value);
}

type Sampling = Pick<MessagesBody, 'temperature' | 'top_p' | 'stop_sequences'>;

function samplingOf(body: Fields): Result<Sampling, TranslationError> {
  const { temperature, top_p: topP } = body;
  if (!isAbsent(temperature)) {
    if (typeof temperature !== 'number' || !(temperature >= 0 && temperature <= 2))
      return invalid('temperature', "'temperature' must be a number from 0 to 2.");
    if (temperature > 1) {
      return unsupported('temperature', `'temperature' is ${temperature}, but the Anthropic Messages API takes 0 to 1; send a temperature of at most 1.`);
    }
  }
  if (!isAbsent(topP) && (typeof topP !== 'number' || !(topP >= 0 && topP <= 1))) return invalid('top_p', "'top_p' must be a number from 0 to 1.");
  const stop = stopSequencesOf(body.stop);
  if (!stop.ok) return stop;
  return ok({
    ...(typeof temperature === 'number' ? { temperature } : {}),
    ...(typeof topP === 'number' ? { top_p: topP } : {}),
    ...(stop.value.length === 0 ? {} : { stop_sequences: stop.value }),
  });
}

function stopSequencesOf(stop: unknown): Result<string[], TranslationError> {
  if (isAbsent(stop)) return ok([]);
  const sequences: unknown[] = typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop : [undefined];
  if (!sequences.every((s) => typeof s === 'string')) return invalid('stop', "'stop' must be a string or an array of strings.");
  if (sequences.some((s) => s.length === 0))
    return unsupported('stop', "'stop' holds an empty string, which the Anthropic Messages API does not take as a stop sequence.");
  return ok(sequences);
}

function endUserOf(body: Fields): Result<string | undefined, TranslationError> {
  const { user, safety_identifier: safetyId } = body;
  if (!isAbsent(user) && typeof user !== 'string') return invalid('user', "'user' must be a string.");
  if (!isAbsent(safetyId) && typeof safetyId !== 'string') return invalid('safety_identifier', "'safety_identifier' must be a string.");
  const named = [user, safetyId].filter((id): id is string => typeof id === 'string' && id.length > 0);
  if (named.length === 2 && named[0] !== named[1]) {
    return unsupported(
      'safety_identifier',
      "'user' and 'safety_identifier' name different end users, but the Anthropic Messages API takes one (metadata.user_id); send one of them.",
    );
  }
  return ok(named[0]);
}
