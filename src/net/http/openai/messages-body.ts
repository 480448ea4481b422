/**
 * The Anthropic Messages request body that a translated Chat Completions request becomes: only
 * the blocks and fields the translation writes, so the compiler checks every one of them.
 * Arrays are plain (not readonly) so that a body is also assignable to the official SDK's
 * `MessageCreateParams`, which the tests check.
 */
export interface CacheControl {
  readonly type: 'ephemeral';
}

export interface TextBlock {
  readonly type: 'text';
  readonly text: string;
  readonly cache_control?: CacheControl;
}

/** The image formats the Messages API takes. */
export type ImageMediaType = 'image/jpeg' | 'image/png' | 'image/gif' | 'image/webp';

export type ImageSource =
  { readonly type: 'base64'; readonly media_type: ImageMediaType; readonly data: string } | { readonly type: 'url'; readonly url: string };

export interface ImageBlock {
  readonly type: 'image';
  readonly source: ImageSource;
  readonly cache_control?: CacheControl;
}

export interface DocumentBlock {
  readonly type: 'document';
  readonly source: { readonly type: 'base64'; readonly media_type: 'application/pdf'; readonly data: string };
  readonly title?: string;
  readonly cache_control?: CacheControl;
}

export interface ToolUseBlock {
  readonly type: 'tool_use';
  readonly id: string;
  readonly name: string;
  readonly input: Record<string, unknown>;
}

export interface ToolResultBlock {
  readonly type: 'tool_result';
  readonly tool_use_id: string;
  /** Left out when the tool answered nothing: the API refuses an empty text block. */
  readonly content?: TextBlock[];
}

export type UserBlock = TextBlock | ImageBlock | DocumentBlock | ToolResultBlock;
export type AssistantBlock = TextBlock | ToolUseBlock;

export type MessageTurn = { readonly role: 'user'; readonly content: UserBlock[] } | { readonly role: 'assistant'; readonly content: AssistantBlock[] };

export interface MessagesTool {
  readonly name: string;
  readonly description?: string;
  readonly input_schema: { readonly type: 'object'; readonly [key: string]: unknown };
}

export type MessagesToolChoice =
  | { readonly type: 'auto'; readonly disable_parallel_tool_use?: boolean }
  | { readonly type: 'any'; readonly disable_parallel_tool_use?: boolean }
  | { readonly type: 'tool'; readonly name: string; readonly disable_parallel_tool_use?: boolean }
  | { readonly type: 'none' };

export interface MessagesBody {
  readonly model: string;
  readonly max_tokens: number;
  readonly messages: MessageTurn[];
  readonly system?: TextBlock[];
  readonly stop_sequences?: string[];
  readonly temperature?: number;
  readonly top_p?: number;
  readonly metadata?: { readonly user_id: string };
  readonly tools?: MessagesTool[];
  readonly tool_choice?: MessagesToolChoice;
  readonly stream: boolean;
}
