/**
 * The OpenAI Chat Completions shapes this module writes: a whole completion, a stream chunk, the
 * usage, and the error body. Only the fields it fills are declared; the tests check that each is
 * assignable to the official `openai` SDK's own type, so a drift shows up at compile time.
 */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface ChatUsage {
  /** Every input token: uncached, written to the cache and read from it. */
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: {
    /** Read from the prompt cache (Anthropic `cache_read_input_tokens`). */
    readonly cached_tokens: number;
    /** Written to the prompt cache (Anthropic `cache_creation_input_tokens`). */
    readonly cache_write_tokens: number;
    readonly audio_tokens: number;
  };
  readonly completion_tokens_details: {
    readonly reasoning_tokens: number;
    readonly audio_tokens: number;
    readonly accepted_prediction_tokens: number;
    readonly rejected_prediction_tokens: number;
  };
}

export interface ChatToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export interface ChatMessage {
  readonly role: 'assistant';
  /** Null when the answer is only tool calls, as OpenAI writes it. */
  readonly content: string | null;
  readonly refusal: null;
  readonly tool_calls?: ChatToolCall[];
}

export interface ChatCompletion {
  readonly id: string;
  readonly object: 'chat.completion';
  readonly created: number;
  readonly model: string;
  readonly choices: [{ readonly index: 0; readonly message: ChatMessage; readonly finish_reason: FinishReason; readonly logprobs: null }];
  readonly usage: ChatUsage;
}

export interface ChatToolCallDelta {
  readonly index: number;
  readonly id?: string;
  readonly type?: 'function';
  readonly function: { readonly name?: string; readonly arguments: string };
}

export interface ChatDelta {
  readonly role?: 'assistant';
  readonly content?: string;
  readonly refusal?: null;
  readonly tool_calls?: ChatToolCallDelta[];
}

export interface ChatCompletionChunk {
  readonly id: string;
  readonly object: 'chat.completion.chunk';
  readonly created: number;
  readonly model: string;
  readonly choices: { readonly index: 0; readonly delta: ChatDelta; readonly finish_reason: FinishReason | null; readonly logprobs: null }[];
  /** Present on every chunk when the client asked for usage: null until the last chunk. */
  readonly usage?: ChatUsage | null;
}

/** `{"error": {...}}`: OpenAI's error body, for a refused request and for a stream that fails. */
export interface ChatErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string | null;
  };
}
