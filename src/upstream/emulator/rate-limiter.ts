import { assert, isCount } from '../../core/assert.js';
import { err, OK_VOID, type Result } from '../../core/result.js';

/**
 * An account's own rate limits, as the real API enforces them: requests, input tokens and output
 * tokens per minute, each a token bucket. The real API documents its limits this way: capacity
 * refills continuously up to the per-minute limit rather than resetting at fixed intervals, so
 * a full bucket allows a burst of a whole minute's worth and then a steady rate of limit/60 per
 * second.
 *
 * What each bucket counts:
 *   - requests: one per admitted request;
 *   - input tokens: `input_tokens + cache_creation_input_tokens`, taken at admission. Cache
 *     reads do not count, as with the real API's cache-aware input limits;
 *   - output tokens: taken as they are produced (`chargeOutput`), so the bucket may go below
 *     zero while a long answer streams; a request is admitted only while it holds at least one
 *     token, and later requests wait for it to refill.
 *
 * A request larger than a whole bucket (more input tokens than the per-minute limit) is admitted
 * once the bucket is full and drives it negative, instead of being refused forever: a client
 * that retries on 429 must get through eventually.
 *
 * Time comes in as `nowMs`; a clock that steps back is treated as standing still.
 */
export interface AccountLimits {
  readonly requestsPerMinute: number;
  readonly inputTokensPerMinute: number;
  readonly outputTokensPerMinute: number;
}

export type LimitName = 'requests' | 'input-tokens' | 'output-tokens';

export interface RateLimited {
  readonly kind: 'rate-limited';
  /** The bucket that needs the longest wait. */
  readonly limit: LimitName;
  /** When every bucket would admit the request. */
  readonly retryAfterMs: number;
}

/** One limit's state, as the `anthropic-ratelimit-*` headers report it. */
export interface LimitState {
  readonly limit: number;
  /** Whole units left now, never below zero. */
  readonly remaining: number;
  /** When the bucket will be full again. */
  readonly resetAtMs: number;
}

export interface RateLimitState {
  readonly requests: LimitState;
  readonly inputTokens: LimitState;
  readonly outputTokens: LimitState;
  /** The more restrictive of the two token limits (fewer tokens left), as the API reports it. */
  readonly tokens: LimitState;
}

const minuteMs = 60_000;

export class TokenBucket {
  private level: number;
  private updatedMs: number;

  constructor(
    readonly capacity: number,
    nowMs: number,
  ) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, 'a bucket holds a positive whole number of units');
    this.level = capacity;
    this.updatedMs = nowMs;
  }

  /** Units available now; negative after production overdrew it. */
  levelAt(nowMs: number): number {
    this.refill(nowMs);
    return this.level;
  }

  /** Milliseconds until `amount` units (at most a full bucket) are available; 0 if they are now. */
  waitMs(amount: number, nowMs: number): number {
    this.refill(nowMs);
    const needed = Math.min(amount, this.capacity);
    if (this.level >= needed) return 0;
    return Math.ceil(((needed - this.level) * minuteMs) / this.capacity);
  }

  /** Takes `amount` units, even past zero. */
  take(amount: number, nowMs: number): void {
    assert(isCount(amount), 'a bucket gives out whole units');
    this.refill(nowMs);
    this.level -= amount;
  }

  state(nowMs: number): LimitState {
    this.refill(nowMs);
    return {
      limit: this.capacity,
      remaining: Math.max(0, Math.floor(this.level)),
      resetAtMs: nowMs + Math.ceil(((this.capacity - this.level) * minuteMs) / this.capacity),
    };
  }

  private refill(nowMs: number): void {
    if (nowMs <= this.updatedMs) return;
    this.level = Math.min(this.capacity, this.level + ((nowMs - this.updatedMs) * this.capacity) / minuteMs);
    this.updatedMs = nowMs;
  }
}

export class AccountRateLimiter {
  private readonly requests: TokenBucket;
  private readonly inputTokens: TokenBucket;
  private readonly outputTokens: TokenBucket;

  constructor(limits: AccountLimits, nowMs: number) {
    this.requests = new TokenBucket(limits.requestsPerMinute, nowMs);
    this.inputTokens = new TokenBucket(limits.inputTokensPerMinute, nowMs);
    this.outputTokens = new TokenBucket(limits.outputTokensPerMinute, nowMs);
  }

  /** Admits a request with `inputTokens` billable input tokens, taking them; or says how long to wait. */
  admit(inputTokens: number, nowMs: number): Result<undefined, RateLimited> {
    assert(isCount(inputTokens), 'input tokens are a count');
    // The longest wait decides; on a tie, the first bucket in this order.
    let limit: LimitName = 'requests';
    let retryAfterMs = this.requests.waitMs(1, nowMs);
    const inputWaitMs = this.inputTokens.waitMs(inputTokens, nowMs);
    if (inputWaitMs > retryAfterMs) {
      limit = 'input-tokens';
      retryAfterMs = inputWaitMs;
    }
    const outputWaitMs = this.outputTokens.waitMs(1, nowMs);
    if (outputWaitMs > retryAfterMs) {
      limit = 'output-tokens';
      retryAfterMs = outputWaitMs;
    }
    if (retryAfterMs > 0) return err({ kind: 'rate-limited', limit, retryAfterMs });
    this.requests.take(1, nowMs);
    this.inputTokens.take(inputTokens, nowMs);
    return OK_VOID;
  }

  /** Output tokens as they are produced; they count even if the bucket runs dry. */
  chargeOutput(tokens: number, nowMs: number): void {
    this.outputTokens.take(tokens, nowMs);
  }

  state(nowMs: number): RateLimitState {
    const inputTokens = this.inputTokens.state(nowMs);
    const outputTokens = this.outputTokens.state(nowMs);
    return {
      requests: this.requests.state(nowMs),
      inputTokens,
      outputTokens,
      tokens: outputTokens.remaining < inputTokens.remaining ? outputTokens : inputTokens,
    };
  }
}
