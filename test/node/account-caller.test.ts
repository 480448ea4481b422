// Proves AccountCaller against the real emulator.
// Calls charge the account counters (streams cut by the client too); 429/529/401 move the request
// to another account and set that account's health; failures stop after the bounded switches;
// client errors are not retried; queued calls run FIFO, cancel, time out and close without leaking
// a permit or a timer; and sessions stick.
import { afterEach, describe, expect, it } from 'vitest';
import { usedUnder } from '../../src/admission/quota.js';
import { type AccountId, asRegionId, asReplicaId, asTenantId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import type { Result } from '../../src/core/result.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { Account, LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { AccountCaller, type AccountCallError, type AccountCallRequest, type AccountCompletion } from '../../src/node/account-caller.js';
import { AccountPool, type AccountStatus, type FeedbackReport } from '../../src/pool/account-pool.js';
import { type AccountMetric, AccountUsage } from '../../src/pool/account-usage.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, type EmulatorOptions, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { parseFaults } from '../../src/upstream/emulator/fault-plan.js';
import type { SseEvent } from '../../src/upstream/sse-parser.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { sleep, within } from '../support/wait.js';

const tenant = asTenantId('acme');
const region = asRegionId('us-east');
const model = 'claude-sonnet-4-6';
const body = { model, max_tokens: 64, messages: [{ role: 'user', content: 'Share a ride?' }] };

/** One rule per account metric, in a window no test run crosses, so every charge is readable. */
const rules: LimitRule[] = (['requests', 'input_tokens', 'output_tokens', 'weighted_tokens'] as const).map((metric) => ({
  metric,
  window: 'day30',
  sliding: false,
  limit: 100_000_000,
  mode: 'eventual',
}));

interface Harness {
  readonly emulator: Emulator;
  readonly client: UpstreamClient;
  readonly counter: WindowedCounter;
  readonly pool: AccountPool;
  readonly caller: AccountCaller;
  readonly ids: readonly AccountId[];
  readonly alerts: FeedbackReport[];
  /** The emulator key of an account. */
  keyOf(id: AccountId): string;
}

interface HarnessOptions {
  readonly accounts?: number;
  readonly concurrencyMax?: number;
  readonly switchesMax?: number;
  readonly emulator?: Partial<EmulatorOptions>;
  /** Accounts the node has no credential for. */
  readonly withoutTarget?: readonly number[];
}

const opened: Harness[] = [];
afterEach(async () => {
  for (const h of opened.splice(0)) {
    h.caller.close();
    await h.client.close(1_000);
    await h.emulator.close();
  }
});

async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const count = options.accounts ?? 3;
  const emulator = await startEmulator({ accounts: generatedAccounts(count, 7), seed: 3, ...options.emulator });
  const client = new UpstreamClient();
  const counter = new WindowedCounter(asReplicaId('caller-test'));
  const usage = new AccountUsage(counter);
  const pool = new AccountPool({ random: new SeededRandom(5), strategy: 'round-robin', sticky: true, room: usage });
  const ids = emulator.keys.map((_, i) => `acct-${i}` as AccountId);
  const accounts: Account[] = ids.map((id) => ({
    id,
    kind: 'api-key',
    homeRegion: region,
    weight: 1,
    concurrencyMax: options.concurrencyMax ?? 4,
    limits: rules,
  }));
  pool.update(accounts);
  const keys = new Map(ids.map((id, i) => [id, emulator.keys[i] as string]));
  const hidden = new Set((options.withoutTarget ?? []).map((i) => ids[i]));
  const targets = (id: AccountId): UpstreamTarget | undefined =>
    hidden.has(id) || !keys.has(id) ? undefined : { baseUrl: emulator.url, credential: { kind: 'api-key', key: keys.get(id) as string } };
  const alerts: FeedbackReport[] = [];
  const caller = new AccountCaller({
    pool,
    usage,
    client,
    targets,
    localRegion: region,
    ...(options.switchesMax === undefined ? {} : { switchesMax: options.switchesMax }),
    onAlert: (report) => alerts.push(report),
  });
  const h: Harness = { emulator, client, counter, pool, caller, ids, alerts, keyOf: (id) => keys.get(id) as string };
  opened.push(h);
  return h;
}

function call(h: Harness, parts: Partial<AccountCallRequest> = {}): Promise<Result<AccountCompletion, AccountCallError>> {
  return within(
    h.caller.call({ tenant, request: { body }, stream: false, acquireDeadlineMs: Date.now() + 2_000, inputTokensEstimate: 20, ...parts }),
    'an account call',
    5_000,
  );
}

function completion(result: Result<AccountCompletion, AccountCallError>): AccountCompletion {
  if (!result.ok) throw new Error(`expected a completion, got ${JSON.stringify(result.error)}`);
  return result.value;
}

function failure(result: Result<AccountCompletion, AccountCallError>): AccountCallError {
  if (result.ok) throw new Error(`expected a failure, got a completion from ${result.value.accountId}`);
  return result.error;
}

function charged(h: Harness, id: AccountId, metric: AccountMetric): number {
  const rule = rules.find((r) => r.metric === metric) as LimitRule;
  return usedUnder(h.counter, 'account', id, rule, Date.now());
}

function statusOf(h: Harness, id: AccountId): AccountStatus {
  return h.pool.status(Date.now()).find((s) => s.id === id) as AccountStatus;
}

function inject(h: Harness, plan: unknown): void {
  const faults = parseFaults(plan);
  if (!faults.ok) throw new Error(JSON.stringify(faults.error));
  const added = h.emulator.addFaults(faults.value);
  if (!added.ok) throw new Error(JSON.stringify(added.error));
}

function expectNoLeaks(h: Harness): void {
  expect(h.pool.totals()).toEqual({ held: 0, waiting: 0, pendingEvents: 0 });
  expect(h.caller.parkedCount).toBe(0);
  expect(h.caller.timerArmed).toBe(false);
}

describe('AccountCaller: calls and billing', () => {
  it('completes a message and charges its usage to the account that served it', async () => {
    const h = await harness();
    const done = completion(await call(h));
    expect(done.response.kind).toBe('message');
    expect(done.attempts).toEqual([{ accountId: done.accountId, outcome: 'success', requestId: done.requestId }]);
    const served = h.emulator.stats().keys[h.keyOf(done.accountId)];
    expect(served?.requests).toBe(1);
    expect(done.usage.output).toBe(served?.outputTokens);
    expect(done.usage.output).toBeGreaterThan(0);
    expect(charged(h, done.accountId, 'requests')).toBe(1);
    expect(charged(h, done.accountId, 'output_tokens')).toBe(done.usage.output);
    expect(charged(h, done.accountId, 'input_tokens')).toBe(done.usage.input + done.usage.cacheWrite);
    for (const other of h.ids.filter((id) => id !== done.accountId)) expect(charged(h, other, 'requests')).toBe(0);
    expectNoLeaks(h);
  });

  it('streams events to the sink in order and charges the stream', async () => {
    const h = await harness();
    const events: string[] = [];
    const done = completion(await call(h, { stream: true, onEvent: (event: SseEvent) => void events.push(event.event) }));
    expect(events[0]).toBe('message_start');
    expect(events.at(-1)).toBe('message_stop');
    expect(events).toContain('content_block_delta');
    expect(done.response.kind).toBe('stream');
    expect(done.cancelled).toBe(false);
    expect(charged(h, done.accountId, 'output_tokens')).toBe(h.emulator.stats().keys[h.keyOf(done.accountId)]?.outputTokens);
    expect(charged(h, done.accountId, 'output_tokens')).toBe(done.usage.output);
    expectNoLeaks(h);
  });

  it('drains a stream the client aborts mid-way and charges its full usage', async () => {
    // 200 tokens at 4000 per second: the stream lasts about 50 ms after its first delta.
    const h = await harness({ emulator: { outputTokensMin: 200, outputTokensMax: 200, tokensPerSecond: 4_000 } });
    const controller = new AbortController();
    const events: string[] = [];
    const done = completion(
      await call(h, {
        stream: true,
        request: { body: { ...body, max_tokens: 400 } },
        signal: controller.signal,
        onEvent: (event: SseEvent) => {
          events.push(event.event);
          if (event.event === 'content_block_delta') controller.abort();
        },
      }),
    );
    expect(done.cancelled).toBe(true);
    expect(events.at(-1)).toBe('content_block_delta');
    expect(events).not.toContain('message_stop');
    expect(done.usage.output).toBe(200);
    expect(charged(h, done.accountId, 'output_tokens')).toBe(200);
    expect(h.emulator.stats().keys[h.keyOf(done.accountId)]?.outputTokens).toBe(200);
    expectNoLeaks(h);
  });
});

describe('AccountCaller: account health and retries', () => {
  it('moves a 429 to another account and cools the first one down until the reset the headers gave', async () => {
    const h = await harness();
    inject(h, { kind: 'rate-limit', retryAfterSeconds: 30, remaining: 0 });
    const before = Date.now();
    const done = completion(await call(h));
    const [first, second] = done.attempts;
    expect(first?.outcome).toBe('rate-limited');
    expect(second).toEqual({ accountId: done.accountId, outcome: 'success', requestId: done.requestId });
    expect(second?.accountId).not.toBe(first?.accountId);
    const limited = statusOf(h, first?.accountId as AccountId);
    expect(limited.state).toBe('exhausted');
    // retry-after 30 s; the reset stamps are whole seconds rounded up.
    expect(limited.availableAtMs).toBeGreaterThanOrEqual(before + 29_000);
    expect(limited.availableAtMs).toBeLessThanOrEqual(Date.now() + 31_000);
    // The refused call never reached the model: nothing charged to the limited account.
    expect(charged(h, first?.accountId as AccountId, 'requests')).toBe(0);
    expect(h.emulator.stats().requests).toBe(2);
    expectNoLeaks(h);
  });

  it('moves a 529 to another account and backs the first one off', async () => {
    const h = await harness();
    inject(h, { kind: 'overloaded' });
    const done = completion(await call(h));
    expect(done.attempts.map((a) => a.outcome)).toEqual(['overloaded', 'success']);
    expect(statusOf(h, done.attempts[0]?.accountId as AccountId).state).toBe('overloaded');
    expectNoLeaks(h);
  });

  it('disables an account on 401 with an alert, serves from the others, and takes it back once enabled', async () => {
    const h = await harness();
    inject(h, { kind: 'unauthorized' });
    const done = completion(await call(h));
    const revoked = done.attempts[0]?.accountId as AccountId;
    expect(done.attempts.map((a) => a.outcome)).toEqual(['auth-failed', 'success']);
    expect(statusOf(h, revoked).state).toBe('disabled');
    expect(h.alerts.map((a) => [a.accountId, a.alert])).toEqual([[revoked, { kind: 'auth-failed', status: 401 }]]);
    for (let i = 0; i < 4; i++) expect(completion(await call(h)).accountId).not.toBe(revoked);
    expect(h.emulator.stats().keys[h.keyOf(revoked)]?.requests).toBe(1);

    expect(h.pool.enable(revoked, Date.now())).toBe(true);
    expect(statusOf(h, revoked).state).toBe('healthy');
    // Round robin over three accounts: three calls in a row visit each.
    const served: AccountId[] = [];
    for (let i = 0; i < 3; i++) served.push(completion(await call(h)).accountId);
    expect(served).toContain(revoked);
    expectNoLeaks(h);
  });

  it('retries a stream that failed before its first event, but never one that delivered events', async () => {
    const h = await harness();
    inject(h, { kind: 'drop-before-headers' });
    const events: string[] = [];
    const done = completion(await call(h, { stream: true, onEvent: (event: SseEvent) => void events.push(event.event) }));
    expect(done.attempts.map((a) => a.outcome)).toEqual(['network', 'success']);
    expect(events.filter((name) => name === 'message_start')).toHaveLength(1);

    h.emulator.resetStats();
    inject(h, { kind: 'error-event', afterEvents: 3, errorType: 'overloaded_error' });
    const seen: string[] = [];
    const error = failure(await call(h, { stream: true, onEvent: (event: SseEvent) => void seen.push(event.event) }));
    expect(error).toMatchObject({ kind: 'upstream', errorType: 'overloaded_error', reason: 'response-started' });
    expect(seen).toHaveLength(3);
    expect(h.emulator.stats().requests).toBe(1);
    // The cut stream reached the model: its input is charged to the account.
    const cut = error.attempts[0]?.accountId as AccountId;
    expect(charged(h, cut, 'requests')).toBe(1);
    expect(charged(h, cut, 'input_tokens')).toBe(error.usage.input + error.usage.cacheWrite);
    expect(error.usage.input).toBeGreaterThan(0);
    expectNoLeaks(h);
  });

  it('gives the last upstream error after exactly switchesMax + 1 attempts when every account fails', async () => {
    const h = await harness({ switchesMax: 1 });
    inject(h, { kind: 'server-error', count: 'unlimited' });
    const error = failure(await call(h));
    expect(error).toMatchObject({ kind: 'upstream', status: 500, errorType: 'api_error', reason: 'switches-exhausted' });
    expect(error.attempts).toHaveLength(2);
    expect(h.emulator.stats().requests).toBe(2);
    expectNoLeaks(h);
  });

  it('stops when no account is left before the switches run out, still with the upstream error', async () => {
    const h = await harness({ accounts: 2 });
    inject(h, { kind: 'overloaded', count: 'unlimited' });
    const error = failure(await call(h));
    expect(error).toMatchObject({ kind: 'upstream', status: 529, errorType: 'overloaded_error', reason: 'no-account-left' });
    expect(new Set(error.attempts.map((a) => a.accountId)).size).toBe(2);
    expect(h.emulator.stats().requests).toBe(2);
    expectNoLeaks(h);
  });

  it('does not retry a client error', async () => {
    const h = await harness();
    const error = failure(await call(h, { request: { body: { ...body, messages: [] } } }));
    expect(error).toMatchObject({ kind: 'upstream', status: 400, errorType: 'invalid_request_error', reason: 'not-retryable' });
    expect(h.emulator.stats().requests).toBe(1);
    expect(h.pool.stateCounts(Date.now()).healthy).toBe(3);
    expectNoLeaks(h);
  });

  it('skips accounts this node has no credential for, without using up a switch', async () => {
    const h = await harness({ switchesMax: 0, withoutTarget: [0, 1] });
    for (let i = 0; i < 3; i++) expect(completion(await call(h)).accountId).toBe(h.ids[2]);
    expect(h.caller.stats.skipped).toBeGreaterThan(0);
    expectNoLeaks(h);
  });

  it('answers no-account with no retry hint when the pool has no account', async () => {
    const h = await harness();
    h.pool.update([]);
    expect(failure(await call(h))).toMatchObject({ kind: 'no-account', retryAfterMs: undefined, attempts: [] });
  });

  it('keeps a session on one account and spreads calls without one', async () => {
    const h = await harness();
    const sticky: AccountId[] = [];
    for (let i = 0; i < 4; i++) sticky.push(completion(await call(h, { request: { body: { ...body, metadata: { user_id: 'session-7' } } } })).accountId);
    expect(new Set(sticky).size).toBe(1);
    const spread: AccountId[] = [];
    for (let i = 0; i < 3; i++) spread.push(completion(await call(h)).accountId);
    expect(new Set(spread).size).toBe(3);
  });
});

describe('AccountCaller: waiting for a permit', () => {
  it('queues calls on a full account and runs them first in, first out', async () => {
    const h = await harness({ accounts: 1, concurrencyMax: 1, emulator: { ttftMs: 10 } });
    const order: number[] = [];
    const calls = Array.from({ length: 5 }, (_, i) => call(h).then((result) => (order.push(i), result)));
    expect(h.pool.status(Date.now())[0]).toMatchObject({ inFlight: 1, queued: 4 });
    const results = await Promise.all(calls);
    for (const result of results) completion(result);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(h.emulator.stats().requests).toBe(5);
    expectNoLeaks(h);
  });

  it('cancels a queued call whose signal aborts, without a leaked permit or a blocked queue', async () => {
    const h = await harness({ accounts: 1, concurrencyMax: 1, emulator: { ttftMs: 150 } });
    const running = call(h);
    const controller = new AbortController();
    const aborted = call(h, { signal: controller.signal });
    const after = call(h);
    await sleep(20);
    controller.abort();
    const startedMs = Date.now();
    expect(failure(await aborted)).toMatchObject({ kind: 'cancelled', phase: 'queued', attempts: [] });
    expect(Date.now() - startedMs).toBeLessThan(100);
    // The ticket left the pool's queue at once: only the call behind it still waits.
    expect(h.pool.totals()).toMatchObject({ held: 1, waiting: 1 });
    completion(await running);
    completion(await after);
    expect(h.emulator.stats().requests).toBe(2);
    expect(h.caller.stats.cancelledWhileParked).toBe(1);
    expect(h.caller.stats.orphanGrants).toBe(0);
    expectNoLeaks(h);
  });

  it('times out a queued call at its acquire deadline', async () => {
    const h = await harness({ accounts: 1, concurrencyMax: 1, emulator: { ttftMs: 300 } });
    const running = call(h);
    const startedMs = Date.now();
    const error = failure(await call(h, { acquireDeadlineMs: startedMs + 50 }));
    expect(error).toMatchObject({ kind: 'queue-timeout', accountId: h.ids[0] });
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(45);
    expect(Date.now() - startedMs).toBeLessThan(250);
    completion(await running);
    expectNoLeaks(h);
  });

  it('ends parked calls with closed on close and refuses new ones', async () => {
    const h = await harness({ accounts: 1, concurrencyMax: 1, emulator: { ttftMs: 100 } });
    const running = call(h);
    const parked = call(h);
    await sleep(10);
    expect(h.caller.timerArmed).toBe(true);
    h.caller.close();
    expect(failure(await parked).kind).toBe('closed');
    expect(failure(await call(h)).kind).toBe('closed');
    completion(await running);
    expectNoLeaks(h);
  });
});
