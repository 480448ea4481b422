// Proves the request path's books pass on the production cores and catch each break of the path.
import { describe, expect, it } from 'vitest';
import type { QuotaDecision } from '../../src/admission/quota-gate.js';
import { asNodeId, asRegionId, asTenantId, type RegionId, type RequestId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { AccountPool } from '../../src/pool/account-pool.js';
import { defaultTierQueueLimits, TierQueue } from '../../src/schedule/tier-queue.js';
import { type GatePort, RequestBooks } from '../../sim/request-books.js';
import { type PathEvent, type PoolPort, RequestPath } from '../../sim/request-path.js';
import { defaultAccountShape, defaultRequestRunConfig, type RequestRunResult, runRequestPaths, simAccounts } from '../../sim/request-run.js';
import { type SimAccountSpec, SimUpstream } from '../../sim/upstream-accounts.js';

/** A short, busy run: every fault on, forwards to every home, retries and cut streams. */
const config = defaultRequestRunConfig({ durationMs: 8_000, requestsPerSecond: 120 });

function checkersOf(result: RequestRunResult): string[] {
  return [...new Set(result.failures.map((failure) => failure.checker))].sort();
}

/** Mutant: every fifth permit is never given back (a release lost on some way out of a call). */
function skipsReleases(pool: PoolPort): PoolPort {
  let releases = 0;
  return {
    acquire: (request, nowMs) => pool.acquire(request, nowMs),
    release: (permit) => (++releases % 5 === 0 ? { ok: true, value: undefined } : pool.release(permit)),
    cancel: (waiterId) => pool.cancel(waiterId),
    tick: (nowMs) => pool.tick(nowMs),
    takeEvents: () => pool.takeEvents(),
    onFeedback: (accountId, feedback, nowMs) => pool.onFeedback(accountId, feedback, nowMs),
    account: (id) => pool.account(id),
    totals: () => pool.totals(),
  };
}

/** Mutant: a permit goes back the moment it is granted, before its call even starts. */
function releasesAtGrant(pool: PoolPort): PoolPort {
  return {
    ...skipsReleases(pool),
    acquire: (request, nowMs) => {
      const picked = pool.acquire(request, nowMs);
      if (picked.ok && picked.value.kind === 'granted') pool.release(picked.value.permit);
      return picked;
    },
    release: () => ({ ok: true, value: undefined }),
    takeEvents: () => {
      const events = pool.takeEvents();
      for (const event of events) if (event.kind === 'granted') pool.release(event.permit);
      return events;
    },
  };
}

/** Mutant: every settlement is made twice (the gate itself ignores the second). */
function settlesTwice(gate: GatePort): GatePort {
  return {
    ...gate,
    settle: (requestId: RequestId, used) => {
      const settlements = gate.settle(requestId, used);
      gate.settle(requestId, used);
      return settlements;
    },
  };
}

/** Mutant: a request whose calls produced only a cut stream is withdrawn, as if it reached no model. */
function withdrawsCutStreams(gate: GatePort): GatePort {
  let settles = 0;
  return {
    ...gate,
    settle: (requestId: RequestId, used) => {
      if (++settles % 7 === 0) {
        gate.withdraw(requestId);
        return [];
      }
      return gate.settle(requestId, used);
    },
  };
}

/** Mutant: the upstream enforces ten times the account's real limits (a limit it forgets to count). */
function looserUpstream(specs: readonly SimAccountSpec[]): SimAccountSpec[] {
  return specs.map((spec) => ({
    ...spec,
    concurrencyMax: spec.concurrencyMax * 10,
    requestsPerMinute: spec.requestsPerMinute * 10,
    tokensPerMinute: spec.tokensPerMinute * 10,
    windows: spec.windows === undefined ? undefined : { fiveHourTokens: spec.windows.fiveHourTokens * 10, sevenDayTokens: spec.windows.sevenDayTokens * 10 },
  }));
}

describe('the simulated request path', () => {
  it('is a pure function of (config, seed)', () => {
    const a = runRequestPaths(config, 7);
    const b = runRequestPaths(config, 7);
    const c = runRequestPaths(config, 8);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.figures).toEqual(a.figures);
    expect(c.traceHash).not.toBe(a.traceHash);
  });

  it('runs every step of the path on the production cores and passes its checkers', () => {
    const result = runRequestPaths(config, 1);
    expect(result.failures).toEqual([]);
    const { figures } = result;
    expect(figures.admitted).toBe(figures.submitted);
    // Every admitted request ended once: settled (it reached a model) or withdrawn.
    expect(figures.settled + figures.withdrawn).toBe(figures.admitted);
    expect(figures.completed).toBeGreaterThan(figures.submitted / 2);
    // Forwards to other homes, retries on another account, and every kind of upstream trouble happened.
    expect(figures.forwards).toBeGreaterThan(0);
    expect(figures.retries).toBeGreaterThan(0);
    for (const kind of ['rateLimited', 'overloaded', 'serverErrors', 'cutStreams'] as const) expect(figures.upstream[kind]).toBeGreaterThan(0);
    expect(figures.producedTokens.output).toBeGreaterThan(0);
  });

  it('refuses past an eventual quota and still charges exactly what the upstream produced', () => {
    const result = runRequestPaths({ ...config, quota: { tokensPerDay: 30_000 } }, 3);
    expect(result.failures).toEqual([]);
    expect(result.figures.refusedQuota).toBeGreaterThan(0);
    expect(result.figures.settled).toBeGreaterThan(0);
  });

  it('catches a pool that loses a permit release', () => {
    const result = runRequestPaths(config, 1, { pool: (pool: PoolPort, _region: RegionId) => skipsReleases(pool) });
    expect(checkersOf(result)).toContain('account-limits');
    expect(result.failures.map((f) => f.message).join('\n')).toMatch(/still holds \d+ permits/);
  });

  it('catches a pool whose permits go back before their calls end', () => {
    const result = runRequestPaths(config, 1, { pool: releasesAtGrant });
    expect(checkersOf(result)).toContain('account-limits');
    expect(result.failures.map((f) => f.message).join('\n')).toMatch(/calls in flight on .*, over its concurrencyMax/);
  });

  it('catches an upstream that takes calls past its account limits', () => {
    // Accounts whose tokens per minute bind within the run: the real upstream answers 429 at the limit.
    const shape = { ...(config.accounts[0] as SimAccountSpec), tokensPerMinute: 100_000 };
    const tight = { ...config, accounts: simAccounts(config.regions, 3, shape, 4) };
    const real = runRequestPaths(tight, 1);
    expect(real.failures).toEqual([]);
    expect(real.figures.upstream.rateLimited).toBeGreaterThan(0);
    const result = runRequestPaths(tight, 1, { upstreamSpecs: looserUpstream });
    expect(checkersOf(result)).toEqual(['account-limits']);
    expect(result.failures[0]?.message).toMatch(/the upstream took a call on .* past its limits: \d+ tokens in a minute \(limit 100000\)/);
  });

  it('catches a request settled twice', () => {
    const result = runRequestPaths(config, 1, { gate: settlesTwice });
    expect(checkersOf(result)).toEqual(['settled-once']);
    expect(result.failures[0]?.message).toMatch(/was settled after it had already been settled/);
  });

  it('catches a request that reached a model but was withdrawn', () => {
    const result = runRequestPaths(config, 1, { gate: withdrawsCutStreams });
    expect(checkersOf(result)).toEqual(['charges']);
    expect(result.failures[0]?.message).toMatch(/was charged \d+ input and \d+ output tokens; the upstream produced/);
  });
});

describe('a request path that closes (the gateway shutting down)', () => {
  it('withdraws what waits for a slot and what is admitted after, and lets the running call settle', () => {
    // One account without faults, one slot: the first request runs, the second waits in the queue.
    const region = asRegionId('us-east');
    const specs = simAccounts(1, 1, { ...defaultAccountShape, faults: { overloaded: 0, serverError: 0, rateLimited: 0, cutStream: 0 } }, 4);
    const books = new RequestBooks(specs);
    const upstream = new SimUpstream(specs, new SeededRandom(1), books);
    const pool = new AccountPool({ random: new SeededRandom(2), shared: { node: asNodeId('us-east'), region } });
    pool.update(specs.map((spec) => spec.account));
    const queue = new TierQueue({ ...defaultTierQueueLimits, tierDepthMax: 10, totalDepthMax: 10, inFlightMax: 1 });
    // A gate whose decisions wait for the test, and which records how each request ended.
    const decisions = new Map<RequestId, (decision: QuotaDecision) => void>();
    const ended = new Map<RequestId, 'settled' | 'withdrawn'>();
    const gate: GatePort = {
      admit: (request, _nowMs, done) => void decisions.set(request.requestId, done),
      settle: (requestId) => (ended.set(requestId, 'settled'), []),
      withdraw: (requestId) => (ended.set(requestId, 'withdrawn'), true),
      tick: () => {},
    };
    const events: { atMs: number; event: PathEvent }[] = [];
    const path = new RequestPath({
      region,
      gate,
      pool,
      queue,
      upstream,
      books,
      subjectsOf: () => [],
      homeOf: () => undefined,
      delayMs: () => 10,
      schedule: (atMs, event) => void events.push({ atMs, event }),
      accountWaitMs: 2_000,
      leaseMs: 600_000,
    });
    const run = (): void => {
      for (let next = events.shift(); next !== undefined; next = events.shift()) path.handle(next.event, next.atMs);
    };
    const ids = ['r1', 'r2', 'r3'] as RequestId[];
    for (const requestId of ids) path.submit({ requestId, tenant: asTenantId('t'), tier: 'paid', inputTokens: 100, maxTokens: 50 }, 0);
    decisions.get(ids[0] as RequestId)?.({ ok: true, value: undefined });
    decisions.get(ids[1] as RequestId)?.({ ok: true, value: undefined });
    // The two decisions: r1 takes the slot and calls, r2 queues behind it.
    for (let i = 0; i < 2; i++) path.handle((events.shift() as { event: PathEvent }).event, 0);
    expect([queue.inFlight, queue.depth, pool.totals().held]).toEqual([1, 1, 1]);

    path.close(1);
    expect(ended.get(ids[1] as RequestId)).toBe('withdrawn');
    expect(queue.depth).toBe(0);
    // Admitted after the close: withdrawn at its decision, never queued.
    decisions.get(ids[2] as RequestId)?.({ ok: true, value: undefined });
    run();
    expect(ended).toEqual(
      new Map([
        [ids[1], 'withdrawn'],
        [ids[2], 'withdrawn'],
        [ids[0], 'settled'],
      ]),
    );
    expect(path.stats.closed).toBe(2);
    expect(path.stats.completed).toBe(1);
    expect([path.flightsOpen, queue.inFlight, queue.depth, pool.totals().held, pool.totals().waiting]).toEqual([0, 0, 0, 0, 0]);
    expect(() => path.submit({ requestId: 'r4' as RequestId, tenant: asTenantId('t'), tier: 'paid', inputTokens: 1, maxTokens: 1 }, 2)).toThrow(/closed path/);
  });
});
