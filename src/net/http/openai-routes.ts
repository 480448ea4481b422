import type { OutgoingHttpHeaders } from 'node:http';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../platform/system-clock.js';
import type { CarpoolHandler, CompleteRequest, GatewayError, SseEvent, StreamSink } from '../grpc/carpool-handler.js';
import { errorHeadersOf, type HttpExchange } from './http-exchange.js';
import type { HttpRoute } from './http-server.js';
import { httpStatusOf } from './http-status.js';
import { acceptsModel, type ModelCatalogue } from './model-catalogue.js';
import {
  type ChatContext,
  chatCompletionId,
  chatErrorBody,
  type ChatFailure,
  chatRequestToMessages,
  ChatStreamTranslator,
  messageToChatCompletion,
  translationErrorBody,
} from './openai/index.js';
import { requestUserOf } from './request-id.js';
import type { SseWriter } from './sse-writer.js';

/**
 * The OpenAI-compatible `POST /v1/chat/completions` over the carpool's request path: the body is
 * translated to the Anthropic Messages API (./openai/: what is translated, and what is refused
 * with a 400 naming the parameter, is listed in ./openai/chat-request.ts), sent through the same
 * gateway as `/v1/messages` (quotas, tiers, the pool, forwarding, settlement on every way out),
 * and the answer translated back: a `chat.completion`, or `chat.completion.chunk` SSE frames
 * ending with a usage chunk when `stream_options.include_usage` asks for one, then `[DONE]`.
 *
 * Errors use OpenAI's shape (`{"error":{"message","type","param","code"}}`) with the status and
 * retry hints of the one outcome table, as the Anthropic routes do; a failure after the stream
 * started is an `error` frame. The request id follows the Anthropic routes' rules (an
 * `Idempotency-Key`, or one the node assigns, which skips the mesh-wide claim); it also goes out
 * as `x-request-id`, which the openai SDK shows as `requestID`, and is the completion's id
 * (`chatcmpl-<request id>`). The signature of a tenant that requires one covers the body as sent.
 */
export interface OpenAiRoutesOptions {
  readonly carpool: CarpoolHandler;
  readonly models: ModelCatalogue;
  /** For the completion's `created`; the system clock by default. */
  readonly clock?: Clock;
}

export function openAiRoutes(options: OpenAiRoutesOptions): HttpRoute[] {
  return [{ method: 'POST', path: '/v1/chat/completions', handle: (exchange) => chatCompletions(exchange, options) }];
}

const fromUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

function sendFailure(exchange: HttpExchange, failure: ChatFailure, headers: OutgoingHttpHeaders = { 'x-should-retry': 'false' }): void {
  exchange.sendJson(failure.status, JSON.stringify(chatErrorBody(failure)), headers);
}

function sendGatewayError(exchange: HttpExchange, error: GatewayError): void {
  const status = httpStatusOf(error);
  sendFailure(exchange, { status: status.status, message: status.message, ...codeOf(error) }, errorHeadersOf(status));
}

/** The codes OpenAI clients branch on, where a refusal has one. */
function codeOf(error: GatewayError): { code?: string } {
  if (error.kind !== 'rejected') return {};
  const kind = error.rejection.kind;
  if (kind === 'quota' || kind === 'exceeds-limit') return { code: 'insufficient_quota' };
  if (kind === 'rate') return { code: 'rate_limit_exceeded' };
  return {};
}

async function chatCompletions(exchange: HttpExchange, options: OpenAiRoutesOptions): Promise<void> {
  const contentType = exchange.req.headers['content-type'];
  if (contentType?.split(';')[0]?.trim().toLowerCase() !== 'application/json') {
    return sendFailure(exchange, { status: 415, message: 'content-type must be application/json' }, { 'x-should-retry': 'false', connection: 'close' });
  }
  const read = await exchange.readBody();
  if (read.kind !== 'ok') return;
  let body: unknown;
  try {
    body = JSON.parse(fromUtf8.decode(read.bytes));
  } catch {
    return sendFailure(exchange, { status: 400, message: 'the request body is not UTF-8 JSON' });
  }
  const translated = chatRequestToMessages(body);
  if (!translated.ok) return exchange.sendJson(400, JSON.stringify(translationErrorBody(translated.error)), { 'x-should-retry': 'false' });
  const { messagesBody, model, stream, includeUsage, endUser } = translated.value;
  if (!acceptsModel(options.models, model)) {
    return sendFailure(exchange, {
      status: 404,
      message: `The model \`${model.slice(0, 128)}\` is not served here (GET /v1/models lists the models that are)`,
      param: 'model',
      code: 'model_not_found',
    });
  }
  const id = exchange.requestId;
  if (id.kind === 'bad-key') return sendFailure(exchange, { status: 400, message: id.reason });
  const credentials = exchange.credentials();
  if (!credentials.ok) return sendGatewayError(exchange, { kind: 'rejected', rejection: { kind: 'unauthenticated', reason: credentials.error } });
  const user = requestUserOf(endUser);
  if (!user.ok) return sendFailure(exchange, { status: 400, message: 'user must be a string', param: 'user' });
  const request: CompleteRequest = {
    requestId: id.id,
    requestJson: utf8.encode(JSON.stringify(messagesBody)),
    anthropicVersion: '',
    anthropicBeta: '',
    user: user.value ?? '',
    requestIdAssigned: id.kind === 'assigned',
  };
  exchange.setHeaders({ 'x-request-id': id.id });
  const context: ChatContext = { id: chatCompletionId(id.id), created: Math.floor((options.clock ?? systemClock).nowMs() / 1000), model, includeUsage };
  const call = exchange.carpoolCall(request, read.bytes, credentials.value);
  if (!stream) {
    const result = await options.carpool.complete(call);
    if (!result.ok) return sendGatewayError(exchange, result.error);
    const completion = messageToChatCompletion(result.value.messageJson, context);
    if (!completion.ok) return sendFailure(exchange, { status: 502, message: `the upstream's answer could not be read: ${completion.error.detail}` });
    return exchange.sendJson(200, JSON.stringify(completion.value), { 'carpool-served-region': result.value.servedRegion });
  }
  const writer = exchange.sse();
  const translator = new ChatStreamTranslator(context);
  const result = await options.carpool.streamComplete(call, new ChatSseSink(writer, translator));
  if (!result.ok && !writer.started) {
    writer.finish();
    return sendGatewayError(exchange, result.error);
  }
  const status = result.ok ? undefined : httpStatusOf(result.error);
  const tail = status === undefined ? translator.end() : translator.error({ status: status.status, message: status.message });
  try {
    // The usage chunk and [DONE] (or the error frame); a replay without kept events opens the head here.
    for (const frame of tail) await writer.write(frame);
  } catch {
    // The client left: the call was already settled; nobody reads the end.
  }
  writer.finish();
  exchange.end();
}

/** Translates each upstream event into chunk frames, each write awaited (backpressure). */
class ChatSseSink implements StreamSink {
  constructor(
    private readonly writer: SseWriter,
    private readonly translator: ChatStreamTranslator,
  ) {}

  async send(event: SseEvent): Promise<void> {
    for (const frame of this.translator.push({ type: event.type, data: event.dataJson })) await this.writer.write(frame);
  }
}
