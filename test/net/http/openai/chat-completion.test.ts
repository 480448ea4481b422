// Proves a whole Messages answer becomes an OpenAI chat.completion: text, tool calls, finish
// reasons, usage with cache tokens, the model and the route's id and time; and that an answer
// that is not a message is an error, not an empty completion.
import { describe, expect, it } from 'vitest';
import { chatCompletionId, type ChatContext, messageToChatCompletion } from '../../../../src/net/http/openai/index.js';
import { messageBody } from '../../../../src/upstream/emulator/message-events.js';
import { generateText } from '../../../../src/upstream/emulator/text-generator.js';
import { type Answer, messageJson } from './messages-events.js';

const context: ChatContext = { id: chatCompletionId('req-1'), created: 1_700_000_000, model: 'asked-model', includeUsage: false };

const answer: Answer = {
  id: 'msg_1',
  model: 'claude-sonnet-4-6',
  content: [{ type: 'text', text: 'Hello there.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 },
};

function complete(message: unknown): ReturnType<typeof messageToChatCompletion> & { ok: true } {
  const result = messageToChatCompletion(message, context);
  if (!result.ok) throw new Error(result.error.detail);
  return result;
}

describe('messageToChatCompletion', () => {
  it('translates a text answer with its usage, cache tokens included', () => {
    expect(complete(messageJson(answer)).value).toEqual({
      id: 'chatcmpl-req-1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'claude-sonnet-4-6',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there.', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: {
        prompt_tokens: 1110,
        completion_tokens: 5,
        total_tokens: 1115,
        prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 100, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
    });
  });

  it('reads the message as bytes, text or parsed JSON alike', () => {
    const json = JSON.stringify(messageJson(answer));
    const parsed = complete(messageJson(answer)).value;
    expect(complete(json).value).toEqual(parsed);
    expect(complete(new TextEncoder().encode(json)).value).toEqual(parsed);
  });

  it('translates tool_use blocks into tool calls, content null when there is no text', () => {
    const tools: Answer = {
      ...answer,
      content: [
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_2', name: 'now', input: {} },
      ],
      stop_reason: 'tool_use',
    };
    const choice = complete(messageJson(tools)).value.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message).toEqual({
      role: 'assistant',
      content: null,
      refusal: null,
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'toolu_2', type: 'function', function: { name: 'now', arguments: '{}' } },
      ],
    });
  });

  it('joins text blocks in order around tool calls, and leaves out blocks it does not translate', () => {
    const mixed: Answer = {
      ...answer,
      content: [
        { type: 'thinking', thinking: 'hmm', signature: 'sig' },
        { type: 'text', text: 'Let me check. ' },
        { type: 'tool_use', id: 't', name: 'f', input: { a: [1, 2] } },
        { type: 'text', text: 'Done.' },
      ],
    };
    const message = complete(messageJson(mixed)).value.choices[0].message;
    expect(message.content).toBe('Let me check. Done.');
    expect(message.tool_calls).toHaveLength(1);
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
    [null, 'stop'],
    ['a_future_reason', 'stop'],
  ])('maps stop_reason %s to finish_reason %s', (stopReason, finishReason) => {
    expect(complete(messageJson({ ...answer, stop_reason: stopReason })).value.choices[0].finish_reason).toBe(finishReason);
  });

  it('gives an empty string for an answer with no text and no tool calls', () => {
    expect(complete(messageJson({ ...answer, content: [], stop_reason: 'max_tokens' })).value.choices[0].message.content).toBe('');
  });

  it('names the requested model when the upstream names none, and counts missing cache fields as zero', () => {
    const bare = { type: 'message', content: [{ type: 'text', text: 'x' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 4 } };
    const completion = complete(bare).value;
    expect(completion.model).toBe('asked-model');
    expect(completion.usage).toMatchObject({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    });
  });

  it("translates the emulator's answers", () => {
    const generated = generateText({ seed: 1, promptSeed: 2, maxTokens: 50, lengthMin: 5, lengthMax: 20, stopSequences: [] });
    const body = messageBody({
      id: 'msg_e',
      model: 'claude-haiku-4-5',
      usage: { inputTokens: 7, cacheCreationInputTokens: 2, cacheReadInputTokens: 3, cacheCreation5mInputTokens: 2, cacheCreation1hInputTokens: 0 },
      generated,
    });
    const completion = complete(body).value;
    expect(completion.choices[0].message.content).toBe(generated.text);
    expect(completion.choices[0].finish_reason).toBe('stop');
    const output = generated.outputTokens;
    expect(completion.usage).toMatchObject({
      prompt_tokens: 12,
      completion_tokens: output,
      total_tokens: 12 + output,
      prompt_tokens_details: { cached_tokens: 3, cache_write_tokens: 2 },
    });
  });

  it('refuses what is not a message', () => {
    for (const bad of ['not json', new Uint8Array([0xff, 0xfe]), '[1]', 42, null, { type: 'message' }]) {
      const result = messageToChatCompletion(bad, context);
      expect(result.ok).toBe(false);
    }
  });
});
