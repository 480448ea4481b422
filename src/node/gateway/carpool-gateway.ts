import { ConcurrencyLimiter } from '../../admission/concurrency.js';
import { type TokenUsage, zeroUsage } from '../../admission/estimate.js';
import type { Rejection } from '../../admission/outcome.js';
import { metricOfReservation, type QuotaDecision, type QuotaRequest, type QuotaSubject } from '../../admission/quota-gate.js';
import type { RequestAuthenticator } from '../../admission/request-auth.js';
import type { ClaimHandle, ClaimOutcome } from '../../admission/request-claims.js';
import { nodeOfReplica } from '../../admission/successor-release.js';
import type { Settlement } from '../../admission/reservations.js';
import { Shedder } from '../../admission/shedder.js';
import { assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../platform/system-clock.js';
import { type AccountId, isValidId, type NodeId, type RegionId, type RequestId, type TenantId, type UserId } from '../../core/ids.js';
import {
  accountBusyRetryAfterMs,
  accountCallTurnsMax,
  noAccountRetryAfterMsMin,
  requestRunningRetryAfterMs,
  tierQueueFullRetryAfterMs,
  upstreamDrainGraceMs,
} from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CounterKey } from '../../crdt/counter-key.js';
import type { WindowedCounter } from '../../crdt/windowed-counter.js';
import type { RoundOutcome } from '../../mesh/quorum.js';
import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import { clientCancelModeOf, defaultTokenWeights, idempotencyOf, type ShedSettings, type Tenant } from '../../mesh/policy/policy-schema.js';
import { weightedTokens as weightedTokensOf } from '../../admission/estimate.js';
import type {
  CarpoolCall,
  CarpoolCredentials,
  CarpoolHandler,
  CompleteRequest,
  CompleteResponse,
  CountTokensRequest,
  CountTokensResponse,
  GatewayError,
  GetUsageRequest,
  GetUsageResponse,
  StreamSink,
  StreamSummary,
  Usage,
} from '../../net/grpc/carpool-handler.js';
import { type GatewayObserver, noopObserver } from '../../observe/gateway-observer.js';
import { type AccountFeedback, emptyRateLimits } from '../../pool/account-feedback.js';
import type { AccountPool } from '../../pool/account-pool.js';
import { TierQueue } from '../../schedule/tier-queue.js';
import { type DegradeAction, type Degraded, degradeFor, degradedHeaderOf, actionsOf } from '../../schedule/degrade.js';
import { type DegradableTier, defaultScheduleSettings } from '../../mesh/policy/schedule-schema.js';
import type { PoolCapacity } from '../../pool/account-pool.js';
import { ScheduleUsage } from './schedule-usage.js';
import { systemTimers, type Timers } from '../../upstream/call-guard.js';
import { feedbackOfStatus, networkFeedback } from '../../upstream/classify-feedback.js';
import type { CountedTokens, CountTokensCallError, CountTokensCallOptions, CountTokensCallRequest } from '../../upstream/count-tokens-call.js';
import type { SseEvent } from '../../upstream/sse-parser.js';
import type { EventSink } from '../../upstream/upstream-client.js';
import { gatewayStatusOf } from '../../net/grpc/gateway-status.js';
import type { LedgerRow } from '../../ledger/ledger-row.js';
import { costMicrosOf } from '../../ledger/model-prices.js';
import type { StoreError } from '../../ledger/node-state.js';
import { encodeRequestContext } from '../../ledger/request-context.js';
import type { UpstreamRequest, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { AccountCaller, AccountCompletion } from '../account-caller.js';
import { type AnswerRecord, AnswerStore, replayAnswer, type ServedMethod } from './answer-store.js';
import { type CallSpan, callSpanOf } from './call-span.js';
import { CallScheduler, type SchedulerRefusal } from './call-scheduler.js';
import { claimSubjectOf } from './claim-subject.js';
import { defaultGatewaySettings, type GatewaySettings } from './gateway-settings.js';
import { RecentUsage } from './recent-usage.js';
import { estimatedAmounts, settledAmounts } from '../../admission/request-amounts.js';
import { RequestRateLimits } from './request-rate-limits.js';
import { type CompletionInput, parseCompleteRequest, parseCountTokensRequest } from './request-validation.js';
import { gatewayErrorOfCall, gatewayErrorOfCount } from './upstream-failure.js';
import { limitUsages, readKeysOf, type UsageSubject } from './usage-report.js';

/**
 * The request path of one region node: carpool.v1.Carpool as a transport-neutral handler
 * (src/net/grpc/carpool-handler.ts). One completion goes through, in order:
 *
 *   validate     request id, JSON, model, max_tokens and body within their bounds, messages ▶ INVALID_ARGUMENT
 *   authenticate API key or signature over request_json ──────────────────▶ UNAUTHENTICATED
 *   request id   the answer store (answer-store.ts): a kept answer is served again, nothing
 *                charged and no upstream call; an id still running: a unary retry waits for it,
 *                a stream ▶ ABORTED + pushback; an id used and its answer gone ▶ ALREADY_EXISTS.
 *                An id the transport assigned (HTTP without Idempotency-Key) skips the store
 *                and the claim below: no client can send it again
 *   rate limit   per client IP and user, then per tenant ────────────────▶ RESOURCE_EXHAUSTED
 *   concurrency  the tenant's (and user's) requests in flight at this node ▶ RESOURCE_EXHAUSTED
 *   shed         the queues at and above the tenant's tier ──────────────▶ UNAVAILABLE
 *   estimate     input upper bound + max_tokens, weighted by the tenant
 *   quota        QuotaGate in the tenant's modes; reserves the estimate, with a lease sized to the
 *                call (call-span.ts) ──▶ RESOURCE_EXHAUSTED, or FAILED_PRECONDITION if it can never fit
 *   queue        tier queue, fair by tokens; waits with the call's signal ▶ UNAVAILABLE
 *   call         AccountCaller: an account, retries across accounts; stream events reach the
 *                sink one for one, each send awaited (backpressure up to the upstream's socket).
 *                `execute` dispatches through `caller.call`: the request reaches an upstream there.
 *   settle       the reservation with the actual weighted usage, on every way out
 *   keep         the answer (or the failure) under the request id, for a retry
 *
 * What is charged. Nothing for a request refused before the quota step (no reservation exists),
 * and a request refused by the gate left none behind. From the reservation on, every way out ends
 * it exactly once: a request that reached a model is settled with the usage its calls reported,
 * whether it succeeded, failed after using tokens, was truncated, or its client left; one that
 * reached none (left the queue, no account could take it, every account refused it) is withdrawn,
 * refunded whole, and its id may be sent again. Settlement is idempotent on the request id, and a
 * request id has one request in flight at a node at a time, so a retry is never counted twice.
 *
 * A client that leaves. Before dispatch (queued, or waiting for a permit) its request is simply
 * withdrawn. After it, under the tenant's `onClientCancel: drain` (the default), the call is not
 * aborted: its queue slot is freed at once so the next request starts, and the call goes on (with
 * its account's permit, so account concurrency stays honest) to its result, bounded by the
 * client's deadline plus the drain grace; it is charged in full and its answer kept. Under
 * `abort`, a stream is cancelled (at its home region too) and charged its input plus the output
 * relayed so far, the one estimate (src/upstream/relayed-usage.ts), flagged in the settlement.
 *
 * Regions. The pool prefers accounts homed in this region. An account homed elsewhere is called
 * through its home region's node (src/node/forward/): the home node makes the upstream call and
 * charges the account's counters; this node settles the tenant's reservation, which it holds, and
 * keeps the answer for the client's retries here. `servedRegion` names the region whose node
 * called the upstream.
 */

/** What the gateway needs of the node: `MeshRuntime` provides all of it. */
export interface GatewayRuntime {
  /** `shedSettings`, when present, puts the policy's shedding thresholds over the node's own. */
  readonly policy: Pick<PolicyDocument, 'tenant'> & Partial<Pick<PolicyDocument, 'shedSettings' | 'scheduleSettings' | 'degradeSettings'>>;
  readonly counter: WindowedCounter;
  /** `capacity`, when present, lets the degraded mode see how short the pool is (without it, nothing is degraded). */
  readonly pool: Pick<AccountPool, 'acquire' | 'release' | 'cancel' | 'onFeedback'> & Partial<Pick<AccountPool, 'capacity'>>;
  /** `nowMs` picks the windows the request is charged in: its usage row names the same time. */
  admit(request: QuotaRequest, nowMs: number): Promise<QuotaDecision>;
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[];
  /** Withdraws an admitted request that reached no model: refunded whole, its id free again. */
  withdraw(requestId: RequestId): boolean;
  /** Claims a request id mesh-wide before it may reach an upstream (src/admission/request-claims.ts). */
  claim(subject: string): Promise<ClaimOutcome>;
  /** Gives back a granted claim of a request that reached no model. */
  withdrawClaim(claim: ClaimHandle): void;
  /** A quorum read: joins what R members hold for `keys` into the counter. */
  readRound(keys: readonly CounterKey[]): Promise<RoundOutcome>;
  /**
   * Resolves once everything done so far is on the node's disk (one group commit), or with the
   * store's error; at once on a node without a store (src/ledger/durable-journal.ts).
   */
  durable?(): Promise<Result<undefined, StoreError>>;
  /** Whether the node keeps a durable store (then the two waits above happen, and requests carry their ledger context). */
  readonly keepsState?: boolean;
  /** Why the node's store refuses writes now; the gateway then admits nothing. */
  readonly storeFailing?: StoreError | undefined;
  /** Appends a usage row to the node's next group commit (src/ledger/ledger-row.ts). */
  appendRow?(row: LedgerRow): void;
}

/** The count_tokens call; `countTokensCall` of src/upstream/count-tokens-call.ts in production. */
export type CountTokensFn = (
  target: UpstreamTarget,
  request: CountTokensCallRequest,
  options: CountTokensCallOptions,
) => Promise<Result<CountedTokens, CountTokensCallError>>;

export interface CarpoolGatewayOptions {
  readonly runtime: GatewayRuntime;
  /** This node's region: `servedRegion` of every answer. */
  readonly region: RegionId;
  /** This node's member id, for its usage rows; the region's name by default. */
  readonly node?: NodeId;
  /** The region of a mesh member, to tell a client where its request id ran; none by default. */
  readonly regionOf?: (node: NodeId) => RegionId | undefined;
  readonly authenticator: RequestAuthenticator;
  readonly caller: Pick<AccountCaller, 'call' | 'pump'>;
  /** Where an account's calls go and as whom; undefined for an account this node has no key for. */
  readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  readonly countTokens: CountTokensFn;
  readonly settings?: GatewaySettings;
  readonly clock?: Clock;
  readonly timers?: Timers;
  readonly log?: (line: string) => void;
  /** Told admission and queue timings and settled tokens (upstream timings come from the client); observes nothing by default. */
  readonly observer?: GatewayObserver;
  /** Told the usage record of every settlement (where a usage ledger writes its rows); nothing by default. */
  readonly onSettled?: (settled: SettledRequest) => void;
}

/** What a completion served: a whole message, or the summary after a stream's events. */
type Served = { readonly kind: 'message'; readonly response: CompleteResponse } | { readonly kind: 'stream'; readonly summary: StreamSummary };

/** Plain counters for the metrics binding; labels come from bounded sets (kinds, outcomes). */
export class GatewayStats {
  requests = 0;
  completed = 0;
  /** Refusals before the call, by rejection kind (`invalid` includes requests that did not validate). */
  readonly refused: Record<Rejection['kind'], number> = {
    quota: 0,
    rate: 0,
    concurrency: 0,
    unauthenticated: 0,
    shed: 0,
    'no-quorum': 0,
    invalid: 0,
    'exceeds-limit': 0,
    'request-running': 0,
    'request-done': 0,
  };
  /** Calls that failed after admission, upstream or in the pool. */
  callFailures = 0;
  /** Requests whose client left after admission (settled with whatever they used). */
  cancelled = 0;
  /** Reservations settled with what a request used. */
  settlements = 0;
  /** Of them, the ones whose output was estimated from relayed text (streams aborted under `abort`). */
  settlementsEstimated = 0;
  /** Admitted requests that reached no model: refunded whole, their id free again. */
  withdrawn = 0;
  /** Requests answered from the answer store: a kept answer, or the status of a used id. */
  replayed = 0;
  /** Requests served degraded (src/schedule/degrade.ts), by tier and action: one request may count under several actions. */
  readonly degraded: Record<DegradableTier, Record<DegradeAction, number>> = {
    paid: { 'max-tokens': 0, model: 0, wait: 0 },
    free: { 'max-tokens': 0, model: 0, wait: 0 },
  };
  /** Requests served degraded, by tier (each once). */
  readonly degradedRequests: Record<DegradableTier, number> = { paid: 0, free: 0 };
  /** Requests refused, or answers withheld, because the node's store refused a write. */
  storeRefusals = 0;
}

/** A request past admission: what the call and the settlement need. */
interface Admitted {
  readonly input: CompletionInput;
  readonly tenant: Tenant;
  readonly estimateTokens: number;
  readonly span: CallSpan;
  readonly record: AnswerRecord;
  readonly admittedAtMs: number;
  /** A degraded request's longer wait in the queue; undefined: the node's. */
  readonly queueWaitMs: number | undefined;
}

/** What one admitted request's call came to, however it ended. */
interface Executed {
  readonly result: Result<AccountCompletion, GatewayError>;
  readonly usage: TokenUsage;
  readonly reachedModel: boolean;
  /** Some account answered the call with a success status: a model ran for it, used tokens or not. */
  readonly answered: boolean;
  /** The output was estimated from relayed text: a stream its client left under `abort`. */
  readonly estimated: boolean;
  readonly servedRegion: RegionId;
  /** The account of the last attempt, which made the usage (earlier attempts were refused before a model ran); null when none was tried. */
  readonly account: AccountId | null;
}

/**
 * The usage record of one settled request: what the gateway charged the tenant, and how. A
 * request that reached no model is withdrawn, not settled, and has none.
 */
export interface SettledRequest {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  /** The region whose node called the upstream. */
  readonly servedRegion: RegionId;
  /** Tokens by kind: the upstream's report, or with `estimated` the relayed-text estimate of the output. */
  readonly usage: TokenUsage;
  /** Weighted tokens charged to the tenant's counters. */
  readonly weightedTokens: number;
  /** The one charge that is an estimate: a stream its client cancelled under `onClientCancel: abort`. */
  readonly estimated: boolean;
  readonly outcome: 'ok' | 'failed';
  /** The client went away (deadline, cancel, disconnect) before the answer was in. */
  readonly clientLeft: boolean;
  /** The usage row written for it on a node with a store. */
  readonly row: LedgerRow;
}

/** Who a request is and when it was admitted: what its usage row says besides the usage. */
interface RequestFacts {
  readonly input: CompletionInput;
  readonly tenant: Tenant;
  readonly apiKeyId: string | null;
  readonly admittedAtMs: number;
  readonly stream: boolean;
}

/** Retry hint after a failed quorum read: about two round trips across the widest region pair, as for strict admission. */
const quorumReadRetryAfterMs = 1_000;
/** Retry hint while the node's store refuses writes: an operator has to act, so not soon. */
const storeFailingRetryAfterMs = 5_000;
const utf8 = new TextEncoder();

export class CarpoolGateway implements CarpoolHandler {
  readonly stats = new GatewayStats();
  readonly scheduler: CallScheduler;
  readonly recentUsage = new RecentUsage();
  readonly concurrency = new ConcurrencyLimiter();
  readonly rateLimits: RequestRateLimits;
  /** The answers served here, by request id, for retries; bounded by `settings.answers`. */
  readonly answers: AnswerStore;

  private readonly runtime: GatewayRuntime;
  /** Mesh-wide usage per tenant, for the queue's levels. */
  private readonly scheduleUsage: ScheduleUsage;
  private readonly region: RegionId;
  private readonly node: string;
  private readonly regionOf: (node: NodeId) => RegionId | undefined;
  private readonly authenticator: RequestAuthenticator;
  private readonly caller: Pick<AccountCaller, 'call' | 'pump'>;
  private readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  private readonly countTokensCall: CountTokensFn;
  private readonly settings: GatewaySettings;
  private readonly shedder: Shedder;
  /** The policy's thresholds the shedder holds now; undefined while it holds the node's own. */
  private policyShed: ShedSettings | undefined;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly observer: GatewayObserver;
  private readonly onSettled: (settled: SettledRequest) => void;
  /** The API key id each call authenticated with, for its usage row; entries go with their calls. */
  private readonly keyIds = new WeakMap<object, string>();
  /** Handler calls running, for a drain on shutdown. */
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(options: CarpoolGatewayOptions) {
    this.runtime = options.runtime;
    this.region = options.region;
    this.node = options.node ?? options.region;
    this.regionOf = options.regionOf ?? (() => undefined);
    this.authenticator = options.authenticator;
    this.caller = options.caller;
    this.targets = options.targets;
    this.countTokensCall = options.countTokens;
    this.settings = options.settings ?? defaultGatewaySettings;
    assert(
      Number.isSafeInteger(this.settings.drainGraceMs) && this.settings.drainGraceMs >= 1 && this.settings.drainGraceMs <= upstreamDrainGraceMs,
      'the drain grace is 1 ms to upstreamDrainGraceMs',
    );
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => {});
    this.observer = options.observer ?? noopObserver;
    this.onSettled = options.onSettled ?? (() => {});
    this.answers = new AnswerStore(this.settings.answers);
    this.shedder = new Shedder(this.settings.shed);
    this.rateLimits = new RequestRateLimits(this.settings.rateLimits);
    this.scheduleUsage = new ScheduleUsage(this.runtime.counter);
    this.scheduler = new CallScheduler({
      queue: new TierQueue(this.settings.queue, { settings: this.runtime.policy.scheduleSettings?.() ?? defaultScheduleSettings, usage: this.scheduleUsage }),
      waitMs: this.settings.queueWaitMs,
      clock: this.clock,
      timers: options.timers ?? systemTimers,
      observer: this.observer,
    });
  }

  /** Handler calls running now. */
  get inFlight(): number {
    return this.running;
  }

  /** Resolves once no handler call runs; for the drain on shutdown. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends every request still waiting in the queue (`closed`, a shed answer); running calls go on. */
  close(): void {
    this.scheduler.close();
  }

  complete(call: CarpoolCall<CompleteRequest>): Promise<Result<CompleteResponse, GatewayError>> {
    return this.track(async () => {
      const served = await this.completion(call, undefined);
      if (!served.ok) return served;
      assert(served.value.kind === 'message', 'a non-streaming request is served a message');
      return ok(served.value.response);
    });
  }

  streamComplete(call: CarpoolCall<CompleteRequest>, sink: StreamSink): Promise<Result<StreamSummary, GatewayError>> {
    return this.track(async () => {
      const served = await this.completion(call, sink);
      if (!served.ok) return served;
      assert(served.value.kind === 'stream', 'a streaming request is served a stream');
      return ok(served.value.summary);
    });
  }

  countTokens(call: CarpoolCall<CountTokensRequest>): Promise<Result<CountTokensResponse, GatewayError>> {
    return this.track(async () => {
      const input = parseCountTokensRequest(call.request);
      if (!input.ok) return this.refuse({ kind: 'invalid', field: input.error.field, reason: input.error.reason });
      const nowMs = this.clock.nowMs();
      const tenant = this.authenticate(call, nowMs);
      if (!tenant.ok) return tenant;
      // A count costs the upstream a call, so it takes the tenant's rates like a completion.
      const rate = this.rateLimits.take(call.peerIp, tenant.value.id, tenant.value.id as string as UserId, nowMs);
      if (!rate.ok) return this.refuse(rate.error);
      const counted = await this.countOnSomeAccount(tenant.value.id, input.value, call.signal);
      if (!counted.ok) return counted;
      return ok({ inputTokens: counted.value.inputTokens });
    });
  }

  getUsage(call: CarpoolCall<GetUsageRequest>): Promise<Result<GetUsageResponse, GatewayError>> {
    return this.track(async () => {
      const nowMs = this.clock.nowMs();
      const tenant = this.authenticate(call, nowMs);
      if (!tenant.ok) return tenant;
      const user = call.request.user;
      if (user !== '' && !isValidId(`${tenant.value.id}:${user}`))
        return this.refuse({
          kind: 'invalid',
          field: 'user',
          reason: 'joined to the tenant id as <tenant>:<user>, must be at most 64 printable ASCII characters',
        });
      const subjects = subjectsOf(tenant.value, user === '' ? undefined : user);
      if (call.request.consistency === 'quorum') {
        // Joins R members' states of every key the rows read, so the rows include every strict
        // admission that completed anywhere (W + R > N). The rows are then read locally.
        const round = await this.runtime.readRound(readKeysOf(this.runtime.counter, subjects, nowMs));
        if (!round.ok)
          return this.refuse(
            round.reason === 'no-quorum'
              ? { kind: 'no-quorum', operation: 'read', retryAfterMs: quorumReadRetryAfterMs }
              : { kind: 'shed', retryAfterMs: quorumReadRetryAfterMs },
          );
      }
      const readAtMs = this.clock.nowMs();
      const last = this.recentUsage.lastMinute(tenant.value.id, readAtMs);
      return ok({ tenant: tenant.value.id, limits: limitUsages(this.runtime.counter, subjects, readAtMs), lastMinute: usageOf(last) });
    });
  }

  /**
   * Authenticates a call that reaches no upstream and charges nothing (the HTTP front door's model
   * list): the tenant its credentials prove, or the refusal every failure gets alike.
   */
  identify(call: CarpoolCall<unknown>): Result<TenantId, GatewayError> {
    const tenant = this.authenticate(call, this.clock.nowMs());
    return tenant.ok ? ok(tenant.value.id) : tenant;
  }

  // ---- Completions ----

  /**
   * One completion: validation, authentication, then its request id in the answer store. A new id
   * runs (`run`); an id whose answer is kept is answered from it, with nothing charged and no
   * upstream call; an id still running makes a non-streamed retry wait for the first request and
   * then look again (once: two turns), and a streamed one is told to come back (request-running).
   */
  private async completion(call: CarpoolCall<CompleteRequest>, sink: StreamSink | undefined): Promise<Result<Served, GatewayError>> {
    const parsed = parseCompleteRequest(call.request);
    if (!parsed.ok) return this.refuse({ kind: 'invalid', field: parsed.error.field, reason: parsed.error.reason });
    const input = parsed.value;
    const nowMs = this.clock.nowMs();
    const tenant = this.authenticate(call, nowMs);
    if (!tenant.ok) return tenant;
    const userSubject = input.user === undefined ? tenant.value.id : `${tenant.value.id}:${input.user}`;
    if (!isValidId(userSubject))
      return this.refuse({
        kind: 'invalid',
        field: 'user',
        reason: 'joined to the tenant id as <tenant>:<user>, must be at most 64 printable ASCII characters',
      });
    const method: ServedMethod = sink === undefined ? 'complete' : 'stream';
    // An id the transport made itself cannot come again: its request runs without a kept answer.
    if (input.requestIdAssigned) return this.run(call, input, tenant.value, userSubject as UserId, this.answers.unkept(input.requestId), sink);
    for (let turn = 0; turn < 2; turn++) {
      const begun = this.answers.begin(input.requestId, tenant.value.id, this.clock.nowMs());
      switch (begun.kind) {
        case 'new':
          return this.run(call, input, tenant.value, userSubject as UserId, begun.record, sink);
        case 'done': {
          this.stats.replayed++;
          const replayed = await replayAnswer(begun.answer, method, sink);
          return replayed.ok ? replayed : this.refuse(replayed.error);
        }
        case 'running':
          if (sink !== undefined || turn > 0) return this.refuse({ kind: 'request-running', retryAfterMs: requestRunningRetryAfterMs });
          // Nobody reads the answer once this client is gone; the first request keeps running.
          if (!(await untilDoneOrGone(begun.done, call.signal))) return this.refuse({ kind: 'shed', retryAfterMs: accountBusyRetryAfterMs });
          break;
        case 'other':
          return this.refuse({ kind: 'invalid', field: 'request_id', reason: 'is already used by another request; a new request needs a new id' });
        case 'full':
          return this.refuse({ kind: 'shed', retryAfterMs: accountBusyRetryAfterMs });
      }
    }
    return this.refuse({ kind: 'request-running', retryAfterMs: requestRunningRetryAfterMs });
  }

  /** A request with a new id: rate limits and concurrency, then admission; its record always ends. */
  private async run(
    call: CarpoolCall<CompleteRequest>,
    input: CompletionInput,
    tenant: Tenant,
    userSubject: UserId,
    record: AnswerRecord,
    sink: StreamSink | undefined,
  ): Promise<Result<Served, GatewayError>> {
    try {
      const nowMs = this.clock.nowMs();
      const rate = this.rateLimits.take(call.peerIp, tenant.id, userSubject, nowMs);
      if (!rate.ok) return this.refuse(rate.error);
      const userCap = input.user === undefined ? undefined : { id: userSubject, max: tenant.userConcurrencyMax };
      const slot = this.concurrency.acquire(input.requestId, tenant.id, tenant.concurrencyMax, userCap);
      if (!slot.ok) {
        const error = slot.error;
        // A full table is this node's capacity, not the tenant's cap: shed, as concurrency.ts asks.
        return this.refuse(
          error.kind === 'concurrency-full'
            ? { kind: 'shed', retryAfterMs: accountBusyRetryAfterMs }
            : error.kind === 'concurrency'
              ? { kind: 'concurrency', retryAfterMs: error.retryAfterMs }
              : error,
        );
      }
      try {
        return await this.admitted(call, input, tenant, nowMs, record, sink);
      } finally {
        this.concurrency.release(input.requestId);
      }
    } finally {
      // A no-op once the request's answer was kept; otherwise the id was never run and is free again.
      record.withdraw();
    }
  }

  /**
   * The shedder with the policy's thresholds when the policy sets them, the node's own
   * (`settings.shed`) otherwise. The policy hands out the same object until its settings change,
   * so per request this is one comparison.
   */
  private currentShedder(): Shedder {
    const fromPolicy = this.runtime.policy.shedSettings?.();
    if (fromPolicy !== this.policyShed) {
      this.policyShed = fromPolicy;
      this.shedder.setThresholds(fromPolicy ?? this.settings.shed);
    }
    return this.shedder;
  }

  private async admitted(
    call: CarpoolCall<CompleteRequest>,
    given: CompletionInput,
    tenant: Tenant,
    nowMs: number,
    record: AnswerRecord,
    sink: StreamSink | undefined,
  ): Promise<Result<Served, GatewayError>> {
    const schedule = this.runtime.policy.scheduleSettings?.() ?? defaultScheduleSettings;
    this.scheduler.queue.configure(schedule);
    const degradeSettings = this.runtime.policy.degradeSettings?.();
    // O(accounts): read only when the queue's cap or a degrade rule needs it.
    const capacity = schedule.mode === 'dynamic' || degradeSettings !== undefined ? this.poolCapacity(nowMs) : undefined;
    // In dynamic mode work beyond what the accounts take now waits in the priority queue, not in
    // the pool's first-come permit queues, where its priority would be lost.
    this.scheduler.setCapacity(schedule.mode === 'dynamic' && capacity !== undefined ? Math.max(1, capacity.permits) : Number.POSITIVE_INFINITY);
    // Degraded before shedding: a degraded request's longer wait is what its shedding threshold allows.
    const degraded =
      capacity === undefined
        ? undefined
        : degradeFor(degradeSettings, { tier: tenant.tier, maxTokens: given.maxTokens, model: modelOf(given) }, () => capacity);
    const shed = this.currentShedder().decide(tenant.tier, this.scheduler.load(), nowMs, degraded?.waitMs);
    if (!shed.admit) return this.refuse({ kind: 'shed', retryAfterMs: shed.retryAfterMs });
    const input = degraded === undefined ? given : degradedInput(given, degraded);
    if (degraded !== undefined) {
      this.countDegraded(degraded);
      call.onDegraded?.(degradedHeaderOf(degraded));
    }
    const waitMs = degraded?.waitMs;
    // A tenant whose ids need only this node's answer store skips the mesh-wide claim, and so does
    // an id this node assigned: unique by construction, no other request can ever carry it.
    if (idempotencyOf(tenant) === 'region' || input.requestIdAssigned) return (await this.reserveAndCall(call, input, tenant, record, sink, waitMs)).result;
    const claimed = await this.claimId(input.requestId, tenant);
    if (!claimed.ok) return claimed;
    // The claim is kept once a model may have run for the id; otherwise it is given back, so that
    // a retry anywhere may run it.
    let keepClaim = false;
    try {
      const served = await this.reserveAndCall(call, input, tenant, record, sink, waitMs);
      keepClaim = served.keepClaim;
      return served.result;
    } finally {
      if (!keepClaim) this.runtime.withdrawClaim(claimed.value);
    }
  }

  /** What the pool can take now, for the queue's cap and the degraded mode; undefined when the pool cannot tell. */
  private poolCapacity(nowMs: number): PoolCapacity | undefined {
    return this.runtime.pool.capacity?.(nowMs);
  }

  private countDegraded(degraded: Degraded): void {
    this.stats.degradedRequests[degraded.tier]++;
    for (const action of actionsOf(degraded)) this.stats.degraded[degraded.tier][action]++;
  }

  /**
   * Claims the request id mesh-wide before anything may reach an upstream: the id then runs at
   * most once in the whole mesh (within the claims' horizon), not only at this node, whose own
   * answer store has already answered the retries it knows of.
   */
  private async claimId(requestId: RequestId, tenant: Tenant): Promise<Result<ClaimHandle, GatewayError>> {
    const outcome = await this.runtime.claim(claimSubjectOf(tenant.id, requestId));
    switch (outcome.kind) {
      case 'granted':
        return ok(outcome.claim);
      case 'held-here':
        // This node ran the id, and its answer store no longer holds the answer.
        return this.refuse({
          kind: 'request-done',
          reason: 'this request id already completed; the answer is no longer kept, and a new request needs a new id',
        });
      case 'held-elsewhere': {
        const node = nodeOfReplica(outcome.holder);
        const region = this.regionOf(node);
        const where = region === undefined ? `node ${node}` : `region ${region} (node ${node})`;
        return this.refuse({
          kind: 'request-done',
          reason: `this request id already ran at ${where}; send the retry there for its answer, or use a new id for a new request`,
        });
      }
      case 'no-quorum':
        return this.refuse({ kind: 'no-quorum', operation: 'claim', retryAfterMs: outcome.retryAfterMs });
      case 'shed':
        return this.refuse({ kind: 'shed', retryAfterMs: outcome.retryAfterMs });
    }
  }

  /** The quota, the call and its settlement, for a request whose id is claimed. */
  private async reserveAndCall(
    call: CarpoolCall<CompleteRequest>,
    input: CompletionInput,
    tenant: Tenant,
    record: AnswerRecord,
    sink: StreamSink | undefined,
    queueWaitMs: number | undefined,
  ): Promise<{ readonly result: Result<Served, GatewayError>; readonly keepClaim: boolean }> {
    const nowMs = this.clock.nowMs();
    const amounts = estimatedAmounts(input.inputTokensEstimate, input.maxTokens, tenant.weights);
    const waitMs = Math.max(this.settings.queueWaitMs, queueWaitMs ?? 0);
    const span = callSpanOf(nowMs, call.deadlineMs, { ...this.settings, queueWaitMs: waitMs });
    const admitStartedMs = this.observer.nowMs();
    const subjects = subjectsOf(tenant, input.user);
    // A node whose disk refuses writes takes no work: what it would charge could not be kept.
    if (this.runtime.storeFailing !== undefined) {
      this.stats.storeRefusals++;
      return { result: this.refuse({ kind: 'shed', retryAfterMs: storeFailingRetryAfterMs }), keepClaim: false };
    }
    const facts: RequestFacts = { input, tenant, apiKeyId: this.keyIds.get(call) ?? null, admittedAtMs: nowMs, stream: sink !== undefined };
    const context =
      this.runtime.keepsState !== true
        ? undefined
        : encodeRequestContext({ user: input.user ?? null, apiKeyId: facts.apiKeyId, model: modelOf(input), stream: facts.stream, admittedAtMs: nowMs });
    const decision = await this.runtime.admit(
      { requestId: input.requestId, tenant: tenant.id, subjects, amounts, leaseMs: span.leaseMs, ...(context === undefined ? {} : { context }) },
      nowMs,
    );
    this.observer.admission(decision.ok ? 'admitted' : 'refused', this.observer.nowMs() - admitStartedMs);
    if (call.onLimits !== undefined && (decision.ok || decision.error.kind === 'quota'))
      call.onLimits(limitUsages(this.runtime.counter, subjects, this.clock.nowMs()));
    if (!decision.ok) return { result: this.refuse(decision.error), keepClaim: false };
    // The reservation is on disk before anything may reach an upstream: a node that dies now
    // comes back knowing the request was admitted, and charges its estimate.
    const reserved = await this.whenDurable();
    if (!reserved.ok) {
      this.runtime.withdraw(input.requestId);
      return { result: reserved, keepClaim: false };
    }

    // From here the request holds a reservation: every way out below settles or withdraws it once.
    const admitted: Admitted = { input, tenant, estimateTokens: amounts.get('weighted_tokens') ?? 0, span, record, admittedAtMs: nowMs, queueWaitMs };
    // What ends it if `execute` throws (a bug): nothing reached the model as far as anyone knows.
    let executed: Executed = {
      result: err(queueErrorOf({ kind: 'closed' })),
      usage: zeroUsage,
      reachedModel: false,
      answered: false,
      estimated: false,
      servedRegion: this.region,
      account: null,
    };
    try {
      executed = await this.execute(call, admitted, sink);
    } finally {
      this.settle(facts, executed, call.signal.aborted);
    }
    if (call.signal.aborted) this.stats.cancelled++;
    const served = this.servedOf(input, executed, sink !== undefined);
    if (served.ok) this.stats.completed++;
    else this.stats.callFailures++;
    this.keep(record, executed, served, sink === undefined ? 'complete' : 'stream');
    const keepClaim = executed.reachedModel || executed.answered;
    // The request is settled for its client when its answer ends (the unary reply, a stream's
    // final status): its usage row and kept answer are on disk before that.
    const settled = await this.whenDurable();
    return { result: settled.ok ? served : settled, keepClaim };
  }

  /**
   * The queue, then the account call; the slot is freed when the call ends or the client leaves.
   * Once `caller.call` dispatched the request the client's leaving no longer stops it (unless the
   * tenant aborts a stream): it drains to its usage, bounded by `span.upstreamEndByMs`.
   */
  private async execute(call: CarpoolCall<CompleteRequest>, admitted: Admitted, sink: StreamSink | undefined): Promise<Executed> {
    const { input, tenant, record } = admitted;
    const slot = await this.scheduler.acquire({ tier: tenant.tier, tenant: tenant.id, costTokens: admitted.estimateTokens }, call.signal, admitted.queueWaitMs);
    if (!slot.ok)
      return {
        result: err(queueErrorOf(slot.error)),
        usage: zeroUsage,
        reachedModel: false,
        answered: false,
        estimated: false,
        servedRegion: this.region,
        account: null,
      };
    // What the call used, once known: the queue's fairness counts it in place of the estimate.
    let usedTokens: number | undefined;
    const releaseSlot = (): void => slot.value.release(usedTokens);
    call.signal.addEventListener('abort', releaseSlot, { once: true });
    try {
      const nowMs = this.clock.nowMs();
      const request: UpstreamRequest = {
        body: input.body,
        ...(input.anthropicVersion === undefined ? {} : { anthropicVersion: input.anthropicVersion }),
        ...(input.anthropicBeta === undefined ? {} : { anthropicBeta: input.anthropicBeta }),
      };
      // Each upstream SSE event becomes one `event`, its data passed on as sent. The send's
      // promise goes back to the upstream client, which reads no further until it settles; a send
      // that rejects (the client left) makes it stop delivering. Every event read is recorded,
      // delivered or not, so a drained stream is kept whole for a retry.
      const onEvent: EventSink | undefined = sink === undefined ? undefined : (event) => sink.send({ type: event.event, dataJson: utf8.encode(event.data) });
      const result = await this.caller.call({
        tenant: tenant.id,
        requestId: input.requestId,
        request,
        chargeAtMs: admitted.admittedAtMs,
        stream: sink !== undefined,
        ...(onEvent === undefined ? {} : { onEvent, onRead: (event: SseEvent) => record.read(event) }),
        signal: call.signal,
        onClientCancel: clientCancelModeOf(tenant),
        ...(admitted.span.upstreamEndByMs === undefined ? {} : { deadlineMs: admitted.span.upstreamEndByMs }),
        acquireDeadlineMs: Math.min(call.deadlineMs ?? Number.POSITIVE_INFINITY, nowMs + this.settings.accountWaitMs),
        inputTokensEstimate: input.inputTokensEstimate,
      });
      const outcome = result.ok ? result.value : result.error;
      usedTokens = settledAmounts(outcome.usage, tenant.weights, true).get('weighted_tokens');
      // A call that failed without any usage never reached the model on any account; one that
      // another region already ran and settled is not counted again.
      const reachedModel = result.ok ? !result.value.settledElsewhere || !isZero(outcome.usage) : !isZero(outcome.usage);
      const answered = outcome.attempts.some((attempt) => attempt.outcome === 'success');
      const account = result.ok ? result.value.accountId : (outcome.attempts.at(-1)?.accountId ?? null);
      return {
        result: result.ok ? result : err(gatewayErrorOfCall(result.error)),
        usage: outcome.usage,
        reachedModel,
        answered,
        estimated: outcome.estimated,
        servedRegion: outcome.servedRegion ?? this.region,
        account,
      };
    } finally {
      call.signal.removeEventListener('abort', releaseSlot);
      releaseSlot();
    }
  }

  /**
   * Settles a request that reached a model with what it used (the estimate of
   * src/upstream/relayed-usage.ts for a stream aborted by its client), or withdraws one that did
   * not: refunded whole, and its id free again. Tells `onSettled` of every settlement.
   */
  private settle(facts: RequestFacts, executed: Executed, clientLeft: boolean): void {
    const { input, tenant } = facts;
    const requestId = input.requestId;
    if (!executed.reachedModel) {
      this.runtime.withdraw(requestId);
      this.stats.withdrawn++;
      return;
    }
    const amounts = settledAmounts(executed.usage, tenant.weights, true);
    const settlements = this.runtime.settle(requestId, amounts);
    this.stats.settlements++;
    if (executed.estimated) this.stats.settlementsEstimated++;
    const nowMs = this.clock.nowMs();
    this.recentUsage.add(tenant.id, executed.usage, nowMs);
    this.scheduleUsage.charge(tenant.id, amounts.get('weighted_tokens') ?? 0, nowMs);
    this.observer.tokens(executed.usage);
    // A lease that ran out first charged the estimate: the row says what the counters hold.
    const byLease = settlements.some((settlement) => settlement.by === 'lease');
    const chargedOf = (metric: string, actual: number): number => settlements.find((s) => metricOfReservation(s.requestId) === metric)?.charged ?? actual;
    const weightedTokens = chargedOf('weighted_tokens', amounts.get('weighted_tokens') ?? 0);
    const model = modelOf(input);
    const row: LedgerRow = {
      requestId,
      role: executed.servedRegion === this.region ? 'local' : 'origin',
      tenant: tenant.id,
      user: input.user ?? null,
      apiKeyId: facts.apiKeyId,
      account: executed.account,
      originRegion: this.region,
      servedRegion: executed.servedRegion,
      node: this.node,
      model,
      stream: facts.stream,
      inputTokens: byLease ? chargedOf('input_tokens', 0) - executed.usage.cacheWrite : executed.usage.input,
      outputTokens: byLease ? chargedOf('output_tokens', 0) : executed.usage.output,
      cacheWriteTokens: executed.usage.cacheWrite,
      cacheReadTokens: executed.usage.cacheRead,
      weightedTokens,
      // List prices follow the default weights, whatever the tenant's own (src/ledger/model-prices.ts).
      costMicros: costMicrosOf(model, weightedTokensOf(executed.usage, defaultTokenWeights)),
      outcome: executed.result.ok ? 'ok' : 'failed',
      status: executed.result.ok ? 'ok' : statusNameOf(executed.result.error),
      estimated: executed.estimated || byLease,
      clientLeft,
      drained: clientLeft && !executed.estimated,
      chargedAtMs: facts.admittedAtMs,
      settledAtMs: nowMs,
      durationMs: Math.max(0, nowMs - facts.admittedAtMs),
    };
    this.runtime.appendRow?.(row);
    this.onSettled({
      requestId,
      tenant: tenant.id,
      servedRegion: executed.servedRegion,
      usage: executed.usage,
      weightedTokens,
      estimated: executed.estimated,
      outcome: executed.result.ok ? 'ok' : 'failed',
      clientLeft,
      row,
    });
  }

  /** One group commit of the node's store; an error to answer the client with if the store refused it. */
  private async whenDurable(): Promise<Result<undefined, GatewayError>> {
    if (this.runtime.keepsState !== true || this.runtime.durable === undefined) return ok(undefined);
    const written = await this.runtime.durable();
    if (written.ok) return written;
    this.stats.storeRefusals++;
    this.log(`the node's store refused a write (${written.error.kind}): ${written.error.message}`);
    return this.refuse({ kind: 'shed', retryAfterMs: storeFailingRetryAfterMs });
  }

  /** What the client is answered: the message or the stream's summary, or the call's error. */
  private servedOf(input: CompletionInput, executed: Executed, stream: boolean): Result<Served, GatewayError> {
    const result = executed.result;
    if (!result.ok) return result;
    const completion = result.value;
    const usage = usageOf(completion.usage);
    const servedRegion = completion.servedRegion ?? this.region;
    if (stream) return ok({ kind: 'stream', summary: { requestId: input.requestId, usage, servedRegion } });
    // A non-streamed call always answers a whole message; the upstream client guarantees it.
    assert(completion.response.kind === 'message', 'a non-streaming call answers a message');
    const response = completion.response;
    const messageJson = response.bodyJson ?? utf8.encode(JSON.stringify(response.message));
    return ok({ kind: 'message', response: { requestId: input.requestId, messageJson, usage, servedRegion } });
  }

  /** Keeps what a request that reached a model came to, for a retry of its id; one that did not is forgotten. */
  private keep(record: AnswerRecord, executed: Executed, served: Result<Served, GatewayError>, method: ServedMethod): void {
    const nowMs = this.clock.nowMs();
    if (!executed.reachedModel) record.withdraw();
    else if (served.ok && served.value.kind === 'message') record.answeredMessage(served.value.response, nowMs);
    else if (served.ok && served.value.kind === 'stream') record.answeredStream(served.value.summary, nowMs);
    else if (!served.ok) {
      const status = executed.estimated
        ? 'its client cancelled the stream, and it was charged its input and the output relayed so far (an estimate)'
        : gatewayStatusOf(served.error).details;
      record.failed(method, status, nowMs);
    }
  }

  // ---- Count tokens ----

  /**
   * One count_tokens call on an account the pool grants at once (no waiting: a count is cheap and
   * should not queue behind completions). Accounts without a key on this node are passed over.
   * When the grant is a half-open account's probe, the answer is reported to the pool as the
   * probe's outcome; otherwise the probe would stay out until its timeout.
   */
  private async countOnSomeAccount(tenant: TenantId, input: CountTokensCallRequest, signal: AbortSignal): Promise<Result<CountedTokens, GatewayError>> {
    const pool = this.runtime.pool;
    const excluded = new Set<AccountId>();
    // Bounded: every turn either returns or excludes an account the pool will not offer again.
    for (let turn = 0; turn < accountCallTurnsMax; turn++) {
      const nowMs = this.clock.nowMs();
      const picked = pool.acquire({ tenant, deadlineMs: nowMs, excluded, localRegion: this.region }, nowMs);
      if (!picked.ok) {
        const error = picked.error;
        const retryAfterMs =
          error.kind === 'no-account' ? (error.retryAfterMs ?? noAccountRetryAfterMsMin) : error.kind === 'busy' ? error.retryAfterMs : accountBusyRetryAfterMs;
        return this.refuse({ kind: 'shed', retryAfterMs });
      }
      if (picked.value.kind === 'queued') {
        // A deadline of now never queues; should it, the ticket is withdrawn at once.
        pool.cancel(picked.value.waiterId);
        this.caller.pump();
        return this.refuse({ kind: 'shed', retryAfterMs: accountBusyRetryAfterMs });
      }
      const { permit, account, probe } = picked.value;
      const target = this.targets(account.id);
      if (target === undefined) {
        pool.release(permit);
        this.caller.pump();
        excluded.add(account.id);
        continue;
      }
      let counted: Result<CountedTokens, CountTokensCallError>;
      try {
        counted = await this.countTokensCall(target, input, { signal });
        if (probe) {
          const feedback = probeFeedbackOf(counted, this.clock.nowMs());
          if (feedback !== undefined) pool.onFeedback(account.id, feedback, this.clock.nowMs());
        }
      } finally {
        pool.release(permit);
        // Whoever waits for this account's permit hears of the release now.
        this.caller.pump();
      }
      if (counted.ok) return counted;
      this.log(`count_tokens on account ${account.id} failed: ${counted.error.kind}`);
      return err(gatewayErrorOfCount(counted.error));
    }
    return this.refuse({ kind: 'shed', retryAfterMs: noAccountRetryAfterMsMin });
  }

  // ---- Shared ----

  /** The tenant the call's credentials prove, or the rejection every failure gets alike. */
  private authenticate(call: CarpoolCall<unknown>, nowMs: number): Result<Tenant, GatewayError> {
    const credentials: CarpoolCredentials = call.credentials;
    const authenticated = this.authenticator.authenticate(
      {
        ...call.signedContent,
        ...(credentials.apiKey === undefined ? {} : { apiKey: credentials.apiKey }),
        ...(credentials.signature === undefined ? {} : { signature: credentials.signature }),
      },
      Math.floor(nowMs),
    );
    if (!authenticated.ok) {
      const failure = authenticated.error;
      return this.refuse(failure.kind === 'shed' ? { kind: 'shed', retryAfterMs: failure.retryAfterMs } : { kind: 'unauthenticated', reason: failure.reason });
    }
    // Looked up again: the tenant may have been removed between the two reads.
    const tenant = this.runtime.policy.tenant(authenticated.value.tenant);
    if (tenant === undefined) return this.refuse({ kind: 'unauthenticated', reason: 'unknown-tenant' });
    this.keyIds.set(call, authenticated.value.keyId);
    return ok(tenant);
  }

  private refuse(rejection: Rejection): Result<never, GatewayError> {
    this.stats.refused[rejection.kind]++;
    // An `invalid` rejection carries its field and reason to the client as a GatewayError of its own kind.
    if (rejection.kind === 'invalid') return err({ kind: 'invalid', field: rejection.field, reason: rejection.reason });
    return err({ kind: 'rejected', rejection });
  }

  /** Counts the handler call for the drain on shutdown. */
  private async track<T>(body: () => Promise<T>): Promise<T> {
    this.stats.requests++;
    this.running++;
    try {
      return await body();
    } finally {
      this.running--;
      if (this.running === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }
}

/** The tenant's limits, and the user's under `<tenant>:<user>` when the request names a user. */
function subjectsOf(tenant: Tenant, user: string | undefined): (QuotaSubject & UsageSubject)[] {
  const subjects: (QuotaSubject & UsageSubject)[] = [{ scope: 'tenant', subject: tenant.id, rules: tenant.limits }];
  if (user !== undefined && tenant.userLimits.length > 0) subjects.push({ scope: 'user', subject: `${tenant.id}:${user}`, rules: tenant.userLimits });
  return subjects;
}

/** A request that left the queue without a slot; the client reads it only when it is still there. */
function queueErrorOf(refusal: SchedulerRefusal): GatewayError {
  switch (refusal.kind) {
    case 'queue-full':
    case 'queue-timeout':
      return { kind: 'rejected', rejection: { kind: 'shed', retryAfterMs: tierQueueFullRetryAfterMs } };
    case 'cancelled':
    case 'closed':
      return { kind: 'rejected', rejection: { kind: 'shed', retryAfterMs: accountBusyRetryAfterMs } };
  }
}

/** Resolves true when `done` does, false as soon as `signal` aborts (the client left). */
function untilDoneOrGone(done: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    void done.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    });
  });
}

/** The model a request names (validated non-empty by request-validation.ts). */
function modelOf(input: CompletionInput): string {
  const model = input.body.model;
  return typeof model === 'string' ? model : '';
}

/** A short name of what a failed call answered, for its usage row. */
function statusNameOf(error: GatewayError): string {
  return error.kind === 'rejected' ? error.rejection.kind : error.kind;
}

function usageOf(usage: TokenUsage): Usage {
  return { inputTokens: usage.input, outputTokens: usage.output, cacheCreationInputTokens: usage.cacheWrite, cacheReadInputTokens: usage.cacheRead };
}

function isZero(usage: TokenUsage): boolean {
  return usage.input === 0 && usage.output === 0 && usage.cacheWrite === 0 && usage.cacheRead === 0;
}

/** What a count_tokens answer says about the account, for a probe; nothing for a cancelled call. */
function probeFeedbackOf(counted: Result<CountedTokens, CountTokensCallError>, nowMs: number): AccountFeedback | undefined {
  if (counted.ok) return { kind: 'success', rateLimits: emptyRateLimits };
  const error = counted.error;
  switch (error.kind) {
    case 'http-status':
      return feedbackOfStatus(error.status, {}, nowMs);
    case 'network':
    case 'timeout':
    case 'bad-response':
      return networkFeedback(error.detail);
    case 'cancelled':
    case 'invalid-request':
      return undefined;
  }
}

/** The request as it is served degraded: `max_tokens` cut and the model mapped, in the body the upstream gets too. */
function degradedInput(input: CompletionInput, degraded: Degraded): CompletionInput {
  const maxTokens = degraded.maxTokens?.to ?? input.maxTokens;
  const body = {
    ...input.body,
    ...(degraded.maxTokens === undefined ? {} : { max_tokens: maxTokens }),
    ...(degraded.model === undefined ? {} : { model: degraded.model.to }),
  };
  return { ...input, body, maxTokens };
}
