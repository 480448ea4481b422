import { type Dispatcher, request } from 'undici';
import { assert, isCount } from '../core/assert.js';
import { countTokensResponseBytesMax, countTokensTimeoutMs } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import { parseErrorBody } from './error-body.js';
import { parseRetryAfterMs } from './rate-limit-headers.js';
import { headerValue, upstreamRequestId } from './response-headers.js';
import { buildCall, redact, type UpstreamTarget } from './upstream-request.js';

/**
 * One call to the Messages API's token counter, for the gateway's CountTokens:
 *
 *   POST {baseUrl}/v1/messages/count_tokens      the caller's JSON body, passed on byte for byte
 *   x-api-key | authorization: Bearer            as the account's credential says
 *   anthropic-version, anthropic-beta            the caller's, as for messages
 *   200 {"input_tokens": n}
 *
 * It is small on purpose and apart from the upstream client (./upstream-client.ts): no stream,
 * no usage to bill, no retries; a short timeout for the headers and for each body chunk, and a
 * body read no further than `countTokensResponseBytesMax`. Every failure is a value, with the
 * credential scrubbed from any text that came back. The call says nothing to the account pool:
 * the counter has limits of its own upstream, apart from the account's message limits, so its
 * answers would mislead the pool's view of the account.
 */
export interface CountTokensCallRequest {
  /** The body as the client sent it: model, messages, system, tools. */
  readonly body: Uint8Array;
  readonly anthropicVersion?: string | undefined;
  readonly anthropicBeta?: string | undefined;
}

export interface CountTokensCallOptions {
  readonly signal?: AbortSignal;
  /** Headers timeout and body idle timeout, at most `countTokensTimeoutMs`. */
  readonly timeoutMs?: number;
  /** The connection pool to use; undici's global one by default. */
  readonly dispatcher?: Dispatcher;
}

export interface CountedTokens {
  readonly inputTokens: number;
  readonly requestId: string | undefined;
}

export type CountTokensCallError =
  /** The upstream answered with an error status. */
  | {
      readonly kind: 'http-status';
      readonly status: number;
      readonly errorType: string | undefined;
      readonly message: string;
      /** From `retry-after`, when the upstream sent one. */
      readonly retryAfterMs: number | undefined;
    }
  /** No usable answer: refused, reset, timed out, or a body that is not `{"input_tokens": n}`. */
  | { readonly kind: 'network' | 'timeout' | 'bad-response'; readonly detail: string }
  /** The caller's signal fired. */
  | { readonly kind: 'cancelled' }
  /** The call could not be built: a bad base URL, or a credential or header HTTP forbids. */
  | { readonly kind: 'invalid-request'; readonly detail: string };

export const countTokensPath = '/v1/messages/count_tokens';

const utf8 = new TextDecoder();

export async function countTokensCall(
  target: UpstreamTarget,
  call: CountTokensCallRequest,
  options: CountTokensCallOptions = {},
): Promise<Result<CountedTokens, CountTokensCallError>> {
  const timeoutMs = options.timeoutMs ?? countTokensTimeoutMs;
  assert(Number.isSafeInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= countTokensTimeoutMs, 'a count_tokens timeout is 1 to countTokensTimeoutMs');
  const built = buildCall(target, countTokensPath, 'application/json', call.anthropicVersion, call.anthropicBeta);
  if (!built.ok) return built;
  const { origin, path, headers } = built.value;
  let response: Dispatcher.ResponseData;
  try {
    response = await request(new URL(path, origin), {
      method: 'POST',
      headers,
      body: call.body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
    });
  } catch (error) {
    return err(failureOf(error, options.signal, target));
  }
  const read = await readBounded(response.body);
  if (!read.ok) {
    if (read.error === 'overflow') return err({ kind: 'bad-response', detail: `the answer is over ${countTokensResponseBytesMax} bytes` });
    return err(failureOf(read.error.cause, options.signal, target));
  }
  const text = redact(utf8.decode(read.value), target.credential);
  const requestId = upstreamRequestId(response.headers);
  if (response.statusCode < 200 || response.statusCode > 299) {
    const body = parseErrorBody(text);
    const retryAfterMs = parseRetryAfterMs(headerValue(response.headers, 'retry-after'), Date.now());
    return err({ kind: 'http-status', status: response.statusCode, errorType: body.errorType, message: body.message, retryAfterMs });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return err({ kind: 'bad-response', detail: 'the answer is not JSON' });
  }
  const inputTokens = typeof parsed === 'object' && parsed !== null ? (parsed as { input_tokens?: unknown }).input_tokens : undefined;
  if (typeof inputTokens !== 'number' || !isCount(inputTokens)) return err({ kind: 'bad-response', detail: 'the answer has no input_tokens count' });
  return ok({ inputTokens, requestId });
}

/** The whole body up to the bound; past it the body is destroyed and the answer refused. */
async function readBounded(body: Dispatcher.ResponseData['body']): Promise<Result<Uint8Array, 'overflow' | { readonly cause: unknown }>> {
  const parts: Buffer[] = [];
  let length = 0;
  try {
    // Bounded: every chunk adds to `length`, and the loop ends at the bound or the body's end.
    for await (const chunk of body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > countTokensResponseBytesMax) {
        body.destroy();
        return err('overflow');
      }
      parts.push(chunk);
    }
  } catch (error) {
    return err({ cause: error });
  }
  return ok(Buffer.concat(parts, length));
}

function failureOf(error: unknown, signal: AbortSignal | undefined, target: UpstreamTarget): CountTokensCallError {
  if (signal?.aborted === true) return { kind: 'cancelled' };
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const text = redact(
    `${code ?? (error instanceof Error ? error.name : 'error')}: ${error instanceof Error ? error.message : String(error)}`,
    target.credential,
  );
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return { kind: 'timeout', detail: text };
  return { kind: 'network', detail: text };
}
