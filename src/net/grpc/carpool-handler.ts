import type { Rejection } from '../../admission/outcome.js';
import type { SignatureFields, SignedContent } from '../../admission/request-signature.js';
import type { Result } from '../../core/result.js';
import type { LedgerRow, UsageTotals } from '../../ledger/ledger-row.js';
import type { UsageGroup } from '../../ledger/usage-query.js';

/**
 * The transport-neutral interface of a region's public API: what the node implements and the
 * gRPC adapter (./grpc-server.ts) calls. Nothing here names gRPC. The request and response types
 * mirror the messages of proto/carpool/v1/carpool.proto field for field, in camelCase, with
 * `bytes` as Uint8Array and `uint64` as number (token counts stay far below 2^53); the proto's
 * comments say what each field means.
 *
 * A call carries, besides its request, everything the request path needs from the transport and
 * nothing else: the credentials from metadata, the peer's IP for per-IP rate limits, what a
 * signature covers, an AbortSignal that fires when the client cancels or the deadline passes,
 * and the deadline itself. Expected failures come back as `GatewayError` values; the adapter maps
 * them to statuses through the tables of src/admission/outcome.ts. A handler that throws is a bug:
 * the adapter answers INTERNAL with a generic message and reports the error.
 *
 * Validation of the request's content (request id format, JSON, sizes of text fields) is the
 * handler's, so every surface applies the same rules; the adapter only refuses what it cannot
 * translate at all (an enum value this version does not know).
 */

// ---- Messages of carpool.v1.Carpool ----

export interface CompleteRequest {
  /** 1 to 64 characters of [A-Za-z0-9._:-], chosen by the client; not yet checked. */
  readonly requestId: string;
  /** The Messages API request body as UTF-8 JSON, not yet parsed. */
  readonly requestJson: Uint8Array;
  /** Empty when the client sent none. */
  readonly anthropicVersion: string;
  readonly anthropicBeta: string;
  readonly user: string;
  /**
   * Not a proto field: true when the transport made the id itself because the client sent none
   * (the HTTP front door without an `Idempotency-Key`, src/net/http/request-id.ts). Such an id is
   * unique by construction and no client can send it again, so the gateway neither claims it
   * mesh-wide (no quorum round) nor keeps its answer for a retry. The gRPC adapter never sets it:
   * a gRPC client always chooses its id.
   */
  readonly requestIdAssigned?: boolean;
}

export interface Usage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheCreationInputTokens: number;
  readonly cacheReadInputTokens: number;
}

export interface CompleteResponse {
  readonly requestId: string;
  readonly messageJson: Uint8Array;
  readonly usage: Usage;
  readonly servedRegion: string;
}

/** One upstream SSE event: its `event` name and `data` JSON, as the upstream sent them. */
export interface SseEvent {
  readonly type: string;
  readonly dataJson: Uint8Array;
}

export interface StreamSummary {
  readonly requestId: string;
  readonly usage: Usage;
  readonly servedRegion: string;
}

/** `StreamEvent` of the proto: its oneof as a discriminated union. */
export type StreamEvent = { readonly kind: 'event'; readonly event: SseEvent } | { readonly kind: 'summary'; readonly summary: StreamSummary };

export interface CountTokensRequest {
  readonly requestJson: Uint8Array;
  readonly anthropicVersion: string;
  readonly anthropicBeta: string;
}

export interface CountTokensResponse {
  readonly inputTokens: number;
}

/** `Consistency` of the proto without its prefix; `unspecified` is the handler's default. */
export type Consistency = 'unspecified' | 'local' | 'quorum';

export interface GetUsageRequest {
  readonly consistency: Consistency;
  readonly user: string;
}

export interface LimitUsage {
  readonly scope: string;
  readonly metric: string;
  readonly window: string;
  readonly sliding: boolean;
  readonly mode: string;
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resetsAtMs: number;
}

export interface GetUsageResponse {
  readonly tenant: string;
  readonly limits: readonly LimitUsage[];
  readonly lastMinute: Usage;
}

// ---- Messages of carpool.v1.Admin ----

export type GetPolicyRequest = Readonly<Record<string, never>>;

export interface PolicyJson {
  readonly json: Uint8Array;
}

export interface PutSubjectRequest {
  readonly id: string;
  readonly json: Uint8Array;
  /** Empty when the caller gave none. */
  readonly reason: string;
}

export interface RemoveSubjectRequest {
  readonly id: string;
  readonly reason: string;
}

export interface RemoveSubjectResponse {
  readonly removed: boolean;
}

export interface CreateApiKeyRequest {
  readonly tenant: string;
  readonly name: string;
  /** 0: never. */
  readonly expiresAtMs: number;
  readonly reason: string;
}

/** A key's metadata; times are ms since the epoch, 0 for none. */
export interface ApiKeyInfo {
  readonly keyId: string;
  readonly name: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly revokedAtMs: number;
  readonly state: string;
}

export interface CreateApiKeyResponse {
  readonly apiKey: string;
  readonly keyId: string;
  readonly key: ApiKeyInfo;
}

export interface ListApiKeysRequest {
  readonly tenant: string;
}

export interface ListApiKeysResponse {
  readonly keys: readonly ApiKeyInfo[];
}

export interface RevokeApiKeyRequest {
  readonly keyId: string;
  readonly reason: string;
}

export interface RotateApiKeyRequest {
  readonly keyId: string;
  readonly graceMs: number;
  /** Empty: the old key's name. */
  readonly name: string;
  /** 0: never. */
  readonly expiresAtMs: number;
  readonly reason: string;
}

export interface RotateApiKeyResponse {
  readonly apiKey: string;
  readonly key: ApiKeyInfo;
  readonly previous: ApiKeyInfo;
}

export interface EnableAccountRequest {
  readonly account: string;
  readonly reason: string;
}

export interface EnableAccountResponse {
  readonly enabled: boolean;
}

export interface AdjustUsageRequest {
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly window: string;
  /** 0: the window containing now. */
  readonly index: number;
  readonly kind: string;
  readonly amount: number;
  readonly reason: string;
}

export interface AdjustUsageResponse {
  readonly key: string;
  readonly kind: string;
  readonly amount: number;
  readonly before: number;
  readonly after: number;
  readonly node: string;
}

export interface GetAuditRequest {
  /** 0: all. */
  readonly limit: number;
}

export interface AuditEntryMessage {
  readonly atMs: number;
  readonly node: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  /** Empty when the write gave none. */
  readonly reason: string;
  readonly detailJson: Uint8Array;
}

export interface GetAuditResponse {
  readonly entries: readonly AuditEntryMessage[];
  readonly invalidEntries: number;
}

/** QueryUsage's request as sent: '' and 0 for what the caller left out, checked by the service. */
export interface QueryUsageRequest {
  readonly side: string;
  readonly tenant: string;
  readonly user: string;
  readonly apiKeyId: string;
  readonly model: string;
  readonly account: string;
  /** 0: no bound. */
  readonly sinceMs: number;
  /** 0: no bound. */
  readonly untilMs: number;
  readonly groupBy: readonly string[];
  readonly rows: number;
}

export interface QueryUsageResponse {
  readonly node: string;
  readonly side: string;
  readonly totals: UsageTotals;
  readonly groups: readonly UsageGroup[];
  readonly groupsTruncated: boolean;
  readonly rows: readonly LedgerRow[];
  readonly fromAggregates: number;
}

// ---- Calls ----

/** The full method paths, as signatures cover them (`/<package>.<service>/<method>`). */
export const carpoolMethodPaths = Object.freeze({
  complete: '/carpool.v1.Carpool/Complete',
  streamComplete: '/carpool.v1.Carpool/StreamComplete',
  countTokens: '/carpool.v1.Carpool/CountTokens',
  getUsage: '/carpool.v1.Carpool/GetUsage',
} as const);

export type CarpoolMethodPath = (typeof carpoolMethodPaths)[keyof typeof carpoolMethodPaths];

/** Why a call's signal fired, or why a stream sink refuses further events. */
export type CallEndReason =
  /** The client cancelled, its connection broke, or the server was shut down. */
  | 'cancelled'
  /** The client's deadline passed. */
  | 'deadline'
  /** The handler already returned: the stream is finished. */
  | 'finished';

/**
 * The reason an AbortSignal of a call carries, and the error a stream sink rejects with. An
 * error object rather than a value, because the upstream client (src/upstream/upstream-client.ts)
 * reads a sink that rejects as "the caller went away", which is exactly what this means.
 */
export class CallEndedError extends Error {
  override readonly name = 'CallEndedError';
  readonly kind = 'call-ended';

  constructor(readonly reason: CallEndReason) {
    super(`call ended: ${reason}`);
  }
}

/** What every call carries besides its request and credentials. */
export interface CallContext {
  /** The full method path, such as `/carpool.v1.Carpool/Complete`. */
  readonly methodPath: string;
  /** The client's IP address as text (IPv4-mapped IPv6 reduced to IPv4); undefined when unknown. */
  readonly peerIp: string | undefined;
  /** Fires with a `CallEndedError` when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** The client's deadline in milliseconds since the Unix epoch, or undefined for none. */
  readonly deadlineMs: number | undefined;
}

/**
 * A tenant's credentials as the metadata carried them, shaped for
 * `RequestAuthenticator.authenticate` (src/admission/request-auth.ts). `apiKey` comes from
 * `x-api-key` or `authorization: Bearer`. `signature` is present as soon as any of the four
 * `x-carpool-*` fields is; a missing field is the empty string, so the authenticator refuses it
 * as malformed instead of the request passing as unsigned.
 */
export interface CarpoolCredentials {
  readonly apiKey: string | undefined;
  readonly signature: SignatureFields | undefined;
}

export interface CarpoolCall<Request> extends CallContext {
  readonly request: Request;
  readonly credentials: CarpoolCredentials;
  /**
   * What a signature covers: `POST`, the method path, and the body, which is `request_json` for
   * Complete, StreamComplete and CountTokens and empty for GetUsage (see the proto's header).
   */
  readonly signedContent: SignedContent;
  /**
   * Told, at most once, the limits of the tenant (and of the request's user) as this node sees
   * them right after the quota step of a completion: admitted (the request's own estimate
   * included in `used`) or refused over a quota. A transport that shows clients their remaining
   * quota (the HTTP front door's `carpool-ratelimit-*` headers) sets it; gRPC does not.
   */
  readonly onLimits?: (limits: readonly LimitUsage[]) => void;
  /**
   * Told, at most once and before any reply, that the request is served degraded
   * (src/schedule/degrade.ts), with the `carpool-degraded` value: the HTTP front door sends it as a
   * header, the gRPC endpoint as response metadata.
   */
  readonly onDegraded?: (value: string) => void;
}

export interface AdminCall<Request> extends CallContext {
  readonly request: Request;
  /** The token of `authorization: Bearer <token>`, or undefined when there was none. */
  readonly adminToken: string | undefined;
}

// ---- Errors ----

/** The upstream refused the call and the pool could not serve it elsewhere. */
export interface UpstreamFailure {
  readonly kind: 'upstream';
  /**
   * The upstream's HTTP status; for an `error` event mid-stream, the status the API answers its
   * type with (`statusOfErrorType` in src/upstream/classify-feedback.ts).
   */
  readonly status: number;
  /** `error.type` of the upstream's error body, for the message; undefined when it had none. */
  readonly errorType: string | undefined;
  /** The upstream's message; reaches the client only for the classes the table lets pass. */
  readonly message: string;
  /** When the same request could pass, if anyone knows (a `retry-after`, an account's cooldown). */
  readonly retryAfterMs: number | undefined;
}

/** A request the handler cannot take: `field` names the offending field by its proto name. */
export interface InvalidRequest {
  readonly kind: 'invalid';
  readonly field: string;
  readonly reason: string;
}

export type GatewayError = { readonly kind: 'rejected'; readonly rejection: Rejection } | UpstreamFailure | InvalidRequest;

/**
 * What only the admin surface refuses: a known token without the role the call needs
 * (PERMISSION_DENIED), a call naming something that does not exist (NOT_FOUND), and a usage
 * question to a node that keeps no usage ledger (FAILED_PRECONDITION); see `adminRefusalStatus`
 * in src/admission/outcome.ts.
 */
export type AdminRefusal =
  | { readonly kind: 'forbidden'; readonly reason: string }
  | { readonly kind: 'not-found'; readonly field: string; readonly reason: string }
  | { readonly kind: 'no-ledger'; readonly reason: string };

/** The Admin service calls no upstream. */
export type AdminError = Exclude<GatewayError, UpstreamFailure> | AdminRefusal;

/** Any error a handler of this contract returns. */
export type ServiceError = GatewayError | AdminRefusal;

// ---- Handlers ----

/**
 * Where a stream's events go. `send` resolves once the event is written and the transport's
 * buffer has room again, so a handler that awaits each send never holds more than a bounded
 * number of unsent events, and a slow client slows the upstream read down instead of growing
 * memory. It rejects with a `CallEndedError` once the call ended (client gone, deadline, or the
 * handler already returned). One send at a time: calling it again before the previous promise
 * settled is a bug.
 */
export interface StreamSink {
  send(event: SseEvent): Promise<void>;
}

export interface CarpoolHandler {
  complete(call: CarpoolCall<CompleteRequest>): Promise<Result<CompleteResponse, GatewayError>>;
  /**
   * Sends the events through `sink` and returns the summary, which the adapter sends as the last
   * message. An error ends the stream with its status after the events already sent.
   */
  streamComplete(call: CarpoolCall<CompleteRequest>, sink: StreamSink): Promise<Result<StreamSummary, GatewayError>>;
  countTokens(call: CarpoolCall<CountTokensRequest>): Promise<Result<CountTokensResponse, GatewayError>>;
  getUsage(call: CarpoolCall<GetUsageRequest>): Promise<Result<GetUsageResponse, GatewayError>>;
}

/**
 * The Admin service. Named apart from the admin HTTP endpoint's `AdminHandler` (../admin-http.ts),
 * which serves routes, not these calls.
 */
export interface AdminServiceHandler {
  getPolicy(call: AdminCall<GetPolicyRequest>): Promise<Result<PolicyJson, AdminError>>;
  /** The pool's status as JSON: GET /pool's body. */
  getPool(call: AdminCall<GetPolicyRequest>): Promise<Result<PolicyJson, AdminError>>;
  putTenant(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>>;
  removeTenant(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>>;
  putAccount(call: AdminCall<PutSubjectRequest>): Promise<Result<PolicyJson, AdminError>>;
  removeAccount(call: AdminCall<RemoveSubjectRequest>): Promise<Result<RemoveSubjectResponse, AdminError>>;
  createApiKey(call: AdminCall<CreateApiKeyRequest>): Promise<Result<CreateApiKeyResponse, AdminError>>;
  listApiKeys(call: AdminCall<ListApiKeysRequest>): Promise<Result<ListApiKeysResponse, AdminError>>;
  revokeApiKey(call: AdminCall<RevokeApiKeyRequest>): Promise<Result<ApiKeyInfo, AdminError>>;
  rotateApiKey(call: AdminCall<RotateApiKeyRequest>): Promise<Result<RotateApiKeyResponse, AdminError>>;
  enableAccount(call: AdminCall<EnableAccountRequest>): Promise<Result<EnableAccountResponse, AdminError>>;
  adjustUsage(call: AdminCall<AdjustUsageRequest>): Promise<Result<AdjustUsageResponse, AdminError>>;
  getAudit(call: AdminCall<GetAuditRequest>): Promise<Result<GetAuditResponse, AdminError>>;
  queryUsage(call: AdminCall<QueryUsageRequest>): Promise<Result<QueryUsageResponse, AdminError>>;
}
