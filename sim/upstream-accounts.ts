import { type TokenUsage, zeroUsage } from '../src/admission/estimate.js';
import { assert, isCount } from '../src/core/assert.js';
import type { AccountId, RegionId, RequestId, TenantId } from '../src/core/ids.js';
import type { Random } from '../src/core/random.js';
import type { Account } from '../src/mesh/policy/policy-schema.js';
import type { AccountFeedback, RateLimitSnapshot, UnifiedLimits, UnifiedWindow } from '../src/pool/account-feedback.js';

/**
 * Simulated upstream accounts: what an Anthropic account would answer, decided by a seeded PRNG
 * and the account's own limits, with the same `AccountFeedback` the upstream client distils from
 * a real answer (src/upstream/classify-feedback.ts), so the pool under simulation learns exactly
 * what it would learn in production.
 *
 *   start(call) ─ a seeded 529 or 5xx ─────────────────────────▶ refused after the latency floor
 *               ─ the account's concurrency, requests or tokens
 *                 per minute, or a subscription window, spent ──▶ 429 with retry-after (and the
 *                                                                  unified headers of a subscription)
 *               ─ a seeded short 429 ──────────────────────────▶ 429, a second of retry-after
 *               └ accepted: runs for latency + output time ────▶ finish: 200 with the usage and
 *                                                                  the rate-limit headers, or a
 *                                                                  stream cut part-way (network)
 *
 * Limits are counted as the upstream counts them when it accepts a call: one request, and the
 * input plus `max_tokens` of tokens (the output is not known yet), in fixed windows aligned on
 * the epoch (a minute, five hours, seven days), so a reset time is exact. Refused calls produce
 * nothing and count nothing.
 *
 * Truth. Every accepted call reports to an observer when it starts and when it ends, with what
 * it produced: the books (sim/request-books.ts) check the limits and the charges against it.
 * The upstream's own concurrency is mesh-wide (the account's), unlike the pool's permits, which
 * are per node.
 */

/** How one simulated account behaves; `account` is its policy entry, as the pools see it. */
export interface SimAccountSpec {
  readonly account: Account;
  /** Time to the first byte, uniform in [min, max]. */
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  /** Generation time per output token. */
  readonly msPerOutputToken: number;
  /** Calls the upstream runs at once for this account, from every region together. */
  readonly concurrencyMax: number;
  readonly requestsPerMinute: number;
  /** Input plus `max_tokens` of the calls accepted in one minute. */
  readonly tokensPerMinute: number;
  /** A subscription's five-hour and seven-day windows in tokens; undefined for an API key. */
  readonly windows: { readonly fiveHourTokens: number; readonly sevenDayTokens: number } | undefined;
  /** Seeded faults per mille of calls: 529, 500, a spurious short 429, a stream cut part-way. */
  readonly faults: { readonly overloaded: number; readonly serverError: number; readonly rateLimited: number; readonly cutStream: number };
}

export interface UpstreamCall {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  readonly accountId: AccountId;
  /** The region whose pool holds the permit for this call (the origin of a forwarded call). */
  readonly origin: RegionId;
  /** The region that makes the call: the account's home. */
  readonly executing: RegionId;
  readonly inputTokens: number;
  readonly maxTokens: number;
}

/** What a call ended with: what the account's answer tells the pool, and what the model produced. */
export interface UpstreamAnswer {
  readonly feedback: AccountFeedback;
  readonly usage: TokenUsage;
  /** Whether part of the response reached the client (a cut stream): such a call is not retried. */
  readonly started: boolean;
}

export type CallId = number & { readonly __callId: true };

/**
 * What the upstream tells the books about every call, taken (`accepted`) or turned away: the
 * permits a pool holds cover both, the account's own limits only the calls it took.
 */
export interface UpstreamObserver {
  started(call: UpstreamCall, accepted: boolean, nowMs: number): void;
  ended(call: UpstreamCall, answer: UpstreamAnswer, accepted: boolean, nowMs: number): void;
}

/** Bounds of the simulated upstream (sim only): accounts, and calls running or answered-but-unread. */
export const simAccountsMax = 256;
export const simUpstreamCallsMax = 200_000;

const minuteMs = 60_000;
const fiveHoursMs = 5 * 60 * minuteMs;
const sevenDaysMs = 7 * 24 * 60 * minuteMs;
/** Retry-after the upstream sends with a concurrency 429 and a spurious one. */
const shortRetryAfterMs = 1_000;

export class UpstreamStats {
  accepted = 0;
  rateLimited = 0;
  overloaded = 0;
  serverErrors = 0;
  cutStreams = 0;
}

interface Window {
  index: number;
  used: number;
}

interface AccountState {
  readonly spec: SimAccountSpec;
  running: number;
  readonly minuteRequests: Window;
  readonly minuteTokens: Window;
  readonly fiveHour: Window;
  readonly sevenDay: Window;
}

interface Running {
  readonly call: UpstreamCall;
  readonly state: AccountState;
  /** Decided at the start: the answer `finish` gives. */
  readonly answer: UpstreamAnswer;
  /** Whether the account took the call (counts against its concurrency until it ends). */
  readonly accepted: boolean;
}

export class SimUpstream {
  readonly stats = new UpstreamStats();
  private readonly accounts = new Map<AccountId, AccountState>();
  private readonly running = new Map<CallId, Running>();
  private nextCall = 1;

  constructor(
    specs: readonly SimAccountSpec[],
    private readonly random: Random,
    private readonly observer: UpstreamObserver,
  ) {
    assert(specs.length <= simAccountsMax, 'simulated accounts are bounded');
    for (const spec of specs) {
      assert(spec.latencyMsMin >= 0 && spec.latencyMsMax >= spec.latencyMsMin, 'a latency range');
      assert(spec.concurrencyMax >= 1 && spec.requestsPerMinute >= 1 && spec.tokensPerMinute >= 1, 'limits are positive');
      const window = (): Window => ({ index: -1, used: 0 });
      this.accounts.set(spec.account.id, { spec, running: 0, minuteRequests: window(), minuteTokens: window(), fiveHour: window(), sevenDay: window() });
    }
  }

  spec(accountId: AccountId): SimAccountSpec | undefined {
    return this.accounts.get(accountId)?.spec;
  }

  /** Calls started and not yet finished. */
  get callsOpen(): number {
    return this.running.size;
  }

  /** Starts a call; its answer is read by `finish(callId)` at `endAtMs`. */
  start(call: UpstreamCall, nowMs: number): { readonly callId: CallId; readonly endAtMs: number } {
    const state = this.accounts.get(call.accountId);
    assert(state !== undefined, `account ${call.accountId} is simulated`);
    assert(call.executing === state.spec.account.homeRegion, 'an account is called from its home region');
    assert(isCount(call.inputTokens) && isCount(call.maxTokens) && call.maxTokens >= 1, 'token counts');
    assert(this.running.size < simUpstreamCallsMax, 'simulated upstream calls are bounded');
    const { spec } = state;
    const latencyMs = spec.latencyMsMin + this.random.int(spec.latencyMsMax - spec.latencyMsMin + 1);
    const callId = this.nextCall++ as CallId;
    const refusal = this.refusalOf(state, call, nowMs);
    if (refusal !== undefined) {
      this.running.set(callId, { call, state, answer: { feedback: refusal, usage: zeroUsage, started: false }, accepted: false });
      this.observer.started(call, false, nowMs);
      return { callId, endAtMs: nowMs + spec.latencyMsMin };
    }
    const reservedTokens = call.inputTokens + call.maxTokens;
    for (const window of [state.minuteTokens, state.fiveHour, state.sevenDay]) window.used += reservedTokens;
    state.minuteRequests.used++;
    state.running++;
    this.stats.accepted++;
    const fullOutput = 1 + this.random.int(call.maxTokens);
    const cut = this.random.int(1000) < spec.faults.cutStream;
    const output = cut ? this.random.int(fullOutput) : fullOutput;
    const usage: TokenUsage = { input: call.inputTokens, output, cacheWrite: 0, cacheRead: 0 };
    // The headers are those of the moment the call was accepted: a stream's come first.
    const answer: UpstreamAnswer = cut
      ? { feedback: { kind: 'network', detail: 'simulated stream cut' }, usage, started: true }
      : { feedback: { kind: 'success', rateLimits: this.snapshot(state, nowMs) }, usage, started: false };
    if (cut) this.stats.cutStreams++;
    this.running.set(callId, { call, state, answer, accepted: true });
    this.observer.started(call, true, nowMs);
    return { callId, endAtMs: nowMs + latencyMs + output * spec.msPerOutputToken };
  }

  /** The answer of a call started earlier; once per call. */
  finish(callId: CallId, nowMs: number): UpstreamAnswer {
    const running = this.running.get(callId);
    assert(running !== undefined, 'a call is finished once');
    this.running.delete(callId);
    if (running.accepted) running.state.running--;
    this.observer.ended(running.call, running.answer, running.accepted, nowMs);
    return running.answer;
  }

  /** Why the account turns the call away now, as its feedback; undefined when it takes it. */
  private refusalOf(state: AccountState, call: UpstreamCall, nowMs: number): AccountFeedback | undefined {
    const { spec } = state;
    const draw = this.random.int(1000);
    if (draw < spec.faults.overloaded) {
      this.stats.overloaded++;
      return { kind: 'overloaded' };
    }
    if (draw < spec.faults.overloaded + spec.faults.serverError) {
      this.stats.serverErrors++;
      return { kind: 'server-error', status: 500 };
    }
    const minute = Math.floor(nowMs / minuteMs);
    roll(state.minuteRequests, minute);
    roll(state.minuteTokens, minute);
    roll(state.fiveHour, Math.floor(nowMs / fiveHoursMs));
    roll(state.sevenDay, Math.floor(nowMs / sevenDaysMs));
    const tokens = call.inputTokens + call.maxTokens;
    let retryAfterMs: number | undefined;
    if (state.running >= spec.concurrencyMax) retryAfterMs = shortRetryAfterMs;
    else if (state.minuteRequests.used + 1 > spec.requestsPerMinute || state.minuteTokens.used + tokens > spec.tokensPerMinute)
      retryAfterMs = (minute + 1) * minuteMs - nowMs;
    else if (spec.windows !== undefined && state.fiveHour.used + tokens > spec.windows.fiveHourTokens)
      retryAfterMs = (state.fiveHour.index + 1) * fiveHoursMs - nowMs;
    else if (spec.windows !== undefined && state.sevenDay.used + tokens > spec.windows.sevenDayTokens)
      retryAfterMs = (state.sevenDay.index + 1) * sevenDaysMs - nowMs;
    else if (draw < spec.faults.overloaded + spec.faults.serverError + spec.faults.rateLimited) retryAfterMs = shortRetryAfterMs;
    if (retryAfterMs === undefined) return undefined;
    this.stats.rateLimited++;
    return { kind: 'rate-limited', retryAfterMs, rateLimits: this.snapshot(state, nowMs, tokens) };
  }

  /** The `anthropic-ratelimit-*` headers of an answer, as src/upstream/rate-limit-headers.ts parses them. */
  private snapshot(state: AccountState, nowMs: number, wantedTokens = 0): RateLimitSnapshot {
    const { spec } = state;
    const minuteEndMs = (Math.floor(nowMs / minuteMs) + 1) * minuteMs;
    return {
      requests: { limit: spec.requestsPerMinute, remaining: Math.max(0, spec.requestsPerMinute - state.minuteRequests.used), resetAtMs: minuteEndMs },
      tokens: { limit: spec.tokensPerMinute, remaining: Math.max(0, spec.tokensPerMinute - state.minuteTokens.used), resetAtMs: minuteEndMs },
      inputTokens: undefined,
      outputTokens: undefined,
      unified: spec.windows === undefined ? undefined : unifiedOf(state, spec.windows, wantedTokens),
    };
  }
}

/** Moves a fixed window to `index`, emptying it when a new one began. */
function roll(window: Window, index: number): void {
  if (window.index === index) return;
  window.index = index;
  window.used = 0;
}

/** The `anthropic-ratelimit-unified-*` view of a subscription's windows. */
function unifiedOf(state: AccountState, limits: { readonly fiveHourTokens: number; readonly sevenDayTokens: number }, wantedTokens: number): UnifiedLimits {
  const windowOf = (window: Window, limit: number, lengthMs: number): UnifiedWindow => {
    const utilization = window.used / limit;
    const rejected = window.used + wantedTokens > limit;
    return { status: rejected ? 'rejected' : utilization >= 0.8 ? 'allowed_warning' : 'allowed', utilization, resetAtMs: (window.index + 1) * lengthMs };
  };
  const fiveHour = windowOf(state.fiveHour, limits.fiveHourTokens, fiveHoursMs);
  const sevenDay = windowOf(state.sevenDay, limits.sevenDayTokens, sevenDaysMs);
  const binding =
    sevenDay.status === 'rejected'
      ? sevenDay
      : fiveHour.status === 'rejected'
        ? fiveHour
        : (fiveHour.utilization ?? 0) >= (sevenDay.utilization ?? 0)
          ? fiveHour
          : sevenDay;
  const status = fiveHour.status === 'rejected' || sevenDay.status === 'rejected' ? 'rejected' : binding.status;
  return { status, resetAtMs: binding.resetAtMs, windows: { 'five-hour': fiveHour, 'seven-day': sevenDay } };
}

/** The windows' lengths, for the books that recount them. */
export const upstreamWindowMs = { minute: minuteMs, fiveHour: fiveHoursMs, sevenDay: sevenDaysMs } as const;
