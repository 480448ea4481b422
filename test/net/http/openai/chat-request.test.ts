// Proves each feature of the Chat Completions → Messages request translation on its own, and that
// every parameter it does not translate is refused with a 400-ready error naming the field, never
// dropped.
import { describe, expect, it } from 'vitest';
import { gatewayMaxTokensMax } from '../../../../src/core/limits.js';
import { chatMaxTokensDefault, chatRequestToMessages, type TranslatedChatRequest, type TranslationError } from '../../../../src/net/http/openai/index.js';

const model = 'claude-sonnet-4-6';
const hello = [{ role: 'user', content: 'Hello' }];

function translate(body: Record<string, unknown>): TranslatedChatRequest {
  const result = chatRequestToMessages({ model, messages: hello, ...body });
  if (!result.ok) throw new Error(`expected a translation, got ${result.error.param}: ${result.error.message}`);
  return result.value;
}

function refusal(body: Record<string, unknown>): TranslationError {
  const result = chatRequestToMessages({ model, messages: hello, ...body });
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.value.messagesBody)}`);
  return result.error;
}

const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('chatRequestToMessages: the basics', () => {
  it('translates a minimal request, with the documented default max_tokens', () => {
    const translated = translate({});
    expect(translated).toEqual({
      messagesBody: { model, max_tokens: chatMaxTokensDefault, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }], stream: false },
      stream: false,
      includeUsage: false,
      model,
      endUser: undefined,
    });
  });

  it('refuses a body that is not an object, and a missing model or messages', () => {
    expect(chatRequestToMessages([]).ok).toBe(false);
    expect(chatRequestToMessages(null).ok).toBe(false);
    expect(refusal({ model: undefined }).param).toBe('model');
    expect(refusal({ model: '' }).param).toBe('model');
    expect(refusal({ messages: [] }).param).toBe('messages');
    expect(refusal({ messages: 'hi' }).param).toBe('messages');
  });

  it('takes max_completion_tokens or max_tokens, bounded by the gateway bound', () => {
    expect(translate({ max_completion_tokens: 77 }).messagesBody.max_tokens).toBe(77);
    expect(translate({ max_tokens: 88 }).messagesBody.max_tokens).toBe(88);
    expect(translate({ max_tokens: 5, max_completion_tokens: 5 }).messagesBody.max_tokens).toBe(5);
    expect(translate({ max_tokens: null, max_completion_tokens: null }).messagesBody.max_tokens).toBe(chatMaxTokensDefault);
    expect(translate({ max_tokens: gatewayMaxTokensMax }).messagesBody.max_tokens).toBe(gatewayMaxTokensMax);
    const over = refusal({ max_completion_tokens: gatewayMaxTokensMax + 1 });
    expect(over).toMatchObject({ kind: 'invalid', param: 'max_completion_tokens' });
    expect(over.message).toContain(String(gatewayMaxTokensMax));
    expect(refusal({ max_tokens: 0 }).param).toBe('max_tokens');
    expect(refusal({ max_tokens: 1.5 }).param).toBe('max_tokens');
    expect(refusal({ max_tokens: '10' }).param).toBe('max_tokens');
    expect(refusal({ max_tokens: 5, max_completion_tokens: 6 }).message).toMatch(/disagree/);
  });

  it('takes the default and bound it is given', () => {
    const result = chatRequestToMessages({ model, messages: hello }, { maxTokensDefault: 10, maxTokensMax: 20 });
    expect(result.ok && result.value.messagesBody.max_tokens).toBe(10);
    expect(chatRequestToMessages({ model, messages: hello, max_tokens: 21 }, { maxTokensDefault: 10, maxTokensMax: 20 }).ok).toBe(false);
  });

  it('translates temperature, top_p and stop, and refuses a temperature Anthropic does not take', () => {
    const body = translate({ temperature: 0.3, top_p: 0.9, stop: 'END' }).messagesBody;
    expect(body).toMatchObject({ temperature: 0.3, top_p: 0.9, stop_sequences: ['END'] });
    expect(translate({ stop: ['a', 'b'] }).messagesBody.stop_sequences).toEqual(['a', 'b']);
    expect(translate({ stop: [] }).messagesBody.stop_sequences).toBeUndefined();
    expect(translate({ temperature: 1 }).messagesBody.temperature).toBe(1);
    expect(refusal({ temperature: 1.5 })).toMatchObject({ kind: 'unsupported', param: 'temperature' });
    expect(refusal({ temperature: 3 })).toMatchObject({ kind: 'invalid', param: 'temperature' });
    expect(refusal({ temperature: -1 }).param).toBe('temperature');
    expect(refusal({ top_p: 2 }).param).toBe('top_p');
    expect(refusal({ stop: [''] })).toMatchObject({ kind: 'unsupported', param: 'stop' });
    expect(refusal({ stop: [1] })).toMatchObject({ kind: 'invalid', param: 'stop' });
    expect(refusal({ stop: 7 }).param).toBe('stop');
  });

  it('sends user (or safety_identifier) as metadata.user_id', () => {
    expect(translate({ user: 'u-1' })).toMatchObject({ endUser: 'u-1', messagesBody: { metadata: { user_id: 'u-1' } } });
    expect(translate({ safety_identifier: 's-1' }).messagesBody.metadata).toEqual({ user_id: 's-1' });
    expect(translate({ user: 'same', safety_identifier: 'same' }).messagesBody.metadata).toEqual({ user_id: 'same' });
    expect(translate({ user: '' }).messagesBody.metadata).toBeUndefined();
    expect(refusal({ user: 'a', safety_identifier: 'b' }).param).toBe('safety_identifier');
    expect(refusal({ user: 5 }).param).toBe('user');
  });

  it('reads stream and stream_options.include_usage', () => {
    expect(translate({ stream: true })).toMatchObject({ stream: true, includeUsage: false, messagesBody: { stream: true } });
    expect(translate({ stream: true, stream_options: { include_usage: true } })).toMatchObject({ stream: true, includeUsage: true });
    expect(translate({ stream: true, stream_options: { include_usage: false, include_obfuscation: true } }).includeUsage).toBe(false);
    expect(refusal({ stream: 'yes' }).param).toBe('stream');
    expect(refusal({ stream_options: { include_usage: true } }).param).toBe('stream_options');
    expect(refusal({ stream: true, stream_options: { include_usage: 'yes' } }).param).toBe('stream_options.include_usage');
    expect(refusal({ stream: true, stream_options: { other: true } })).toMatchObject({ kind: 'unsupported', param: 'stream_options.other' });
  });
});

describe('chatRequestToMessages: what is not translated', () => {
  it.each([
    ['n', 2],
    ['logprobs', true],
    ['top_logprobs', 3],
    ['presence_penalty', 0.5],
    ['frequency_penalty', -0.5],
    ['logit_bias', { '50256': -100 }],
    ['response_format', { type: 'json_object' }],
    ['response_format', { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } }],
    ['modalities', ['text', 'audio']],
    ['audio', { voice: 'alloy', format: 'mp3' }],
    ['prediction', { type: 'content', content: 'x' }],
    ['functions', [{ name: 'f' }]],
    ['function_call', 'auto'],
    ['web_search_options', {}],
    ['verbosity', 'low'],
    ['reasoning_effort', 'high'],
    ['service_tier', 'flex'],
    ['store', true],
    ['moderation', { model: 'omni-moderation-latest' }],
    ['top_k', 5],
    ['thinking', { type: 'enabled' }],
  ])('refuses %s = %j, naming it', (name, value) => {
    const error = refusal({ [name]: value });
    expect(error).toMatchObject({ kind: 'unsupported', param: name });
    expect(error.message).toContain(`'${name}'`);
  });

  it.each([
    ['n', 1],
    ['logprobs', false],
    ['top_logprobs', 0],
    ['presence_penalty', 0],
    ['frequency_penalty', 0],
    ['logit_bias', {}],
    ['response_format', { type: 'text' }],
    ['modalities', ['text']],
    ['reasoning_effort', 'none'],
    ['service_tier', 'auto'],
    ['store', false],
    ['seed', 42],
    ['metadata', { purpose: 'test' }],
    ['prompt_cache_key', 'conversation-7'],
    ['prompt_cache_retention', '24h'],
    ['prompt_cache_options', { mode: 'implicit' }],
    ['audio', null],
    ['functions', null],
  ])('takes %s = %j, which asks for nothing the translation leaves out', (name, value) => {
    expect(translate({ [name]: value }).messagesBody).toEqual(translate({}).messagesBody);
  });

  it('checks the type of the parameters it takes without effect', () => {
    expect(refusal({ seed: 1.5 })).toMatchObject({ kind: 'invalid', param: 'seed' });
    expect(refusal({ metadata: 'x' })).toMatchObject({ kind: 'invalid', param: 'metadata' });
  });
});

describe('chatRequestToMessages: messages', () => {
  it('puts system and developer messages, wherever they stand, into system in order', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        {
          role: 'developer',
          content: [
            { type: 'text', text: 'Answer in French.' },
            { type: 'text', text: '' },
          ],
        },
      ],
    }).messagesBody;
    expect(body.system).toEqual([
      { type: 'text', text: 'Be brief.' },
      { type: 'text', text: 'Answer in French.' },
    ]);
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
  });

  it('keeps a multi-turn conversation, merging consecutive messages of one side into one turn', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'One' },
        { role: 'user', content: 'Two' },
        { role: 'assistant', content: 'Three' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Four' },
            { type: 'refusal', refusal: 'No.' },
          ],
        },
        { role: 'assistant', content: null },
        { role: 'user', content: 'Five' },
      ],
    }).messagesBody;
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'One' },
          { type: 'text', text: 'Two' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Three' },
          { type: 'text', text: 'Four' },
          { type: 'text', text: 'No.' },
        ],
      },
      { role: 'user', content: [{ type: 'text', text: 'Five' }] },
    ]);
  });

  it('refuses what a Messages conversation cannot hold', () => {
    expect(refusal({ messages: [{ role: 'system', content: 'x' }] }).param).toBe('messages');
    expect(refusal({ messages: [{ role: 'assistant', content: 'Hi' }, ...hello] })).toMatchObject({ kind: 'unsupported', param: 'messages' });
    expect(refusal({ messages: [{ role: 'user', content: '' }] })).toMatchObject({ kind: 'unsupported', param: 'messages[0].content' });
    expect(refusal({ messages: [{ role: 'user', content: 'Hi', name: 'ann' }] })).toMatchObject({ kind: 'unsupported', param: 'messages[0].name' });
    expect(refusal({ messages: [{ role: 'function', name: 'f', content: 'x' }] })).toMatchObject({ kind: 'unsupported', param: 'messages[0].role' });
    expect(refusal({ messages: [{ role: 'robot', content: 'x' }] })).toMatchObject({ kind: 'invalid', param: 'messages[0].role' });
    expect(refusal({ messages: [{ role: 'user', content: 'Hi', extra: 1 }] })).toMatchObject({ kind: 'unsupported', param: 'messages[0].extra' });
    expect(refusal({ messages: [...hello, { role: 'assistant', content: 'x', audio: { id: 'a' } }] }).param).toBe('messages[1].audio');
    expect(refusal({ messages: [...hello, { role: 'assistant', function_call: { name: 'f', arguments: '{}' } }] }).param).toBe('messages[1].function_call');
    expect(refusal({ messages: ['hi'] }).param).toBe('messages[0]');
  });

  it('takes null fields as absent', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'Hi', name: null },
        { role: 'assistant', content: 'Yo', tool_calls: null, function_call: null, audio: null, refusal: null },
      ],
    }).messagesBody;
    expect(body.messages).toHaveLength(2);
  });
});

describe('chatRequestToMessages: content parts', () => {
  function userContent(content: unknown): unknown {
    return translate({ messages: [{ role: 'user', content }] }).messagesBody.messages[0]!.content;
  }

  it('translates text and images given by data URL or by http(s) URL', () => {
    expect(
      userContent([
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'high' } },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
        { type: 'image_url', image_url: { url: 'data:image/jpg;base64,AAAA' } },
      ]),
    ).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'AAAA' } },
    ]);
  });

  it('translates an inline PDF file into a document block, and cache breakpoints into cache_control', () => {
    expect(
      userContent([
        { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'a.pdf' } },
        { type: 'text', text: 'Summarise.', prompt_cache_breakpoint: { mode: 'explicit' } },
      ]),
    ).toEqual([
      { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' }, title: 'a.pdf' },
      { type: 'text', text: 'Summarise.', cache_control: { type: 'ephemeral' } },
    ]);
  });

  it('refuses parts it cannot translate, naming the part', () => {
    const content = (part: unknown): TranslationError => refusal({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, part] }] });
    expect(content({ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } })).toMatchObject({
      kind: 'unsupported',
      param: 'messages[0].content[1].type',
    });
    expect(content({ type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } })).toMatchObject({
      kind: 'unsupported',
      param: 'messages[0].content[1].image_url.url',
    });
    expect(content({ type: 'image_url', image_url: { url: 'ftp://example.com/a.png' } })).toMatchObject({
      kind: 'invalid',
      param: 'messages[0].content[1].image_url.url',
    });
    expect(content({ type: 'image_url', image_url: { url: 'data:image/png,rawbytes' } })).toMatchObject({ kind: 'invalid' });
    expect(content({ type: 'file', file: { file_id: 'file-abc' } })).toMatchObject({ kind: 'unsupported', param: 'messages[0].content[1].file.file_id' });
    expect(content({ type: 'file', file: { file_data: 'data:text/plain;base64,AAAA' } })).toMatchObject({
      kind: 'unsupported',
      param: 'messages[0].content[1].file.file_data',
    });
    expect(content({ type: 'text', text: 'x', prompt_cache_breakpoint: { mode: 'sometimes' } })).toMatchObject({ kind: 'invalid' });
    expect(content({ type: 'video' })).toMatchObject({ kind: 'invalid', param: 'messages[0].content[1].type' });
    expect(content({ type: 'text', text: 3 })).toMatchObject({ kind: 'invalid', param: 'messages[0].content[1].text' });
  });

  it('refuses images in system messages, which take text only', () => {
    const error = refusal({ messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }, ...hello] });
    expect(error).toMatchObject({ kind: 'unsupported', param: 'messages[0].content[0].type' });
  });
});

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

describe('chatRequestToMessages: tools', () => {
  it('translates function tools into Messages tools', () => {
    const body = translate({
      tools: [weather, { type: 'function', function: { name: 'now' } }, { type: 'function', function: { name: 'bare', parameters: { properties: {} } } }],
    }).messagesBody;
    expect(body.tools).toEqual([
      { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
      { name: 'bare', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(body.tool_choice).toBeUndefined();
    expect(translate({ tools: [] }).messagesBody.tools).toBeUndefined();
  });

  it.each([
    ['none', { type: 'none' }],
    ['auto', { type: 'auto' }],
    ['required', { type: 'any' }],
    [
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'tool', name: 'get_weather' },
    ],
  ])('translates tool_choice %j', (choice, expected) => {
    expect(translate({ tools: [weather], tool_choice: choice }).messagesBody.tool_choice).toEqual(expected);
  });

  it('turns parallel_tool_calls: false into disable_parallel_tool_use', () => {
    expect(translate({ tools: [weather], parallel_tool_calls: false }).messagesBody.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(translate({ tools: [weather], tool_choice: 'required', parallel_tool_calls: false }).messagesBody.tool_choice).toEqual({
      type: 'any',
      disable_parallel_tool_use: true,
    });
    expect(translate({ tools: [weather], tool_choice: 'none', parallel_tool_calls: false }).messagesBody.tool_choice).toEqual({ type: 'none' });
    expect(translate({ tools: [weather], parallel_tool_calls: true }).messagesBody.tool_choice).toBeUndefined();
    expect(translate({ parallel_tool_calls: false }).messagesBody.tool_choice).toBeUndefined();
  });

  it('refuses tools and tool choices it cannot honour', () => {
    expect(refusal({ tools: [{ type: 'custom', custom: { name: 'c' } }] })).toMatchObject({ kind: 'unsupported', param: 'tools[0].type' });
    expect(refusal({ tools: [{ type: 'function', function: { ...weather.function, strict: true } }] })).toMatchObject({
      kind: 'unsupported',
      param: 'tools[0].function.strict',
    });
    expect(refusal({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'array' } } }] })).toMatchObject({
      kind: 'unsupported',
      param: 'tools[0].function.parameters.type',
    });
    expect(refusal({ tools: [{ type: 'function', function: { name: '' } }] }).param).toBe('tools[0].function.name');
    expect(refusal({ tools: [weather], tool_choice: { type: 'function', function: { name: 'other' } } }).param).toBe('tool_choice.function.name');
    expect(refusal({ tools: [weather], tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [] } } })).toMatchObject({
      kind: 'unsupported',
    });
    expect(refusal({ tool_choice: 'required' }).param).toBe('tool_choice');
    expect(refusal({ tools: [weather], tool_choice: 'sometimes' }).param).toBe('tool_choice');
    expect(translate({ tool_choice: 'auto' }).messagesBody.tool_choice).toBeUndefined();
  });
});

describe('chatRequestToMessages: tool calls and tool results', () => {
  const call = (id: string, args = '{"city":"Paris"}'): unknown => ({ id, type: 'function', function: { name: 'get_weather', arguments: args } });

  it('turns tool_calls into tool_use blocks and consecutive tool messages into one user turn of tool_result blocks', () => {
    const body = translate({
      tools: [weather],
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        { role: 'assistant', content: 'Checking.', tool_calls: [call('call_1'), call('call_2', '{"city":"Rome"}')] },
        { role: 'tool', tool_call_id: 'call_2', content: 'Sunny' },
        { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: 'Rain' }] },
        { role: 'user', content: 'Thanks, and tomorrow?' },
      ],
    }).messagesBody;
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: 'Sunny' }] },
          { type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: 'Rain' }] },
          { type: 'text', text: 'Thanks, and tomorrow?' },
        ],
      },
    ]);
  });

  it('takes empty arguments as no arguments, and an empty tool answer as a result without content', () => {
    const body = translate({
      messages: [...hello, { role: 'assistant', content: '', tool_calls: [call('c', '')] }, { role: 'tool', tool_call_id: 'c', content: '' }],
    }).messagesBody;
    expect(body.messages[1]).toEqual({ role: 'assistant', content: [{ type: 'tool_use', id: 'c', name: 'get_weather', input: {} }] });
    expect(body.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'c' }] });
  });

  it('refuses a conversation whose tool calls and tool messages do not pair up', () => {
    const unanswered = refusal({
      messages: [
        ...hello,
        { role: 'assistant', tool_calls: [call('a'), call('b')] },
        { role: 'tool', tool_call_id: 'a', content: 'x' },
        { role: 'user', content: 'y' },
      ],
    });
    expect(unanswered).toMatchObject({ kind: 'invalid', param: 'messages[3]' });
    expect(unanswered.message).toContain('"b"');
    expect(refusal({ messages: [...hello, { role: 'assistant', tool_calls: [call('a')] }] })).toMatchObject({ kind: 'invalid', param: 'messages[1]' });
    expect(refusal({ messages: [...hello, { role: 'tool', tool_call_id: 'a', content: 'x' }] }).param).toBe('messages[1].tool_call_id');
    expect(refusal({ messages: [...hello, { role: 'assistant', tool_calls: [call('a')] }, { role: 'tool', tool_call_id: 'z', content: 'x' }] }).param).toBe(
      'messages[2].tool_call_id',
    );
    expect(refusal({ messages: [...hello, { role: 'assistant', tool_calls: [call('a'), call('a')] }] }).param).toBe('messages[1].tool_calls[1].id');
    expect(refusal({ messages: [...hello, { role: 'assistant', tool_calls: [call('a', '[1]')] }] })).toMatchObject({
      kind: 'unsupported',
      param: 'messages[1].tool_calls[0].function.arguments',
    });
    expect(refusal({ messages: [...hello, { role: 'assistant', tool_calls: [call('a', '{bad')] }] }).param).toBe(
      'messages[1].tool_calls[0].function.arguments',
    );
    expect(
      refusal({ messages: [...hello, { role: 'assistant', tool_calls: [{ id: 'a', type: 'custom', custom: { name: 'c', input: 'x' } }] }] }),
    ).toMatchObject({ kind: 'unsupported' });
    expect(refusal({ messages: [...hello, { role: 'tool', content: 'x' }] }).param).toBe('messages[1].tool_call_id');
  });

  it('lets system messages stand between tool calls and their answers (they go to system)', () => {
    const body = translate({
      messages: [
        ...hello,
        { role: 'assistant', tool_calls: [call('a')] },
        { role: 'system', content: 'Note.' },
        { role: 'tool', tool_call_id: 'a', content: 'x' },
      ],
    }).messagesBody;
    expect(body.messages.map((turn) => turn.role)).toEqual(['user', 'assistant', 'user']);
    expect(body.system).toEqual([{ type: 'text', text: 'Note.' }]);
  });
});
