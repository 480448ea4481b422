// Proves, over generated Messages answers streamed in arbitrary pieces, that the translated chunk
// stream rebuilds exactly the non-streamed translation of the same answer (content, tool call ids,
// names and arguments, finish reason, usage), in OpenAI's order; that usage totals add up; and
// that no sequence of events, however broken, makes the translator throw or send anything after
// its end.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ChatCompletion, type ChatContext, ChatStreamTranslator, messageToChatCompletion } from '../../../../src/net/http/openai/index.js';
import { chatUsageOf } from '../../../../src/net/http/openai/chat-usage.js';
import { checkProperty } from '../../../support/property.js';
import { type Answer, type AnswerBlock, messageJson, parseChunks, type StreamShape, streamEventsOf } from './messages-events.js';

const arbText = fc.oneof(
  fc.string({ maxLength: 30, unit: fc.constantFrom('a', ' ', '\n', '"', '\\', 'é', '🚗', '\u2028') }),
  fc.string({ maxLength: 20, unit: 'binary' }),
);
const arbInput = fc.dictionary(
  fc.string({ maxLength: 6 }).filter((key) => key !== '__proto__'),
  fc.jsonValue({ maxDepth: 3 }),
  { maxKeys: 4 },
);
const arbCount = fc.nat({ max: 1_000_000 });

const arbAnswer: fc.Arbitrary<Answer> = fc
  .record({
    blocks: fc.array(
      fc.oneof(
        arbText.map((text): AnswerBlock => ({ type: 'text', text })),
        fc
          .record({ name: fc.constantFrom('get_weather', 'now', 'search'), input: arbInput })
          .map(({ name, input }): Omit<Extract<AnswerBlock, { type: 'tool_use' }>, 'id'> => ({ type: 'tool_use', name, input })),
        arbText.map((thinking): AnswerBlock => ({ type: 'thinking', thinking, signature: 'sig' })),
      ),
      { maxLength: 5 },
    ),
    stopReason: fc.constantFrom('end_turn', 'stop_sequence', 'max_tokens', 'tool_use', 'refusal', 'pause_turn', null),
    usage: fc.record({ input_tokens: arbCount, output_tokens: arbCount, cache_creation_input_tokens: arbCount, cache_read_input_tokens: arbCount }),
    model: fc.constantFrom('claude-sonnet-4-6', 'claude-haiku-4-5'),
  })
  .map(({ blocks, stopReason, usage, model }) => ({
    id: 'msg_p',
    model,
    content: blocks.map((block, i) => (block.type === 'tool_use' ? { ...block, id: `toolu_${i}` } : block)),
    stop_reason: stopReason,
    stop_sequence: stopReason === 'stop_sequence' ? 'END' : null,
    usage,
  }));

const arbShape: fc.Arbitrary<StreamShape> = fc.record({
  cuts: fc.array(fc.array(fc.nat({ max: 200 }), { maxLength: 6 }), { maxLength: 5 }),
  jsonIndent: fc.constantFrom(0, 1, 2),
  deltaRepeatsInput: fc.boolean(),
});

interface Rebuilt {
  content: string;
  calls: { id: string | undefined; name: string | undefined; arguments: string }[];
  finishReasons: unknown[];
  usage: unknown;
}

/** The chunks folded back into one answer, checking OpenAI's order on the way. */
function rebuild(sse: readonly string[], context: ChatContext, model: string): Rebuilt {
  const { chunks, done } = parseChunks(sse);
  expect(done).toBe(true);
  const rebuilt: Rebuilt = { content: '', calls: [], finishReasons: [], usage: undefined };
  chunks.forEach((chunk, i) => {
    expect(chunk).toMatchObject({ id: context.id, object: 'chat.completion.chunk', created: context.created, model });
    const choices = chunk.choices as { delta: Record<string, unknown>; finish_reason: unknown }[];
    if (choices.length === 0) {
      expect(i).toBe(chunks.length - 1);
      rebuilt.usage = chunk.usage;
      return;
    }
    expect(context.includeUsage ? chunk.usage : 'usage' in chunk).toBe(context.includeUsage ? null : false);
    const { delta, finish_reason: finish } = choices[0]!;
    if (i === 0) expect(delta).toEqual({ role: 'assistant', content: '', refusal: null });
    else expect(delta.role).toBeUndefined();
    if (finish !== null) rebuilt.finishReasons.push(finish);
    else expect(rebuilt.finishReasons).toEqual([]);
    if (typeof delta.content === 'string') rebuilt.content += delta.content;
    for (const call of (delta.tool_calls ?? []) as { index: number; id?: string; function: { name?: string; arguments: string } }[]) {
      if (call.index === rebuilt.calls.length) rebuilt.calls.push({ id: call.id, name: call.function.name, arguments: '' });
      const slot = rebuilt.calls[call.index]!;
      if (call.id !== undefined) expect(call.id).toBe(slot.id);
      slot.arguments += call.function.arguments;
    }
  });
  return rebuilt;
}

function completionOf(answer: Answer, context: ChatContext): ChatCompletion {
  const completion = messageToChatCompletion(messageJson(answer), context);
  if (!completion.ok) throw new Error(completion.error.detail);
  return completion.value;
}

describe('ChatStreamTranslator, over generated answers', () => {
  it('streams chunks that rebuild the non-streamed translation of the same answer', () => {
    checkProperty(
      fc.property(arbAnswer, arbShape, fc.boolean(), (answer, shape, includeUsage) => {
        const context: ChatContext = { id: 'chatcmpl-p', created: 1_700_000_000, model: 'asked', includeUsage };
        const translator = new ChatStreamTranslator(context);
        const sse = streamEventsOf(answer, shape).flatMap((event) => translator.push(event));
        sse.push(...translator.end());
        const whole = completionOf(answer, context);
        const streamed = rebuild(sse, context, answer.model);
        const message = whole.choices[0].message;
        expect(streamed.content).toBe(message.content ?? '');
        const calls = message.tool_calls ?? [];
        expect(streamed.calls.map((call) => [call.id, call.name])).toEqual(calls.map((call) => [call.id, call.function.name]));
        streamed.calls.forEach((call, i) => expect(JSON.parse(call.arguments)).toEqual(JSON.parse(calls[i]!.function.arguments)));
        expect(streamed.finishReasons).toEqual([whole.choices[0].finish_reason]);
        expect(streamed.usage).toEqual(includeUsage ? whole.usage : undefined);
      }),
    );
  });

  it('adds usage up: prompt = input + cache writes + cache reads, total = prompt + completion', () => {
    checkProperty(
      fc.property(arbCount, arbCount, arbCount, arbCount, (input, output, cacheWrite, cacheRead) => {
        const usage = chatUsageOf({ input, output, cacheWrite, cacheRead });
        expect(usage.prompt_tokens).toBe(input + cacheWrite + cacheRead);
        expect(usage.completion_tokens).toBe(output);
        expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
        expect(usage.prompt_tokens_details.cached_tokens).toBe(cacheRead);
        expect(usage.prompt_tokens_details.cache_write_tokens).toBe(cacheWrite);
        expect(usage.prompt_tokens_details.cached_tokens + usage.prompt_tokens_details.cache_write_tokens).toBeLessThanOrEqual(usage.prompt_tokens);
      }),
    );
  });

  it('never throws on broken event sequences, writes only SSE data lines, and nothing after its end', () => {
    const arbEvent = fc.record({
      type: fc.constantFrom(
        'message_start',
        'content_block_start',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
        'ping',
        'error',
        'other',
      ),
      data: fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.record({
          index: fc.nat({ max: 3 }),
          content_block: fc.constantFrom(
            { type: 'text', text: 'x' },
            { type: 'tool_use', id: 't', name: 'f', input: {} },
            { type: 'tool_use', id: 't', name: 'f', input: { a: 1 } },
          ),
        }),
        fc.record({
          index: fc.nat({ max: 3 }),
          delta: fc.constantFrom(
            { type: 'text_delta', text: 'y' },
            { type: 'input_json_delta', partial_json: '{"a"' },
            { type: 'input_json_delta', partial_json: ':1}' },
          ),
        }),
        fc.record({
          delta: fc.record({ stop_reason: fc.constantFrom('end_turn', 'tool_use', 7, null) }),
          usage: fc.record({ output_tokens: fc.oneof(arbCount, fc.constant(-1)) }),
        }),
        fc.string().map((text) => new TextEncoder().encode(text)),
      ),
    });
    const arbEnding = fc.constantFrom('end', 'error', 'none');
    checkProperty(
      fc.property(fc.array(arbEvent, { maxLength: 20 }), arbEnding, fc.boolean(), (events, ending, includeUsage) => {
        const translator = new ChatStreamTranslator({ id: 'chatcmpl-f', created: 1, model: 'm', includeUsage });
        const sse = events.flatMap((event) => translator.push(event));
        if (ending === 'end') sse.push(...translator.end());
        if (ending === 'error') sse.push(...translator.error({ status: 500, message: 'gone' }));
        const closing = sse.findIndex((event) => event === 'data: [DONE]\n\n' || event.startsWith('data: {"error"'));
        if (closing >= 0) expect(closing).toBe(sse.length - 1);
        for (const event of sse.slice(0, -1)) expect(event).toMatch(/^data: \{.*\}\n\n$/s);
        if (ending === 'end' && closing < 0) throw new Error('end() sent no [DONE]');
        if (closing >= 0) {
          expect(translator.push({ type: 'content_block_start', data: { index: 9, content_block: { type: 'text', text: 'late' } } })).toEqual([]);
          expect([...translator.end(), ...translator.error({ status: 500, message: 'again' })]).toEqual([]);
        }
        parseChunks(sse.filter((event) => !event.startsWith('data: {"error"')));
      }),
      300,
    );
  });
});
