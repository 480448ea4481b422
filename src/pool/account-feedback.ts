/**
 * What one upstream call tells the pool about the account that served it. The upstream client
 * (src/upstream) distils an HTTP status and its headers into one of these values; the pool's
 * health tracking (src/pool) reads nothing else, so it never sees HTTP and the simulator or a
 * test can feed it directly.
 *
 * Times are absolute milliseconds on the same clock as the pool's `nowMs` (the client converts
 * the RFC 3339 reset stamps of `anthropic-ratelimit-*-reset` and the seconds of `retry-after`).
 */

/** One of the account's own limit windows, as the upstream reported it; any field may be missing. */
export interface RateLimitWindow {
  readonly limit: number | undefined;
  readonly remaining: number | undefined;
  readonly resetAtMs: number | undefined;
}

/**
 * What a subscription (OAuth) account's answer says about its usage windows, from the
 * `anthropic-ratelimit-unified-*` headers (parsed in src/upstream/rate-limit-headers.ts, where
 * the sources of the names are cited). `rejected` means the window is exhausted until its reset.
 */
export type UnifiedStatus = 'allowed' | 'allowed_warning' | 'rejected';

/** The subscription windows the pool tracks: a bounded set, fit for a metrics label. */
export const unifiedWindowNames = ['five-hour', 'seven-day'] as const;
export type UnifiedWindowName = (typeof unifiedWindowNames)[number];

export interface UnifiedWindow {
  readonly status: UnifiedStatus | undefined;
  /** The share of the window used, 0 to 1 (it may read above 1 once exhausted). */
  readonly utilization: number | undefined;
  readonly resetAtMs: number | undefined;
}

export interface UnifiedLimits {
  /** The account as a whole: `rejected` when any window is. */
  readonly status: UnifiedStatus | undefined;
  /** When the binding window resets (`anthropic-ratelimit-unified-reset`). */
  readonly resetAtMs: number | undefined;
  readonly windows: Readonly<Record<UnifiedWindowName, UnifiedWindow | undefined>>;
}

/** The `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*` header groups, and the unified ones. */
export interface RateLimitSnapshot {
  readonly requests: RateLimitWindow | undefined;
  readonly tokens: RateLimitWindow | undefined;
  readonly inputTokens: RateLimitWindow | undefined;
  readonly outputTokens: RateLimitWindow | undefined;
  /** Only a subscription account's answers carry these. */
  readonly unified: UnifiedLimits | undefined;
}

export const emptyRateLimits: RateLimitSnapshot = Object.freeze({
  requests: undefined,
  tokens: undefined,
  inputTokens: undefined,
  outputTokens: undefined,
  unified: undefined,
});

export type AccountFeedback =
  /** 2xx: the account works; its headers say how much room is left. */
  | { readonly kind: 'success'; readonly rateLimits: RateLimitSnapshot }
  /** 429 `rate_limit_error`; `retryAfterMs` is relative, from `retry-after`, when sent. */
  | { readonly kind: 'rate-limited'; readonly retryAfterMs: number | undefined; readonly rateLimits: RateLimitSnapshot }
  /** 529 `overloaded_error`, as a status or as an `error` event mid-stream. */
  | { readonly kind: 'overloaded' }
  /** 401 or 403: the credential is revoked or lacks permission; 402: the account has no credit. */
  | { readonly kind: 'auth-failed'; readonly status: 401 | 402 | 403 }
  /** 500 and other 5xx: the upstream failed; the account is not to blame beyond a short pause. */
  | { readonly kind: 'server-error'; readonly status: number }
  /** No usable response: refused, reset, timed out, or a body that broke the protocol. */
  | { readonly kind: 'network'; readonly detail: string }
  /** 400, 404, 413 and like: the request's own fault; says nothing about the account. */
  | { readonly kind: 'client-error'; readonly status: number };
