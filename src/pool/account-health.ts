import { unreachable } from '../core/assert.js';
import { circuitProbeTimeoutMs } from '../core/limits.js';
import type { Random } from '../core/random.js';
// The pauses and backoffs: the policy's `settings.pool.health`, defaults from src/core/limits.ts.
import { defaultHealthTimings, type HealthTimings } from '../mesh/policy/policy-schema.js';
import type { AccountFeedback, RateLimitSnapshot, RateLimitWindow, UnifiedLimits } from './account-feedback.js';
import { unifiedWindowNames } from './account-feedback.js';

export { defaultHealthTimings, type HealthTimings };

/**
 * The health of one upstream account, as a state machine fed by `AccountFeedback` and read at a
 * time given as `nowMs`. Pauses end by themselves when their time passes: nothing here needs a
 * tick, and the state read at any time is a pure function of the feedback so far and `nowMs`.
 *
 * What each outcome does:
 *  - `success` ends the overload backoff, the failure streak and an open circuit. It does not
 *    lift a rate-limit cooldown, nor re-enable a disabled account: a success may be the late
 *    answer of a call that started before the 429 or the 401, and the headers of that 429 said
 *    when to come back.
 *  - `rate-limited` pauses the account until the upstream said it may be used again, and tells
 *    a short throttle from an exhausted window (see `rateLimitPause`). An exhausted window's
 *    pause ends half-open: one probe call goes first, and only its success lets the rest follow,
 *    so the moment a window resets is not met by every waiting request (and every region) at once.
 *  - `overloaded` (529) pauses it for an exponential backoff with equal jitter: half the step
 *    fixed, half drawn from the injected Random, so nodes that saw the same 529 do not return in
 *    lockstep. The step doubles with each 529 in a row and starts over after a success.
 *  - `auth-failed` (401/403, or 402: no credit left) disables the account until an operator
 *    calls `enable`; the report carries an alert. A revoked credential does not heal by waiting, and every retry would be
 *    another failed login on a provider that flags such accounts.
 *  - `server-error` and `network` count toward a circuit breaker: `circuitFailuresMax` in a row
 *    open it for `circuitOpenMsBase`, doubling per failed probe up to `circuitOpenMsMax`. Once
 *    the open time has passed it is half-open: one probe call may go (the pool marks it with
 *    `beginProbe`); the probe's success closes it, its failure opens it again. A probe whose
 *    outcome never arrives frees the slot for another after `circuitProbeTimeoutMs`.
 *    Failures below the threshold pause nothing: the request moves to another account anyway.
 *  - `client-error` changes nothing (the request was at fault), except that it answers a probe.
 *
 * Any answer other than a server error or network failure proves the upstream reachable, so a
 * 429 or 529 also closes an open circuit (and then pauses the account for its own reason).
 */
export const healthStates = ['healthy', 'throttled', 'exhausted', 'overloaded', 'circuit-open', 'half-open', 'disabled'] as const;
/** A bounded set, fit for a metrics label. */
export type HealthState = (typeof healthStates)[number];

/** How a 429 was read. */
export type RateLimitKind = 'throttled' | 'exhausted';

export interface RateLimitPause {
  readonly kind: RateLimitKind;
  readonly untilMs: number;
}

/**
 * Why an account is disabled: the upstream refused its credential (401, 403) or its credit
 * (402), or the node could not renew the credential (an OAuth refresh that failed for good).
 * `detail` is bounded text fit for an operator, never a secret.
 */
export type DisableReason = { readonly kind: 'auth-failed'; readonly status: 401 | 402 | 403 } | { readonly kind: 'credential'; readonly detail: string };

/** The operator's one-line account of a disable reason. */
export function disableReasonText(reason: DisableReason): string {
  return reason.kind === 'auth-failed' ? `the upstream answered ${reason.status}` : `credential: ${reason.detail}`;
}

export interface HealthChange {
  readonly from: HealthState;
  readonly to: HealthState;
  /** When the account can next take a call; undefined while disabled. */
  readonly availableAtMs: number | undefined;
  /** Set when this change disabled the account: the operator must be told. */
  readonly alert: DisableReason | undefined;
}

/** The largest streak that still changes a doubling delay: 2^20 × any base is past every cap. */
const streakMax = 20;

function windowsOf(limits: RateLimitSnapshot): RateLimitWindow[] {
  const windows: RateLimitWindow[] = [];
  for (const window of [limits.requests, limits.tokens, limits.inputTokens, limits.outputTokens]) if (window !== undefined) windows.push(window);
  return windows;
}

/**
 * Reads a 429. A window with nothing remaining and a reset beyond `throttleShortMsMax` is an
 * exhausted window: the pause lasts until the latest such reset (a 429 on the token window while
 * the request window resets sooner still cannot be served before both allow it). Otherwise it is
 * a short throttle: a `retry-after` of a few seconds, or windows that still report room (a burst
 * or acceleration limit). The pause is whatever the headers say, the later of `retry-after` and
 * the relevant resets; `throttleShortMsMax` when they only say it is a burst limit;
 * `rateLimitCooldownMsDefault` when they say nothing at all. Every pause is capped at
 * `rateLimitCooldownMsMax` against bogus stamps. Resets already past (a skewed clock) are ignored.
 */
export function rateLimitPause(
  retryAfterMs: number | undefined,
  limits: RateLimitSnapshot,
  nowMs: number,
  timings: HealthTimings = defaultHealthTimings,
): RateLimitPause {
  const { throttleShortMsMax, rateLimitCooldownMsMax } = timings;
  const windows = windowsOf(limits);
  const unifiedResetMs = unifiedRejectedResetMs(limits.unified, nowMs);
  let latestResetMs = unifiedResetMs;
  for (const window of windows) {
    if (window.remaining !== 0 || window.resetAtMs === undefined || !(window.resetAtMs > nowMs)) continue;
    latestResetMs = Math.max(latestResetMs ?? -Infinity, window.resetAtMs);
  }
  const retryAtMs = retryAfterMs === undefined || !Number.isFinite(retryAfterMs) ? undefined : nowMs + Math.max(0, retryAfterMs);
  const roomLeft = windows.some((window) => window.remaining !== undefined && window.remaining > 0);

  const windowExhausted = latestResetMs !== undefined && latestResetMs - nowMs > throttleShortMsMax;
  const longWait = retryAfterMs !== undefined && retryAfterMs > throttleShortMsMax && !roomLeft;
  const kind: RateLimitKind = windowExhausted || longWait || unifiedResetMs !== undefined ? 'exhausted' : 'throttled';

  let untilMs: number;
  if (retryAtMs !== undefined || latestResetMs !== undefined) untilMs = Math.max(retryAtMs ?? -Infinity, latestResetMs ?? -Infinity);
  else if (roomLeft) untilMs = nowMs + throttleShortMsMax;
  else untilMs = nowMs + timings.rateLimitCooldownMs;
  return { kind, untilMs: Math.min(untilMs, nowMs + rateLimitCooldownMsMax) };
}

/**
 * A subscription's windows: when the answer says a window (or the account as a whole) is
 * `rejected`, the latest reset of those rejected, still ahead; undefined otherwise. A rejected
 * window is an exhausted one, whatever its reset, so the pause lasts until its real end.
 */
function unifiedRejectedResetMs(unified: UnifiedLimits | undefined, nowMs: number): number | undefined {
  if (unified === undefined) return undefined;
  let latestMs: number | undefined;
  const consider = (status: string | undefined, resetAtMs: number | undefined): void => {
    if (status === 'rejected' && resetAtMs !== undefined && resetAtMs > nowMs) latestMs = Math.max(latestMs ?? -Infinity, resetAtMs);
  };
  consider(unified.status, unified.resetAtMs);
  for (const name of unifiedWindowNames) {
    const window = unified.windows[name];
    if (window !== undefined) consider(window.status, window.resetAtMs);
  }
  return latestMs;
}

/** The doubling delay of the `streak`-th failure in a row: base, 2 × base, ... capped. */
function doubling(baseMs: number, maxMs: number, streak: number): number {
  return Math.min(maxMs, baseMs * 2 ** (Math.min(streak, streakMax) - 1));
}

export class AccountHealth {
  private disabledBy: DisableReason | undefined;
  private rateLimitedUntilMs = -Infinity;
  private rateLimitKind: RateLimitKind = 'throttled';
  private overloadStreak = 0;
  private overloadedUntilMs = -Infinity;
  /** Server errors and network failures since the last answer. */
  private failureStreak = 0;
  /** Circuit openings since it was last closed: the doubling exponent. */
  private circuitOpenings = 0;
  /** When the open circuit turns half-open; −∞ while closed. */
  private circuitOpenUntilMs = -Infinity;
  private circuitOpen = false;
  private probeStartedAtMs: number | undefined;
  /** An exhausted window's pause is over, and its first call is a probe (see the file comment). */
  private probeAfterPause = false;

  constructor(
    private readonly random: Random,
    private timings: HealthTimings = defaultHealthTimings,
  ) {}

  /** New timings from the policy: they shape pauses decided from now on. */
  configure(timings: HealthTimings): void {
    this.timings = timings;
  }

  state(nowMs: number): HealthState {
    if (this.disabledBy !== undefined) return 'disabled';
    if (nowMs < this.rateLimitedUntilMs) return this.rateLimitKind;
    if (nowMs < this.overloadedUntilMs) return 'overloaded';
    if (this.circuitOpen) return nowMs < this.circuitOpenUntilMs ? 'circuit-open' : 'half-open';
    if (this.probeAfterPause) return 'half-open';
    return 'healthy';
  }

  /** Whether a call may go to the account now: healthy, or half-open with no probe out. */
  canServe(nowMs: number): boolean {
    const state = this.state(nowMs);
    return state === 'healthy' || (state === 'half-open' && !this.probeOut(nowMs));
  }

  /** Whether the next call would be the half-open probe. */
  isProbe(nowMs: number): boolean {
    return this.state(nowMs) === 'half-open';
  }

  /** Marks the start of the half-open probe call; the pool calls it when it grants one. */
  beginProbe(nowMs: number): void {
    if (this.isProbe(nowMs)) this.probeStartedAtMs = nowMs;
  }

  /**
   * When the account can next take a call: `nowMs` if now, the end of its pauses otherwise, and
   * undefined while it is disabled (only an operator can end that).
   */
  availableAtMs(nowMs: number): number | undefined {
    if (this.disabledBy !== undefined) return undefined;
    let atMs = Math.max(nowMs, this.rateLimitedUntilMs, this.overloadedUntilMs);
    if (this.circuitOpen) atMs = Math.max(atMs, this.circuitOpenUntilMs);
    if ((this.circuitOpen || this.probeAfterPause) && this.probeOut(atMs)) atMs = Math.max(atMs, (this.probeStartedAtMs as number) + circuitProbeTimeoutMs);
    return atMs;
  }

  /** Why the account is disabled; undefined when it is not. */
  get disabledReason(): DisableReason | undefined {
    return this.disabledBy;
  }

  /**
   * Disables the account for a reason found outside a call's answer (a credential that cannot
   * be renewed). The alert is raised once, by the change that disabled it.
   */
  disable(reason: DisableReason, nowMs: number): HealthChange {
    const from = this.state(nowMs);
    const alert = this.disabledBy === undefined ? reason : undefined;
    this.disabledBy = reason;
    return { from, to: this.state(nowMs), availableAtMs: this.availableAtMs(nowMs), alert };
  }

  /**
   * The mesh's word that the account serves again (its home region saw it succeed after a pause,
   * or an operator re-enabled it): every pause this node had from its own view ends now.
   */
  resume(): void {
    this.enable();
    this.rateLimitedUntilMs = -Infinity;
    this.probeAfterPause = false;
  }

  /** Operator action after a credential was fixed: back to healthy, with no history. */
  enable(): void {
    this.disabledBy = undefined;
    this.closeCircuit();
    this.overloadStreak = 0;
    this.overloadedUntilMs = -Infinity;
  }

  onFeedback(feedback: AccountFeedback, nowMs: number): HealthChange {
    const from = this.state(nowMs);
    let alert: HealthChange['alert'];
    switch (feedback.kind) {
      case 'success':
        this.overloadStreak = 0;
        this.overloadedUntilMs = -Infinity;
        this.closeCircuit();
        // A success after the pause ended answers the probe; one from a call that started
        // before the 429 (still inside the pause) proves nothing about the window.
        if (nowMs >= this.rateLimitedUntilMs) this.probeAfterPause = false;
        break;
      case 'rate-limited': {
        this.closeCircuit();
        const pause = rateLimitPause(feedback.retryAfterMs, feedback.rateLimits, nowMs, this.timings);
        // A late 429 from an older call must not shorten a pause already decided.
        if (pause.untilMs > this.rateLimitedUntilMs) {
          this.rateLimitedUntilMs = pause.untilMs;
          this.rateLimitKind = pause.kind;
          if (pause.kind === 'exhausted') this.probeAfterPause = true;
        }
        break;
      }
      case 'overloaded': {
        this.closeCircuit();
        this.overloadStreak = Math.min(this.overloadStreak + 1, streakMax);
        const stepMs = doubling(this.timings.overloadBackoffMsBase, this.timings.overloadBackoffMsMax, this.overloadStreak);
        const delayMs = stepMs / 2 + this.random.float() * (stepMs / 2);
        this.overloadedUntilMs = Math.max(this.overloadedUntilMs, nowMs + Math.ceil(delayMs));
        break;
      }
      case 'auth-failed':
        if (this.disabledBy === undefined) alert = { kind: 'auth-failed', status: feedback.status };
        this.disabledBy = { kind: 'auth-failed', status: feedback.status };
        break;
      case 'server-error':
      case 'network':
        // A failed probe after a pause frees the slot for the next one at once.
        if (this.probeAfterPause && !this.circuitOpen) this.probeStartedAtMs = undefined;
        this.onFailure(nowMs);
        break;
      case 'client-error':
        this.probeStartedAtMs = undefined;
        break;
      default:
        unreachable(feedback, 'unknown feedback kind');
    }
    return { from, to: this.state(nowMs), availableAtMs: this.availableAtMs(nowMs), alert };
  }

  private onFailure(nowMs: number): void {
    const { circuitFailuresMax, circuitOpenMsBase, circuitOpenMsMax } = this.timings;
    this.failureStreak = Math.min(this.failureStreak + 1, circuitFailuresMax);
    const state = this.state(nowMs);
    // While open, failures of calls started before it opened change nothing; a half-open
    // failure (the probe's, or any other's) opens it again for longer.
    if (this.circuitOpen && state === 'circuit-open') return;
    if (this.circuitOpen || this.failureStreak >= circuitFailuresMax) {
      this.circuitOpen = true;
      this.circuitOpenings = Math.min(this.circuitOpenings + 1, streakMax);
      this.circuitOpenUntilMs = nowMs + doubling(circuitOpenMsBase, circuitOpenMsMax, this.circuitOpenings);
      this.probeStartedAtMs = undefined;
    }
  }

  private closeCircuit(): void {
    this.failureStreak = 0;
    // (probeAfterPause is not the circuit's: only a success after the pause answers it.)
    this.circuitOpenings = 0;
    this.circuitOpen = false;
    this.circuitOpenUntilMs = -Infinity;
    this.probeStartedAtMs = undefined;
  }

  private probeOut(nowMs: number): boolean {
    return this.probeStartedAtMs !== undefined && nowMs < this.probeStartedAtMs + circuitProbeTimeoutMs;
  }
}
