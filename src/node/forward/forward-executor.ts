import { type TokenUsage, weightedTokens, zeroUsage } from '../../admission/estimate.js';
import type { AuthCrypto } from '../../admission/auth-crypto.js';
import type { Clock } from '../../core/clock.js';
import type { AccountId, NodeId, RegionId, RequestId, TenantId } from '../../core/ids.js';
import {
  forwardCallsInFlightMax,
  forwardHopMarginMs,
  forwardLedgerBytesMax,
  forwardLedgerEntriesMax,
  forwardLedgerTtlMs,
  forwardReplayBytesMax,
  upstreamDeadlineMs,
} from '../../core/limits.js';
import type { Result } from '../../core/result.js';
import type { LedgerRow } from '../../ledger/ledger-row.js';
import { costMicrosOf } from '../../ledger/model-prices.js';
import type { StoreError } from '../../ledger/node-state.js';
import { type Account, defaultTokenWeights } from '../../mesh/policy/policy-schema.js';
import type { ForwardCall, ForwardHandler, ForwardRefusal, ForwardResult, ForwardSink } from '../../net/grpc/forward-handler.js';
import { type AccountFeedback, emptyRateLimits } from '../../pool/account-feedback.js';
import type { AccountPool, FeedbackReport } from '../../pool/account-pool.js';
import { accountAmountsOf, type AccountUsage } from '../../pool/account-usage.js';
import { MessageStream } from '../../upstream/message-stream.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import type { EventSink } from '../../upstream/upstream-client.js';
import type { UpstreamRequest, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { Completion, StreamCompletion, UpstreamError } from '../../upstream/upstream-result.js';
import type { AccountCallClient } from '../account-caller.js';
import { type AnswerCodec, AnswerLedger, type AnswerLedgerBounds } from '../answer-ledger.js';
import { decodeStored, encodeStored, isRecord } from '../stored-json.js';
import { type ForwardRoute, upstreamResultOf } from './forward-route.js';
import { verifyForward } from './member-mac.js';

/**
 * The home side of a forwarded call (proto/carpool/mesh/v1/forward.proto): checks the member's
 * proof, consults the ledger, makes the one upstream call with the account's credential held
 * here, tells this node's pool what the account said, charges the account's counters, and
 * answers with the usage and feedback for the origin.
 *
 *   proof ── bad ─────────────────────────────────────────▶ UNAUTHENTICATED (nothing runs)
 *   account unknown, not homed here, no credential here ──▶ refused (the origin skips it)
 *   account paused or disabled here, or its probe out ────▶ refused, with a pause for the origin
 *   ledger ─ running ─────────────────────────────────────▶ refused
 *          ─ done ──── same origin ───────────────────────▶ replay with the usage
 *                   └─ another origin ────────────────────▶ replay with zero usage
 *          ─ new ───── upstream call ─ feedback, charge ──▶ the result, stored for replays
 *
 * Permits: the origin's pool holds the account's permit for the whole forwarded call, so the
 * account's concurrency is bounded by each calling node's pool, as it is for local calls; the
 * home node adds only its own bound on forwarded calls in flight.
 *
 * Cancellation: the forward's signal fires when the origin cancels it or goes away. Unless the
 * request says `abortOnCancel` (a stream of a tenant that aborts), the upstream call drains: it
 * stops delivering and runs to its result, the account is charged exactly, and the ledger keeps
 * the answer.
 * Deadline: the upstream call ends by the forward's gRPC deadline less `forwardHopMarginMs`, so
 * the result gets back to the origin in time.
 */
/** What the home node keeps of a call, by (request id, account id), for a repeated forward. */
export interface StoredAnswer {
  readonly result: ForwardResult;
  /** The events of a stream, in order, when they were kept. */
  readonly events: readonly SseEvent[] | undefined;
  /** Whether the answer itself (message or events) was kept; without it a replay carries the usage only. */
  readonly answerKept: boolean;
  readonly stream: boolean;
}

export type ForwardLedger = AnswerLedger<StoredAnswer>;

/**
 * How a durable home node keeps forward answers on disk (src/node/answer-ledger.ts). The account
 * feedback is not kept (a replay after a restart teaches the origin's pool nothing); a call that
 * was running when the node died comes back as a failure with zero usage: its account was
 * charged nothing here, since the charge is made after the call (and would have been written
 * with the answer), and the origin, which settles the tenant, charges its own estimate.
 */
export function storedAnswerCodec(region: RegionId): AnswerCodec<StoredAnswer> {
  return {
    encode: (answer) => encodeStored({ ...answer, result: { ...answer.result, feedback: undefined } }),
    decode: (json) => {
      const raw = decodeStored(json);
      if (!isRecord(raw) || !isRecord(raw.result) || typeof raw.answerKept !== 'boolean' || typeof raw.stream !== 'boolean') return undefined;
      const result = raw.result;
      if (typeof result.outcome !== 'string' || !isRecord(result.usage) || typeof result.servedRegion !== 'string') return undefined;
      if (raw.events !== undefined && !Array.isArray(raw.events)) return undefined;
      return {
        result: { ...(result as unknown as ForwardResult), feedback: undefined },
        events: raw.events as SseEvent[] | undefined,
        answerKept: raw.answerKept,
        stream: raw.stream,
      };
    },
    interrupted: () => ({
      result: {
        outcome: 'network',
        usage: zeroUsage,
        feedback: undefined,
        messageJson: undefined,
        upstreamRequestId: undefined,
        status: 0,
        errorType: '',
        detail: 'the home node restarted while this call ran',
        cancelled: false,
        estimated: false,
        replayed: true,
        settledElsewhere: false,
        servedRegion: region,
      },
      events: undefined,
      answerKept: false,
      stream: false,
    }),
  };
}

export const forwardLedgerBounds: AnswerLedgerBounds = Object.freeze({
  entriesMax: forwardLedgerEntriesMax,
  bytesMax: forwardLedgerBytesMax,
  ttlMs: forwardLedgerTtlMs,
  answerBytesMax: forwardReplayBytesMax,
});

/** The home node's ledger (src/node/answer-ledger.ts): a repeated forward replays instead of calling the upstream again. */
export function newForwardLedger(bounds: AnswerLedgerBounds = forwardLedgerBounds): ForwardLedger {
  return new AnswerLedger<StoredAnswer>(
    {
      bytesOf: (answer) => {
        let bytes = answer.result.messageJson?.length ?? 0;
        for (const event of answer.events ?? []) bytes += 2 * (event.event.length + event.data.length);
        return bytes;
      },
      withoutAnswer: (answer) => ({ result: { ...answer.result, messageJson: undefined }, events: undefined, answerKept: false, stream: answer.stream }),
    },
    bounds,
  );
}

export interface ForwardExecutorOptions {
  readonly region: RegionId;
  readonly crypto: AuthCrypto;
  readonly secret: Uint8Array;
  readonly isMember: (id: NodeId) => boolean;
  readonly pool: Pick<AccountPool, 'account' | 'onFeedback' | 'admitForward'>;
  readonly usage: Pick<AccountUsage, 'charge'>;
  readonly client: AccountCallClient;
  readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  readonly ledger: ForwardLedger;
  readonly clock: Clock;
  readonly onAlert?: (report: FeedbackReport) => void;
  readonly log?: (line: string) => void;
  /** This member's id: a run whose origin is another member writes a `home` usage row. */
  readonly self?: NodeId;
  /**
   * The node's durable store, if it keeps one (src/ledger/durable-journal.ts): a forwarded call's
   * ledger entry is on disk before the upstream call, and its usage row before its answer.
   */
  readonly durable?: {
    readonly keepsState: boolean;
    durable(): Promise<Result<undefined, StoreError>>;
    appendRow(row: LedgerRow): void;
  };
}

/** One call on an account homed here; see `ForwardExecutor.run`. */
export interface AccountRun {
  readonly requestId: RequestId;
  readonly account: Account;
  readonly target: UpstreamTarget;
  /** The member whose request this is: the forwarding origin, or this node. */
  readonly origin: NodeId;
  readonly request: UpstreamRequest;
  readonly stream: boolean;
  readonly onEvent?: EventSink;
  /** Told every event of the stream as it is read, delivered to `onEvent` or not (the local caller keeps its answer). */
  readonly onRead?: (event: SseEvent) => void;
  readonly signal?: AbortSignal;
  /** The signal cancels the upstream call (a stream of a tenant that aborts); otherwise the call ignores it and drains. */
  readonly abortOnCancel: boolean;
  /** Absolute time, on the executor's clock, by which the upstream call must end. */
  readonly deadlineMs?: number;
  readonly reportFeedback: boolean;
  /** When the account's counters are charged; the call's end by default. */
  readonly chargeAtMs?: number;
  /** The tenant and region a forwarded call came from, for its `home` usage row. */
  readonly forwardedFor?: { readonly tenant: TenantId; readonly originRegion: RegionId };
}

export type RunOutcome =
  | { readonly kind: 'ran'; readonly upstream: Result<Completion | StreamCompletion, UpstreamError>; readonly result: ForwardResult }
  | { readonly kind: 'replayed'; readonly result: ForwardResult; readonly events: readonly SseEvent[] }
  | { readonly kind: 'refused'; readonly result: ForwardResult };

export class ForwardExecutorStats {
  executed = 0;
  replayed = 0;
  refused = 0;
  unauthenticated = 0;
  chargeFailures = 0;
}

export class ForwardExecutor implements ForwardHandler {
  readonly stats = new ForwardExecutorStats();
  private running = 0;

  constructor(private readonly options: ForwardExecutorOptions) {}

  /** The ledger's figures, for the metrics. */
  get ledger(): ForwardLedger {
    return this.options.ledger;
  }

  async execute(call: ForwardCall, sink: ForwardSink | undefined): Promise<ForwardResult | ForwardRefusal> {
    const { request, proof } = call;
    const { options } = this;
    const nowMs = options.clock.nowMs();
    const proven = verifyForward(
      options.crypto,
      options.secret,
      options.isMember,
      proof,
      { requestId: request.requestId, accountId: request.accountId, body: request.requestJson },
      nowMs,
    );
    if (!proven.ok) {
      this.stats.unauthenticated++;
      options.log?.(`forward from ${proof.member} refused: ${proven.error}`);
      return { kind: 'unauthenticated', reason: proven.error };
    }
    const account = options.pool.account(request.accountId);
    if (account === undefined) return this.refused(`account ${request.accountId} is not in this node's policy`);
    if (account.homeRegion !== options.region) return this.refused(`account ${request.accountId} is homed in ${account.homeRegion}, not ${options.region}`);
    const target = options.targets(request.accountId);
    if (target === undefined) return this.refused(`this node holds no credential for account ${request.accountId}`);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.requestJson));
    } catch {
      return this.refused('request_json is not UTF-8 JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return this.refused('request_json is not a JSON object');
    if (this.running >= forwardCallsInFlightMax) return this.refused('the home node runs its most forwarded calls');

    const upstreamRequest: UpstreamRequest = {
      body: body as Record<string, unknown>,
      ...(request.anthropicVersion === undefined ? {} : { anthropicVersion: request.anthropicVersion }),
      ...(request.anthropicBeta === undefined ? {} : { anthropicBeta: request.anthropicBeta }),
    };
    const outcome = await this.run({
      requestId: request.requestId,
      account,
      target,
      origin: proof.member,
      request: upstreamRequest,
      stream: request.stream,
      ...(sink === undefined ? {} : { onEvent: (event: SseEvent) => sink.send(event) }),
      signal: call.signal,
      abortOnCancel: request.abortOnCancel && request.stream,
      ...(call.deadlineMs === undefined ? {} : { deadlineMs: upstreamDeadlineOf(call.deadlineMs, nowMs) }),
      reportFeedback: true,
      forwardedFor: { tenant: request.tenant, originRegion: request.originRegion },
    });
    return outcome.result;
  }

  /**
   * One call on an account homed here, through the ledger: run once, or replayed. The forward
   * service runs every forwarded call through it, and this node's own calls on its accounts do
   * too (`localRoute`), so a request id that reached an account through any region runs on it
   * once. `reportFeedback` tells this node's pool what the account said; a local caller reports
   * it itself.
   */
  async run(run: AccountRun): Promise<RunOutcome> {
    const { options } = this;
    const { requestId, account } = run;
    const key = ledgerKeyOf(requestId, account.id);
    const begun = options.ledger.begin(key, run.origin, options.clock.nowMs());
    switch (begun.kind) {
      case 'running':
        return { kind: 'refused', result: this.refused(`request ${requestId} is already running on account ${account.id}`) };
      case 'full':
        return { kind: 'refused', result: this.refused('the forward ledger is full of running calls') };
      case 'done':
        return {
          kind: 'replayed',
          result: await this.replay(begun.answer, begun.owner === run.origin, run.stream, run.onEvent),
          events: begun.answer.events ?? [],
        };
      case 'new':
        break;
    }
    // A forwarded call meets the home's view of the account: the origin decided on its own, and
    // only the home grants the one probe after a pause, however many regions saw the pause end.
    if (run.forwardedFor !== undefined) {
      const admitted = options.pool.admitForward(account.id, options.clock.nowMs());
      if (!admitted.ok) {
        options.ledger.abandon(key);
        const feedback: AccountFeedback = { kind: 'rate-limited', retryAfterMs: admitted.retryAfterMs, rateLimits: emptyRateLimits };
        return {
          kind: 'refused',
          result: { ...this.refused(`account ${account.id} cannot take calls now (paused, disabled, or its probe is out)`), feedback },
        };
      }
    }
    // A forwarded call's ledger entry is on disk before the upstream sees the call: a home node
    // that dies mid-call answers a repeat of it as interrupted instead of calling again.
    const forwarded = run.origin !== options.self && options.durable?.keepsState === true ? options.durable : undefined;
    if (forwarded !== undefined) {
      const begun = await forwarded.durable();
      if (!begun.ok) {
        options.ledger.abandon(key);
        return { kind: 'refused', result: this.refused(`the home node's store refused a write (${begun.error.kind})`) };
      }
    }

    this.running++;
    this.stats.executed++;
    let heldBytes = 0;
    const startedMs = options.clock.nowMs();
    try {
      let events: SseEvent[] | undefined = run.stream ? [] : undefined;
      const sink = run.onEvent;
      const callOptions = this.callOptionsOf(run);
      const upstream: Result<Completion | StreamCompletion, UpstreamError> = run.stream
        ? await options.client.stream(run.target, run.request, {
            ...callOptions,
            // Every event read, not only those delivered: a stream whose origin left drains to its
            // end, and a replay must give the whole answer.
            onRead: (event) => {
              run.onRead?.(event);
              // Kept for a replay while they fit the ledger's bounds; past them, not at all.
              if (events === undefined) return;
              const bytes = 2 * (event.event.length + event.data.length);
              if (heldBytes + bytes <= forwardReplayBytesMax && options.ledger.hold(bytes)) {
                heldBytes += bytes;
                events.push(event);
              } else events = undefined;
            },
            onEvent: (event) => sink?.(event),
          })
        : await options.client.complete(run.target, run.request, callOptions);
      const feedback = upstream.ok ? upstream.value.feedback : upstream.error.feedback;
      const usage = upstream.ok ? upstream.value.usage : upstream.error.usage;
      if (run.reportFeedback && feedback !== undefined) {
        const report = options.pool.onFeedback(account.id, feedback, options.clock.nowMs());
        if (report?.alert !== undefined) options.onAlert?.(report);
      }
      const chargedAtMs = run.chargeAtMs ?? options.clock.nowMs();
      const charged = upstream.ok || feedback?.kind === 'success' || !isZero(usage);
      if (charged) this.charge(account, usage, chargedAtMs);
      const result = resultOf(upstream, run.stream, options.region);
      options.ledger.release(heldBytes);
      heldBytes = 0;
      const answerKept = !run.stream || events !== undefined;
      options.ledger.finish(key, { result: keptResultOf(result), events, answerKept, stream: run.stream }, options.clock.nowMs());
      if (forwarded !== undefined && charged && run.forwardedFor !== undefined) {
        forwarded.appendRow(
          homeRowOf(run, run.forwardedFor, usage, result, {
            node: options.self ?? '',
            region: options.region,
            chargedAtMs,
            startedMs,
            endedMs: options.clock.nowMs(),
          }),
        );
      }
      // The account's charge and the kept answer are on disk before the origin hears of them.
      if (forwarded !== undefined && !(await forwarded.durable()).ok) return { kind: 'refused', result: this.refused("the home node's store refused a write") };
      return { kind: 'ran', upstream, result };
    } catch (error) {
      options.ledger.release(heldBytes);
      options.ledger.abandon(key);
      throw error;
    } finally {
      this.running--;
    }
  }

  /**
   * This node's own calls on an account homed here, as a route for the account caller: through
   * `run`, so a request that already ran on the account through another region is replayed (with
   * zero usage, since that region settles it) instead of calling the upstream a second time.
   */
  localRoute(account: Account, target: UpstreamTarget, self: NodeId): ForwardRoute {
    return {
      region: this.options.region,
      call: async (_accountId, call) => {
        const stream = call.stream ? new MessageStream() : undefined;
        const sink = call.onEvent;
        const outcome = await this.run({
          requestId: call.requestId,
          account,
          target,
          origin: self,
          request: call.request,
          stream: call.stream,
          ...(sink === undefined ? {} : { onEvent: (event: SseEvent) => sink(event) }),
          ...(call.onRead === undefined ? {} : { onRead: call.onRead }),
          ...(call.signal === undefined ? {} : { signal: call.signal }),
          abortOnCancel: call.abortOnCancel,
          ...(call.deadlineMs === undefined ? {} : { deadlineMs: call.deadlineMs }),
          ...(call.chargeAtMs === undefined ? {} : { chargeAtMs: call.chargeAtMs }),
          reportFeedback: false,
        });
        if (outcome.kind === 'ran') return outcome.upstream;
        // A replay: its events went to the sink; the message is rebuilt from them like a forward's.
        if (stream !== undefined && outcome.kind === 'replayed') {
          for (const event of outcome.events) {
            stream.onEvent(event);
            call.onRead?.(event);
          }
        }
        return upstreamResultOf(outcome.result, call.stream, stream, call.signal?.aborted === true);
      },
    };
  }

  /** The upstream client's options for a run: its signal with the run's cancel mode, its deadline from now. */
  private callOptionsOf(run: AccountRun): { signal?: AbortSignal; onCancel?: 'abort' | 'drain'; timeouts?: { deadlineMs: number } } {
    const deadline =
      run.deadlineMs === undefined ? undefined : Math.min(upstreamDeadlineMs, Math.max(1, Math.ceil(run.deadlineMs - this.options.clock.nowMs())));
    return {
      ...(run.signal === undefined ? {} : { signal: run.signal, onCancel: run.abortOnCancel ? ('abort' as const) : ('drain' as const) }),
      ...(deadline === undefined ? {} : { timeouts: { deadlineMs: deadline } }),
    };
  }

  /**
   * A repeated forward: the stored answer, with the usage for the origin that sent the first
   * one and zero for any other (the first origin settles the tenant for it). A stream is replayed
   * by its stored events; an answer not kept, or kept as the other kind, is replayed as its
   * outcome without a message, which the origin reports as a failure carrying the usage.
   */
  private async replay(answer: StoredAnswer, sameOrigin: boolean, stream: boolean, sink: EventSink | undefined): Promise<ForwardResult> {
    this.stats.replayed++;
    const usage = sameOrigin ? answer.result.usage : zeroUsage;
    const usable = answer.answerKept && answer.stream === stream;
    if (!usable) {
      return {
        ...answer.result,
        outcome: answer.result.outcome === 'ok' ? 'refused' : answer.result.outcome,
        usage,
        messageJson: undefined,
        detail: 'already executed; the answer is not held for a replay',
        replayed: true,
        settledElsewhere: !sameOrigin,
      };
    }
    if (stream && sink !== undefined) {
      // Bounded by the stored events, at most forwardReplayBytesMax of them.
      for (const event of answer.events ?? []) await sink(event);
    }
    return { ...answer.result, usage, replayed: true, settledElsewhere: !sameOrigin };
  }

  private refused(detail: string): ForwardResult {
    this.stats.refused++;
    return {
      outcome: 'refused',
      usage: zeroUsage,
      feedback: undefined,
      messageJson: undefined,
      upstreamRequestId: undefined,
      status: 0,
      errorType: '',
      detail,
      cancelled: false,
      estimated: false,
      replayed: false,
      settledElsewhere: false,
      servedRegion: this.options.region,
    };
  }

  private charge(account: Account, usage: TokenUsage, atMs: number): void {
    const charged = this.options.usage.charge(account, accountAmountsOf(usage), atMs);
    if (charged.ok) return;
    this.stats.chargeFailures++;
    this.options.log?.(`account ${account.id}: forwarded usage not charged (${charged.error.kind})`);
  }
}

const utf8 = new TextEncoder();

function resultOf(
  result: { ok: true; value: Completion | StreamCompletion } | { ok: false; error: UpstreamError },
  stream: boolean,
  region: RegionId,
): ForwardResult {
  // Built field by field, without spreads: this runs for every call on a local account too.
  if (result.ok) {
    const value = result.value;
    // A stream's message is rebuilt by the origin from the events it relayed.
    const completion = value as Completion;
    const messageJson = stream ? undefined : (completion.bodyJson ?? utf8.encode(JSON.stringify(completion.message)));
    return forwardResult('ok', value.usage, value.feedback, messageJson, value.requestId, 0, '', '', value.cancelled, false, region);
  }
  const error = result.error;
  const failed = (status: number, errorType: string, detail: string, cancelled = false, estimated = false): ForwardResult =>
    forwardResult(error.kind, error.usage, error.feedback, undefined, error.requestId, status, errorType, detail, cancelled, estimated, region);
  switch (error.kind) {
    case 'http-status':
      return failed(error.status, error.errorType ?? '', error.message);
    case 'stream-error':
      return failed(0, error.errorType, error.message);
    case 'timeout':
      return failed(0, '', error.phase);
    case 'unavailable':
      return failed(0, '', error.reason);
    case 'network':
    case 'bad-response':
    case 'truncated':
    case 'invalid-request':
      return failed(0, '', error.detail);
    case 'cancelled':
      return failed(0, '', '', true, error.estimated);
  }
}

/**
 * The result as the ledger keeps it for a replay: the feedback without its rate-limit snapshot.
 * A replay comes later, when the headers it read are stale (the pool must not move the account's
 * windows back to them), and a snapshot is about half a kilobyte of frozen objects that would
 * otherwise stay in the heap for each of the ledger's entries; the feedback's kind stays, for the
 * origin's retry decision.
 */
function keptResultOf(result: ForwardResult): ForwardResult {
  const feedback = result.feedback;
  if (feedback === undefined || (feedback.kind !== 'success' && feedback.kind !== 'rate-limited') || feedback.rateLimits === emptyRateLimits) return result;
  return { ...result, feedback: { ...feedback, rateLimits: emptyRateLimits } };
}

function forwardResult(
  outcome: ForwardResult['outcome'],
  usage: TokenUsage,
  feedback: ForwardResult['feedback'],
  messageJson: Uint8Array | undefined,
  upstreamRequestId: string | undefined,
  status: number,
  errorType: string,
  detail: string,
  cancelled: boolean,
  estimated: boolean,
  servedRegion: RegionId,
): ForwardResult {
  return {
    outcome,
    usage,
    feedback,
    messageJson,
    upstreamRequestId,
    status,
    errorType,
    detail,
    cancelled,
    estimated,
    replayed: false,
    settledElsewhere: false,
    servedRegion,
  };
}

/**
 * When the upstream call of a forward must end: its gRPC deadline less the hop's margin, so that
 * the result gets back before the origin gives up. A deadline shorter than twice the margin (a
 * direct caller's, not an origin's) leaves half the time for the hop.
 */
function upstreamDeadlineOf(forwardDeadlineMs: number, nowMs: number): number {
  return forwardDeadlineMs - Math.min(forwardHopMarginMs, Math.max(0, forwardDeadlineMs - nowMs) / 2);
}

function ledgerKeyOf(requestId: RequestId, accountId: AccountId): string {
  return `${requestId}\u001f${accountId}`;
}

function isZero(usage: TokenUsage): boolean {
  return usage.input === 0 && usage.output === 0 && usage.cacheWrite === 0 && usage.cacheRead === 0;
}

/** The `home` usage row of a forwarded call: the account's charge, linked to the origin's row by the request id. */
function homeRowOf(
  run: AccountRun,
  origin: { readonly tenant: TenantId; readonly originRegion: RegionId },
  usage: TokenUsage,
  result: ForwardResult,
  at: { readonly node: string; readonly region: RegionId; readonly chargedAtMs: number; readonly startedMs: number; readonly endedMs: number },
): LedgerRow {
  const model = typeof run.request.body.model === 'string' ? run.request.body.model : '';
  // The tenant's weights are the origin's business (its row); the home row weighs by the defaults.
  const weighted = weightedTokens(usage, defaultTokenWeights);
  return {
    requestId: run.requestId,
    role: 'home',
    tenant: origin.tenant,
    user: null,
    apiKeyId: null,
    account: run.account.id,
    originRegion: origin.originRegion,
    servedRegion: at.region,
    node: at.node,
    model,
    stream: run.stream,
    inputTokens: usage.input,
    outputTokens: usage.output,
    cacheWriteTokens: usage.cacheWrite,
    cacheReadTokens: usage.cacheRead,
    weightedTokens: weighted,
    costMicros: costMicrosOf(model, weighted),
    outcome: result.outcome === 'ok' ? 'ok' : 'failed',
    status: result.outcome,
    estimated: result.estimated,
    clientLeft: result.cancelled,
    drained: result.cancelled && !result.estimated,
    chargedAtMs: at.chargedAtMs,
    settledAtMs: at.endedMs,
    durationMs: Math.max(0, at.endedMs - at.startedMs),
  };
}
