import { type TokenUsage, zeroUsage } from '../admission/estimate.js';
import { assert, isCount } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../platform/system-clock.js';
import type { AccountId, RegionId, RequestId, TenantId } from '../core/ids.js';
import { accountBusyRetryAfterMs, accountCallerDeadlineHeapSlackMax, accountCallerWaitsMax, accountCallTurnsMax, upstreamDeadlineMs } from '../core/limits.js';
import { PriorityHeap } from '../core/priority-heap.js';
import { err, ok, type Result } from '../core/result.js';
import type { Account } from '../mesh/policy/policy-schema.js';
import type { AccountFeedback } from '../pool/account-feedback.js';
import { disableReasonText } from '../pool/account-health.js';
import type { AccountPool, FeedbackReport, PoolError } from '../pool/account-pool.js';
import { type AccountAmounts, accountAmountsOf, type AccountUsage, estimateAccountAmounts } from '../pool/account-usage.js';
import { type AttemptDecision, AttemptPlan } from '../pool/attempt-plan.js';
import type { Permit, PermitEvent, WaiterId } from '../pool/permits.js';
import { sessionKeyOf } from '../pool/session-key.js';
import type { BaseStrategyName } from '../pool/strategies.js';
import { type CancelMode, systemTimers, type Timers } from '../upstream/call-guard.js';
import type { StreamedMessage } from '../upstream/message-stream.js';
import type { SseEvent } from '../upstream/sse-parser.js';
import type { CallTimeouts, EventSink, UpstreamClient } from '../upstream/upstream-client.js';
import type { UpstreamRequest, UpstreamTarget } from '../upstream/upstream-request.js';
import type { Completion, StreamCompletion, UpstreamError } from '../upstream/upstream-result.js';
import type { ForwardRoute } from './forward/forward-route.js';

/**
 * One Messages request through the account pool to the upstream: the I/O composition the
 * gateway calls for every completion. The pool (src/pool) decides which account and when; the
 * upstream client (src/upstream) makes the call; this file parks callers on promises, owns the
 * one timer that expires them, and feeds what each call said back to the pool and the counters.
 *
 *   sessionKeyOf(body), estimateAccountAmounts(input, max_tokens)
 *   loop over AttemptPlan:
 *     pool.acquire(excluded = tried ∪ skipped) ─ refused ──────────▶ no-account / busy
 *       └ queued ─ park until granted ─ expired ─────────────────────▶ queue-timeout
 *                                     ─ evicted: skip the account, pick again
 *                                     ─ signal aborted: cancel ───────▶ cancelled
 *     targets(account), routes(account, target)
 *       ─ neither: release, skip the account, pick again
 *     route.call (the home node's ledger: here, or forwarded) or client.complete / client.stream
 *     pool.onFeedback · usage.charge · release (always)
 *     plan.after(feedback, responseStarted) ─ retry ─▶ loop
 *                                           ─ done ──▶ the completion
 *                                           ─ give-up ▶ the last upstream error
 *
 * Waiting. The pool answers `acquire` at once, granted or queued; what becomes of a queued
 * ticket comes out of `pool.takeEvents()`. This caller is the one party that drains that outbox:
 * `pump()` ticks the pool, takes its events and settles the parked call each one belongs to,
 * whoever's release, feedback, cancel or policy change decided it. It runs after everything
 * here that can decide an outcome (a release, feedback, a cancel), when the earliest parked
 * deadline passes (one timer for all parked calls, re-armed after every pump), and when the
 * pool changed elsewhere (`poolChanges`, which the node runtime fires after a policy update or
 * its own tick). A grant whose ticket no longer has a parked call (never ours, or the call left)
 * is released at once, so a permit never leaks through the outbox.
 *
 * Billing. An attempt that reached the model (a 2xx, or any usage reported) is charged to its
 * account's counters with the usage the call reported, whether it succeeded, failed, was
 * truncated or was cancelled and drained; an attempt refused before the model ran (429, 529,
 * 401, a connection refused) charges nothing. The result carries the usage of all attempts
 * together, which is what the tenant is charged.
 *
 * The caller's signal. While the call waits for a permit, an abort withdraws it (`cancelled`,
 * nothing charged). Once an attempt is dispatched, `onClientCancel` decides: `drain` (the default)
 * lets the upstream call run to its result whatever the client does, delivering nothing more
 * (the upstream client's drain, before the headers as after them), bounded by `deadlineMs`;
 * `abort` cancels a streamed attempt at once, charged the usage of src/upstream/relayed-usage.ts
 * (`estimated` on the outcome). A non-streamed attempt drains in either mode: its answer reaches
 * the caller whole or not at all, so an abort would have nothing relayed to count.
 *
 * Retries. A stream that delivered an event to the caller's sink is never retried (the client
 * cannot un-receive it); otherwise `AttemptPlan` decides. An account with no upstream target
 * (no credential on this node) and an account that evicted the parked call are skipped without
 * feedback and without using up a switch. A call whose failure came without feedback (the
 * client is closing or full, or the request could not be built) is not retried: another account
 * would meet the same client.
 */

/** The upstream client as this caller uses it; tests may substitute a double. */
export type AccountCallClient = Pick<UpstreamClient, 'complete' | 'stream'>;

export interface AccountCallerOptions {
  readonly pool: AccountPool;
  /** Charges each attempt's usage to its account's counters. */
  readonly usage: Pick<AccountUsage, 'charge'>;
  readonly client: AccountCallClient;
  /**
   * Where an account's calls go, and as whom. Credentials are not in the replicated policy, so
   * a node may lack one: undefined makes the account not callable from here.
   */
  readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  /**
   * How a call with a request id reaches an account, when not straight through `client`: its
   * home node's ledger (src/node/forward/), directly for an account with a target here (the
   * target is passed), or over gRPC to the home region for one without (undefined when that
   * region is unreachable, and the account is passed over). Whoever runs a routed call charges
   * the account's counters, so this caller does not; it still reports the feedback to its pool.
   */
  readonly routes?: (account: Account, target: UpstreamTarget | undefined) => ForwardRoute | undefined;
  /** The same clock as the upstream client's, which turns reset stamps into pool times. */
  readonly clock?: Clock;
  readonly timers?: Timers;
  /** This node's region: accounts homed here are preferred. */
  readonly localRegion?: RegionId;
  /** A tenant's own pool strategy (its policy's `poolStrategy`); undefined: the pool's default. */
  readonly strategyOf?: (tenant: TenantId) => BaseStrategyName | undefined;
  readonly switchesMax?: number;
  /** Subscribes to changes of the pool made outside this caller; returns the unsubscribe. */
  readonly poolChanges?: (listener: () => void) => () => void;
  /** Called when feedback disabled an account (401, 402, 403): an operator must act. */
  readonly onAlert?: (report: FeedbackReport) => void;
  readonly log?: (line: string) => void;
}

export interface AccountCallRequest {
  readonly tenant: TenantId;
  /** The client's request id; a call without one is never forwarded (the home node keys its ledger by it). */
  readonly requestId?: RequestId;
  /** The Messages body and the caller's version headers, passed on as they are. */
  readonly request: UpstreamRequest;
  /** When the account's counters are charged for the call (the request's admission); its end by default. */
  readonly chargeAtMs?: number;
  readonly stream: boolean;
  /** Receives a stream's events as they arrive; ignored for a non-streaming call. */
  readonly onEvent?: EventSink;
  /**
   * Told every event of a stream's answering attempt as it is read, delivered to `onEvent` or not
   * (the caller left and the stream drains): for keeping the whole answer. Must not throw.
   */
  readonly onRead?: (event: SseEvent) => void;
  readonly signal?: AbortSignal;
  /** Absolute time, on the caller's clock, until which the call may wait for a permit. */
  readonly acquireDeadlineMs: number;
  /** Input tokens of the body, counted or estimated by the caller: the accounts' quota room. */
  readonly inputTokensEstimate: number;
  readonly timeouts?: Partial<CallTimeouts>;
  /** What `signal` does once an attempt is dispatched; see the file comment. `drain` by default. */
  readonly onClientCancel?: CancelMode;
  /**
   * Absolute time, on the caller's clock, by which every upstream attempt must end: past it the
   * attempt is cut and ends with the usage seen. Undefined: the upstream client's own timeouts.
   */
  readonly deadlineMs?: number;
}

/** One attempt on one account, in the order they were made. */
export interface AttemptRecord {
  readonly accountId: AccountId;
  /** What the account's answer said; `no-feedback` when the call never heard from it. */
  readonly outcome: AccountFeedback['kind'] | 'no-feedback';
  readonly requestId: string | undefined;
}

interface CallOutcome {
  readonly attempts: readonly AttemptRecord[];
  /** The usage of every attempt together: what the tenant is charged however the call ended. */
  readonly usage: TokenUsage;
  /** Whether an attempt's output was estimated from relayed text (a stream aborted by its caller). */
  readonly estimated: boolean;
  /** The region whose node called the upstream in the last attempt: an account's home when forwarded, else undefined (this node). */
  readonly servedRegion: RegionId | undefined;
}

export type AccountResponse =
  | { readonly kind: 'message'; readonly message: Completion['message']; readonly bodyJson: Uint8Array | undefined }
  | { readonly kind: 'stream'; readonly message: StreamedMessage };

export interface AccountCompletion extends CallOutcome {
  readonly accountId: AccountId;
  readonly requestId: string | undefined;
  readonly response: AccountResponse;
  /** The caller aborted once the upstream had answered: nothing more reached it, and the call was drained for its usage. */
  readonly cancelled: boolean;
  /** A replay of a request another region already ran and settled: nothing is to be counted here. */
  readonly settledElsewhere: boolean;
}

/** Why a failed call was not tried on another account. */
export type GiveUpReason =
  | Extract<AttemptDecision, { readonly kind: 'give-up' }>['reason']
  /** The upstream's answer was a success status after all (a body cut or malformed). */
  | 'done'
  /** The call failed without a word from the account: the client refused or could not build it. */
  | 'no-feedback'
  /** Every account this request may use was tried, skipped or unavailable. */
  | 'no-account-left';

export type AccountCallError =
  /** No account the tenant may use can serve; undefined `retryAfterMs`: only an operator can help. */
  | (CallOutcome & { readonly kind: 'no-account'; readonly retryAfterMs: number | undefined })
  /** Accounts are there but full: no permit and no waiting allowed, or the queues are full. */
  | (CallOutcome & { readonly kind: 'busy'; readonly reason: 'no-wait' | 'queue-full' | 'permits-full'; readonly retryAfterMs: number })
  /** The call waited for a permit of `accountId` until its acquire deadline. */
  | (CallOutcome & { readonly kind: 'queue-timeout'; readonly accountId: AccountId })
  /** The caller's signal aborted while the call waited, or before the upstream answered. */
  | (CallOutcome & { readonly kind: 'cancelled'; readonly phase: 'queued' | 'upstream' })
  /** The caller is closed. */
  | (CallOutcome & { readonly kind: 'closed' })
  /** The last attempt's upstream failure, with its status and error type for the gateway's table. */
  | (CallOutcome & {
      readonly kind: 'upstream';
      readonly accountId: AccountId;
      readonly error: UpstreamError;
      /** The HTTP status of an error answer; undefined for failures without one. */
      readonly status: number | undefined;
      /** The API's `error.type`, from an error body or an `error` event. */
      readonly errorType: string | undefined;
      readonly reason: GiveUpReason;
    });

/** Plain counters for the metrics binding. */
export class AccountCallerStats {
  calls = 0;
  completed = 0;
  failed = 0;
  /** Attempts after the first, on another account. */
  retries = 0;
  /** Accounts passed over without a call: no target, or the parked call was evicted. */
  skipped = 0;
  parked = 0;
  queueTimeouts = 0;
  cancelledWhileParked = 0;
  /** Grants that found no parked call and were released at once. */
  orphanGrants = 0;
  chargeFailures = 0;
  alerts = 0;
}

type ParkOutcome = PermitEvent<TenantId> | { readonly kind: 'cancelled' } | { readonly kind: 'closed' };

interface Parked {
  readonly deadlineMs: number;
  readonly settle: (outcome: ParkOutcome) => void;
}

interface Held {
  readonly permit: Permit;
  readonly account: Account;
}

type Refusal = { readonly kind: 'refused'; readonly error: AccountCallError } | { readonly kind: 'skip'; readonly accountId: AccountId };

/** The longest delay a Node timer takes; a later deadline is re-checked when it fires. */
const timerDelayMsMax = 2_147_483_647;

export class AccountCaller {
  readonly stats = new AccountCallerStats();
  private readonly switchesMax: number | undefined;

  private readonly pool: AccountPool;
  private readonly usage: Pick<AccountUsage, 'charge'>;
  private readonly client: AccountCallClient;
  private readonly targets: (accountId: AccountId) => UpstreamTarget | undefined;
  private readonly routes: (account: Account, target: UpstreamTarget | undefined) => ForwardRoute | undefined;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly strategyOf: (tenant: TenantId) => BaseStrategyName | undefined;
  private readonly localRegion: RegionId | undefined;
  private readonly onAlert: (report: FeedbackReport) => void;
  private readonly log: (line: string) => void;
  private readonly unsubscribe: () => void;

  /** Parked calls by their pool ticket. */
  private readonly parked = new Map<WaiterId, Parked>();
  /** Parked deadlines, for the one wake-up timer; entries of calls gone are stale and skipped. */
  private readonly deadlines = new PriorityHeap<WaiterId>();
  private timer: unknown;
  private timerAtMs: number | undefined;
  private closed = false;

  constructor(options: AccountCallerOptions) {
    this.pool = options.pool;
    this.usage = options.usage;
    this.client = options.client;
    this.targets = options.targets;
    this.routes = options.routes ?? (() => undefined);
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.localRegion = options.localRegion;
    this.strategyOf = options.strategyOf ?? (() => undefined);
    this.switchesMax = options.switchesMax;
    this.onAlert = options.onAlert ?? (() => {});
    this.log = options.log ?? (() => {});
    this.unsubscribe = options.poolChanges?.(() => this.pump()) ?? (() => {});
  }

  /** Calls parked on a permit right now. */
  get parkedCount(): number {
    return this.parked.size;
  }

  /** Whether the wake-up timer is armed: for leak checks. */
  get timerArmed(): boolean {
    return this.timer !== undefined;
  }

  /** One request through the pool to the upstream; see the file comment. */
  async call(request: AccountCallRequest): Promise<Result<AccountCompletion, AccountCallError>> {
    assert(isCount(request.inputTokensEstimate), 'the input-token estimate is a count');
    assert(Number.isFinite(request.acquireDeadlineMs), 'an acquire deadline is a finite time');
    this.stats.calls++;
    const body = request.request.body;
    const sessionKey = sessionKeyOf(body);
    const estimate = estimateAccountAmounts(request.inputTokensEstimate, maxTokensOf(body));
    const plan = new AttemptPlan(this.switchesMax);
    const skipped = new Set<AccountId>();
    const attempts: AttemptRecord[] = [];
    let usage = zeroUsage;
    let estimated = false;
    let servedRegion: RegionId | undefined;
    let last: Extract<AccountCallError, { readonly kind: 'upstream' }> | undefined;
    const outcome = (): CallOutcome => ({ attempts, usage, estimated, servedRegion });

    // Bounded: every turn attempts or skips an account the pool will not offer again, or returns.
    for (let turn = 0; turn < accountCallTurnsMax; turn++) {
      if (this.closed) return this.failed({ kind: 'closed', ...outcome() });
      if (request.signal?.aborted === true) return this.failed({ kind: 'cancelled', phase: 'queued', ...outcome() });
      const excluded = skipped.size === 0 ? plan.tried : new Set([...plan.tried, ...skipped]);
      const held = await this.permitFor(request, sessionKey, estimate, excluded, outcome);
      if (!held.ok) {
        if (held.error.kind === 'skip') {
          skipped.add(held.error.accountId);
          continue;
        }
        const refusal = held.error.error;
        // After an attempt, the account's own answer says more than the pool's refusal.
        const accountsLeft = refusal.kind === 'no-account' || refusal.kind === 'busy' || refusal.kind === 'queue-timeout';
        if (last !== undefined && accountsLeft) return this.failed({ ...last, ...outcome(), reason: 'no-account-left' });
        return this.failed(refusal);
      }
      const { permit, account } = held.value;
      const target = this.targets(account.id);
      const route = request.requestId === undefined ? undefined : this.routes(account, target);
      if (target === undefined && route === undefined) {
        this.log(`account ${account.id} has no upstream target on this node and its home region is not reachable: skipped`);
        this.releasePermit(permit);
        skipped.add(account.id);
        this.stats.skipped++;
        continue;
      }

      assert(plan.canAttempt, 'an attempt follows a retry decision or none');
      if (plan.attempts > 0) this.stats.retries++;
      plan.begin(account.id);
      servedRegion = route?.region;
      let started = false;
      let result: Result<Completion | StreamCompletion, UpstreamError>;
      try {
        const onStarted = (): void => {
          started = true;
        };
        result =
          route !== undefined ? await this.sendRouted(request, account.id, route, onStarted) : await this.send(request, target as UpstreamTarget, onStarted);
        const callUsage = result.ok ? result.value.usage : result.error.usage;
        const feedback = result.ok ? result.value.feedback : result.error.feedback;
        usage = addUsage(usage, callUsage);
        if (!result.ok && result.error.kind === 'cancelled' && result.error.estimated) estimated = true;
        attempts.push({
          accountId: account.id,
          outcome: feedback?.kind ?? 'no-feedback',
          requestId: result.ok ? result.value.requestId : result.error.requestId,
        });
        // Feedback before the release: an account that just turned unhealthy evicts its
        // waiters instead of handing this permit to one of them.
        this.report(account.id, feedback);
        // A routed attempt is charged by the ledger's owner, which made the call.
        if (route === undefined && (result.ok || feedback?.kind === 'success' || !isZeroUsage(callUsage))) this.charge(account, callUsage);
      } finally {
        this.releasePermit(permit);
      }

      if (result.ok) {
        const decision = plan.after(result.value.feedback, { responseStarted: started });
        assert(decision.kind === 'done', 'a completed call is done');
        this.stats.completed++;
        const response: AccountResponse = request.stream
          ? { kind: 'stream', message: (result.value as StreamCompletion).message }
          : { kind: 'message', message: (result.value as Completion).message, bodyJson: (result.value as Completion).bodyJson };
        return ok({
          accountId: account.id,
          requestId: result.value.requestId,
          response,
          cancelled: result.value.cancelled,
          settledElsewhere: result.value.settledElsewhere === true,
          ...outcome(),
        });
      }
      const error = result.error;
      if (error.kind === 'cancelled') return this.failed({ kind: 'cancelled', phase: 'upstream', ...outcome() });
      const failure = (reason: GiveUpReason): Extract<AccountCallError, { readonly kind: 'upstream' }> => ({
        kind: 'upstream',
        accountId: account.id,
        error,
        status: error.kind === 'http-status' ? error.status : undefined,
        errorType: error.kind === 'http-status' || error.kind === 'stream-error' ? error.errorType : undefined,
        reason,
        ...outcome(),
      });
      if (error.feedback === undefined) return this.failed(failure('no-feedback'));
      const decision = plan.after(error.feedback, { responseStarted: started });
      if (decision.kind !== 'retry') return this.failed(failure(decision.kind === 'done' ? 'done' : decision.reason));
      last = failure('switches-exhausted');
    }
    assert(false, 'a call ends within accountCallTurnsMax turns');
  }

  /**
   * Ticks the pool and settles the parked calls its outcomes belong to, then re-arms the
   * wake-up timer. Safe to call at any time; the node runtime calls it after changing the pool.
   */
  pump(): void {
    this.pool.tick(this.clock.nowMs());
    this.drain();
    this.arm();
  }

  /**
   * Refuses new calls and ends every parked one with `closed` (its ticket withdrawn, a grant not
   * yet taken handed back). Calls already at the upstream run to their end and release their
   * permits as usual; closing the upstream client is its owner's business.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [waiterId, parked] of [...this.parked]) {
      this.parked.delete(waiterId);
      this.pool.cancel(waiterId);
      parked.settle({ kind: 'closed' });
    }
    this.drain();
    this.disarm();
    this.deadlines.rebuild([], []);
  }

  // ---- Internals ----

  /** A permit of some account for this turn: at once, after parking, or why not. */
  private async permitFor(
    request: AccountCallRequest,
    sessionKey: string | undefined,
    estimate: AccountAmounts,
    excluded: ReadonlySet<AccountId>,
    outcome: () => CallOutcome,
  ): Promise<Result<Held, Refusal>> {
    const picked = this.pool.acquire(
      {
        tenant: request.tenant,
        deadlineMs: request.acquireDeadlineMs,
        sessionKey,
        excluded,
        localRegion: this.localRegion,
        estimate,
        strategy: this.strategyOf(request.tenant),
      },
      this.clock.nowMs(),
    );
    if (!picked.ok) return err({ kind: 'refused', error: refusalOf(picked.error, outcome()) });
    const selection = picked.value;
    if (selection.kind === 'granted') return ok({ permit: selection.permit, account: selection.account });

    this.stats.parked++;
    const event = await this.park(selection.waiterId, request.acquireDeadlineMs, request.signal);
    switch (event.kind) {
      case 'granted': {
        // The grant may have been settled in the same turn as the caller's abort or close.
        if (request.signal?.aborted === true || this.closed) {
          this.releasePermit(event.permit);
          const error: AccountCallError = this.closed ? { kind: 'closed', ...outcome() } : { kind: 'cancelled', phase: 'queued', ...outcome() };
          return err({ kind: 'refused', error });
        }
        // A policy update between the grant and now keeps the account's permits; its newest form wins.
        return ok({ permit: event.permit, account: this.pool.account(event.permit.accountId) ?? selection.account });
      }
      case 'expired':
        this.stats.queueTimeouts++;
        return err({ kind: 'refused', error: { kind: 'queue-timeout', accountId: event.accountId, ...outcome() } });
      case 'evicted':
        this.stats.skipped++;
        return err({ kind: 'skip', accountId: event.accountId });
      case 'cancelled':
        this.stats.cancelledWhileParked++;
        return err({ kind: 'refused', error: { kind: 'cancelled', phase: 'queued', ...outcome() } });
      case 'closed':
        return err({ kind: 'refused', error: { kind: 'closed', ...outcome() } });
    }
  }

  /** Waits for the ticket's outcome; the caller's abort withdraws the ticket. */
  private park(waiterId: WaiterId, deadlineMs: number, signal: AbortSignal | undefined): Promise<ParkOutcome> {
    assert(this.parked.size < accountCallerWaitsMax, 'parked calls are pool waiters, bounded by the pool');
    return new Promise<ParkOutcome>((resolve) => {
      const onAbort = (): void => {
        if (!this.parked.delete(waiterId)) return;
        // Cancelled while queued, or revoked if granted but not yet taken: either way no permit is ours.
        this.pool.cancel(waiterId);
        settle({ kind: 'cancelled' });
        this.pump();
      };
      const settle = (outcome: ParkOutcome): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      this.parked.set(waiterId, { deadlineMs, settle });
      this.deadlines.push(deadlineMs, waiterId);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted === true) onAbort();
      else this.arm();
    });
  }

  private send(request: AccountCallRequest, target: UpstreamTarget, onStarted: () => void): Promise<Result<Completion | StreamCompletion, UpstreamError>> {
    const timeouts = this.timeoutsOf(request);
    const base = {
      ...(request.signal === undefined ? {} : { signal: request.signal, onCancel: abortsOnCancel(request) ? ('abort' as const) : ('drain' as const) }),
      ...(timeouts === undefined ? {} : { timeouts }),
    };
    if (!request.stream) return this.client.complete(target, request.request, base);
    const sink = request.onEvent;
    // Without a sink nothing reaches the caller before the end, so such a stream stays retryable.
    return this.client.stream(target, request.request, {
      ...base,
      ...(request.onRead === undefined ? {} : { onRead: request.onRead }),
      onEvent:
        sink === undefined
          ? () => undefined
          : (event) => {
              onStarted();
              return sink(event);
            },
    });
  }

  private sendRouted(
    request: AccountCallRequest,
    accountId: AccountId,
    route: ForwardRoute,
    onStarted: () => void,
  ): Promise<Result<Completion | StreamCompletion, UpstreamError>> {
    const sink = request.onEvent;
    const timeouts = this.timeoutsOf(request);
    return route.call(accountId, {
      requestId: request.requestId as RequestId,
      tenant: request.tenant,
      request: request.request,
      stream: request.stream,
      abortOnCancel: abortsOnCancel(request),
      ...(request.chargeAtMs === undefined ? {} : { chargeAtMs: request.chargeAtMs }),
      ...(request.onRead === undefined ? {} : { onRead: request.onRead }),
      ...(timeouts?.deadlineMs === undefined ? {} : { deadlineMs: this.clock.nowMs() + timeouts.deadlineMs }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
      ...(sink === undefined
        ? {}
        : {
            onEvent: (event) => {
              onStarted();
              return sink(event);
            },
          }),
    });
  }

  /** The request's timeouts with its deadline applied from now, the moment of dispatch. */
  private timeoutsOf(request: AccountCallRequest): Partial<CallTimeouts> | undefined {
    if (request.deadlineMs === undefined) return request.timeouts;
    const leftMs = Math.min(upstreamDeadlineMs, Math.max(1, Math.ceil(request.deadlineMs - this.clock.nowMs())));
    const own = request.timeouts?.deadlineMs;
    return { ...request.timeouts, deadlineMs: own === undefined ? leftMs : Math.min(own, leftMs) };
  }

  private report(accountId: AccountId, feedback: AccountFeedback | undefined): void {
    if (feedback === undefined) return;
    const report = this.pool.onFeedback(accountId, feedback, this.clock.nowMs());
    if (report?.alert === undefined) return;
    this.stats.alerts++;
    this.log(`account ${accountId} disabled (${disableReasonText(report.alert)}); an operator must re-enable it`);
    this.onAlert(report);
  }

  private charge(account: Account, used: TokenUsage): void {
    const charged = this.usage.charge(account, accountAmountsOf(used), this.clock.nowMs());
    if (charged.ok) return;
    // The call happened either way; a lost charge only widens the mesh's overshoot, so log and go on.
    this.stats.chargeFailures++;
    this.log(`account ${account.id}: usage not charged (${charged.error.kind})`);
  }

  private releasePermit(permit: Permit): void {
    this.pool.release(permit);
    this.pump();
  }

  private failed(error: AccountCallError): Result<never, AccountCallError> {
    this.stats.failed++;
    return err(error);
  }

  /** Settles parked calls with the pool's outcomes; releases grants nobody waits for. */
  private drain(): void {
    // Bounded: every event ends one ticket, and tickets are bounded by the pool's waiter bound;
    // only a released orphan grant can decide more, for a later ticket.
    for (let round = 0; round <= accountCallerWaitsMax; round++) {
      const events = this.pool.takeEvents();
      if (events.length === 0) return;
      for (const event of events) {
        const parked = this.parked.get(event.waiterId);
        if (parked === undefined) {
          if (event.kind === 'granted') {
            this.stats.orphanGrants++;
            this.pool.release(event.permit);
          }
          continue;
        }
        this.parked.delete(event.waiterId);
        parked.settle(event);
      }
    }
    assert(false, 'the outbox drains within the waiter bound');
  }

  /** Sets the one timer for the earliest parked deadline, or clears it when nothing is parked. */
  private arm(): void {
    // Stale heads first (calls granted, cancelled or evicted), then a rebuild if stale entries pile up inside.
    while (this.deadlines.size > 0 && !this.parked.has(this.deadlines.peekValue() as WaiterId)) this.deadlines.pop();
    if (this.deadlines.size > 2 * this.parked.size + accountCallerDeadlineHeapSlackMax) {
      const live = [...this.parked];
      this.deadlines.rebuild(
        live.map(([, parked]) => parked.deadlineMs),
        live.map(([waiterId]) => waiterId),
      );
    }
    const nextMs = this.deadlines.peekPriority();
    if (nextMs === this.timerAtMs) return;
    this.disarm();
    if (nextMs === undefined || this.closed) return;
    const delayMs = Math.min(timerDelayMsMax, Math.max(1, Math.ceil(nextMs - this.clock.nowMs())));
    this.timerAtMs = nextMs;
    this.timer = this.timers.start(() => {
      this.timer = undefined;
      this.timerAtMs = undefined;
      this.pump();
    }, delayMs);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.cancel(this.timer);
    this.timer = undefined;
    this.timerAtMs = undefined;
  }
}

/** Whether the caller's abort cancels a dispatched attempt: only a stream whose caller asked for it. */
function abortsOnCancel(request: AccountCallRequest): boolean {
  return request.stream && request.onClientCancel === 'abort';
}

function refusalOf(error: PoolError, outcome: CallOutcome): AccountCallError {
  switch (error.kind) {
    case 'no-account':
      return { kind: 'no-account', retryAfterMs: error.retryAfterMs, ...outcome };
    case 'busy':
      return { kind: 'busy', reason: 'no-wait', retryAfterMs: error.retryAfterMs, ...outcome };
    case 'queue-full':
      return { kind: 'busy', reason: 'queue-full', retryAfterMs: accountBusyRetryAfterMs, ...outcome };
    case 'permits-full':
      return { kind: 'busy', reason: 'permits-full', retryAfterMs: accountBusyRetryAfterMs, ...outcome };
  }
}

/** `max_tokens` of a body, read defensively: the upstream rejects a bad one, and the estimate only needs a count. */
function maxTokensOf(body: Readonly<Record<string, unknown>>): number {
  const value = body.max_tokens;
  return typeof value === 'number' && isCount(value) ? value : 0;
}

function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return { input: a.input + b.input, output: a.output + b.output, cacheWrite: a.cacheWrite + b.cacheWrite, cacheRead: a.cacheRead + b.cacheRead };
}

function isZeroUsage(usage: TokenUsage): boolean {
  return usage.input === 0 && usage.output === 0 && usage.cacheWrite === 0 && usage.cacheRead === 0;
}
