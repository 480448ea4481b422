/**
 * One row of the usage ledger: one settled request as one node saw it (DESIGN.md §6, durability).
 *
 * Roles. A request served in its own region has one `local` row, written by the node that took it:
 * it is the tenant's charge and the account's. A request forwarded to the region its account is
 * homed in has two rows linked by the request id: the origin's `origin` row (the tenant's charge,
 * which the origin settles) and the home node's `home` row (the account's charge, which the home
 * node makes). So Σ tenant charges = Σ over `local` and `origin` rows, Σ account charges = Σ over
 * `local` and `home` rows, and no request is charged twice on either side.
 *
 * Outcomes. `ok` and `failed` are calls that reached a model and were settled with the usage the
 * upstream reported (a failed call may still have used tokens). `interrupted` is a request this
 * node had admitted when it died: the node cannot know what the upstream produced, so at restart it
 * charges the estimate it reserved (an upper bound) and says so; `estimated` is then true.
 */
export type LedgerRole = 'local' | 'origin' | 'home';
export type LedgerOutcome = 'ok' | 'failed' | 'interrupted';

export interface LedgerRow {
  readonly requestId: string;
  readonly role: LedgerRole;
  readonly tenant: string;
  /** The request's user within the tenant, when it named one. */
  readonly user: string | null;
  /** The id of the API key the request authenticated with (`<tenant>:<8 hex of its hash>`, as `carpool admin keys list` shows it), when it used one. */
  readonly apiKeyId: string | null;
  /** The account that served the call; null when the node died before it knew. */
  readonly account: string | null;
  readonly originRegion: string;
  readonly servedRegion: string;
  /** The member that wrote the row. */
  readonly node: string;
  readonly model: string;
  readonly stream: boolean;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheWriteTokens: number;
  readonly cacheReadTokens: number;
  /** Tokens under the tenant's weights (DESIGN.md §3): what the tenant's weighted limits were charged. */
  readonly weightedTokens: number;
  /** Micro-dollars at the model's list price (src/ledger/model-prices.ts); null for a model without a known price. */
  readonly costMicros: number | null;
  readonly outcome: LedgerOutcome;
  /** `ok`, or the kind of error the client was answered (gRPC status name). */
  readonly status: string;
  /** The usage is an estimate: a stream aborted by its client, or an interrupted request. */
  readonly estimated: boolean;
  /** The client left (deadline, cancel, disconnect) before the answer was in. */
  readonly clientLeft: boolean;
  /** The client left a call that was already running, and the node read it on to its end for the usage. */
  readonly drained: boolean;
  /** The time whose windows the charge is counted in: admission for the tenant's rows, the call for a home row. */
  readonly chargedAtMs: number;
  readonly settledAtMs: number;
  /** From admission (or, for a home row, the forward's arrival) to settlement. */
  readonly durationMs: number;
}

/** The four token kinds and the weighted total, summed: what queries and the audit report. */
export interface UsageTotals {
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheWriteTokens: number;
  readonly cacheReadTokens: number;
  readonly weightedTokens: number;
  readonly costMicros: number;
}
