import type { TokenUsage } from '../src/admission/estimate.js';
import { metricOfReservation, type QuotaDecision, type QuotaGate, type QuotaRequest } from '../src/admission/quota-gate.js';
import type { Settlement } from '../src/admission/reservations.js';
import { assert } from '../src/core/assert.js';
import type { AccountId, RegionId, RequestId, TenantId } from '../src/core/ids.js';
import type { CheckFailure } from './sim-result.js';
import { type SimAccountSpec, type UpstreamAnswer, type UpstreamCall, type UpstreamObserver, upstreamWindowMs } from './upstream-accounts.js';

/**
 * The request path's books: three exact checkers over what the gates, the pools and the
 * simulated upstream did, each failure a sentence naming what broke.
 *
 *  - `settled-once`: every request a gate admitted ends exactly once, by a settlement (it reached
 *    a model) or a withdrawal (it did not), never both, never twice, never by lease expiry, and
 *    none is left open once the run has drained.
 *  - `account-limits`: at every call start, the calls in flight on an account from one region
 *    (the permits that region's pool holds, counted from the upstream's side) stay within the
 *    account's `concurrencyMax`; the calls the upstream took stay within its own concurrency,
 *    requests and tokens per minute, and subscription windows (recounted here, apart from the
 *    upstream's own bookkeeping); and once drained, no pool holds a permit or a waiter.
 *  - `charges`: Σ charged = Σ produced. Per tenant, the input and output tokens the gates'
 *    settlements charged equal what the upstream's accepted calls produced for that tenant; per
 *    account, what the executing regions charged the account equals what it produced.
 *
 * The books see the gate through a seam (`observeGate`): a wrapper between the path and the
 * real gate that records each admission, settlement and withdrawal as the gate receives it, so
 * a path (or a test's mutant wrapped above the seam) that settles twice is seen doing so even
 * though the gate itself shrugs the second one off.
 */

/** The gate as the request path uses it. */
export type GatePort = Pick<QuotaGate, 'admit' | 'settle' | 'withdraw' | 'tick'>;

/** Bounds of the books (sim only): requests tracked over a run, and tenants and accounts summed. */
export const booksRequestsMax = 2_000_000;
export const booksTenantsMax = 4_096;
export const booksAccountsMax = 256;
/** Failures kept; a broken run repeats one failure many times, and the first few say it. */
export const booksFailuresMax = 50;

type Ended = 'open' | 'settled' | 'withdrawn';

interface Tokens {
  input: number;
  output: number;
}

interface AccountBook {
  readonly spec: SimAccountSpec;
  /** Calls in flight per origin region (taken or not: a permit covers both). */
  readonly perOrigin: Map<RegionId, number>;
  /** Calls the upstream took and has not ended. */
  accepted: number;
  minute: { index: number; requests: number; tokens: number };
  fiveHour: { index: number; tokens: number };
  sevenDay: { index: number; tokens: number };
  readonly produced: Tokens;
  readonly charged: Tokens;
}

/** What the end-of-run check needs of one region. */
export interface DrainedRegion {
  readonly region: RegionId;
  readonly pool: { readonly held: number; readonly waiting: number; readonly pendingEvents: number };
  readonly queue: { readonly depth: number; readonly inFlight: number };
  readonly flightsOpen: number;
}

export class RequestBooks implements UpstreamObserver {
  readonly failures: CheckFailure[] = [];
  private failuresDropped = 0;
  private readonly requests = new Map<RequestId, { readonly tenant: TenantId; ended: Ended }>();
  private readonly tenants = new Map<TenantId, { readonly produced: Tokens; readonly charged: Tokens }>();
  private readonly accounts = new Map<AccountId, AccountBook>();
  private nowMs = 0;
  admitted = 0;
  settled = 0;
  withdrawn = 0;

  /**
   * The accounts as they truly are: the books hold the upstream to these limits, whatever the
   * upstream itself was told (a test may hand it looser ones).
   */
  constructor(specs: readonly SimAccountSpec[]) {
    assert(specs.length <= booksAccountsMax, 'the books sum a bounded set of accounts');
    for (const spec of specs) {
      this.accounts.set(spec.account.id, {
        spec,
        perOrigin: new Map(),
        accepted: 0,
        minute: { index: -1, requests: 0, tokens: 0 },
        fiveHour: { index: -1, tokens: 0 },
        sevenDay: { index: -1, tokens: 0 },
        produced: { input: 0, output: 0 },
        charged: { input: 0, output: 0 },
      });
    }
  }

  /** Wraps a region's gate so every admission and end passes through the books. */
  observeGate(gate: GatePort): GatePort {
    return {
      admit: (request: QuotaRequest, nowMs: number, done: (decision: QuotaDecision) => void): void => {
        gate.admit(request, nowMs, (decision) => {
          if (decision.ok) this.onAdmitted(request, nowMs);
          done(decision);
        });
      },
      settle: (requestId: RequestId, used: ReadonlyMap<string, number>): Settlement[] => {
        const settlements = gate.settle(requestId, used);
        this.onEnd(requestId, 'settled', settlements);
        return settlements;
      },
      withdraw: (requestId: RequestId): boolean => {
        const open = gate.withdraw(requestId);
        this.onEnd(requestId, 'withdrawn', []);
        return open;
      },
      tick: (nowMs: number): void => {
        this.nowMs = Math.max(this.nowMs, nowMs);
        gate.tick(nowMs);
      },
    };
  }

  /** What an executing region charged an account for one call (production's `AccountUsage.charge`). */
  accountCharged(accountId: AccountId, usage: TokenUsage): void {
    const book = this.accounts.get(accountId);
    if (book === undefined) return this.fail('charges', `an account the upstream does not have (${accountId}) was charged`);
    book.charged.input += usage.input + usage.cacheWrite;
    book.charged.output += usage.output;
  }

  // ---- Upstream observer ----

  started(call: UpstreamCall, accepted: boolean, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const book = this.bookOf(call.accountId);
    const { spec } = book;
    const inFlight = (book.perOrigin.get(call.origin) ?? 0) + 1;
    book.perOrigin.set(call.origin, inFlight);
    if (inFlight > spec.account.concurrencyMax) {
      this.fail(
        'account-limits',
        `${call.origin} has ${inFlight} calls in flight on ${call.accountId}, over its concurrencyMax ${spec.account.concurrencyMax} (request ${call.requestId})`,
      );
    }
    if (!accepted) return;
    book.accepted++;
    const tokens = call.inputTokens + call.maxTokens;
    const minute = Math.floor(nowMs / upstreamWindowMs.minute);
    if (book.minute.index !== minute) book.minute = { index: minute, requests: 0, tokens: 0 };
    const fiveHour = Math.floor(nowMs / upstreamWindowMs.fiveHour);
    if (book.fiveHour.index !== fiveHour) book.fiveHour = { index: fiveHour, tokens: 0 };
    const sevenDay = Math.floor(nowMs / upstreamWindowMs.sevenDay);
    if (book.sevenDay.index !== sevenDay) book.sevenDay = { index: sevenDay, tokens: 0 };
    book.minute.requests++;
    book.minute.tokens += tokens;
    book.fiveHour.tokens += tokens;
    book.sevenDay.tokens += tokens;
    const over: string[] = [];
    if (book.accepted > spec.concurrencyMax) over.push(`${book.accepted} calls at once (limit ${spec.concurrencyMax})`);
    if (book.minute.requests > spec.requestsPerMinute) over.push(`${book.minute.requests} requests in a minute (limit ${spec.requestsPerMinute})`);
    if (book.minute.tokens > spec.tokensPerMinute) over.push(`${book.minute.tokens} tokens in a minute (limit ${spec.tokensPerMinute})`);
    if (spec.windows !== undefined && book.fiveHour.tokens > spec.windows.fiveHourTokens)
      over.push(`${book.fiveHour.tokens} tokens in five hours (limit ${spec.windows.fiveHourTokens})`);
    if (spec.windows !== undefined && book.sevenDay.tokens > spec.windows.sevenDayTokens)
      over.push(`${book.sevenDay.tokens} tokens in seven days (limit ${spec.windows.sevenDayTokens})`);
    if (over.length > 0) this.fail('account-limits', `the upstream took a call on ${call.accountId} past its limits: ${over.join(', ')}`);
  }

  ended(call: UpstreamCall, answer: UpstreamAnswer, accepted: boolean, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const book = this.bookOf(call.accountId);
    const inFlight = (book.perOrigin.get(call.origin) ?? 0) - 1;
    assert(inFlight >= 0, 'a call ends after it started');
    book.perOrigin.set(call.origin, inFlight);
    if (!accepted) return;
    book.accepted--;
    book.produced.input += answer.usage.input + answer.usage.cacheWrite;
    book.produced.output += answer.usage.output;
    const tenant = this.tenantOf(call.tenant);
    tenant.produced.input += answer.usage.input + answer.usage.cacheWrite;
    tenant.produced.output += answer.usage.output;
  }

  // ---- End of run ----

  /** The checks that need the run drained: nothing open, nothing held, and the charges equal. */
  checkDrained(regions: readonly DrainedRegion[]): void {
    let open = 0;
    let first: RequestId | undefined;
    for (const [requestId, request] of this.requests) {
      if (request.ended !== 'open') continue;
      open++;
      first ??= requestId;
    }
    if (open > 0) this.fail('settled-once', `${open} admitted requests were never settled nor withdrawn (first: ${first})`);
    for (const region of regions) {
      const { pool, queue } = region;
      if (pool.held > 0 || pool.waiting > 0 || pool.pendingEvents > 0) {
        this.fail(
          'account-limits',
          `${region.region}'s pool still holds ${pool.held} permits, ${pool.waiting} waiters and ${pool.pendingEvents} undrained outcomes after the run drained`,
        );
      }
      if (queue.depth > 0 || queue.inFlight > 0 || region.flightsOpen > 0) {
        this.fail(
          'settled-once',
          `${region.region} still has ${queue.depth} queued, ${queue.inFlight} running and ${region.flightsOpen} open requests after the run drained`,
        );
      }
    }
    for (const [tenant, book] of this.tenants) this.compare(`tenant ${tenant}`, book.charged, book.produced);
    for (const [account, book] of this.accounts) this.compare(`account ${account}`, book.charged, book.produced);
  }

  /** Σ produced over every tenant: the upstream's output, for the figures. */
  producedTotal(): Tokens {
    const total = { input: 0, output: 0 };
    for (const book of this.tenants.values()) {
      total.input += book.produced.input;
      total.output += book.produced.output;
    }
    return total;
  }

  get failuresDroppedCount(): number {
    return this.failuresDropped;
  }

  // ---- Internals ----

  private onAdmitted(request: QuotaRequest, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const known = this.requests.get(request.requestId);
    if (known !== undefined) return this.fail('settled-once', `${request.requestId} was admitted twice`);
    assert(this.requests.size < booksRequestsMax, 'the books track a bounded run');
    this.requests.set(request.requestId, { tenant: request.tenant, ended: 'open' });
    this.admitted++;
  }

  private onEnd(requestId: RequestId, how: Exclude<Ended, 'open'>, settlements: readonly Settlement[]): void {
    const request = this.requests.get(requestId);
    if (request === undefined) return this.fail('settled-once', `${requestId} was ${how} without having been admitted`);
    if (request.ended !== 'open') return this.fail('settled-once', `${requestId} was ${how} after it had already been ${request.ended}`);
    request.ended = how;
    if (how === 'withdrawn') {
      this.withdrawn++;
      return;
    }
    this.settled++;
    const tenant = this.tenantOf(request.tenant);
    for (const settlement of settlements) {
      if (settlement.by === 'lease') this.fail('settled-once', `${requestId}'s lease ran out before it was settled: charged its estimate`);
      const metric = metricOfReservation(settlement.requestId);
      if (metric === 'input_tokens') tenant.charged.input += settlement.charged;
      if (metric === 'output_tokens') tenant.charged.output += settlement.charged;
    }
  }

  private compare(who: string, charged: Tokens, produced: Tokens): void {
    if (charged.input === produced.input && charged.output === produced.output) return;
    this.fail(
      'charges',
      `${who} was charged ${charged.input} input and ${charged.output} output tokens; the upstream produced ${produced.input} and ${produced.output}`,
    );
  }

  private tenantOf(tenant: TenantId): { readonly produced: Tokens; readonly charged: Tokens } {
    let book = this.tenants.get(tenant);
    if (book === undefined) {
      assert(this.tenants.size < booksTenantsMax, 'the books sum a bounded set of tenants');
      book = { produced: { input: 0, output: 0 }, charged: { input: 0, output: 0 } };
      this.tenants.set(tenant, book);
    }
    return book;
  }

  private bookOf(accountId: AccountId): AccountBook {
    const book = this.accounts.get(accountId);
    assert(book !== undefined, `a call names a simulated account (${accountId})`);
    return book;
  }

  private fail(checker: 'settled-once' | 'account-limits' | 'charges', message: string): void {
    if (this.failures.length >= booksFailuresMax) {
      this.failuresDropped++;
      return;
    }
    this.failures.push({ checker, atMs: this.nowMs, message });
  }
}
