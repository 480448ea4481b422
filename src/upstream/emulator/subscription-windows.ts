import { assert, isCount } from '../../core/assert.js';
import { err, OK_VOID, type Result } from '../../core/result.js';

/**
 * The usage windows of a subscription (OAuth) account: a 5-hour and a 7-day budget, each counted
 * from the first message that falls outside a running window and reset whole when the window
 * ends, as the real subscription limits behave ("A 'session' starts with your first message to
 * Claude and lasts for 5 hours ... The session counter only resets after the 5-hour period from
 * when your first message began", https://support.anthropic.com/en/articles/11014257; the weekly
 * limit likewise runs seven days from its own start). Relays reconstruct the window the same way,
 * start = reset − 5 h (Wei-Shaw/sub2api, backend/internal/service/ratelimit_service.go, handle429).
 *
 * Budgets are counted in one unit per account, `requests` (one per admitted request) or
 * `weighted-tokens` (input 1, cache write 1.25, cache read 0.1, output 5 per token: the price
 * ratios DESIGN.md §3 uses; the real weights are not published). A request is admitted while every
 * window has budget left; output is charged as it is produced, so a window may end above its
 * budget (utilisation above 1, which the real API reports too: "5h-utilization=1.08",
 * https://github.com/Yeachan-Heo/gajae-code/pull/2444).
 *
 * Status per window: `rejected` once the budget is spent, `allowed_warning` from the warning
 * share on, else `allowed`; the account's status is the worst of the two. Time comes in as
 * `nowMs`; a clock that steps back never reopens a window early.
 */
export type WindowName = 'five_hour' | 'seven_day';
export type WindowUnit = 'requests' | 'weighted-tokens';
export type UnifiedStatus = 'allowed' | 'allowed_warning' | 'rejected';

export interface WindowLimits {
  /** Units the window allows, in the account's unit. */
  readonly budget: number;
  readonly lengthMs: number;
}

export interface SubscriptionLimits {
  readonly unit: WindowUnit;
  readonly fiveHour: WindowLimits;
  readonly sevenDay: WindowLimits;
  /** The share of a budget (0 to 1, exclusive of 0) from which a window reports `allowed_warning`. */
  readonly warningUtilization: number;
}

export interface WindowState {
  readonly name: WindowName;
  readonly status: UnifiedStatus;
  /** Used over budget: 0 up, above 1 once output overdrew the window. */
  readonly utilization: number;
  /** When the window ends (or would end, if it started now). */
  readonly resetAtMs: number;
}

export interface SubscriptionState {
  readonly status: UnifiedStatus;
  /** The window that decides: a rejected one (the one that ends last), else the fullest. */
  readonly representative: WindowState;
  readonly fiveHour: WindowState;
  readonly sevenDay: WindowState;
}

export interface WindowExhausted {
  readonly kind: 'window-exhausted';
  /** The exhausted window that ends last: the account is usable again only then. */
  readonly window: WindowName;
  readonly resetAtMs: number;
}

export const fiveHourMs = 5 * 60 * 60 * 1000;
export const sevenDayMs = 7 * 24 * 60 * 60 * 1000;

/** Per-mille weights of `weighted-tokens`: input, cache write, cache read, output. */
const weightsPerMille = { input: 1000, cacheWrite: 1250, cacheRead: 100, output: 5000 } as const;

/** The whole units a request's input costs in `unit`; requests cost 1 whatever their size. */
export function inputCharge(unit: WindowUnit, usage: { inputTokens: number; cacheCreationInputTokens: number; cacheReadInputTokens: number }): number {
  if (unit === 'requests') return 1;
  const perMille =
    usage.inputTokens * weightsPerMille.input +
    usage.cacheCreationInputTokens * weightsPerMille.cacheWrite +
    usage.cacheReadInputTokens * weightsPerMille.cacheRead;
  return Math.ceil(perMille / 1000);
}

/** The units `tokens` output tokens cost in `unit`: nothing when the unit is requests. */
export function outputCharge(unit: WindowUnit, tokens: number): number {
  return unit === 'requests' ? 0 : Math.ceil((tokens * weightsPerMille.output) / 1000);
}

class UsageWindow {
  private startMs: number | undefined;
  private used = 0;

  constructor(
    readonly name: WindowName,
    readonly limits: WindowLimits,
  ) {
    assert(Number.isSafeInteger(limits.budget) && limits.budget >= 1, 'a window allows a positive whole budget');
    assert(Number.isSafeInteger(limits.lengthMs) && limits.lengthMs >= 1, 'a window lasts a positive whole number of milliseconds');
  }

  exhausted(nowMs: number): boolean {
    this.roll(nowMs);
    return this.used >= this.limits.budget;
  }

  resetAtMs(nowMs: number): number {
    this.roll(nowMs);
    return (this.startMs ?? nowMs) + this.limits.lengthMs;
  }

  charge(amount: number, nowMs: number): void {
    assert(isCount(amount), 'a window is charged whole units');
    this.roll(nowMs);
    if (amount === 0) return;
    this.startMs ??= nowMs;
    this.used += amount;
  }

  /** Spends the whole budget now, the window ending `resetInMs` from now. */
  exhaust(nowMs: number, resetInMs: number): void {
    assert(Number.isSafeInteger(resetInMs) && resetInMs >= 1 && resetInMs <= this.limits.lengthMs, 'an exhausted window ends within its length');
    this.roll(nowMs);
    this.startMs = nowMs + resetInMs - this.limits.lengthMs;
    this.used = Math.max(this.used, this.limits.budget);
  }

  state(nowMs: number, warningUtilization: number): WindowState {
    this.roll(nowMs);
    const utilization = this.used / this.limits.budget;
    const status: UnifiedStatus = this.used >= this.limits.budget ? 'rejected' : utilization >= warningUtilization ? 'allowed_warning' : 'allowed';
    return { name: this.name, status, utilization, resetAtMs: (this.startMs ?? nowMs) + this.limits.lengthMs };
  }

  /** A window that has run its length starts over, empty, with the next message. */
  private roll(nowMs: number): void {
    if (this.startMs !== undefined && nowMs >= this.startMs + this.limits.lengthMs) {
      this.startMs = undefined;
      this.used = 0;
    }
  }
}

const statusRank: Readonly<Record<UnifiedStatus, number>> = { allowed: 0, allowed_warning: 1, rejected: 2 };

export class SubscriptionWindows {
  private readonly fiveHour: UsageWindow;
  private readonly sevenDay: UsageWindow;

  constructor(readonly limits: SubscriptionLimits) {
    assert(limits.warningUtilization > 0 && limits.warningUtilization <= 1, 'the warning share is within (0, 1]');
    this.fiveHour = new UsageWindow('five_hour', limits.fiveHour);
    this.sevenDay = new UsageWindow('seven_day', limits.sevenDay);
  }

  /** Whether a request may start now; refused while any window is spent, until the last of them ends. */
  admit(nowMs: number): Result<undefined, WindowExhausted> {
    let refused: WindowExhausted | undefined;
    for (const window of [this.fiveHour, this.sevenDay]) {
      if (!window.exhausted(nowMs)) continue;
      const resetAtMs = window.resetAtMs(nowMs);
      if (refused === undefined || resetAtMs > refused.resetAtMs) refused = { kind: 'window-exhausted', window: window.name, resetAtMs };
    }
    return refused === undefined ? OK_VOID : err(refused);
  }

  /** Charges both windows; the first charge of a window starts it. */
  charge(amount: number, nowMs: number): void {
    this.fiveHour.charge(amount, nowMs);
    this.sevenDay.charge(amount, nowMs);
  }

  exhaust(window: WindowName, nowMs: number, resetInMs: number): void {
    (window === 'five_hour' ? this.fiveHour : this.sevenDay).exhaust(nowMs, resetInMs);
  }

  state(nowMs: number): SubscriptionState {
    const fiveHour = this.fiveHour.state(nowMs, this.limits.warningUtilization);
    const sevenDay = this.sevenDay.state(nowMs, this.limits.warningUtilization);
    const status = statusRank[sevenDay.status] > statusRank[fiveHour.status] ? sevenDay.status : fiveHour.status;
    let representative: WindowState;
    if (status === 'rejected') {
      // Both spent: the account comes back when the later one ends.
      if (fiveHour.status === 'rejected' && sevenDay.status === 'rejected') representative = sevenDay.resetAtMs > fiveHour.resetAtMs ? sevenDay : fiveHour;
      else representative = fiveHour.status === 'rejected' ? fiveHour : sevenDay;
    } else {
      representative = sevenDay.utilization > fiveHour.utilization ? sevenDay : fiveHour;
    }
    return { status, representative, fiveHour, sevenDay };
  }
}
