import type { TokenUsage } from '../../admission/estimate.js';
import { type AccountId, isValidId, type NodeId, type RegionId, type RequestId, type TenantId } from '../../core/ids.js';
import { unifiedUtilizationMax, upstreamRequestIdLengthMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import {
  type AccountFeedback,
  type RateLimitSnapshot,
  type RateLimitWindow,
  type UnifiedLimits,
  type UnifiedStatus,
  type UnifiedWindow,
  unifiedWindowNames,
} from '../../pool/account-feedback.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import { type ForwardOutcome, forwardOutcomes, type ForwardProof, type ForwardRequest, type ForwardResult } from './forward-handler.js';

/**
 * carpool.mesh.v1.Forward messages as @grpc/proto-loader hands them over (keepCase, the options
 * of ./carpool-proto.ts), and their translation to the plain values of ./forward-handler.ts.
 * Both ends are mesh members, but a decoder still checks every field: a member running another
 * version, or a bug, must not put a bad value into the pool or the counters.
 */
export interface WireForwardRequest {
  readonly request_id: string;
  readonly account_id: string;
  readonly tenant: string;
  readonly request_json: Uint8Array;
  readonly anthropic_version: string;
  readonly anthropic_beta: string;
  readonly stream: boolean;
  readonly origin_region: string;
  readonly abort_on_cancel: boolean;
}

export interface WireForwardUsage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_input_tokens: number;
  readonly cache_read_input_tokens: number;
}

export interface WireForwardResult {
  readonly outcome: string;
  readonly usage: WireForwardUsage | null | undefined;
  readonly feedback_json: Uint8Array;
  readonly message_json: Uint8Array;
  readonly upstream_request_id: string;
  readonly status: number;
  readonly error_type: string;
  readonly detail: string;
  readonly cancelled: boolean;
  readonly replayed: boolean;
  readonly served_region: string;
  readonly settled_elsewhere: boolean;
  readonly estimated: boolean;
}

export interface WireForwardReply {
  readonly event?: { readonly type: string; readonly data_json: Uint8Array } | null;
  readonly result?: WireForwardResult | null;
  readonly body?: 'event' | 'result';
}

export interface WireProblem {
  readonly field: string;
  readonly reason: string;
}

export type ForwardReplyValue = { readonly kind: 'event'; readonly event: SseEvent } | { readonly kind: 'result'; readonly result: ForwardResult };

/** Metadata keys of the member proof. */
export const memberKey = 'x-carpool-member';
export const memberTimestampKey = 'x-carpool-member-timestamp';
export const memberMacKey = 'x-carpool-member-mac';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const empty = new Uint8Array(0);

export function encodeForwardRequest(request: ForwardRequest): WireForwardRequest {
  return {
    request_id: request.requestId,
    account_id: request.accountId,
    tenant: request.tenant,
    request_json: request.requestJson,
    anthropic_version: request.anthropicVersion ?? '',
    anthropic_beta: request.anthropicBeta ?? '',
    stream: request.stream,
    origin_region: request.originRegion,
    abort_on_cancel: request.abortOnCancel,
  };
}

export function decodeForwardRequest(wire: WireForwardRequest): Result<ForwardRequest, WireProblem> {
  for (const field of ['request_id', 'account_id', 'tenant', 'origin_region'] as const) {
    if (!isValidId(wire[field])) return err({ field, reason: 'must be a printable ASCII id' });
  }
  if (wire.request_json.length === 0) return err({ field: 'request_json', reason: 'must not be empty' });
  return ok({
    requestId: wire.request_id as RequestId,
    accountId: wire.account_id as AccountId,
    tenant: wire.tenant as TenantId,
    requestJson: wire.request_json,
    anthropicVersion: wire.anthropic_version === '' ? undefined : wire.anthropic_version,
    anthropicBeta: wire.anthropic_beta === '' ? undefined : wire.anthropic_beta,
    stream: wire.stream,
    originRegion: wire.origin_region as RegionId,
    // A member of an older version sends none, which reads as false: drain, the default.
    abortOnCancel: wire.abort_on_cancel === true,
  });
}

export function decodeForwardProof(member: string | undefined, timestamp: string | undefined, mac: string | undefined): Result<ForwardProof, WireProblem> {
  if (member === undefined || !isValidId(member)) return err({ field: memberKey, reason: 'missing or not a member id' });
  if (timestamp === undefined || !/^\d{1,16}$/.test(timestamp)) return err({ field: memberTimestampKey, reason: 'missing or not Unix milliseconds' });
  if (mac === undefined || !/^[0-9a-f]{64}$/.test(mac)) return err({ field: memberMacKey, reason: 'missing or not 64 lowercase hex digits' });
  return ok({ member: member as NodeId, timestampMs: Number(timestamp), mac });
}

export function encodeForwardEvent(event: SseEvent): WireForwardReply {
  return { event: { type: event.event, data_json: utf8.encode(event.data) } };
}

export function encodeForwardResult(result: ForwardResult): WireForwardReply {
  return {
    result: {
      outcome: result.outcome,
      usage: {
        input_tokens: result.usage.input,
        output_tokens: result.usage.output,
        cache_creation_input_tokens: result.usage.cacheWrite,
        cache_read_input_tokens: result.usage.cacheRead,
      },
      feedback_json: result.feedback === undefined ? empty : utf8.encode(JSON.stringify(result.feedback)),
      message_json: result.messageJson ?? empty,
      upstream_request_id: result.upstreamRequestId ?? '',
      status: result.status,
      error_type: result.errorType,
      detail: result.detail,
      cancelled: result.cancelled,
      replayed: result.replayed,
      served_region: result.servedRegion,
      settled_elsewhere: result.settledElsewhere,
      estimated: result.estimated,
    },
  };
}

export function decodeForwardReply(wire: WireForwardReply): Result<ForwardReplyValue, WireProblem> {
  if (wire.event !== undefined && wire.event !== null) {
    let data: string;
    try {
      data = utf8Decoder.decode(wire.event.data_json);
    } catch {
      return err({ field: 'event.data_json', reason: 'not UTF-8' });
    }
    if (wire.event.type === '') return err({ field: 'event.type', reason: 'must not be empty' });
    return ok({ kind: 'event', event: { event: wire.event.type, data, id: undefined } });
  }
  const result = wire.result;
  if (result === undefined || result === null) return err({ field: 'body', reason: 'neither an event nor a result' });
  if (!(forwardOutcomes as readonly string[]).includes(result.outcome)) return err({ field: 'result.outcome', reason: `unknown outcome "${result.outcome}"` });
  const usage = decodeUsage(result.usage);
  if (usage === undefined) return err({ field: 'result.usage', reason: 'token counts must be non-negative integers' });
  let feedback: AccountFeedback | undefined;
  if (result.feedback_json.length > 0) {
    feedback = decodeFeedback(result.feedback_json);
    if (feedback === undefined) return err({ field: 'result.feedback_json', reason: 'not an account feedback value' });
  }
  if (!isValidId(result.served_region)) return err({ field: 'result.served_region', reason: 'must be a region id' });
  if (result.upstream_request_id.length > upstreamRequestIdLengthMax) return err({ field: 'result.upstream_request_id', reason: 'too long' });
  if (!Number.isInteger(result.status) || result.status < 0 || result.status > 599) return err({ field: 'result.status', reason: 'not an HTTP status' });
  return ok({
    kind: 'result',
    result: {
      outcome: result.outcome as ForwardOutcome,
      usage,
      feedback,
      messageJson: result.message_json.length === 0 ? undefined : result.message_json,
      upstreamRequestId: result.upstream_request_id === '' ? undefined : result.upstream_request_id,
      status: result.status,
      errorType: result.error_type,
      detail: result.detail,
      cancelled: result.cancelled,
      replayed: result.replayed,
      servedRegion: result.served_region as RegionId,
      settledElsewhere: result.settled_elsewhere,
      estimated: result.estimated === true,
    },
  });
}

function decodeUsage(usage: WireForwardUsage | null | undefined): TokenUsage | undefined {
  if (usage === null || usage === undefined) return { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 };
  const values = [usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens];
  if (!values.every((value) => Number.isSafeInteger(value) && value >= 0)) return undefined;
  return { input: usage.input_tokens, output: usage.output_tokens, cacheWrite: usage.cache_creation_input_tokens, cacheRead: usage.cache_read_input_tokens };
}

/** An `AccountFeedback` from its JSON form, checked field by field; undefined when it is not one. */
export function decodeFeedback(bytes: Uint8Array): AccountFeedback | undefined {
  let value: unknown;
  try {
    value = JSON.parse(utf8Decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  switch (value.kind) {
    case 'success': {
      const rateLimits = decodeRateLimits(value.rateLimits);
      return rateLimits === undefined ? undefined : { kind: 'success', rateLimits };
    }
    case 'rate-limited': {
      const rateLimits = decodeRateLimits(value.rateLimits);
      const retryAfterMs = value.retryAfterMs;
      if (rateLimits === undefined || !(retryAfterMs === undefined || isCount(retryAfterMs))) return undefined;
      return { kind: 'rate-limited', retryAfterMs, rateLimits };
    }
    case 'overloaded':
      return { kind: 'overloaded' };
    case 'auth-failed':
      return value.status === 401 || value.status === 402 || value.status === 403 ? { kind: 'auth-failed', status: value.status } : undefined;
    case 'server-error':
    case 'client-error':
      return isCount(value.status) && value.status <= 599 ? { kind: value.kind, status: value.status } : undefined;
    case 'network':
      return typeof value.detail === 'string' ? { kind: 'network', detail: value.detail.slice(0, 1_024) } : undefined;
    default:
      return undefined;
  }
}

function decodeRateLimits(value: unknown): RateLimitSnapshot | undefined {
  // JSON drops undefined fields, so a snapshot with no windows arrives as {}.
  if (!isRecord(value)) return undefined;
  const windows: Record<Exclude<keyof RateLimitSnapshot, 'unified'>, RateLimitWindow | undefined> = {
    requests: undefined,
    tokens: undefined,
    inputTokens: undefined,
    outputTokens: undefined,
  };
  for (const name of Object.keys(windows) as (keyof typeof windows)[]) {
    const window = value[name];
    if (window === undefined) continue;
    if (!isRecord(window)) return undefined;
    const fields = [window.limit, window.remaining, window.resetAtMs];
    if (!fields.every((field) => field === undefined || (typeof field === 'number' && Number.isFinite(field) && field >= 0))) return undefined;
    windows[name] = {
      limit: window.limit as number | undefined,
      remaining: window.remaining as number | undefined,
      resetAtMs: window.resetAtMs as number | undefined,
    };
  }
  if (value.unified === undefined) return { ...windows, unified: undefined };
  const unified = decodeUnified(value.unified);
  return unified === undefined ? undefined : { ...windows, unified };
}

/**
 * The subscription windows, checked as the header parser would have made them: a known status,
 * a utilisation within its bound, resets as times, and only the two known windows. A value the
 * parser could not have produced refuses the whole feedback, as a bad limit window does.
 */
function decodeUnified(value: unknown): UnifiedLimits | undefined {
  if (!isRecord(value) || !isUnifiedStatus(value.status) || !isOptionalTime(value.resetAtMs)) return undefined;
  const given = value.windows;
  if (!isRecord(given) || !Object.keys(given).every((name) => (unifiedWindowNames as readonly string[]).includes(name))) return undefined;
  const windows: Record<(typeof unifiedWindowNames)[number], UnifiedWindow | undefined> = { 'five-hour': undefined, 'seven-day': undefined };
  for (const name of unifiedWindowNames) {
    const window = given[name];
    if (window === undefined) continue;
    if (!isRecord(window) || !isUnifiedStatus(window.status) || !isOptionalTime(window.resetAtMs)) return undefined;
    const utilization = window.utilization;
    if (!(utilization === undefined || (typeof utilization === 'number' && utilization >= 0 && utilization <= unifiedUtilizationMax))) return undefined;
    windows[name] = { status: window.status, utilization, resetAtMs: window.resetAtMs };
  }
  return { status: value.status, resetAtMs: value.resetAtMs, windows };
}

function isUnifiedStatus(value: unknown): value is UnifiedStatus | undefined {
  return value === undefined || value === 'allowed' || value === 'allowed_warning' || value === 'rejected';
}

function isOptionalTime(value: unknown): value is number | undefined {
  return value === undefined || isCount(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
