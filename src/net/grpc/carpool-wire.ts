import { assert, isCount } from '../../core/assert.js';
import { err, ok, type Result } from '../../core/result.js';
import type {
  CompleteRequest,
  CompleteResponse,
  Consistency,
  CountTokensRequest,
  CountTokensResponse,
  CreateApiKeyRequest,
  CreateApiKeyResponse,
  EnableAccountRequest,
  EnableAccountResponse,
  GetUsageRequest,
  GetUsageResponse,
  InvalidRequest,
  LimitUsage,
  PolicyJson,
  PutSubjectRequest,
  RemoveSubjectRequest,
  RemoveSubjectResponse,
  StreamEvent,
  StreamSummary,
  Usage,
} from './carpool-handler.js';

/**
 * The messages of proto/carpool/v1/carpool.proto as @grpc/proto-loader hands them over with the
 * options of ./carpool-proto.ts (field names as in the .proto, `uint64` as number, enums as their
 * names, defaults filled in, a oneof's case in a virtual field), and the translation between
 * them and the handler's types (./carpool-handler.ts), both ways: the server decodes requests and
 * encodes responses, the client the reverse.
 *
 * Decoders take what the library produced, so they trust its shapes; message-valued fields may
 * still be null (absent on the wire). Encoders check what the node produced: a count that is not
 * a non-negative safe integer would be encoded as garbage, so it fails an assertion (a bug in the
 * handler, answered INTERNAL by the server).
 */

export interface WireUsage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_input_tokens: number;
  readonly cache_read_input_tokens: number;
}

export interface WireCompleteRequest {
  readonly request_id: string;
  readonly request_json: Uint8Array;
  readonly anthropic_version: string;
  readonly anthropic_beta: string;
  readonly user: string;
}

export interface WireCompleteResponse {
  readonly request_id: string;
  readonly message_json: Uint8Array;
  readonly usage: WireUsage | null;
  readonly served_region: string;
}

export interface WireSseEvent {
  readonly type: string;
  readonly data_json: Uint8Array;
}

export interface WireStreamSummary {
  readonly request_id: string;
  readonly usage: WireUsage | null;
  readonly served_region: string;
}

/** Encoders set one case of the oneof; the decoder also sees `body`, the case that was set. */
export interface WireStreamEvent {
  readonly event?: WireSseEvent | null;
  readonly summary?: WireStreamSummary | null;
  readonly body?: 'event' | 'summary';
}

export interface WireCountTokensRequest {
  readonly request_json: Uint8Array;
  readonly anthropic_version: string;
  readonly anthropic_beta: string;
}

export interface WireCountTokensResponse {
  readonly input_tokens: number;
}

/** An enum arrives as its name, or as its number when this version does not know it. */
export interface WireGetUsageRequest {
  readonly consistency: string | number;
  readonly user: string;
}

export interface WireLimitUsage {
  readonly scope: string;
  readonly metric: string;
  readonly window: string;
  readonly sliding: boolean;
  readonly mode: string;
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resets_at_ms: number;
}

export interface WireGetUsageResponse {
  readonly tenant: string;
  readonly limits: readonly WireLimitUsage[];
  readonly last_minute: WireUsage | null;
}

export type WireGetPolicyRequest = Readonly<Record<string, never>>;

export interface WirePolicyJson {
  readonly json: Uint8Array;
}

export interface WirePutSubjectRequest {
  readonly id: string;
  readonly json: Uint8Array;
}

export interface WireRemoveSubjectRequest {
  readonly id: string;
}

export interface WireRemoveSubjectResponse {
  readonly removed: boolean;
}

export interface WireCreateApiKeyRequest {
  readonly tenant: string;
}

export interface WireCreateApiKeyResponse {
  readonly api_key: string;
  readonly key_id: string;
}

export interface WireEnableAccountRequest {
  readonly account: string;
}

export interface WireEnableAccountResponse {
  readonly enabled: boolean;
}

// ---- Usage ----

const zeroUsage: Usage = Object.freeze({ inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 });

export function encodeUsage(usage: Usage): WireUsage {
  assertCount(usage.inputTokens, 'usage.input_tokens');
  assertCount(usage.outputTokens, 'usage.output_tokens');
  assertCount(usage.cacheCreationInputTokens, 'usage.cache_creation_input_tokens');
  assertCount(usage.cacheReadInputTokens, 'usage.cache_read_input_tokens');
  return {
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: usage.cacheCreationInputTokens,
    cache_read_input_tokens: usage.cacheReadInputTokens,
  };
}

export function decodeUsage(wire: WireUsage | null | undefined): Usage {
  if (wire === null || wire === undefined) return zeroUsage;
  return {
    inputTokens: wire.input_tokens,
    outputTokens: wire.output_tokens,
    cacheCreationInputTokens: wire.cache_creation_input_tokens,
    cacheReadInputTokens: wire.cache_read_input_tokens,
  };
}

// ---- Complete and StreamComplete ----

export function decodeCompleteRequest(wire: WireCompleteRequest): CompleteRequest {
  return {
    requestId: wire.request_id,
    requestJson: wire.request_json,
    anthropicVersion: wire.anthropic_version,
    anthropicBeta: wire.anthropic_beta,
    user: wire.user,
  };
}

export function encodeCompleteRequest(request: CompleteRequest): WireCompleteRequest {
  return {
    request_id: request.requestId,
    request_json: request.requestJson,
    anthropic_version: request.anthropicVersion,
    anthropic_beta: request.anthropicBeta,
    user: request.user,
  };
}

export function encodeCompleteResponse(response: CompleteResponse): WireCompleteResponse {
  return {
    request_id: response.requestId,
    message_json: response.messageJson,
    usage: encodeUsage(response.usage),
    served_region: response.servedRegion,
  };
}

export function decodeCompleteResponse(wire: WireCompleteResponse): CompleteResponse {
  return {
    requestId: wire.request_id,
    messageJson: wire.message_json,
    usage: decodeUsage(wire.usage),
    servedRegion: wire.served_region,
  };
}

export function encodeStreamEvent(event: StreamEvent): WireStreamEvent {
  if (event.kind === 'event') return { event: { type: event.event.type, data_json: event.event.dataJson } };
  return { summary: encodeStreamSummary(event.summary) };
}

function encodeStreamSummary(summary: StreamSummary): WireStreamSummary {
  return { request_id: summary.requestId, usage: encodeUsage(summary.usage), served_region: summary.servedRegion };
}

/** A stream message with neither case set (a server of a newer contract, say) is `undefined`. */
export function decodeStreamEvent(wire: WireStreamEvent): StreamEvent | undefined {
  if (wire.body === 'event' && wire.event) {
    return { kind: 'event', event: { type: wire.event.type, dataJson: wire.event.data_json } };
  }
  if (wire.body === 'summary' && wire.summary) {
    const summary = wire.summary;
    return { kind: 'summary', summary: { requestId: summary.request_id, usage: decodeUsage(summary.usage), servedRegion: summary.served_region } };
  }
  return undefined;
}

// ---- CountTokens ----

export function decodeCountTokensRequest(wire: WireCountTokensRequest): CountTokensRequest {
  return { requestJson: wire.request_json, anthropicVersion: wire.anthropic_version, anthropicBeta: wire.anthropic_beta };
}

export function encodeCountTokensRequest(request: CountTokensRequest): WireCountTokensRequest {
  return { request_json: request.requestJson, anthropic_version: request.anthropicVersion, anthropic_beta: request.anthropicBeta };
}

export function encodeCountTokensResponse(response: CountTokensResponse): WireCountTokensResponse {
  assertCount(response.inputTokens, 'input_tokens');
  return { input_tokens: response.inputTokens };
}

export function decodeCountTokensResponse(wire: WireCountTokensResponse): CountTokensResponse {
  return { inputTokens: wire.input_tokens };
}

// ---- GetUsage ----

const consistencyOfWire: Readonly<Record<string, Consistency>> = Object.freeze({
  CONSISTENCY_UNSPECIFIED: 'unspecified',
  CONSISTENCY_LOCAL: 'local',
  CONSISTENCY_QUORUM: 'quorum',
});

const wireOfConsistency: Readonly<Record<Consistency, string>> = Object.freeze({
  unspecified: 'CONSISTENCY_UNSPECIFIED',
  local: 'CONSISTENCY_LOCAL',
  quorum: 'CONSISTENCY_QUORUM',
});

/** Refuses an enum value this version does not know: proto3 enums are open, the handler's are not. */
export function decodeGetUsageRequest(wire: WireGetUsageRequest): Result<GetUsageRequest, InvalidRequest> {
  const consistency = typeof wire.consistency === 'string' && Object.hasOwn(consistencyOfWire, wire.consistency) ? consistencyOfWire[wire.consistency] : undefined;
  if (consistency === undefined) return err({ kind: 'invalid', field: 'consistency', reason: `unknown value ${String(wire.consistency)}` });
  return ok({ consistency, user: wire.user });
}

export function encodeGetUsageRequest(request: GetUsageRequest): WireGetUsageRequest {
  return { consistency: wireOfConsistency[request.consistency], user: request.user };
}

export function encodeGetUsageResponse(response: GetUsageResponse): WireGetUsageResponse {
  return { tenant: response.tenant, limits: response.limits.map(encodeLimitUsage), last_minute: encodeUsage(response.lastMinute) };
}

function encodeLimitUsage(limit: LimitUsage): WireLimitUsage {
  assertCount(limit.limit, 'limits.limit');
  assertCount(limit.used, 'limits.used');
  assertCount(limit.remaining, 'limits.remaining');
  assertCount(limit.resetsAtMs, 'limits.resets_at_ms');
  return {
    scope: limit.scope,
    metric: limit.metric,
    window: limit.window,
    sliding: limit.sliding,
    mode: limit.mode,
    limit: limit.limit,
    used: limit.used,
    remaining: limit.remaining,
    resets_at_ms: limit.resetsAtMs,
  };
}

export function decodeGetUsageResponse(wire: WireGetUsageResponse): GetUsageResponse {
  return {
    tenant: wire.tenant,
    limits: wire.limits.map((limit) => ({
      scope: limit.scope,
      metric: limit.metric,
      window: limit.window,
      sliding: limit.sliding,
      mode: limit.mode,
      limit: limit.limit,
      used: limit.used,
      remaining: limit.remaining,
      resetsAtMs: limit.resets_at_ms,
    })),
    lastMinute: decodeUsage(wire.last_minute),
  };
}

// ---- Admin ----

export function decodePutSubjectRequest(wire: WirePutSubjectRequest): PutSubjectRequest {
  return { id: wire.id, json: wire.json };
}

export function decodeRemoveSubjectRequest(wire: WireRemoveSubjectRequest): RemoveSubjectRequest {
  return { id: wire.id };
}

export function decodeCreateApiKeyRequest(wire: WireCreateApiKeyRequest): CreateApiKeyRequest {
  return { tenant: wire.tenant };
}

export function decodeEnableAccountRequest(wire: WireEnableAccountRequest): EnableAccountRequest {
  return { account: wire.account };
}

export function encodePolicyJson(policy: PolicyJson): WirePolicyJson {
  return { json: policy.json };
}

export function encodeRemoveSubjectResponse(response: RemoveSubjectResponse): WireRemoveSubjectResponse {
  return { removed: response.removed };
}

export function encodeCreateApiKeyResponse(response: CreateApiKeyResponse): WireCreateApiKeyResponse {
  return { api_key: response.apiKey, key_id: response.keyId };
}

export function encodeEnableAccountResponse(response: EnableAccountResponse): WireEnableAccountResponse {
  return { enabled: response.enabled };
}

function assertCount(value: number, field: string): void {
  assert(isCount(value), `${field} is a non-negative safe integer`);
}
