import type { TenantId } from '../../core/ids.js';
import type { Result } from '../../core/result.js';
import type { CarpoolCall, CarpoolHandler, CompleteRequest, GatewayError } from '../grpc/carpool-handler.js';
import { singleHeader } from './http-credentials.js';
import type { HttpExchange } from './http-exchange.js';
import type { HttpRoute } from './http-server.js';
import { httpStatusOf } from './http-status.js';
import { anthropicErrorEvent } from './anthropic-error.js';
import { acceptsModel, type ModelCatalogue, modelJson, modelPage } from './model-catalogue.js';
import { requestUserOf } from './request-id.js';
import { AnthropicSseSink } from './sse-writer.js';

/**
 * The Anthropic Messages API as Claude Code and the official SDKs call it, over the carpool's
 * request path:
 *
 *   POST /v1/messages                JSON; SSE when the body has `"stream": true`
 *   POST /v1/messages/count_tokens   {"input_tokens": n}
 *   GET  /v1/models                  the models of the node's catalogue (./model-catalogue.ts), paged
 *   GET  /v1/models/{id}             one of them, or 404
 *
 * Query strings (`?beta=true`) are accepted and ignored. `anthropic-version` and `anthropic-beta`
 * (every value, joined by commas) pass through to the upstream; `x-app`, `user-agent`,
 * `x-stainless-*` and other headers are tolerated and not passed on. `metadata.user_id` of the
 * body is the request's user for per-user limits (./request-id.ts `requestUserOf`). Every check
 * of the content (JSON, model, max_tokens, messages, sizes) is the gateway's, as for gRPC; this
 * file refuses only what it must read itself: the content type (415), the body's size (413, in the
 * exchange), an unusable `Idempotency-Key` (400), a model outside an exact catalogue (404).
 *
 * A completion's answer is the upstream's message JSON, or its SSE events in the upstream's bytes,
 * with `request-id` and the client's quota headers (./quota-headers.ts); nothing of the upstream's
 * response head (its request id, its `anthropic-ratelimit-*`) is passed on. A stream that fails
 * after its first event ends with an SSE `error` event; one that fails before is a plain error
 * response. A client that goes away is the gateway's cancel: the call is drained and settled.
 */
export interface AnthropicRoutesOptions {
  readonly carpool: CarpoolHandler;
  /** Authenticates a call that reaches no upstream (the model list): the tenant, or the refusal. */
  readonly identify: (call: CarpoolCall<unknown>) => Result<TenantId, GatewayError>;
  readonly models: ModelCatalogue;
}

export function anthropicRoutes(options: AnthropicRoutesOptions): HttpRoute[] {
  return [
    { method: 'POST', path: '/v1/messages', handle: (exchange) => messages(exchange, options) },
    { method: 'POST', path: '/v1/messages/count_tokens', handle: (exchange) => countTokens(exchange, options) },
    { method: 'GET', path: '/v1/models', handle: (exchange) => listModels(exchange, options) },
    { method: 'GET', path: '/v1/models/{id}', handle: (exchange) => getModel(exchange, options) },
  ];
}

/** What the front door reads of a Messages body; the gateway parses and judges the rest. */
interface BodyPeek {
  readonly stream: boolean;
  readonly model: unknown;
  readonly userId: unknown;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The fields the front door needs, or undefined when the body is no JSON object (the gateway then says why). */
function peek(bytes: Uint8Array): BodyPeek | undefined {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const body = value as Record<string, unknown>;
  const metadata = body.metadata;
  const userId = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).user_id : undefined;
  return { stream: body.stream === true, model: body.model, userId };
}

/** The common start of the two POST routes: content type, body, headers. Answers and returns undefined on a refusal. */
async function readPost(
  exchange: HttpExchange,
  models: ModelCatalogue,
): Promise<{ body: Uint8Array; peeked: BodyPeek | undefined; version: string; beta: string } | undefined> {
  if (!isJson(exchange.req.headers['content-type'])) {
    // The body is not read: the connection closes after the answer.
    exchange.sendError(415, 'content-type must be application/json', { connection: 'close' });
    return undefined;
  }
  const read = await exchange.readBody();
  if (read.kind !== 'ok') return undefined;
  const version = singleHeader(exchange.req.headersDistinct, 'anthropic-version');
  if (!version.ok) {
    exchange.sendError(400, 'anthropic-version was sent more than once');
    return undefined;
  }
  const peeked = peek(read.bytes);
  if (peeked !== undefined && typeof peeked.model === 'string' && !acceptsModel(models, peeked.model)) {
    exchange.sendError(404, `model: ${peeked.model.slice(0, 128)} is not served here (GET /v1/models lists the models that are)`);
    return undefined;
  }
  // Several anthropic-beta headers are one list, as the API reads them.
  const beta = (exchange.req.headersDistinct['anthropic-beta'] ?? []).join(',');
  return { body: read.bytes, peeked, version: version.value ?? '', beta };
}

async function messages(exchange: HttpExchange, options: AnthropicRoutesOptions): Promise<void> {
  const post = await readPost(exchange, options.models);
  if (post === undefined) return;
  const id = exchange.requestId;
  if (id.kind === 'bad-key') return exchange.sendError(400, id.reason);
  const credentials = exchange.credentials();
  if (!credentials.ok) return exchange.sendCredentialsRefusal(credentials.error);
  const user = requestUserOf(post.peeked?.userId);
  if (!user.ok) return exchange.sendError(400, 'metadata.user_id must be a string');
  const request: CompleteRequest = {
    requestId: id.id,
    requestJson: post.body,
    anthropicVersion: post.version,
    anthropicBeta: post.beta,
    user: user.value ?? '',
    requestIdAssigned: id.kind === 'assigned',
  };
  const call = exchange.carpoolCall(request, post.body, credentials.value);
  if (post.peeked?.stream !== true) {
    const result = await options.carpool.complete(call);
    if (!result.ok) return exchange.sendGatewayError(result.error);
    return exchange.sendJson(200, result.value.messageJson, { 'carpool-served-region': result.value.servedRegion });
  }
  const writer = exchange.sse();
  const result = await options.carpool.streamComplete(call, new AnthropicSseSink(writer));
  writer.finish();
  if (result.ok) {
    // A replayed stream whose events were not kept has none: the head still goes out.
    if (!writer.started && !exchange.res.destroyed) exchange.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    return exchange.end();
  }
  if (!writer.started) return exchange.sendGatewayError(result.error);
  const status = httpStatusOf(result.error);
  if (!exchange.res.destroyed) exchange.res.write(anthropicErrorEvent(status.status, status.message));
  exchange.end();
}

async function countTokens(exchange: HttpExchange, options: AnthropicRoutesOptions): Promise<void> {
  const post = await readPost(exchange, options.models);
  if (post === undefined) return;
  const credentials = exchange.credentials();
  if (!credentials.ok) return exchange.sendCredentialsRefusal(credentials.error);
  const call = exchange.carpoolCall({ requestJson: post.body, anthropicVersion: post.version, anthropicBeta: post.beta }, post.body, credentials.value);
  const result = await options.carpool.countTokens(call);
  if (!result.ok) return exchange.sendGatewayError(result.error);
  exchange.sendJson(200, JSON.stringify({ input_tokens: result.value.inputTokens }));
}

/** Authenticates a GET (its signature covers an empty body); answers the refusal itself. */
function identified(exchange: HttpExchange, options: AnthropicRoutesOptions): boolean {
  const credentials = exchange.credentials();
  if (!credentials.ok) {
    exchange.sendCredentialsRefusal(credentials.error);
    return false;
  }
  const tenant = options.identify(exchange.carpoolCall(undefined, new Uint8Array(0), credentials.value));
  if (!tenant.ok) exchange.sendGatewayError(tenant.error);
  return tenant.ok;
}

function listModels(exchange: HttpExchange, options: AnthropicRoutesOptions): Promise<void> {
  if (!identified(exchange, options)) return Promise.resolve();
  const page = modelPage(options.models, exchange.url.searchParams);
  if (page.ok) exchange.sendJson(200, page.body);
  else exchange.sendError(400, page.message);
  return Promise.resolve();
}

function getModel(exchange: HttpExchange, options: AnthropicRoutesOptions): Promise<void> {
  if (!identified(exchange, options)) return Promise.resolve();
  const id = exchange.params.id ?? '';
  const model = options.models.models.find((entry) => entry.id === id);
  if (model === undefined) exchange.sendError(404, `model: ${id.slice(0, 128)} is not served here (GET /v1/models lists the models that are)`);
  else exchange.sendJson(200, JSON.stringify(modelJson(model)));
  return Promise.resolve();
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return contentType.split(';')[0]?.trim().toLowerCase() === 'application/json';
}
