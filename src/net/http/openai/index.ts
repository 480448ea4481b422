// The OpenAI Chat Completions translation (to and from the Anthropic Messages API): what a
// `POST /v1/chat/completions` route calls. What is translated and what is refused is listed in
// ./chat-request.ts; the answer's side in ./chat-completion.ts and ./chat-stream-translator.ts.
export { chatCompletionId, type ChatContext, messageToChatCompletion, type UnreadableMessage } from './chat-completion.js';
export { chatErrorBody, type ChatFailure, statusOfAnthropicError, translationErrorBody } from './chat-error.js';
export {
  chatMaxTokensDefault,
  chatRequestToMessages,
  type ChatTranslationOptions,
  defaultChatTranslationOptions,
  type TranslatedChatRequest,
} from './chat-request.js';
export type { ChatCompletion, ChatCompletionChunk, ChatErrorBody, ChatUsage, FinishReason } from './chat-shapes.js';
export { ChatStreamTranslator, type ChatStreamEvent } from './chat-stream-translator.js';
export type { MessagesBody } from './messages-body.js';
export type { TranslationError } from './translation-error.js';
