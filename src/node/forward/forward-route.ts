import { zeroUsage } from '../../admission/estimate.js';
import type { AuthCrypto } from '../../admission/auth-crypto.js';
import type { Clock } from '../../core/clock.js';
import type { AccountId, NodeId, RegionId, RequestId, TenantId } from '../../core/ids.js';
import { forwardDeadlineMs, forwardHopMarginMs, forwardTransportRetriesMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Member } from '../../mesh/membership.js';
import type { Account } from '../../mesh/policy/policy-schema.js';
import type { ForwardExecuteOptions, ForwardTransportError } from '../../net/grpc/forward-client.js';
import type { ForwardProof, ForwardRequest, ForwardResult } from '../../net/grpc/forward-handler.js';
import { networkFeedback } from '../../upstream/classify-feedback.js';
import { MessageStream } from '../../upstream/message-stream.js';
import { relayedUsage } from '../../upstream/relayed-usage.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import type { EventSink } from '../../upstream/upstream-client.js';
import type { UpstreamRequest } from '../../upstream/upstream-request.js';
import type { Completion, StreamCompletion, UpstreamError } from '../../upstream/upstream-result.js';
import { signForward } from './member-mac.js';

/**
 * The origin's side of forwarding (proto/carpool/mesh/v1/forward.proto): for an account homed in
 * another region, a route to a connected member of that region with a gRPC address; and the
 * forwarded call, shaped as an upstream call's result so the account caller treats it like any
 * other attempt (the pool learns the account's feedback, the plan decides retries).
 *
 * A home region with no connected member that has a gRPC address gives no route: the account is
 * unavailable from here, and the caller passes it over. A forward whose connection fails before
 * any answer is repeated, at most `forwardTransportRetriesMax` times and on another member of the
 * region when there is one, with the same request id (the home node's ledger runs it once);
 * after that the attempt fails as a network error, which the pool counts against the account.
 *
 * A caller that aborts does not cancel the forward (drain, the default): like the upstream
 * client's drain, the events stop reaching the caller and the forward runs to its result, so the
 * usage the origin settles is the whole of it. A stream under `abortOnCancel` is cancelled instead,
 * at the origin and (by the request's `abort_on_cancel`) at the home node, which cancels its
 * upstream call; the origin never hears the home node's result then, so it settles the estimate
 * of src/upstream/relayed-usage.ts over the events it relayed to its own caller.
 *
 * Deadlines: the forward's gRPC deadline is the call's upstream deadline plus `forwardHopMarginMs`,
 * and the home node bounds its upstream call by that deadline less the margin, so the result
 * with the usage comes back before the origin stops waiting for it.
 */
export interface ForwardTransport {
  execute(address: string, request: ForwardRequest, proof: ForwardProof, options: ForwardExecuteOptions): Promise<Result<ForwardResult, ForwardTransportError>>;
}

export interface ForwardRouterOptions {
  readonly self: NodeId;
  readonly region: RegionId;
  readonly members: readonly Member[];
  /** Members' gRPC addresses, from the node's configuration. */
  readonly memberGrpc: ReadonlyMap<NodeId, string>;
  /** Whether the mesh link to a member is up right now. */
  readonly connected: (member: NodeId) => boolean;
  readonly transport: ForwardTransport;
  readonly crypto: AuthCrypto;
  readonly secret: Uint8Array;
  readonly clock: Clock;
}

export interface ForwardedCall {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly request: UpstreamRequest;
  readonly stream: boolean;
  readonly onEvent?: EventSink;
  /** Told every event of the stream as it arrives, delivered to `onEvent` or not. */
  readonly onRead?: (event: SseEvent) => void;
  readonly signal?: AbortSignal;
  /** The signal cancels the call at its upstream (a stream of a tenant that aborts); else it drains. */
  readonly abortOnCancel: boolean;
  /** Absolute time, on the caller's clock, by which the upstream call must end; undefined: the default timeouts. */
  readonly deadlineMs?: number;
  /** When a local call charges the account (the request's admission, so its usage row and the counters agree on windows); a forward's home charges at its own time. */
  readonly chargeAtMs?: number;
}

export interface ForwardRoute {
  readonly region: RegionId;
  call(accountId: AccountId, call: ForwardedCall): Promise<Result<Completion | StreamCompletion, UpstreamError>>;
}

export class ForwardRouterStats {
  forwards = 0;
  transportRetries = 0;
  transportFailures = 0;
  replays = 0;
  noRoute = 0;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export class ForwardRouter {
  readonly stats = new ForwardRouterStats();
  private readonly byRegion = new Map<RegionId, { readonly id: NodeId; readonly address: string }[]>();

  constructor(private readonly options: ForwardRouterOptions) {
    for (const member of options.members) {
      const address = options.memberGrpc.get(member.id);
      if (member.id === options.self || address === undefined || member.region === options.region) continue;
      const list = this.byRegion.get(member.region) ?? [];
      list.push({ id: member.id, address });
      this.byRegion.set(member.region, list);
    }
  }

  /** The route to the account's home region, or undefined when none of its members is reachable. */
  route(account: Account): ForwardRoute | undefined {
    const candidates = this.byRegion.get(account.homeRegion);
    if (candidates === undefined || !candidates.some((member) => this.options.connected(member.id))) {
      this.stats.noRoute++;
      return undefined;
    }
    return { region: account.homeRegion, call: (accountId, call) => this.forward(account.homeRegion, accountId, call) };
  }

  private async forward(region: RegionId, accountId: AccountId, call: ForwardedCall): Promise<Result<Completion | StreamCompletion, UpstreamError>> {
    this.stats.forwards++;
    const body = utf8.encode(JSON.stringify(call.request.body));
    const request: ForwardRequest = {
      requestId: call.requestId,
      accountId,
      tenant: call.tenant,
      requestJson: body,
      anthropicVersion: call.request.anthropicVersion,
      anthropicBeta: call.request.anthropicBeta,
      stream: call.stream,
      originRegion: this.options.region,
      abortOnCancel: call.abortOnCancel,
    };
    const stream = call.stream ? new MessageStream() : undefined;
    let delivering = true;
    // Content bytes of the events the caller accepted: an aborted stream's output estimate.
    let relayedBytes = 0;
    const onEvent = async (event: SseEvent): Promise<void> => {
      stream?.onEvent(event);
      call.onRead?.(event);
      if (!delivering || call.onEvent === undefined) return;
      if (call.signal?.aborted === true) {
        delivering = false;
        return;
      }
      try {
        await call.onEvent(event);
        relayedBytes = stream?.contentBytes ?? 0;
      } catch {
        // The caller's sink failed (its client left): stop delivering, read on for the usage.
        delivering = false;
      }
    };
    const aborting = call.abortOnCancel ? call.signal : undefined;
    const candidates = (this.byRegion.get(region) ?? []).filter((member) => this.options.connected(member.id));
    let failure: ForwardTransportError | undefined;
    // Bounded: one try and at most forwardTransportRetriesMax repeats.
    for (let attempt = 0; attempt <= forwardTransportRetriesMax; attempt++) {
      const member = candidates[attempt % Math.max(1, candidates.length)];
      if (member === undefined) break;
      if (attempt > 0) this.stats.transportRetries++;
      const nowMs = this.options.clock.nowMs();
      const proof = signForward(this.options.crypto, this.options.secret, this.options.self, nowMs, { requestId: call.requestId, accountId, body });
      const deadlineMs = Math.min(nowMs + forwardDeadlineMs, (call.deadlineMs ?? Number.POSITIVE_INFINITY) + forwardHopMarginMs);
      const result = await this.options.transport.execute(member.address, request, proof, {
        deadlineMs,
        onEvent,
        ...(aborting === undefined ? {} : { signal: aborting }),
      });
      if (result.ok) {
        if (result.value.replayed) this.stats.replays++;
        return upstreamResultOf(result.value, call.stream, stream, call.signal?.aborted === true || !delivering);
      }
      if (aborting?.aborted === true) {
        // This node cancelled the forward for its caller; the home node cancels the upstream call.
        const relayed = stream === undefined ? { usage: zeroUsage, estimated: false } : relayedUsage(stream, relayedBytes);
        return err({ kind: 'cancelled', usage: relayed.usage, estimated: relayed.estimated, requestId: undefined, feedback: undefined });
      }
      failure = result.error;
      // Once an event reached the caller the call cannot be repeated as if it never happened.
      if (failure.eventsSeen > 0) break;
    }
    this.stats.transportFailures++;
    const detail = `forward to ${region} failed: ${failure?.code ?? 'NO_MEMBER'} ${failure?.detail ?? 'no connected member'}`;
    if (failure !== undefined && failure.eventsSeen > 0) {
      return err({ kind: 'truncated', detail, usage: stream?.usage ?? zeroUsage, requestId: undefined, feedback: networkFeedback(detail) });
    }
    return err({ kind: 'network', detail, usage: zeroUsage, requestId: undefined, feedback: networkFeedback(detail) });
  }
}

/** The home node's result as the upstream client would have answered it. */
export function upstreamResultOf(
  result: ForwardResult,
  streamed: boolean,
  stream: MessageStream | undefined,
  cancelled: boolean,
): Result<Completion | StreamCompletion, UpstreamError> {
  const usage = result.usage;
  const requestId = result.upstreamRequestId;
  const feedback = result.feedback;
  // A replay to another origin: the region that first ran the request settled it (see the proto).
  const settledElsewhere = result.settledElsewhere;
  switch (result.outcome) {
    case 'ok': {
      if (feedback === undefined)
        return err({
          kind: 'bad-response',
          detail: 'a forwarded success without feedback',
          usage,
          requestId,
          feedback: networkFeedback('forward: no feedback'),
        });
      if (streamed) {
        const message = stream?.message();
        if (message === undefined) return err({ kind: 'truncated', detail: 'the forwarded stream ended before message_stop', usage, requestId, feedback });
        return ok({ message, usage, requestId, feedback, cancelled: cancelled || result.cancelled, settledElsewhere });
      }
      let message: unknown;
      try {
        message = result.messageJson === undefined ? undefined : JSON.parse(utf8Decoder.decode(result.messageJson));
      } catch {
        message = undefined;
      }
      if (typeof message !== 'object' || message === null)
        return err({ kind: 'bad-response', detail: 'a forwarded message that is not JSON', usage, requestId, feedback });
      return ok({
        message: message as Record<string, unknown>,
        ...(result.messageJson === undefined ? {} : { bodyJson: result.messageJson }),
        usage,
        requestId,
        feedback,
        cancelled: cancelled || result.cancelled,
        settledElsewhere,
      });
    }
    case 'http-status':
      return err({
        kind: 'http-status',
        status: result.status,
        errorType: result.errorType === '' ? undefined : result.errorType,
        message: result.detail,
        usage,
        requestId,
        feedback: feedback ?? networkFeedback(result.detail),
      });
    case 'stream-error':
      return err({ kind: 'stream-error', errorType: result.errorType, message: result.detail, usage, requestId, feedback: feedback ?? { kind: 'overloaded' } });
    case 'timeout':
      return err({ kind: 'timeout', phase: timeoutPhaseOf(result.detail), usage, requestId, feedback: feedback ?? networkFeedback('timeout') });
    case 'network':
    case 'bad-response':
    case 'truncated':
      return err({ kind: result.outcome, detail: result.detail, usage, requestId, feedback: feedback ?? networkFeedback(result.detail) });
    case 'cancelled':
      return err({ kind: 'cancelled', usage, requestId, feedback, estimated: result.estimated });
    case 'unavailable':
    case 'invalid-request':
    case 'refused':
      // The home node could not call the account (closing, full, misconfigured, or the pair is
      // running elsewhere): the account is unavailable from here for now. A home that turned the
      // call away for the account's health says for how long, as a 429 would.
      return err({
        kind: 'network',
        detail: `home node: ${result.outcome}: ${result.detail}`,
        usage,
        requestId,
        feedback: feedback ?? networkFeedback(`home node ${result.outcome}`),
      });
  }
}

function timeoutPhaseOf(detail: string): 'headers' | 'idle' | 'deadline' | 'connect' {
  return detail === 'headers' || detail === 'idle' || detail === 'connect' ? detail : 'deadline';
}
