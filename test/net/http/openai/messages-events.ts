// Test support: an Anthropic Messages answer, whole and as the events of its stream in the API's
// order, with text and tool input cut into deltas where the caller says.

export type AnswerBlock =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'tool_use'; readonly id: string; readonly name: string; readonly input: Record<string, unknown> }
  | { readonly type: 'thinking'; readonly thinking: string; readonly signature: string };

export interface AnswerUsage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_input_tokens: number;
  readonly cache_read_input_tokens: number;
}

export interface Answer {
  readonly id: string;
  readonly model: string;
  readonly content: readonly AnswerBlock[];
  readonly stop_reason: string | null;
  readonly stop_sequence: string | null;
  readonly usage: AnswerUsage;
}

export interface StreamShape {
  /** Cut points (any numbers: taken modulo the length) for the text or JSON of each block. */
  readonly cuts: readonly (readonly number[])[];
  /** Spaces to indent the streamed tool input JSON by: the model's text need not be compact. */
  readonly jsonIndent: number;
  /** Whether message_delta repeats the input counts (newer API versions do). */
  readonly deltaRepeatsInput: boolean;
}

export function messageJson(answer: Answer): Record<string, unknown> {
  return {
    id: answer.id,
    type: 'message',
    role: 'assistant',
    model: answer.model,
    content: answer.content,
    stop_reason: answer.stop_reason,
    stop_sequence: answer.stop_sequence,
    usage: answer.usage,
  };
}

export interface AnswerEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

/** The events of `answer` streamed, as the Messages API sends them. */
export function streamEventsOf(answer: Answer, shape: StreamShape): AnswerEvent[] {
  const { usage } = answer;
  const events: AnswerEvent[] = [
    {
      type: 'message_start',
      data: {
        type: 'message_start',
        message: { ...messageJson(answer), content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
      },
    },
    { type: 'ping', data: { type: 'ping' } },
  ];
  answer.content.forEach((block, index) => {
    const cuts = shape.cuts[index] ?? [];
    const event = (type: string, fields: Record<string, unknown>): AnswerEvent => ({ type, data: { type, index, ...fields } });
    if (block.type === 'text') {
      events.push(event('content_block_start', { content_block: { type: 'text', text: '' } }));
      for (const piece of cut(block.text, cuts)) events.push(event('content_block_delta', { delta: { type: 'text_delta', text: piece } }));
    } else if (block.type === 'tool_use') {
      events.push(event('content_block_start', { content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }));
      const json = Object.keys(block.input).length === 0 ? '' : JSON.stringify(block.input, null, shape.jsonIndent);
      for (const piece of cut(json, cuts)) events.push(event('content_block_delta', { delta: { type: 'input_json_delta', partial_json: piece } }));
    } else {
      events.push(event('content_block_start', { content_block: { type: 'thinking', thinking: '', signature: '' } }));
      for (const piece of cut(block.thinking, cuts)) events.push(event('content_block_delta', { delta: { type: 'thinking_delta', thinking: piece } }));
      events.push(event('content_block_delta', { delta: { type: 'signature_delta', signature: block.signature } }));
    }
    events.push(event('content_block_stop', {}));
  });
  const deltaUsage = shape.deltaRepeatsInput ? usage : { output_tokens: usage.output_tokens };
  events.push({
    type: 'message_delta',
    data: { type: 'message_delta', delta: { stop_reason: answer.stop_reason, stop_sequence: answer.stop_sequence }, usage: deltaUsage },
  });
  events.push({ type: 'message_stop', data: { type: 'message_stop' } });
  return events;
}

/** `text` cut at the given points (whole code points), as non-empty pieces; an empty text gives none. */
function cut(text: string, cuts: readonly number[]): string[] {
  const points = Array.from(text);
  const at = [...new Set(cuts.map((c) => Math.abs(c) % (points.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const to of [...at, points.length]) {
    if (to > from) pieces.push(points.slice(from, to).join(''));
    from = Math.max(from, to);
  }
  return pieces;
}

/** The chunks of an SSE text as JSON, and whether it ended with [DONE]. */
export function parseChunks(sse: readonly string[]): { chunks: Record<string, unknown>[]; done: boolean } {
  const chunks: Record<string, unknown>[] = [];
  let done = false;
  for (const event of sse) {
    if (!event.startsWith('data: ') || !event.endsWith('\n\n')) throw new Error(`not an SSE data event: ${JSON.stringify(event)}`);
    const data = event.slice('data: '.length, -2);
    if (data.includes('\n')) throw new Error(`an event spans lines: ${JSON.stringify(event)}`);
    if (done) throw new Error('an event after [DONE]');
    if (data === '[DONE]') done = true;
    else chunks.push(JSON.parse(data) as Record<string, unknown>);
  }
  return { chunks, done };
}
