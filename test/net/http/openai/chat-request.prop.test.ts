// Proves, over generated Chat Completions conversations, that every translated request is a valid
// Messages body (turns alternate, the first is the user's, each assistant turn's tool_use ids are
// answered exactly by tool_result blocks leading the next user turn, the emulator's validation
// passes) that keeps every text in order; and that no body, however mangled, makes the
// translation throw or lets a broken body through.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chatRequestToMessages, type MessagesBody } from '../../../../src/net/http/openai/index.js';
import { validateMessagesRequest } from '../../../../src/upstream/emulator/request-validation.js';
import { checkProperty } from '../../../support/property.js';

type ChatMessage = Record<string, unknown>;

interface GeneratedRequest {
  readonly conversation: ChatMessage[];
  readonly tools: boolean;
  readonly maxTokens: number | undefined;
  readonly stream: boolean;
}

const arbText = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('a', 'b', ' ', '{', '"', 'é', '\n', '🚗') });
const arbUserContent = fc.oneof(
  arbText,
  fc.array(
    fc.oneof(
      arbText.map((text) => ({ type: 'text', text })),
      fc.constantFrom('https://example.com/a.png', 'data:image/webp;base64,AAAA').map((url) => ({ type: 'image_url', image_url: { url } })),
    ),
    { minLength: 1, maxLength: 3 },
  ),
);
const arbArgs = fc.dictionary(
  fc.string({ maxLength: 5 }).filter((key) => key !== '__proto__'),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 3 },
);

/** One step of a conversation; tool calls come with their answers, in any order. */
const arbStep = fc.oneof(
  fc.record({ kind: fc.constant('system' as const), role: fc.constantFrom('system', 'developer'), text: arbText }),
  fc.record({ kind: fc.constant('user' as const), content: arbUserContent }),
  fc.record({ kind: fc.constant('assistant' as const), content: fc.option(arbText, { nil: null }) }),
  fc.record({
    kind: fc.constant('tools' as const),
    content: fc.option(arbText, { nil: null }),
    calls: fc.array(fc.record({ args: arbArgs, answer: fc.string({ maxLength: 8 }) }), { minLength: 1, maxLength: 3 }),
    order: fc.array(fc.nat(), { maxLength: 3 }),
  }),
);

/** A conversation: system steps, a user message, then any steps. */
const arbConversation = fc
  .tuple(
    fc.array(
      arbStep.filter((step) => step.kind === 'system'),
      { maxLength: 2 },
    ),
    arbUserContent,
    fc.array(arbStep, { maxLength: 8 }),
  )
  .map(([lead, first, rest]) => {
    const messages: ChatMessage[] = [];
    for (const step of lead) if (step.kind === 'system') messages.push({ role: step.role, content: step.text });
    messages.push({ role: 'user', content: first });
    rest.forEach((step, s) => {
      if (step.kind === 'system') messages.push({ role: step.role, content: step.text });
      else if (step.kind === 'user') messages.push({ role: 'user', content: step.content });
      else if (step.kind === 'assistant') messages.push({ role: 'assistant', content: step.content });
      else {
        const ids = step.calls.map((_call, c) => `call_${s}_${c}`);
        const calls = step.calls.map((call, c) => ({ id: ids[c], type: 'function', function: { name: 'f', arguments: JSON.stringify(call.args) } }));
        messages.push({ role: 'assistant', content: step.content, tool_calls: calls });
        const answers = step.calls.map((call, c) => ({ role: 'tool', tool_call_id: ids[c], content: call.answer }));
        for (const pick of step.order) answers.push(...answers.splice(pick % answers.length, 1));
        messages.push(...answers);
      }
    });
    return messages;
  });

const arbRequest: fc.Arbitrary<GeneratedRequest> = fc.record({
  conversation: arbConversation,
  tools: fc.boolean(),
  maxTokens: fc.option(fc.integer({ min: 1, max: 128_000 }), { nil: undefined }),
  stream: fc.boolean(),
});

function requestOf(r: GeneratedRequest): Record<string, unknown> {
  return {
    model: 'claude-sonnet-4-6',
    messages: r.conversation,
    ...(r.tools ? { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] } : {}),
    ...(r.maxTokens === undefined ? {} : { max_completion_tokens: r.maxTokens }),
    stream: r.stream,
  };
}

/** What a valid Messages body must satisfy; the first law it breaks, or undefined. */
function brokenLaw(body: MessagesBody): string | undefined {
  const validation = validateMessagesRequest(body);
  if (!validation.ok) return `the emulator refuses it: ${validation.error.field}: ${validation.error.message}`;
  if (body.messages[0]?.role !== 'user') return "the first turn is not the user's";
  for (let i = 0; i < body.messages.length; i++) {
    const turn = body.messages[i]!;
    if (i > 0 && body.messages[i - 1]!.role === turn.role) return `turns ${i - 1} and ${i} are both ${turn.role}`;
    if (turn.content.length === 0) return `turn ${i} is empty`;
    const uses = turn.role === 'assistant' ? turn.content.flatMap((block) => (block.type === 'tool_use' ? [block.id] : [])) : [];
    const next = body.messages[i + 1];
    const results = next?.role === 'user' ? next.content.flatMap((block) => (block.type === 'tool_result' ? [block.tool_use_id] : [])) : [];
    if (turn.role === 'assistant' && [...uses].sort().join() !== [...results].sort().join())
      return `turn ${i + 1} does not answer exactly the tool calls of turn ${i}`;
    if (next?.role === 'user' && next.content.slice(0, results.length).some((block) => block.type !== 'tool_result'))
      return `the tool results of turn ${i + 1} do not lead it`;
    if (turn.role === 'user' && i === 0 && turn.content.some((block) => block.type === 'tool_result')) return 'the first turn holds a tool result';
  }
  return undefined;
}

/** The texts of one side, in order, as the client wrote them. */
function chatTexts(messages: readonly ChatMessage[], roles: readonly string[]): string[] {
  return messages.flatMap((m) => {
    if (!roles.includes(m.role as string)) return [];
    if (typeof m.content === 'string') return [m.content];
    if (Array.isArray(m.content)) return (m.content as { type: string; text?: string }[]).flatMap((p) => (p.type === 'text' ? [p.text!] : []));
    return [];
  });
}

function messagesTexts(body: MessagesBody, role: 'user' | 'assistant'): string[] {
  return body.messages.filter((turn) => turn.role === role).flatMap((turn) => turn.content.flatMap((block) => (block.type === 'text' ? [block.text] : [])));
}

describe('chatRequestToMessages, over generated conversations', () => {
  it('translates every well-formed conversation into a valid Messages body that keeps every text in order', () => {
    checkProperty(
      fc.property(arbRequest, (r) => {
        const request = requestOf(r);
        const translated = chatRequestToMessages(request);
        if (!translated.ok) throw new Error(`refused: ${translated.error.param}: ${translated.error.message}`);
        const body = translated.value.messagesBody;
        expect(brokenLaw(body)).toBeUndefined();
        expect(messagesTexts(body, 'user')).toEqual(chatTexts(r.conversation, ['user']));
        expect(messagesTexts(body, 'assistant')).toEqual(chatTexts(r.conversation, ['assistant']));
        expect((body.system ?? []).map((block) => block.text)).toEqual(chatTexts(r.conversation, ['system', 'developer']));
        expect(body.max_tokens).toBe(r.maxTokens ?? 4096);
        expect(translated.value.stream).toBe(r.stream);
      }),
    );
  });

  it('never throws on a mangled request, and lets through only valid bodies', () => {
    const arbMangled = fc
      .tuple(arbRequest, fc.array(arbMutation, { minLength: 1, maxLength: 3 }))
      .map(([r, mutations]) => mutations.reduce(mangle, requestOf(r) as unknown));
    // Whole messages moved, repeated and removed: well-typed requests whose conversations break
    // the pairing and order rules in every way.
    const arbReordered = fc
      .tuple(
        arbRequest,
        fc.array(fc.record({ op: fc.constantFrom('remove' as const, 'repeat' as const, 'move' as const), at: fc.nat(), to: fc.nat() }), {
          minLength: 1,
          maxLength: 3,
        }),
      )
      .map(([r, ops]) => {
        const request = requestOf(r);
        const messages = [...(request.messages as unknown[])];
        for (const { op, at, to } of ops) {
          const [message] = messages.splice(at % messages.length, 1);
          if (op === 'repeat') messages.splice(at % (messages.length + 1), 0, message, message);
          if (op === 'move') messages.splice(to % (messages.length + 1), 0, message);
          if (messages.length === 0) messages.push(message);
        }
        return { ...request, messages };
      });
    checkProperty(
      fc.property(
        fc.oneof({ arbitrary: arbReordered, weight: 3 }, { arbitrary: arbMangled, weight: 2 }, { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 }),
        (body) => {
          const translated = chatRequestToMessages(body);
          if (translated.ok) expect(brokenLaw(translated.value.messagesBody)).toBeUndefined();
          else {
            expect(translated.error.param.length).toBeGreaterThan(0);
            expect(translated.error.message.length).toBeGreaterThan(0);
          }
        },
      ),
      1_000,
    );
  });
});

/**
 * A change to a request at one of its slots (chosen by `at` among all of them): a new value, the
 * slot removed, or an array's element repeated or moved, which reorders, duplicates and drops
 * messages, tool calls and tool answers.
 */
type Mutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: unknown }
  | { readonly kind: 'remove' | 'repeat' | 'move'; readonly at: number; readonly to: number };

const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('', 'x', 0, 1, true, false, null, [], {})),
  }),
  fc.record({ kind: fc.constantFrom('remove' as const, 'repeat' as const, 'move' as const), at: fc.nat(), to: fc.nat() }),
);

function mangle(request: unknown, mutation: Mutation): unknown {
  const copy = structuredClone(request);
  const slots: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const visit = (node: unknown): void => {
    const children: [string | number, unknown][] = Array.isArray(node)
      ? node.map((child, i) => [i, child])
      : typeof node === 'object' && node !== null
        ? Object.entries(node)
        : [];
    for (const [key, child] of children) {
      slots.push({ parent: node as Record<string, unknown> | unknown[], key });
      visit(child);
    }
  };
  visit(copy);
  if (slots.length === 0) return copy;
  const { parent, key } = slots[mutation.at % slots.length]!;
  if (mutation.kind === 'set') (parent as Record<string | number, unknown>)[key] = mutation.value;
  else if (!Array.isArray(parent)) delete parent[key as string];
  else {
    const [element] = parent.splice(key as number, 1);
    if (mutation.kind === 'repeat') parent.splice(key as number, 0, element, structuredClone(element));
    if (mutation.kind === 'move') parent.splice(mutation.to % (parent.length + 1), 0, element);
  }
  return copy;
}
