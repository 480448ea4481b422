import { err, type Err } from '../../../core/result.js';

/**
 * Why a Chat Completions request was not translated. Both kinds are the client's to fix, and the
 * route answers both with 400 in OpenAI's error shape (./chat-error.ts):
 *
 * - `invalid`: the request is malformed for the Chat Completions API itself (a missing field, a
 *   wrong type, a tool message that answers no tool call). OpenAI would refuse it too.
 * - `unsupported`: a valid Chat Completions request that asks for something the Messages API
 *   cannot do or that this translation does not carry over (`n: 2`, `logprobs`, audio). Refused
 *   rather than dropped, so a client never gets an answer that silently ignores what it asked.
 *
 * `param` names the field by its path in the request, `messages[2].content[0].image_url.url`,
 * and `message` is a full sentence that says what is wrong and what the client can send instead.
 */
export interface TranslationError {
  readonly kind: 'invalid' | 'unsupported';
  readonly param: string;
  readonly message: string;
}

export function invalid(param: string, message: string): Err<TranslationError> {
  return err({ kind: 'invalid', param, message });
}

export function unsupported(param: string, message: string): Err<TranslationError> {
  return err({ kind: 'unsupported', param, message });
}
