import { assert, isCount } from '../../core/assert.js';
import { err, ok, type Result } from '../../core/result.js';
import type { LedgerRow, UsageTotals } from '../../ledger/ledger-row.js';
import type {
  AdjustUsageRequest,
  AdjustUsageResponse,
  ApiKeyInfo,
  CompleteRequest,
  CompleteResponse,
  Consistency,
  CountTokensRequest,
  CountTokensResponse,
  CreateApiKeyRequest,
  CreateApiKeyResponse,
  EnableAccountRequest,
  EnableAccountResponse,
  GetAuditRequest,
  GetAuditResponse,
  GetUsageRequest,
  GetUsageResponse,
  InvalidRequest,
  LimitUsage,
  ListApiKeysRequest,
  ListApiKeysResponse,
  PolicyJson,
  PutSubjectRequest,
  QueryUsageRequest,
  QueryUsageResponse,
  RemoveSubjectRequest,
  RemoveSubjectResponse,
  RevokeApiKeyRequest,
  RotateApiKeyRequest,
  RotateApiKeyResponse,
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
  readonly reason: string;
}

export interface WireRemoveSubjectRequest {
  readonly id: string;
  readonly reason: string;
}

export interface WireRemoveSubjectResponse {
  readonly removed: boolean;
}

export interface WireCreateApiKeyRequest {
  readonly tenant: string;
  readonly name: string;
  readonly expires_at_ms: number;
  readonly reason: string;
}

export interface WireApiKeyInfo {
  readonly key_id: string;
  readonly name: string;
  readonly created_at_ms: number;
  readonly expires_at_ms: number;
  readonly revoked_at_ms: number;
  readonly state: string;
}

export interface WireCreateApiKeyResponse {
  readonly api_key: string;
  readonly key_id: string;
  readonly key: WireApiKeyInfo | null;
}

export interface WireListApiKeysRequest {
  readonly tenant: string;
}

export interface WireListApiKeysResponse {
  readonly keys: readonly WireApiKeyInfo[];
}

export interface WireRevokeApiKeyRequest {
  readonly key_id: string;
  readonly reason: string;
}

export interface WireRotateApiKeyRequest {
  readonly key_id: string;
  readonly grace_ms: number;
  readonly name: string;
  readonly expires_at_ms: number;
  readonly reason: string;
}

export interface WireRotateApiKeyResponse {
  readonly api_key: string;
  readonly key: WireApiKeyInfo | null;
  readonly previous: WireApiKeyInfo | null;
}

export interface WireEnableAccountRequest {
  readonly account: string;
  readonly reason: string;
}

export interface WireEnableAccountResponse {
  readonly enabled: boolean;
}

export interface WireAdjustUsageRequest {
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly window: string;
  readonly index: number;
  readonly kind: string;
  readonly amount: number;
  readonly reason: string;
}

export interface WireAdjustUsageResponse {
  readonly key: string;
  readonly kind: string;
  readonly amount: number;
  readonly before: number;
  readonly after: number;
  readonly node: string;
}

export interface WireGetAuditRequest {
  readonly limit: number;
}

export interface WireAuditEntry {
  readonly at_ms: number;
  readonly node: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly reason: string;
  readonly detail_json: Uint8Array;
}

export interface WireGetAuditResponse {
  readonly entries: readonly WireAuditEntry[];
  readonly invalid_entries: number;
}

export interface WireQueryUsageRequest {
  readonly side: string;
  readonly tenant: string;
  readonly user: string;
  readonly api_key_id: string;
  readonly model: string;
  readonly account: string;
  readonly since_ms: number;
  readonly until_ms: number;
  readonly group_by: readonly string[];
  readonly rows: number;
}

export interface WireUsageTotals {
  readonly requests: number;
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_write_tokens: number;
  readonly cache_read_tokens: number;
  readonly weighted_tokens: number;
  readonly cost_micros: number;
}

export interface WireUsageGroup {
  readonly key: Readonly<Record<string, string>>;
  readonly totals: WireUsageTotals | null;
}

export interface WireUsageRow {
  readonly request_id: string;
  readonly role: string;
  readonly tenant: string;
  readonly user: string;
  readonly api_key_id: string;
  readonly account: string;
  readonly origin_region: string;
  readonly served_region: string;
  readonly node: string;
  readonly model: string;
  readonly stream: boolean;
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_write_tokens: number;
  readonly cache_read_tokens: number;
  readonly weighted_tokens: number;
  readonly cost_micros: number;
  readonly outcome: string;
  readonly status: string;
  readonly estimated: boolean;
  readonly client_left: boolean;
  readonly drained: boolean;
  readonly charged_at_ms: number;
  readonly settled_at_ms: number;
  readonly duration_ms: number;
}

export interface WireQueryUsageResponse {
  readonly node: string;
  readonly side: string;
  readonly totals: WireUsageTotals | null;
  readonly groups: readonly WireUsageGroup[];
  readonly groups_truncated: boolean;
  readonly rows: readonly WireUsageRow[];
  readonly from_aggregates: number;
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
  const consistency =
    typeof wire.consistency === 'string' && Object.hasOwn(consistencyOfWire, wire.consistency) ? consistencyOfWire[wire.consistency] : undefined;
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
  return { id: wire.id, json: wire.json, reason: wire.reason };
}

export function decodeRemoveSubjectRequest(wire: WireRemoveSubjectRequest): RemoveSubjectRequest {
  return { id: wire.id, reason: wire.reason };
}

export function decodeCreateApiKeyRequest(wire: WireCreateApiKeyRequest): CreateApiKeyRequest {
  return { tenant: wire.tenant, name: wire.name, expiresAtMs: wire.expires_at_ms, reason: wire.reason };
}

export function decodeListApiKeysRequest(wire: WireListApiKeysRequest): ListApiKeysRequest {
  return { tenant: wire.tenant };
}

export function decodeRevokeApiKeyRequest(wire: WireRevokeApiKeyRequest): RevokeApiKeyRequest {
  return { keyId: wire.key_id, reason: wire.reason };
}

export function decodeRotateApiKeyRequest(wire: WireRotateApiKeyRequest): RotateApiKeyRequest {
  return { keyId: wire.key_id, graceMs: wire.grace_ms, name: wire.name, expiresAtMs: wire.expires_at_ms, reason: wire.reason };
}

export function decodeEnableAccountRequest(wire: WireEnableAccountRequest): EnableAccountRequest {
  return { account: wire.account, reason: wire.reason };
}

export function decodeAdjustUsageRequest(wire: WireAdjustUsageRequest): AdjustUsageRequest {
  return {
    scope: wire.scope,
    subject: wire.subject,
    metric: wire.metric,
    window: wire.window,
    index: wire.index,
    kind: wire.kind,
    amount: wire.amount,
    reason: wire.reason,
  };
}

export function decodeGetAuditRequest(wire: WireGetAuditRequest): GetAuditRequest {
  return { limit: wire.limit };
}

export function decodeQueryUsageRequest(wire: WireQueryUsageRequest): QueryUsageRequest {
  return {
    side: wire.side,
    tenant: wire.tenant,
    user: wire.user,
    apiKeyId: wire.api_key_id,
    model: wire.model,
    account: wire.account,
    sinceMs: wire.since_ms,
    untilMs: wire.until_ms,
    groupBy: [...wire.group_by],
    rows: wire.rows,
  };
}

export function encodeQueryUsageResponse(response: QueryUsageResponse): WireQueryUsageResponse {
  return {
    node: response.node,
    side: response.side,
    totals: encodeUsageTotals(response.totals, 'totals'),
    groups: response.groups.map((group) => ({ key: { ...group.key }, totals: encodeUsageTotals(group.totals, 'groups.totals') })),
    groups_truncated: response.groupsTruncated,
    rows: response.rows.map(encodeUsageRow),
    from_aggregates: response.fromAggregates,
  };
}

export function decodeQueryUsageResponse(wire: WireQueryUsageResponse): QueryUsageResponse {
  return {
    node: wire.node,
    side: wire.side,
    totals: decodeUsageTotals(wire.totals),
    groups: wire.groups.map((group) => ({ key: { ...group.key }, totals: decodeUsageTotals(group.totals) })),
    groupsTruncated: wire.groups_truncated,
    rows: wire.rows.map(decodeUsageRow),
    fromAggregates: wire.from_aggregates,
  };
}

function encodeUsageTotals(totals: UsageTotals, field: string): WireUsageTotals {
  for (const [name, value] of Object.entries(totals)) assertCount(value as number, `${field}.${name}`);
  return {
    requests: totals.requests,
    input_tokens: totals.inputTokens,
    output_tokens: totals.outputTokens,
    cache_write_tokens: totals.cacheWriteTokens,
    cache_read_tokens: totals.cacheReadTokens,
    weighted_tokens: totals.weightedTokens,
    cost_micros: totals.costMicros,
  };
}

function decodeUsageTotals(wire: WireUsageTotals | null | undefined): UsageTotals {
  if (wire === null || wire === undefined)
    return { requests: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0, weightedTokens: 0, costMicros: 0 };
  return {
    requests: wire.requests,
    inputTokens: wire.input_tokens,
    outputTokens: wire.output_tokens,
    cacheWriteTokens: wire.cache_write_tokens,
    cacheReadTokens: wire.cache_read_tokens,
    weightedTokens: wire.weighted_tokens,
    costMicros: wire.cost_micros,
  };
}

/** A row on the wire: a missing user, key, account or price is '' (or -1 for the price), as proto3 has no null. */
function encodeUsageRow(row: LedgerRow): WireUsageRow {
  for (const name of [
    'inputTokens',
    'outputTokens',
    'cacheWriteTokens',
    'cacheReadTokens',
    'weightedTokens',
    'chargedAtMs',
    'settledAtMs',
    'durationMs',
  ] as const)
    assertCount(row[name], `rows.${name}`);
  assert(row.costMicros === null || isCount(row.costMicros), 'rows.costMicros is a count or null');
  return {
    request_id: row.requestId,
    role: row.role,
    tenant: row.tenant,
    user: row.user ?? '',
    api_key_id: row.apiKeyId ?? '',
    account: row.account ?? '',
    origin_region: row.originRegion,
    served_region: row.servedRegion,
    node: row.node,
    model: row.model,
    stream: row.stream,
    input_tokens: row.inputTokens,
    output_tokens: row.outputTokens,
    cache_write_tokens: row.cacheWriteTokens,
    cache_read_tokens: row.cacheReadTokens,
    weighted_tokens: row.weightedTokens,
    cost_micros: row.costMicros ?? -1,
    outcome: row.outcome,
    status: row.status,
    estimated: row.estimated,
    client_left: row.clientLeft,
    drained: row.drained,
    charged_at_ms: row.chargedAtMs,
    settled_at_ms: row.settledAtMs,
    duration_ms: row.durationMs,
  };
}

/** A row as a client reads it; fields the server never sends as other values are taken as given. */
function decodeUsageRow(wire: WireUsageRow): LedgerRow {
  return {
    requestId: wire.request_id,
    role: wire.role as LedgerRow['role'],
    tenant: wire.tenant,
    user: wire.user === '' ? null : wire.user,
    apiKeyId: wire.api_key_id === '' ? null : wire.api_key_id,
    account: wire.account === '' ? null : wire.account,
    originRegion: wire.origin_region,
    servedRegion: wire.served_region,
    node: wire.node,
    model: wire.model,
    stream: wire.stream,
    inputTokens: wire.input_tokens,
    outputTokens: wire.output_tokens,
    cacheWriteTokens: wire.cache_write_tokens,
    cacheReadTokens: wire.cache_read_tokens,
    weightedTokens: wire.weighted_tokens,
    costMicros: wire.cost_micros < 0 ? null : wire.cost_micros,
    outcome: wire.outcome as LedgerRow['outcome'],
    status: wire.status,
    estimated: wire.estimated,
    clientLeft: wire.client_left,
    drained: wire.drained,
    chargedAtMs: wire.charged_at_ms,
    settledAtMs: wire.settled_at_ms,
    durationMs: wire.duration_ms,
  };
}

export function encodePolicyJson(policy: PolicyJson): WirePolicyJson {
  return { json: policy.json };
}

export function encodeRemoveSubjectResponse(response: RemoveSubjectResponse): WireRemoveSubjectResponse {
  return { removed: response.removed };
}

export function encodeApiKeyInfo(info: ApiKeyInfo): WireApiKeyInfo {
  assertCount(info.createdAtMs, 'created_at_ms');
  assertCount(info.expiresAtMs, 'expires_at_ms');
  assertCount(info.revokedAtMs, 'revoked_at_ms');
  return {
    key_id: info.keyId,
    name: info.name,
    created_at_ms: info.createdAtMs,
    expires_at_ms: info.expiresAtMs,
    revoked_at_ms: info.revokedAtMs,
    state: info.state,
  };
}

export function decodeApiKeyInfo(wire: WireApiKeyInfo | null | undefined): ApiKeyInfo {
  if (wire === null || wire === undefined) return { keyId: '', name: '', createdAtMs: 0, expiresAtMs: 0, revokedAtMs: 0, state: '' };
  return {
    keyId: wire.key_id,
    name: wire.name,
    createdAtMs: wire.created_at_ms,
    expiresAtMs: wire.expires_at_ms,
    revokedAtMs: wire.revoked_at_ms,
    state: wire.state,
  };
}

export function encodeCreateApiKeyResponse(response: CreateApiKeyResponse): WireCreateApiKeyResponse {
  return { api_key: response.apiKey, key_id: response.keyId, key: encodeApiKeyInfo(response.key) };
}

export function encodeListApiKeysResponse(response: ListApiKeysResponse): WireListApiKeysResponse {
  return { keys: response.keys.map(encodeApiKeyInfo) };
}

export function encodeRotateApiKeyResponse(response: RotateApiKeyResponse): WireRotateApiKeyResponse {
  return { api_key: response.apiKey, key: encodeApiKeyInfo(response.key), previous: encodeApiKeyInfo(response.previous) };
}

export function encodeEnableAccountResponse(response: EnableAccountResponse): WireEnableAccountResponse {
  return { enabled: response.enabled };
}

export function encodeAdjustUsageResponse(response: AdjustUsageResponse): WireAdjustUsageResponse {
  assertCount(response.amount, 'amount');
  // `before` and `after` are int64: a counter may read below zero (refunds racing charges).
  assert(Number.isSafeInteger(response.before) && Number.isSafeInteger(response.after), 'before and after are safe integers');
  return { key: response.key, kind: response.kind, amount: response.amount, before: response.before, after: response.after, node: response.node };
}

export function encodeGetAuditResponse(response: GetAuditResponse): WireGetAuditResponse {
  return {
    entries: response.entries.map((entry) => {
      assertCount(entry.atMs, 'entries.at_ms');
      return {
        at_ms: entry.atMs,
        node: entry.node,
        actor: entry.actor,
        action: entry.action,
        target: entry.target,
        reason: entry.reason,
        detail_json: entry.detailJson,
      };
    }),
    invalid_entries: response.invalidEntries,
  };
}

function assertCount(value: number, field: string): void {
  assert(isCount(value), `${field} is a non-negative safe integer`);
}
