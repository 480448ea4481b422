import { ConcurrencyLimiter } from '../../admission/concurrency.js';
import type { TokenUsage } from '../../admission/estimate.js';
import type { Rejection } from '../../admission/outcome.js';
import type { QuotaDecision, QuotaRequest, QuotaSubject } from '../../admission/quota-gate.js';
import type { RequestAuthenticator } from '../../admission/request-auth.js';
import type { Settlement } from '../../admission/reservations.js';
import { Shedder } from '../../admission/shedder.js';
import { assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import { type AccountId, isValidId, type RegionId, type RequestId, type TenantId, type UserId } from '../../core/ids.js';
import { accountBusyRetryAfterMs, accountCallTurnsMax, grpcCallsInFlightMax, noAccountRetryAfterMsMin, reservationLeaseMsMax, tierQueueFullRetryAfterMs } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CounterKey } from '../../crdt/counter-key.js';
import type { WindowedCounter } from '../../crdt/windowed-counter.js';
import type { RoundOutcome } from '../../mesh/quorum.js';
import type { PolicyDocument } from '../../mesh/policy/policy-document.js';
import type { Tenant } from '../../mesh/policy/policy-schema.js';
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
import { systemTimers, type Timers } from '../../upstream/call-guard.js';
import { feedbackOfStatus, networkFeedback } from '../../upstream/classify-feedback.js';
import type { CountedTokens, CountTokensCallError, CountTokensCallOptions, CountTokensCallRequest } from '../../upstream/count-tokens-call.js';
import type { EventSink } from '../../upstream/upstream-client.js';
import type { UpstreamRequest, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { AccountCaller, AccountCompletion } from '../account-caller.js';
import { CallScheduler, type SchedulerRefusal } from './call-scheduler.js';
import { defaultGatewaySettings, type GatewaySettings } from './gateway-settings.js';
import { RecentUsage } from './recent-usage.js';
import { estimatedAmounts, settledAmounts } from './request-amounts.js';
import { RequestRateLimits } from './request-rate-limits.js';
import { type CompletionInput, parseCompleteRequest, parseCountTokensRequest } from './request-validation.js';
import { gatewayErrorOfCall, gatewayErrorOfCount } from './upstream-failure.js';
import { limitUsages, readKeysOf, type UsageSubject } from './usage-report.js';

/**
 * The request path of one region node: carpool.v1.Carpool as a transport-neutral handler
 * (src/net/grpc/carpool-handler.ts). One completion goes through, in order:
 *
 *   validate     request id, JSON, model, max_tokens, messages ─────────▶ INVALID_ARGUMENT
 *   authenticate API key or signature over request_json ──────────────────▶ UNAUTHENTICATED
 *   rate limit   per client IP and user, then per tenant ────────────────▶ RESOURCE_EXHAUSTED
 *   concurrency  the tenant's (and user's) requests in flight at this node ▶ RESOURCE_EXHAUSTED
 *   shed         the queues at and above the tenant's tier ──────────────▶ UNAVAILABLE
 *   estimate     input upper bound + max_tokens, weighted by the tenant
 *   quota        QuotaGate in the tenant's modes; reserves the estimate ───▶ RESOURCE_EXHAUSTED
 *   queue        tier queue, fair by tokens; waits with the call's signal ▶ UNAVAILABLE
 *   call         AccountCaller: an account, retries across accounts; stream events reach the
 *                sink one for one, each send awaited (backpressure up to the upstream's socket)
 *   settle       the reservation with the actual weighted usage, on every way out
 *
 * Nothing is counted for a request refused before the quota step (no reservation exists), and a
 * request refused by the gate left none behind. From the reservation on, every way out settles
 * exactly once: with the usage the calls reported, whether the call succeeded, failed after
 * using tokens, was truncated, or was cancelled by the client and drained; with zero when no
 * account answered (refused in the queue, every account throttled, the client gone before the
 * headers). Settlement is idempotent on the request id, and a request id may have one request in
 * flight at a node at a time, so a client's retry is never counted twice.
 *
 * A client that goes away mid-stream frees its queue slot at once, so the next request starts;
 * the upstream call goes on to its final usage (the upstream client drains it) while it still
 * holds its account's permit, so account concurrency stays honest.
 *
 * Regions. The pool prefers accounts homed in this region. An account homed elsewhere is called
 * through its home region's node (src/node/forward/): the home node makes the upstream call and
 * charges the account's counters; this node settles the tenant's reservation, which it holds.
 * `servedRegion` names the region whose node called the upstream.
 */

/** What the gateway needs of the node: `MeshRuntime` provides all of it. */
export interface GatewayRuntime {
  readonly policy: Pick<PolicyDocument, 'tenant'>;
  readonly counter: WindowedCounter;
  readonly pool: Pick<AccountPool, 'acquire' | 'release' | 'cancel' | 'onFeedback'>;
  admit(request: QuotaRequest): Promise<QuotaDecision>;
  settle(requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[];
  /** A quorum read: joins what R members hold for `keys` into the counter. */
  readRound(keys: readonly CounterKey[]): Promise<RoundOutcome>;
}

/** The count_tokens call; `countTokensCall` of src/upstream/count-tokens-call.ts in production. */
export type CountTokensFn = (target: UpstreamTarget, request: CountTokensCallRequest, options: CountTokensCallOptions) => Promise<Result<CountedTokens, CountTokensCallError>>;

export interface CarpoolGatewayOptions {
  readonly runtime: GatewayRuntime;
  /** This node's region: `servedRegion` of every answer. */
  readonly region: RegionId;
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
}

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
  settlements = 0;
}

/** A request past admission: what the call and the settlement need. */
interface Admitted {
  readonly input: CompletionInput;
  readonly tenant: Tenant;
  readonly estimateTokens: number;
}

/** What one admitted request's call came to, however it ended. */
interface Executed {
  readonly result: Result<AccountCompletion, GatewayError>;
  readonly usage: TokenUsage;
  readonly reachedModel: boolean;
}

const zeroUsage: TokenUsage = Object.freeze({ input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });
/** Retry hint after a failed quorum read: about two round trips across the widest region pair, as for strict admission. */
const quorumReadRetryAfterMs = 1_000;
const utf8 = new TextEncoder();
const systemClock: Clock = { nowMs: () => Date.now() };

export class CarpoolGateway implements CarpoolHandler {
  readonly stats = new GatewayStats();
  readonly scheduler: CallScheduler;
  readonly recentUsage = new RecentUsage();
  readonly concurrency = new ConcurrencyLimiter();
  readonly rateLimits: RequestRateLimits;

  private readonly runtime: GatewayRuntime;
  private readonly region: RegionId;
  private readonly authenticator: RequestAuthenticator;
  private readonly caller: Pick<AccountCaller, 'call' | 'pump'>;
  private readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  private readonly countTokensCall: CountTokensFn;
  private readonly settings: GatewaySettings;
  private readonly shedder: Shedder;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly observer: GatewayObserver;
  /** Request ids with a request in flight here; bounded by the calls the endpoint runs at once. */
  private readonly inFlightIds = new Set<RequestId>();
  /** Handler calls running, for a drain on shutdown. */
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(options: CarpoolGatewayOptions) {
    this.runtime = options.runtime;
    this.region = options.region;
    this.authenticator = options.authenticator;
    this.caller = options.caller;
    this.targets = options.targets;
    this.countTokensCall = options.countTokens;
    this.settings = options.settings ?? defaultGatewaySettings;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => {});
    this.observer = options.observer ?? noopObserver;
    this.shedder = new Shedder(this.settings.shed);
    this.rateLimits = new RequestRateLimits(this.settings.rateLimits);
    this.scheduler = new CallScheduler({
      queue: new TierQueue(this.settings.queue),
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
      const done = await this.completion(call, undefined);
      if (!done.ok) return done;
      const { input, completion } = done.value;
      // A non-streamed call always answers a whole message; the upstream client guarantees it.
      assert(completion.response.kind === 'message', 'a non-streaming call answers a message');
      const response = completion.response;
      const messageJson = response.bodyJson ?? utf8.encode(JSON.stringify(response.message));
      return ok({ requestId: input.requestId, messageJson, usage: usageOf(completion.usage), servedRegion: completion.servedRegion ?? this.region });
    });
  }

  streamComplete(call: CarpoolCall<CompleteRequest>, sink: StreamSink): Promise<Result<StreamSummary, GatewayError>> {
    return this.track(async () => {
      // Each upstream SSE event becomes one `event`, its data passed on as sent. The send's
      // promise goes back to the upstream client, which reads no further until it settles; a
      // send that rejects (the client left) makes it stop delivering and drain for the usage.
      const onEvent: EventSink = (event) => sink.send({ type: event.event, dataJson: utf8.encode(event.data) });
      const done = await this.completion(call, onEvent);
      if (!done.ok) return done;
      const completion = done.value.completion;
      return ok({ requestId: done.value.input.requestId, usage: usageOf(completion.usage), servedRegion: completion.servedRegion ?? this.region });
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
      if (user !== '' && !isValidId(`${tenant.value.id}:${user}`)) return this.refuse({ kind: 'invalid', field: 'user', reason: 'joined to the tenant id as <tenant>:<user>, must be at most 64 printable ASCII characters' });
      const subjects = subjectsOf(tenant.value, user === '' ? undefined : user);
      if (call.request.consistency === 'quorum') {
        // Joins R members' states of every key the rows read, so the rows include every strict
        // admission that completed anywhere (W + R > N). The rows are then read locally.
        const round = await this.runtime.readRound(readKeysOf(this.runtime.counter, subjects, nowMs));
        if (!round.ok) return this.refuse(round.reason === 'no-quorum' ? { kind: 'no-quorum', operation: 'read', retryAfterMs: quorumReadRetryAfterMs } : { kind: 'shed', retryAfterMs: quorumReadRetryAfterMs });
      }
      const readAtMs = this.clock.nowMs();
      const last = this.recentUsage.lastMinute(tenant.value.id, readAtMs);
      return ok({ tenant: tenant.value.id, limits: limitUsages(this.runtime.counter, subjects, readAtMs), lastMinute: usageOf(last) });
    });
  }

  // ---- Completions ----

  /** Admission, the call and the settlement of one completion; see the file comment. */
  private async completion(
    call: CarpoolCall<CompleteRequest>,
    onEvent: EventSink | undefined,
  ): Promise<Result<{ readonly input: CompletionInput; readonly completion: AccountCompletion }, GatewayError>> {
    const parsed = parseCompleteRequest(call.request);
    if (!parsed.ok) return this.refuse({ kind: 'invalid', field: parsed.error.field, reason: parsed.error.reason });
    const input = parsed.value;
    const nowMs = this.clock.nowMs();
    const tenant = this.authenticate(call, nowMs);
    if (!tenant.ok) return tenant;
    const userSubject = input.user === undefined ? tenant.value.id : `${tenant.value.id}:${input.user}`;
    if (!isValidId(userSubject)) return this.refuse({ kind: 'invalid', field: 'user', reason: 'joined to the tenant id as <tenant>:<user>, must be at most 64 printable ASCII characters' });
    if (this.inFlightIds.has(input.requestId)) return this.refuse({ kind: 'invalid', field: 'request_id', reason: 'a request with this id is already running' });
    assert(this.inFlightIds.size < grpcCallsInFlightMax, 'request ids in flight are bounded by the calls the endpoint runs');
    this.inFlightIds.add(input.requestId);
    try {
      const rate = this.rateLimits.take(call.peerIp, tenant.value.id, userSubject as UserId, nowMs);
      if (!rate.ok) return this.refuse(rate.error);
      const userCap = input.user === undefined ? undefined : { id: userSubject as UserId, max: tenant.value.userConcurrencyMax };
      const slot = this.concurrency.acquire(input.requestId, tenant.value.id, tenant.value.concurrencyMax, userCap);
      if (!slot.ok) {
        const error = slot.error;
        // A full table is this node's capacity, not the tenant's cap: shed, as concurrency.ts asks.
        return this.refuse(error.kind === 'concurrency-full' ? { kind: 'shed', retryAfterMs: accountBusyRetryAfterMs } : error.kind === 'concurrency' ? { kind: 'concurrency', retryAfterMs: error.retryAfterMs } : error);
      }
      try {
        return await this.admitted(call, input, tenant.value, nowMs, onEvent);
      } finally {
        this.concurrency.release(input.requestId);
      }
    } finally {
      this.inFlightIds.delete(input.requestId);
    }
  }

  private async admitted(
    call: CarpoolCall<CompleteRequest>,
    input: CompletionInput,
    tenant: Tenant,
    nowMs: number,
    onEvent: EventSink | undefined,
  ): Promise<Result<{ readonly input: CompletionInput; readonly completion: AccountCompletion }, GatewayError>> {
    const shed = this.shedder.decide(tenant.tier, this.scheduler.load(), nowMs);
    if (!shed.admit) return this.refuse({ kind: 'shed', retryAfterMs: shed.retryAfterMs });
    const amounts = estimatedAmounts(input.inputTokensEstimate, input.maxTokens, tenant.weights);
    const admitStartedMs = this.observer.nowMs();
    const decision = await this.runtime.admit({
      requestId: input.requestId,
      tenant: tenant.id,
      subjects: subjectsOf(tenant, input.user),
      amounts,
      leaseMs: reservationLeaseMsMax,
    });
    this.observer.admission(decision.ok ? 'admitted' : 'refused', this.observer.nowMs() - admitStartedMs);
    if (!decision.ok) return this.refuse(decision.error);

    // From here the request holds a reservation: every way out below settles it once.
    const admitted: Admitted = { input, tenant, estimateTokens: amounts.get('weighted_tokens') ?? 0 };
    // What settles if `execute` throws (a bug): nothing reached the model as far as anyone knows.
    let executed: Executed = { result: err(queueErrorOf({ kind: 'closed' })), usage: zeroUsage, reachedModel: false };
    try {
      executed = await this.execute(call, admitted, onEvent);
    } finally {
      this.runtime.settle(input.requestId, settledAmounts(executed.usage, tenant.weights, executed.reachedModel));
      this.stats.settlements++;
      if (executed.reachedModel) {
        this.recentUsage.add(tenant.id, executed.usage, this.clock.nowMs());
        this.observer.tokens(executed.usage);
      }
    }
    if (call.signal.aborted) this.stats.cancelled++;
    const result = executed.result;
    if (result.ok) {
      this.stats.completed++;
      return ok({ input, completion: result.value });
    }
    this.stats.callFailures++;
    return result;
  }

  /** The queue, then the account call; the slot is freed when the call ends or the client leaves. */
  private async execute(call: CarpoolCall<CompleteRequest>, admitted: Admitted, onEvent: EventSink | undefined): Promise<Executed> {
    const { input, tenant } = admitted;
    const slot = await this.scheduler.acquire({ tier: tenant.tier, tenant: tenant.id, costTokens: admitted.estimateTokens }, call.signal);
    if (!slot.ok) return { result: err(queueErrorOf(slot.error)), usage: zeroUsage, reachedModel: false };
    const releaseSlot = (): void => slot.value.release();
    call.signal.addEventListener('abort', releaseSlot, { once: true });
    try {
      const nowMs = this.clock.nowMs();
      const request: UpstreamRequest = {
        body: input.body,
        ...(input.anthropicVersion === undefined ? {} : { anthropicVersion: input.anthropicVersion }),
        ...(input.anthropicBeta === undefined ? {} : { anthropicBeta: input.anthropicBeta }),
      };
      const result = await this.caller.call({
        tenant: tenant.id,
        requestId: input.requestId,
        request,
        stream: onEvent !== undefined,
        ...(onEvent === undefined ? {} : { onEvent }),
        signal: call.signal,
        acquireDeadlineMs: Math.min(call.deadlineMs ?? Number.POSITIVE_INFINITY, nowMs + this.settings.accountWaitMs),
        inputTokensEstimate: input.inputTokensEstimate,
      });
      const usage = result.ok ? result.value.usage : result.error.usage;
      // A call that failed without any usage never reached the model on any account; one that
      // another region already ran and settled is not counted again.
      const reachedModel = result.ok ? !result.value.settledElsewhere || !isZero(usage) : !isZero(usage);
      return { result: result.ok ? result : err(gatewayErrorOfCall(result.error)), usage, reachedModel };
    } finally {
      call.signal.removeEventListener('abort', releaseSlot);
      releaseSlot();
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
        const retryAfterMs = error.kind === 'no-account' ? (error.retryAfterMs ?? noAccountRetryAfterMsMin) : error.kind === 'busy' ? error.retryAfterMs : accountBusyRetryAfterMs;
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
