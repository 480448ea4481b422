// Proves the official `openai` SDK works through the translation as it would through a route:
// requests the SDK builds (from its own types, and those its tool runner sends back) translate
// into Messages bodies the official Anthropic SDK's types and the emulator's validation accept,
// and the SDK parses the translated answers, chunk streams (its accumulator included), usage and
// errors. The "route" here is a fetch stub that translates and answers in process.
import type Anthropic from '@anthropic-ai/sdk';
import OpenAI, { APIError, BadRequestError, RateLimitError } from 'openai';
import { describe, expect, it } from 'vitest';
import {
  chatCompletionId,
  type ChatCompletionChunk,
  chatErrorBody,
  type ChatContext,
  chatRequestToMessages,
  ChatStreamTranslator,
  type MessagesBody,
  messageToChatCompletion,
  translationErrorBody,
} from '../../../../src/net/http/openai/index.js';
import { validateMessagesRequest } from '../../../../src/upstream/emulator/request-validation.js';
import { type Answer, type AnswerEvent, messageJson, streamEventsOf } from './messages-events.js';

const model = 'claude-sonnet-4-6';
const usage = { input_tokens: 21, output_tokens: 8, cache_creation_input_tokens: 30, cache_read_input_tokens: 400 };

/** The upstream's answer: a call of the first tool while the last user turn holds no tool result, else text. */
function answerTo(body: MessagesBody): Answer {
  const last = body.messages.at(-1)!;
  const answered = last.role === 'user' && last.content.some((block) => block.type === 'tool_result');
  const tool = body.tools?.[0];
  if (tool !== undefined && !answered && body.tool_choice?.type !== 'none') {
    return {
      id: 'msg_t',
      model,
      content: [
        { type: 'text', text: 'Let me look.' },
        { type: 'tool_use', id: 'toolu_01', name: tool.name, input: { city: 'Paris', days: [1, 2] } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage,
    };
  }
  const results = last.content.flatMap((block) => (block.type === 'tool_result' ? (block.content ?? []).map((text) => text.text) : []));
  const text = results.length > 0 ? `The tool said: ${results.join(' ')}` : 'Carpools share rides, élan 🚗.';
  return { id: 'msg_x', model, content: [{ type: 'text', text }], stop_reason: 'end_turn', stop_sequence: null, usage };
}

/** What the route would do; `failAfter` ends a stream with an upstream error after that many events. */
function routeOf(log: MessagesBody[], failAfter?: number): typeof fetch {
  return (_url, init) => Promise.resolve(respond(init!.body as string, log, failAfter));
}

function respond(requestBody: string, log: MessagesBody[], failAfter: number | undefined): Response {
  const translated = chatRequestToMessages(JSON.parse(requestBody));
  if (!translated.ok) return Response.json(translationErrorBody(translated.error), { status: 400, headers: { 'x-request-id': 'req-1' } });
  const { messagesBody, stream, includeUsage } = translated.value;
  expect(validateMessagesRequest(messagesBody).ok).toBe(true);
  log.push(messagesBody);
  const context: ChatContext = { id: chatCompletionId('req-1'), created: 1_700_000_000, model: translated.value.model, includeUsage };
  const answer = answerTo(messagesBody);
  if (!stream) {
    const completion = messageToChatCompletion(JSON.stringify(messageJson(answer)), context);
    if (!completion.ok) throw new Error(completion.error.detail);
    return Response.json(completion.value, { headers: { 'x-request-id': 'req-1' } });
  }
  const translator = new ChatStreamTranslator(context);
  let events: AnswerEvent[] = streamEventsOf(answer, {
    cuts: [
      [2, 7],
      [1, 5, 12],
    ],
    jsonIndent: 1,
    deltaRepeatsInput: false,
  });
  if (failAfter !== undefined)
    events = [...events.slice(0, failAfter), { type: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }];
  const sse = events.flatMap((event) => translator.push(event));
  sse.push(...translator.end());
  return new Response(sse.join(''), { headers: { 'content-type': 'text/event-stream', 'x-request-id': 'req-1' } });
}

function client(log: MessagesBody[] = [], failAfter?: number): OpenAI {
  return new OpenAI({ apiKey: 'tenant-key', baseURL: 'http://carpool.test/v1', fetch: routeOf(log, failAfter), maxRetries: 0 });
}

const weatherTool: OpenAI.ChatCompletionFunctionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'array', items: { type: 'integer' } } } },
  },
};

describe('requests built with the openai SDK types', () => {
  const requests: Record<string, OpenAI.ChatCompletionCreateParams> = {
    'system, developer and multi-turn': {
      model,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use French.' }] },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Bonjour.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
          ],
        },
      ],
      max_completion_tokens: 100,
      temperature: 0.5,
      top_p: 0.9,
      stop: ['END'],
      user: 'user-7',
      seed: 3,
    },
    'tools and a tool round trip': {
      model,
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'Sunny' },
      ],
      tools: [weatherTool],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      stream: true,
      stream_options: { include_usage: true },
    },
    'a PDF and a cache breakpoint': {
      model,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'doc.pdf' } },
            { type: 'text', text: 'Summarise.', prompt_cache_breakpoint: { mode: 'explicit' } },
          ],
        },
      ],
      max_tokens: 50,
    },
  };

  it.each(Object.entries(requests))('translates %s into a body the Anthropic SDK types and the emulator accept', (_name, request) => {
    const translated = chatRequestToMessages(request);
    expect(translated.ok).toBe(true);
    if (!translated.ok) return;
    // Compile-time: the body is a MessageCreateParams of the official Anthropic SDK.
    const params: Anthropic.MessageCreateParams = translated.value.messagesBody;
    expect(validateMessagesRequest(params).ok).toBe(true);
  });
});

describe('the openai SDK against translated answers', () => {
  it('parses a translated completion, usage with cache tokens included', async () => {
    const log: MessagesBody[] = [];
    const completion = await client(log).chat.completions.create({ model, messages: [{ role: 'user', content: 'Tell me about carpools.' }] });
    expect(completion.choices[0]!.message.content).toBe('Carpools share rides, élan 🚗.');
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({ prompt_tokens: 451, completion_tokens: 8, total_tokens: 459, prompt_tokens_details: { cached_tokens: 400 } });
    expect(completion.id).toBe('chatcmpl-req-1');
    expect(log[0]!.max_tokens).toBe(4096);
  });

  it('streams chunks the SDK parses, ending with the usage chunk', async () => {
    const stream = await client().chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')).toBe('Carpools share rides, élan 🚗.');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 451, completion_tokens: 8, total_tokens: 459 });
  });

  it('accumulates a streamed tool call with its own helper into the non-streamed completion', async () => {
    const request = { model, messages: [{ role: 'user' as const, content: 'Weather in Paris?' }], tools: [weatherTool] };
    const whole = await client().chat.completions.create(request);
    const final = await client()
      .chat.completions.stream({ ...request, stream_options: { include_usage: true } })
      .finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(final.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
    const streamedCalls = final.choices[0]!.message.tool_calls!;
    const wholeCalls = whole.choices[0]!.message.tool_calls!;
    expect(streamedCalls).toHaveLength(1);
    expect(streamedCalls[0]).toMatchObject({ id: 'toolu_01', type: 'function', function: { name: 'get_weather' } });
    const args = (call: OpenAI.ChatCompletionMessageToolCall): unknown => (call.type === 'function' ? JSON.parse(call.function.arguments) : undefined);
    expect(args(streamedCalls[0]!)).toEqual(args(wholeCalls[0]!));
    expect(args(streamedCalls[0]!)).toEqual({ city: 'Paris', days: [1, 2] });
    expect(final.usage).toEqual(whole.usage);
  });

  it("runs a tool round trip with the SDK's tool runner: the messages it sends back translate", async () => {
    const log: MessagesBody[] = [];
    const cities: string[] = [];
    const runner = client(log).chat.completions.runTools({
      model,
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather of a city',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
            parse: (text: string) => JSON.parse(text) as { city: string },
            function: ({ city }: { city: string }) => {
              cities.push(city);
              return 'Sunny, 21 degrees';
            },
          },
        },
      ],
    });
    expect(await runner.finalContent()).toBe('The tool said: Sunny, 21 degrees');
    expect(cities).toEqual(['Paris']);
    expect(log).toHaveLength(2);
    expect(log[1]!.messages.map((turn) => turn.role)).toEqual(['user', 'assistant', 'user']);
    expect(log[1]!.messages[2]!.content).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: 'Sunny, 21 degrees' }] }]);
  });

  it('raises a refused request as a BadRequestError naming the parameter', async () => {
    const refused = client().chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], n: 2 });
    await expect(refused).rejects.toBeInstanceOf(BadRequestError);
    await expect(refused).rejects.toMatchObject({ status: 400, param: 'n', code: 'unsupported_parameter', type: 'invalid_request_error', requestID: 'req-1' });
  });

  it('raises an error event in the middle of a stream as an APIError', async () => {
    const stream = await client([], 5).chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
    })();
    await expect(reading).rejects.toBeInstanceOf(APIError);
    await expect(reading).rejects.toMatchObject({ message: 'Overloaded', type: 'server_error', code: 'overloaded' });
    expect(seen.join('')).not.toBe('');
  });

  it("raises the body of a gateway refusal as the SDK's class for its status", async () => {
    const refusal: typeof fetch = () =>
      Promise.resolve(Response.json(chatErrorBody({ status: 429, message: 'Quota exhausted', code: 'insufficient_quota' }), { status: 429 }));
    const sdk = new OpenAI({ apiKey: 'k', baseURL: 'http://carpool.test/v1', fetch: refusal, maxRetries: 0 });
    await expect(sdk.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] })).rejects.toMatchObject({
      constructor: RateLimitError,
      message: '429 Quota exhausted',
      code: 'insufficient_quota',
      type: 'rate_limit_error',
    });
  });
});

describe("the translated shapes are the SDK's types", () => {
  it("compiles: a completion, a chunk and an error body assign to the SDK's own types", () => {
    const context: ChatContext = { id: 'chatcmpl-x', created: 1, model, includeUsage: true };
    const completion = messageToChatCompletion(
      messageJson(answerTo({ model, max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }], stream: false })),
      context,
    );
    if (!completion.ok) throw new Error(completion.error.detail);
    const typedCompletion: OpenAI.ChatCompletion = completion.value;
    const chunk: ChatCompletionChunk = {
      id: 'chatcmpl-x',
      object: 'chat.completion.chunk',
      created: 1,
      model,
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, id: 't', type: 'function', function: { name: 'f', arguments: '' } }] },
          finish_reason: null,
          logprobs: null,
        },
      ],
      usage: completion.value.usage,
    };
    const typedChunk: OpenAI.ChatCompletionChunk = chunk;
    const error: OpenAI.ErrorObject = chatErrorBody({ status: 400, message: 'x' }).error;
    expect([typedCompletion.object, typedChunk.object, error.type]).toEqual(['chat.completion', 'chat.completion.chunk', 'invalid_request_error']);
  });
});
