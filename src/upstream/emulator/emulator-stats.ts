import type { CacheUsage } from './prompt-cache.js';

/**
 * What the emulator counted, for tests and benchmarks to check a client against
 * (`GET /_emulator/stats`). Per-key rows exist only for configured keys, so the table is bounded
 * by the account count; statuses come from the fixed set the emulator answers with.
 */
export interface KeyStats {
  /** Requests to /v1/messages authenticated as this key. */
  requests: number;
  /** Of them, retries as the SDK marks them (`x-stainless-retry-count` above 0). */
  retries: number;
  /** Answers that began a message (200), finished or not. */
  messages: number;
  rateLimited: number;
  faults: number;
  inputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  /** Output tokens produced (and charged), including those of streams cut short. */
  outputTokens: number;
  /**
   * OAuth accounts: token refreshes granted (`POST /v1/oauth/token`), and refused as
   * `invalid_grant` with a retired or revoked refresh token of this account.
   */
  refreshes: number;
  refreshesRefused: number;
  /** Requests refused 401 because they carried an expired access token of this account. */
  expiredTokenRefusals: number;
  /** Of `rateLimited`, the 429s of an exhausted subscription window (5-hour or 7-day). */
  windowRefusals: number;
  /**
   * Answers (streamed or JSON) whose client closed the connection before the answer ended: a
   * caller that cancelled its upstream call. Not counted when the emulator itself closes.
   */
  clientClosed: number;
}

export interface StatsSnapshot {
  readonly requests: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly faultsInjected: number;
  readonly responsesInFlight: number;
  readonly cacheEntries: number;
  readonly cacheEvictions: number;
  /** Refreshes refused with a refresh token no account remembers (never issued, or retired long ago). */
  readonly refreshesRefusedUnknown: number;
  readonly keys: Readonly<Record<string, Readonly<KeyStats>>>;
}

const emptyKey = (): KeyStats => ({
  requests: 0,
  retries: 0,
  messages: 0,
  rateLimited: 0,
  faults: 0,
  inputTokens: 0,
  cacheCreationInputTokens: 0,
  cacheReadInputTokens: 0,
  outputTokens: 0,
  refreshes: 0,
  refreshesRefused: 0,
  expiredTokenRefusals: 0,
  windowRefusals: 0,
  clientClosed: 0,
});

export class EmulatorStats {
  private requestCount = 0;
  private refusedUnknown = 0;
  private readonly statuses = new Map<number, number>();
  private readonly keys = new Map<string, KeyStats>();

  constructor(private readonly configuredKeys: readonly string[]) {
    this.reset();
  }

  reset(): void {
    this.requestCount = 0;
    this.refusedUnknown = 0;
    this.statuses.clear();
    this.keys.clear();
    for (const key of this.configuredKeys) this.keys.set(key, emptyKey());
  }

  /** The row of a configured key; undefined for any other, which is never stored. */
  key(key: string): KeyStats | undefined {
    return this.keys.get(key);
  }

  onRequest(): void {
    this.requestCount += 1;
  }

  /** A refresh refused with a token no account remembers. */
  onUnknownRefreshToken(): void {
    this.refusedUnknown += 1;
  }

  onStatus(status: number): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }

  onInput(key: string, usage: CacheUsage): void {
    const row = this.keys.get(key);
    if (row === undefined) return;
    row.inputTokens += usage.inputTokens;
    row.cacheCreationInputTokens += usage.cacheCreationInputTokens;
    row.cacheReadInputTokens += usage.cacheReadInputTokens;
  }

  snapshot(extra: { faultsInjected: number; responsesInFlight: number; cacheEntries: number; cacheEvictions: number }): StatsSnapshot {
    const statuses: Record<string, number> = {};
    for (const [status, count] of [...this.statuses].sort((a, b) => a[0] - b[0])) statuses[String(status)] = count;
    const keys: Record<string, KeyStats> = {};
    for (const [key, row] of this.keys) keys[key] = { ...row };
    return { requests: this.requestCount, statuses, ...extra, refreshesRefusedUnknown: this.refusedUnknown, keys };
  }
}
