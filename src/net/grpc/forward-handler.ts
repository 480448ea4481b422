import type { TokenUsage } from '../../admission/estimate.js';
import type { AccountId, NodeId, RegionId, RequestId, TenantId } from '../../core/ids.js';
import type { AccountFeedback } from '../../pool/account-feedback.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import type { UpstreamError } from '../../upstream/upstream-result.js';
import type { CallContext } from './carpool-handler.js';

/**
 * carpool.mesh.v1.Forward (proto/carpool/mesh/v1/forward.proto) as plain values, for the home
 * node's executor (src/node/forward/forward-executor.ts) and the origin's route
 * (src/node/forward/forward-route.ts); ./forward-wire.ts translates to and from the wire.
 */
export interface ForwardRequest {
  readonly requestId: RequestId;
  readonly accountId: AccountId;
  readonly tenant: TenantId;
  readonly requestJson: Uint8Array;
  readonly anthropicVersion: string | undefined;
  readonly anthropicBeta: string | undefined;
  readonly stream: boolean;
  readonly originRegion: RegionId;
  /**
   * The tenant's `onClientCancel` is `abort` and the call streams: when the origin cancels the
   * forward (its client left), the home node cancels the upstream call too. Otherwise the home
   * node reads the call to its end whatever becomes of the forward, so the account is charged
   * exactly.
   */
  readonly abortOnCancel: boolean;
}

/** The member proof from the call's metadata; checked by the handler, which holds the secret. */
export interface ForwardProof {
  readonly member: NodeId;
  readonly timestampMs: number;
  readonly mac: string;
}

export type ForwardOutcome = 'ok' | UpstreamError['kind'] | 'refused';

export const forwardOutcomes: readonly ForwardOutcome[] = [
  'ok',
  'http-status',
  'network',
  'timeout',
  'bad-response',
  'truncated',
  'stream-error',
  'cancelled',
  'invalid-request',
  'unavailable',
  'refused',
];

export interface ForwardResult {
  readonly outcome: ForwardOutcome;
  /** What the origin settles for this attempt. */
  readonly usage: TokenUsage;
  readonly feedback: AccountFeedback | undefined;
  /** The API's message body, on `ok` for a non-streamed call. */
  readonly messageJson: Uint8Array | undefined;
  readonly upstreamRequestId: string | undefined;
  /** The HTTP status of an `http-status` failure; 0 otherwise. */
  readonly status: number;
  /** The API's `error.type` of an `http-status` or `stream-error` failure; '' otherwise. */
  readonly errorType: string;
  /** What went wrong, for logs and the upstream error's message; a timeout's phase. */
  readonly detail: string;
  readonly cancelled: boolean;
  /** The usage of a stream cancelled under `abort`: output counted from relayed text (src/upstream/relayed-usage.ts). */
  readonly estimated: boolean;
  readonly replayed: boolean;
  /** A replay to another origin than the first: its usage is zero, and the tenant was settled there. */
  readonly settledElsewhere: boolean;
  readonly servedRegion: RegionId;
}

export interface ForwardCall extends CallContext {
  readonly request: ForwardRequest;
  readonly proof: ForwardProof;
}

/** Where a streamed forward's events go, one at a time, each send awaited (backpressure). */
export interface ForwardSink {
  send(event: SseEvent): Promise<void>;
}

/** Why a forward was refused before the handler ran: the proof did not check out. */
export interface ForwardRefusal {
  readonly kind: 'unauthenticated';
  readonly reason: string;
}

export interface ForwardHandler {
  /** Runs (or replays) the call; always answers a result, however the upstream call ended. */
  execute(call: ForwardCall, sink: ForwardSink | undefined): Promise<ForwardResult | ForwardRefusal>;
}
