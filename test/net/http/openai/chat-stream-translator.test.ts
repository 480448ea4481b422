// Proves the stream translator turns Messages events into OpenAI chat.completion.chunk events in
// OpenAI's order (role first, deltas, finish_reason, the usage chunk, [DONE]), numbers tool calls
// as OpenAI does, and ends a failed stream with an error event that nothing follows.
import { describe, expect, it } from 'vitest';
import { type ChatContext, ChatStreamTranslator } from '../../../../src/net/http/openai/index.js';
import { streamEvents } from '../../../../src/upstream/emulator/message-events.js';
import { generateText } from '../../../../src/upstream/emulator/text-generator.js';
import { type Answer, parseChunks, streamEventsOf } from './messages-events.js';

const context: ChatContext = { id: 'chatcmpl-r1', created: 1_700_000_000, model: 'asked-model', includeUsage: false };

const textAnswer: Answer = {
  id: 'msg_1',
  model: 'claude-sonnet-4-6',
  content: [{ type: 'text', text: 'Hello there.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 },
};

const shape = { cuts: [[5]], jsonIndent: 0, deltaRepeatsInput: false };

function run(answer: Answer, ctx: ChatContext = context, streamShape = shape): string[] {
  const translator = new ChatStreamTranslator(ctx);
  const out: string[] = [];
  for (const event of streamEventsOf(answer, streamShape)) out.push(...translator.push(event));
  out.push(...translator.end());
  return out;
}

const deltasOf = (chunks: Record<string, unknown>[]): unknown[] => chunks.map((chunk) => (chunk.choices as { delta: unknown }[])[0]?.delta);
const finishOf = (chunks: Record<string, unknown>[]): unknown[] => chunks.map((chunk) => (chunk.choices as { finish_reason: unknown }[])[0]?.finish_reason);

describe('ChatStreamTranslator', () => {
  it('streams a text answer: role, content deltas, finish_reason, [DONE]', () => {
    const sse = run(textAnswer);
    const { chunks, done } = parseChunks(sse);
    expect(done).toBe(true);
    expect(chunks[0]).toEqual({
      id: 'chatcmpl-r1',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: 'claude-sonnet-4-6',
      choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }],
    });
    expect(deltasOf(chunks)).toEqual([{ role: 'assistant', content: '', refusal: null }, { content: 'Hello' }, { content: ' there.' }, {}]);
    expect(finishOf(chunks)).toEqual([null, null, null, 'stop']);
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true);
  });

  it('with include_usage, writes usage null on every chunk and ends with a usage chunk without choices', () => {
    const { chunks, done } = parseChunks(run(textAnswer, { ...context, includeUsage: true }));
    expect(done).toBe(true);
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks.at(-1)).toEqual({
      id: 'chatcmpl-r1',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: 'claude-sonnet-4-6',
      choices: [],
      usage: {
        prompt_tokens: 1110,
        completion_tokens: 5,
        total_tokens: 1115,
        prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 100, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
    });
  });

  it('takes the input counts that message_delta repeats, and the final output count', () => {
    const repeated = { ...shape, deltaRepeatsInput: true };
    const answer = { ...textAnswer, usage: { ...textAnswer.usage, output_tokens: 9 } };
    const { chunks } = parseChunks(run(answer, { ...context, includeUsage: true }, repeated));
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 1110, completion_tokens: 9, total_tokens: 1119 });
  });

  it('streams tool calls: a head with id, type and name, then argument fragments, numbered from 0 past text blocks', () => {
    const answer: Answer = {
      ...textAnswer,
      content: [
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_b', name: 'now', input: {} },
      ],
      stop_reason: 'tool_use',
    };
    const { chunks } = parseChunks(run(answer, context, { cuts: [[], [3, 9], []], jsonIndent: 0, deltaRepeatsInput: false }));
    expect(deltasOf(chunks)).toEqual([
      { role: 'assistant', content: '', refusal: null },
      { content: 'Checking.' },
      { tool_calls: [{ index: 0, id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"c' } }] },
      { tool_calls: [{ index: 0, function: { arguments: 'ity":"' } }] },
      { tool_calls: [{ index: 0, function: { arguments: 'Paris"}' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_b', type: 'function', function: { name: 'now', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
      {},
    ]);
    expect(finishOf(chunks).at(-1)).toBe('tool_calls');
  });

  it('sends a tool input that a start already holds as the arguments', () => {
    const translator = new ChatStreamTranslator(context);
    translator.push({ type: 'message_start', data: { message: { model: 'm', usage: {} } } });
    const head = parseChunks(
      translator.push({ type: 'content_block_start', data: { index: 0, content_block: { type: 'tool_use', id: 't', name: 'f', input: { x: 1 } } } }),
    ).chunks;
    expect(deltasOf(head)).toEqual([{ tool_calls: [{ index: 0, id: 't', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] }]);
    expect(translator.push({ type: 'content_block_stop', data: { index: 0 } })).toEqual([]);
  });

  it('leaves out thinking blocks, pings, unknown events and data it cannot read', () => {
    const answer: Answer = {
      ...textAnswer,
      content: [
        { type: 'thinking', thinking: 'Let me think', signature: 'sig' },
        { type: 'text', text: 'Hi' },
      ],
    };
    const translator = new ChatStreamTranslator(context);
    const out: string[] = [];
    for (const event of streamEventsOf(answer, { cuts: [[4], []], jsonIndent: 0, deltaRepeatsInput: false })) out.push(...translator.push(event));
    out.push(...translator.push({ type: 'a_new_event', data: { type: 'a_new_event' } }));
    out.push(...translator.push({ type: 'content_block_delta', data: 'not json' }));
    out.push(...translator.end());
    expect(deltasOf(parseChunks(out).chunks)).toEqual([{ role: 'assistant', content: '', refusal: null }, { content: 'Hi' }, {}]);
  });

  it('reads event data given as bytes or text', () => {
    const translator = new ChatStreamTranslator(context);
    const events = streamEventsOf(textAnswer, shape);
    const out: string[] = [];
    events.forEach((event, i) => {
      const json = JSON.stringify(event.data);
      out.push(...translator.push({ type: event.type, data: i % 2 === 0 ? new TextEncoder().encode(json) : json }));
    });
    out.push(...translator.end());
    expect(out).toEqual(run(textAnswer));
  });

  it('maps the stop reason of message_delta', () => {
    for (const [stopReason, finish] of [
      ['max_tokens', 'length'],
      ['refusal', 'content_filter'],
      ['stop_sequence', 'stop'],
    ] as const) {
      const { chunks } = parseChunks(run({ ...textAnswer, stop_reason: stopReason }));
      expect(finishOf(chunks).at(-1)).toBe(finish);
    }
  });

  it("renders an upstream error event in OpenAI's shape and sends nothing after it", () => {
    const translator = new ChatStreamTranslator(context);
    translator.push({ type: 'message_start', data: { message: { model: 'm' } } });
    const out = translator.push({ type: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } });
    expect(out).toEqual(['data: {"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}}\n\n']);
    expect(translator.push({ type: 'content_block_start', data: { index: 0, content_block: { type: 'text', text: 'x' } } })).toEqual([]);
    expect(translator.error({ status: 500, message: 'again' })).toEqual([]);
    expect(translator.end()).toEqual([]);
  });

  it('renders a failure of the route after the stream started, once', () => {
    const translator = new ChatStreamTranslator(context);
    expect(translator.started).toBe(false);
    translator.push({ type: 'message_start', data: { message: { model: 'm' } } });
    expect(translator.started).toBe(true);
    const out = translator.error({ status: 429, message: 'Over quota', code: 'insufficient_quota' });
    expect(out).toEqual(['data: {"error":{"message":"Over quota","type":"rate_limit_error","param":null,"code":"insufficient_quota"}}\n\n']);
    expect(translator.error({ status: 500, message: 'x' })).toEqual([]);
    expect(translator.end()).toEqual([]);
  });

  it('ends a stream without message_delta with a finish chunk, and starts one without message_start with the role', () => {
    const translator = new ChatStreamTranslator(context);
    const out = translator.push({ type: 'content_block_start', data: { index: 0, content_block: { type: 'text', text: 'Hi' } } });
    out.push(...translator.end());
    const { chunks, done } = parseChunks(out);
    expect(done).toBe(true);
    expect(deltasOf(chunks)).toEqual([{ role: 'assistant', content: '', refusal: null }, { content: 'Hi' }, {}]);
    expect(chunks[0]!.model).toBe('asked-model');
    expect(finishOf(chunks).at(-1)).toBe('stop');
    expect(translator.end()).toEqual([]);
  });

  it('sends no content after the finish chunk', () => {
    const translator = new ChatStreamTranslator(context);
    translator.push({ type: 'message_start', data: { message: {} } });
    translator.push({ type: 'message_delta', data: { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 1 } } });
    expect(translator.push({ type: 'content_block_start', data: { index: 1, content_block: { type: 'text', text: 'late' } } })).toEqual([]);
    expect(translator.push({ type: 'message_delta', data: { delta: { stop_reason: 'max_tokens' } } })).toEqual([]);
    expect(parseChunks(translator.end()).done).toBe(true);
  });

  it("translates the emulator's stream to its text", () => {
    const generated = generateText({ seed: 3, promptSeed: 4, maxTokens: 40, lengthMin: 10, lengthMax: 30, stopSequences: [] });
    const usage = { inputTokens: 7, cacheCreationInputTokens: 0, cacheReadInputTokens: 0, cacheCreation5mInputTokens: 0, cacheCreation1hInputTokens: 0 };
    const translator = new ChatStreamTranslator({ ...context, includeUsage: true });
    const out: string[] = [];
    for (const event of streamEvents({ id: 'msg_e', model: 'claude-haiku-4-5', usage, generated })) out.push(...translator.push(event));
    out.push(...translator.end());
    const { chunks } = parseChunks(out);
    const text = deltasOf(chunks)
      .map((delta) => (delta as { content?: string } | undefined)?.content ?? '')
      .join('');
    expect(text).toBe(generated.text);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: generated.outputTokens });
  });
});
