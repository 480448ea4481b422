// Proves the emulator refuses malformed Messages and count_tokens bodies with an error that names
// the bad field by its dotted path, and accepts well-formed ones with the fields it reads, including
// the mid-conversation system messages Claude Code sends, with the real API's placement rules.
import { describe, expect, it } from 'vitest';
import { emulatorCacheBreakpointsMax, emulatorMaxTokensMax } from '../../../src/core/limits.js';
import { layOutPrompt } from '../../../src/upstream/emulator/prompt-segments.js';
import {
  invalidRequestMessage,
  noBetas,
  type RequestBetas,
  requestBetas,
  validateCountTokensRequest,
  validateMessagesRequest,
} from '../../../src/upstream/emulator/request-validation.js';

const valid = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] };

function fieldOf(body: unknown): string {
  const result = validateMessagesRequest(body);
  if (result.ok) throw new Error('expected the body to be refused');
  return result.error.field;
}

/** The whole error message the API would send for `messages`, or 'ok'. */
function verdictOf(messages: unknown[], betas: RequestBetas = noBetas): string {
  const result = validateMessagesRequest({ ...valid, messages }, betas);
  return result.ok ? 'ok' : invalidRequestMessage(result.error);
}

const user = (text: string): unknown => ({ role: 'user', content: text });
const assistant = (text: string): unknown => ({ role: 'assistant', content: [{ type: 'text', text }] });
const system = (text: string, extra: Record<string, unknown> = {}): unknown => ({ role: 'system', content: [{ type: 'text', text }], ...extra });
const perTurnControl = requestBetas('claude-code-20250219,per-turn-control-2026-07-01');
const mustFollow =
  "role 'system' must follow a 'user' message or an 'assistant' message ending in a server tool result; the directive-only form (content: [] with output_config) is accepted at any position";
const mustPrecede =
  "role 'system' must precede an 'assistant' message or end the array; the directive-only form (content: [] with output_config) is accepted at any position";

describe('validateMessagesRequest', () => {
  it('accepts a minimal body and reads its fields', () => {
    const result = validateMessagesRequest({
      ...valid,
      stream: true,
      stop_sequences: ['END'],
      metadata: { user_id: 'u1' },
      system: [{ type: 'text', text: 'sys' }],
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({ model: 'claude-sonnet-4-6', maxTokens: 100, stream: true, stopSequences: ['END'], userId: 'u1' });
    expect(result.value.system).toEqual([{ type: 'text', text: 'sys' }]);
  });

  it('lets fields it does not read pass', () => {
    expect(validateMessagesRequest({ ...valid, thinking: { type: 'adaptive' }, tool_choice: { type: 'auto' }, output_config: {} }).ok).toBe(true);
  });

  it('names each bad field', () => {
    expect(fieldOf('nope')).toBe('body');
    expect(fieldOf({ ...valid, model: undefined })).toBe('model');
    expect(fieldOf({ ...valid, model: 7 })).toBe('model');
    expect(fieldOf({ ...valid, max_tokens: undefined })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: 0 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: 1.5 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, max_tokens: emulatorMaxTokensMax + 1 })).toBe('max_tokens');
    expect(fieldOf({ ...valid, messages: [] })).toBe('messages');
    expect(fieldOf({ ...valid, messages: 'hi' })).toBe('messages');
    expect(
      fieldOf({
        ...valid,
        messages: [
          { role: 'user', content: 'a' },
          { role: 'robot', content: 'b' },
        ],
      }),
    ).toBe('messages.1.role');
    expect(
      fieldOf({
        ...valid,
        messages: [
          { role: 'user', content: 'a' },
          { role: 'developer', content: 'b' },
        ],
      }),
    ).toBe('messages.1.role');
    expect(fieldOf({ ...valid, messages: [{ role: 'user' }] })).toBe('messages.0.content');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: '' }] })).toBe('messages.0.content');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text' }] }] })).toBe('messages.0.content.1.text');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ text: 'a' }] }] })).toBe('messages.0.content.0.type');
    expect(fieldOf({ ...valid, system: [{ type: 'image' }] })).toBe('system.0.type');
    expect(fieldOf({ ...valid, system: 5 })).toBe('system');
    expect(fieldOf({ ...valid, stream: 'yes' })).toBe('stream');
    expect(fieldOf({ ...valid, metadata: { user_id: 5 } })).toBe('metadata.user_id');
    expect(fieldOf({ ...valid, stop_sequences: ['ok', ''] })).toBe('stop_sequences.1');
    expect(fieldOf({ ...valid, temperature: 1.5 })).toBe('temperature');
    expect(fieldOf({ ...valid, top_k: -1 })).toBe('top_k');
    expect(fieldOf({ ...valid, tools: [{ input_schema: {} }] })).toBe('tools.0.name');
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: [{ type: 'text', text: 'a', cache_control: { type: 'forever' } }] }] })).toBe(
      'messages.0.content.0.cache_control.type',
    );
    expect(fieldOf({ ...valid, cache_control: { type: 'ephemeral', ttl: '2h' } })).toBe('cache_control.ttl');
  });

  it(`allows at most ${emulatorCacheBreakpointsMax} cache breakpoints`, () => {
    const marked = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ type: 'text', text: `b${i}`, cache_control: { type: 'ephemeral' } }));
    expect(validateMessagesRequest({ ...valid, messages: [{ role: 'user', content: marked(emulatorCacheBreakpointsMax) }] }).ok).toBe(true);
    expect(fieldOf({ ...valid, messages: [{ role: 'user', content: marked(emulatorCacheBreakpointsMax) }], cache_control: { type: 'ephemeral' } })).toBe(
      'cache_control',
    );
  });

  it('formats the message as the API does: the field, a colon, the reason', () => {
    const result = validateMessagesRequest({ ...valid, max_tokens: 'many' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(invalidRequestMessage(result.error)).toBe('max_tokens: Input should be a valid integer');
  });
});

describe('mid-conversation system messages', () => {
  it("accepts Claude Code's first request: a system message after the user turn, ending the array, with output_config under per-turn-control", () => {
    const messages = [{ role: 'user', content: [{ type: 'text', text: 'Say hello' }] }, system('# Environment', { output_config: { effort: 'medium' } })];
    const result = validateMessagesRequest({ ...valid, messages }, requestBetas(['claude-code-20250219', 'per-turn-control-2026-07-01, effort-2025-11-24']));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.messages.map((message) => message.role)).toEqual(['user', 'system']);
    // The system message is part of the prompt: it is counted and it changes the answer's seed.
    const alone = validateMessagesRequest({ ...valid, messages: messages.slice(0, 1) });
    if (!alone.ok) throw new Error('the user turn alone is valid');
    expect(layOutPrompt(result.value).totalTokens).toBeGreaterThan(layOutPrompt(alone.value).totalTokens);
    expect(layOutPrompt(result.value).seed).not.toBe(layOutPrompt(alone.value).seed);
  });

  it('accepts one before an assistant turn, or after an assistant turn that ends in a server tool result', () => {
    expect(verdictOf([user('a'), system('b')])).toBe('ok');
    expect(verdictOf([user('a'), { role: 'system', content: 'b' }, assistant('c'), user('d')])).toBe('ok');
    const searched = {
      role: 'assistant',
      content: [
        { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} },
        { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [] },
      ],
    };
    expect(verdictOf([user('a'), searched, system('b')])).toBe('ok');
  });

  it('refuses the placements the API refuses, with its words', () => {
    expect(verdictOf([system('a'), user('b')])).toBe(`messages.0: ${mustFollow}`);
    expect(verdictOf([user('a'), assistant('b'), system('c')])).toBe(`messages.2: ${mustFollow}`);
    expect(verdictOf([user('a'), assistant('b'), system('c'), assistant('d'), user('e')])).toBe(`messages.2: ${mustFollow}`);
    // Two in a row: the first precedes no assistant turn, the second follows no user turn.
    expect(verdictOf([user('a'), system('b'), system('c')])).toBe(`messages.1: ${mustPrecede}`);
    expect(verdictOf([user('a'), system('b'), system('c'), assistant('d')])).toBe(`messages.1: ${mustPrecede}`);
    expect(verdictOf([user('a'), system('b'), user('c')])).toBe(`messages.1: ${mustPrecede}`);
    // A tool's result is the user's turn, but a tool call awaiting its result is a plain assistant turn.
    const call = { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: {} }] };
    expect(verdictOf([user('a'), call, system('b')])).toBe(`messages.2: ${mustFollow}`);
  });

  it('reports a malformed message before a misplaced one', () => {
    expect(verdictOf([system('a'), user('')])).toBe('messages.1.content: text content must be non-empty');
  });

  it('needs per-turn-control for output_config, which then allows the directive-only form anywhere', () => {
    const effort = { output_config: { effort: 'high' } };
    expect(verdictOf([user('a'), system('b', effort)])).toBe('messages.1.output_config: Extra inputs are not permitted');
    expect(verdictOf([user('a'), system('b', effort)], perTurnControl)).toBe('ok');
    expect(verdictOf([user('a'), assistant('b'), { role: 'system', content: [], ...effort }, user('c')], perTurnControl)).toBe('ok');
    expect(verdictOf([{ role: 'system', ...effort }, user('a')], perTurnControl)).toBe('ok');
    expect(verdictOf([user('a'), assistant('b'), { role: 'system', content: [], ...effort }, user('c')])).toBe(
      'messages.2.output_config: Extra inputs are not permitted',
    );
    expect(verdictOf([user('a'), { role: 'system', content: [] }], perTurnControl)).toBe('messages.1.content: at least one content block is required');
    expect(verdictOf([user('a'), { role: 'system' }], perTurnControl)).toBe('messages.1.content: Field required');
    expect(verdictOf([user('a'), system('b', { output_config: { effort: 'extreme' } })], perTurnControl)).toBe(
      "messages.1.output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
    );
  });

  it('holds text only, and tool changes with their beta', () => {
    const addition = { role: 'system', content: [{ type: 'tool_addition', tool: { type: 'tool_reference', name: 'WebFetch' } }] };
    expect(verdictOf([user('a'), addition])).toBe("messages.1.content.0.type: Input should be 'text'");
    expect(verdictOf([user('a'), addition], requestBetas('mid-conversation-tool-changes-2026-07-01'))).toBe('ok');
    expect(verdictOf([user('a'), { role: 'system', content: [{ type: 'image', source: {} }] }])).toBe("messages.1.content.0.type: Input should be 'text'");
  });

  it('counts cache breakpoints in system messages toward the bound', () => {
    const marked = { type: 'text', text: 'x', cache_control: { type: 'ephemeral' } };
    const messages = [
      { role: 'user', content: [marked, marked, marked] },
      { role: 'system', content: [marked, marked] },
    ];
    expect(verdictOf(messages)).toBe(
      `messages.1.content.1.cache_control: A maximum of ${emulatorCacheBreakpointsMax} blocks with cache_control may be provided. Found 5.`,
    );
  });

  it('reads the betas from the anthropic-beta header, however it is split', () => {
    expect(requestBetas(undefined)).toEqual({ perTurnControl: false, toolChanges: false });
    expect(requestBetas('per-turn-control-2026-07-01')).toEqual({ perTurnControl: true, toolChanges: false });
    expect(requestBetas(['a', ' mid-conversation-tool-changes-2026-07-01 ,per-turn-control-2026-07-01'])).toEqual({ perTurnControl: true, toolChanges: true });
    expect(requestBetas('per-turn-control-2026-07-02')).toEqual({ perTurnControl: false, toolChanges: false });
  });
});

describe('validateCountTokensRequest', () => {
  it('needs no max_tokens but checks the prompt', () => {
    expect(validateCountTokensRequest({ model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'Hi' }] }).ok).toBe(true);
    const result = validateCountTokensRequest({ model: 'claude-sonnet-4-6' });
    expect(result.ok ? undefined : result.error.field).toBe('messages');
  });

  it('applies the same rules to system messages, betas included', () => {
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'system', content: 'Be brief.', output_config: { effort: 'low' } },
    ];
    expect(validateCountTokensRequest({ model: 'claude-sonnet-4-6', messages }, perTurnControl).ok).toBe(true);
    const refused = validateCountTokensRequest({ model: 'claude-sonnet-4-6', messages });
    expect(refused.ok ? undefined : refused.error.field).toBe('messages.1.output_config');
  });
});
