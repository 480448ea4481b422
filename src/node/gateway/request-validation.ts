import { isValidId, type RequestId } from '../../core/ids.js';
import { gatewayMaxTokensMax, gatewayRequestJsonBytesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CompleteRequest, CountTokensRequest, InvalidRequest } from '../../net/grpc/carpool-handler.js';
import { inputTokensUpperBound } from './request-amounts.js';

/**
 * What the gateway checks in a request before anything else, so that every surface applies the
 * same rules (carpool-handler.ts leaves content to the handler). Errors name the field by its
 * proto name, and a field inside the JSON by its path below it, such as
 * `request_json.max_tokens`, so a client can fix the request from the status message alone.
 *
 * Only what admission itself needs is checked: the request id (the key of reservations and
 * settlement), the JSON shape, `model`, `max_tokens` (the output part of the estimate) and
 * `messages`. Everything else is the upstream's to judge; its 400 passes its own message on.
 *
 * The two parts of the estimate are bounded here, each by a named bound the message states: the
 * body's bytes (`gatewayRequestJsonBytesMax`, the input part) and `max_tokens`
 * (`gatewayMaxTokensMax`). Past them a request is malformed, not over quota: no wait would let it
 * through, so it must not get RESOURCE_EXHAUSTED and a retry hint.
 */
export interface CompletionInput {
  readonly requestId: RequestId;
  /** The parsed Messages body, passed to the upstream as given (the method decides `stream`). */
  readonly body: Readonly<Record<string, unknown>>;
  readonly maxTokens: number;
  /** The end user within the tenant, or undefined when the client named none. */
  readonly user: string | undefined;
  readonly anthropicVersion: string | undefined;
  readonly anthropicBeta: string | undefined;
  /** An upper bound of the request's input tokens (see ./request-amounts.ts). */
  readonly inputTokensEstimate: number;
  /** The transport made the id (carpool-handler.ts `requestIdAssigned`): not claimed, not kept. */
  readonly requestIdAssigned: boolean;
}

export interface CountTokensInput {
  readonly body: Uint8Array;
  readonly anthropicVersion: string | undefined;
  readonly anthropicBeta: string | undefined;
}

/** 1 to 64 characters of [A-Za-z0-9._:-], as the proto says; always a valid id as well. */
const requestIdPattern = /^[A-Za-z0-9._:-]{1,64}$/;
/** A header value the upstream call can carry: printable ASCII, inner spaces allowed. */
const headerValuePattern = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
/** Rejects malformed UTF-8 instead of replacing it, so a body is read exactly as sent or not at all. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

const invalid = (field: string, reason: string): Result<never, InvalidRequest> => err({ kind: 'invalid', field, reason });

/** Whether `text` may be a request id (the proto's `request_id`, an HTTP `Idempotency-Key`). */
export function isValidRequestId(text: string): boolean {
  return requestIdPattern.test(text);
}

export function parseCompleteRequest(request: CompleteRequest): Result<CompletionInput, InvalidRequest> {
  if (!requestIdPattern.test(request.requestId)) return invalid('request_id', 'must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"');
  const headers = parseHeaders(request);
  if (!headers.ok) return headers;
  if (request.user !== '' && !isValidId(request.user)) return invalid('user', 'must be 1 to 64 printable ASCII characters without spaces');
  const json = parseJsonObject(request.requestJson);
  if (!json.ok) return json;
  const body = json.value;
  if (typeof body.model !== 'string' || body.model.length === 0) return invalid('request_json.model', 'is required: a non-empty string');
  const maxTokens = body.max_tokens;
  if (typeof maxTokens !== 'number' || !Number.isSafeInteger(maxTokens) || maxTokens < 1)
    return invalid('request_json.max_tokens', 'is required: a positive integer');
  if (maxTokens > gatewayMaxTokensMax)
    return invalid('request_json.max_tokens', `is ${maxTokens}, over the bound of ${gatewayMaxTokensMax} (the largest output window of current models)`);
  if (!Array.isArray(body.messages) || body.messages.length === 0) return invalid('request_json.messages', 'is required: a non-empty array');
  return ok({
    requestId: request.requestId as RequestId,
    body,
    maxTokens,
    user: request.user === '' ? undefined : request.user,
    ...headers.value,
    inputTokensEstimate: inputTokensUpperBound(request.requestJson.length),
    requestIdAssigned: request.requestIdAssigned === true,
  });
}

export function parseCountTokensRequest(request: CountTokensRequest): Result<CountTokensInput, InvalidRequest> {
  const headers = parseHeaders(request);
  if (!headers.ok) return headers;
  const json = parseJsonObject(request.requestJson);
  if (!json.ok) return json;
  if (typeof json.value.model !== 'string' || json.value.model.length === 0) return invalid('request_json.model', 'is required: a non-empty string');
  if (!Array.isArray(json.value.messages) || json.value.messages.length === 0) return invalid('request_json.messages', 'is required: a non-empty array');
  return ok({ body: request.requestJson, ...headers.value });
}

function parseHeaders(request: {
  readonly anthropicVersion: string;
  readonly anthropicBeta: string;
}): Result<Pick<CompletionInput, 'anthropicVersion' | 'anthropicBeta'>, InvalidRequest> {
  if (request.anthropicVersion !== '' && !headerValuePattern.test(request.anthropicVersion)) return invalid('anthropic_version', 'must be printable ASCII');
  if (request.anthropicBeta !== '' && !headerValuePattern.test(request.anthropicBeta)) return invalid('anthropic_beta', 'must be printable ASCII');
  return ok({
    anthropicVersion: request.anthropicVersion === '' ? undefined : request.anthropicVersion,
    anthropicBeta: request.anthropicBeta === '' ? undefined : request.anthropicBeta,
  });
}

/**
 * The body as a JSON object. Parsing is bounded by the size check; JSON.parse of deeply nested
 * input throws a RangeError rather than overflowing, which lands in the same `invalid` answer.
 */
function parseJsonObject(bytes: Uint8Array): Result<Readonly<Record<string, unknown>>, InvalidRequest> {
  if (bytes.length === 0) return invalid('request_json', 'is required: the Messages API request body as JSON');
  if (bytes.length > gatewayRequestJsonBytesMax)
    return invalid('request_json', `is ${bytes.length} bytes, over the bound of ${gatewayRequestJsonBytesMax} bytes a request may carry`);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return invalid('request_json', 'is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return invalid('request_json', `is not JSON (${error instanceof Error ? error.message.slice(0, 200) : 'parse error'})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid('request_json', 'must be a JSON object');
  return ok(value as Readonly<Record<string, unknown>>);
}
