// Proves, over gRPC in front of the paced emulator, that every upstream token is charged whatever
// the client does and that a retried id gets its first answer: unary calls past their client's
// deadline (0.5 s and 2 s, 7 of 7) run on and are charged and kept; a retry gets the kept answer
// with no second upstream call, waits for a running unary request, is told a running stream is
// still running, and is told when the answer was evicted; a stream its client leaves is drained
// and charged in full (drain) or cancelled upstream and charged its input plus the output relayed,
// flagged estimated (abort); a stalled upstream releases the reservation at the client's deadline
// plus the drain grace, and the lease is sized to the call. Each ends reconciling the tenant's and
// the accounts' counters with what the emulator counted.
import { afterEach, describe, expect, it } from 'vitest';
import { weightedTokens } from '../../../src/admission/estimate.js';
import { reservationLeaseMsMax, reservationSettleMarginMs } from '../../../src/core/limits.js';
import { defaultTokenWeights } from '../../../src/mesh/policy/policy-schema.js';
import type { ClientError, StreamItem } from '../../../src/net/grpc/carpool-client.js';
import type { CompleteRequest } from '../../../src/net/grpc/carpool-handler.js';
import { answerStoreBounds } from '../../../src/node/gateway/answer-store.js';
import { relayedBytesPerToken } from '../../../src/upstream/relayed-usage.js';
import { sleep, until, within } from '../../support/wait.js';
import { closeAll, completion, fromUtf8, type Harness, startHarness, weighted } from './gateway-harness.js';

afterEach(closeAll);

/** Every reservation settled and every emulator answer over: the counters are final. */
async function settled(h: Harness, what: string, timeoutMs = 10_000): Promise<void> {
  await until(() => h.runtime.reservations.openCount === 0 && h.emulator.stats().responsesInFlight === 0 && h.gateway.carpool.inFlight === 0, what, timeoutMs);
}

/** The tenant's and the accounts' counters hold exactly what the emulator counted. */
function expectReconciled(h: Harness, tenant: string): void {
  const upstream = h.emulatorUsage();
  expect(h.tenantUsed(tenant, 'requests')).toBe(upstream.requests);
  expect(h.tenantUsed(tenant, 'output_tokens')).toBe(upstream.output);
  expect(h.tenantUsed(tenant, 'weighted_tokens')).toBe(weighted(upstream));
  expect(h.accountsUsed('requests')).toBe(upstream.requests);
  expect(h.accountsUsed('input_tokens')).toBe(upstream.input + upstream.cacheWrite);
  expect(h.accountsUsed('output_tokens')).toBe(upstream.output);
}

function statusOf(error: ClientError): { codeName: string; details: string; pushbackMs: number | undefined } {
  if (error.kind !== 'status') throw new Error(`not a status: ${error.detail}`);
  return { codeName: error.codeName, details: error.details, pushbackMs: error.pushbackMs };
}

async function collect(items: AsyncIterable<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Reads a stream until `leaveAfter` content deltas arrived, then cancels it; returns what arrived. */
async function leaveStream(h: Harness, tenant: string, request: CompleteRequest, leaveAfter: number): Promise<StreamItem[]> {
  const controller = new AbortController();
  const seen: StreamItem[] = [];
  for await (const item of h.client(tenant).streamComplete(request, { signal: controller.signal })) {
    seen.push(item);
    if (seen.filter((i) => i.kind === 'event' && i.event.type === 'content_block_delta').length === leaveAfter) controller.abort();
    if (item.kind !== 'event') break;
  }
  return seen;
}

function textOf(items: readonly StreamItem[]): string {
  return items
    .filter((item) => item.kind === 'event' && item.event.type === 'content_block_delta')
    .map((item) => (item.kind === 'event' ? ((JSON.parse(fromUtf8.decode(item.event.dataJson)) as { delta: { text?: string } }).delta.text ?? '') : ''))
    .join('');
}

// 165 output tokens at 60 a second after 100 ms: an answer takes about 2.9 s, past both deadlines.
const paced = { outputTokensMin: 165, outputTokensMax: 165, ttftMs: 100, tokensPerSecond: 60 };

describe('a unary call whose client hits its deadline', () => {
  for (const deadlineMs of [500, 2_000]) {
    it(`runs on past a ${deadlineMs} ms deadline, is charged what the upstream counted (7 of 7), and a retry gets the kept answer`, async () => {
      const h = await startHarness({ emulator: paced });
      const client = h.client('acme');
      const requests = Array.from({ length: 7 }, () => completion({ maxTokens: 200 }));
      const answers = await Promise.all(requests.map((request) => client.complete(request, { deadlineMs: Date.now() + deadlineMs })));
      for (const answer of answers) expect(!answer.ok && statusOf(answer.error).codeName).toBe('DEADLINE_EXCEEDED');
      await settled(h, 'the abandoned calls to finish and settle');
      const upstream = h.emulatorUsage();
      expect(upstream.requests).toBe(7);
      expect(upstream.output).toBe(7 * 165);
      expectReconciled(h, 'acme');
      expect(h.settled.map((record) => [record.outcome, record.clientLeft, record.estimated])).toEqual(Array(7).fill(['ok', true, false]));

      // Each retry gets the message the upstream produced, charged once: no upstream call, no charge.
      const before = { weighted: h.tenantUsed('acme', 'weighted_tokens'), requests: h.tenantUsed('acme', 'requests') };
      for (const request of requests) {
        const retried = await within(client.complete(request), 'a retry', 2_000);
        if (!retried.ok) throw new Error(JSON.stringify(retried.error));
        const message = JSON.parse(fromUtf8.decode(retried.value.messageJson)) as { type: string; usage: { output_tokens: number } };
        expect(message.type).toBe('message');
        expect(message.usage.output_tokens).toBe(165);
        expect(retried.value.usage.outputTokens).toBe(165);
      }
      expect(h.emulator.stats().requests).toBe(7);
      expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(before.weighted);
      expect(h.tenantUsed('acme', 'requests')).toBe(before.requests);
      expect(h.gateway.carpool.stats.replayed).toBe(7);
      expectReconciled(h, 'acme');
    });
  }

  it('makes a unary retry wait for the running first request and answers it with the same message', async () => {
    const h = await startHarness({ emulator: paced });
    const request = completion({ maxTokens: 200 });
    const first = await h.client('acme').complete(request, { deadlineMs: Date.now() + 300 });
    expect(!first.ok && statusOf(first.error).codeName).toBe('DEADLINE_EXCEEDED');
    // The first is still running at the upstream; the retry waits for it instead of calling again.
    expect(h.emulator.stats().responsesInFlight).toBe(1);
    const retried = await within(h.client('acme').complete(request), 'the retry to get the first answer', 6_000);
    if (!retried.ok) throw new Error(JSON.stringify(retried.error));
    expect(retried.value.usage.outputTokens).toBe(165);
    await settled(h, 'everything to settle');
    expect(h.emulator.stats().requests).toBe(1);
    expectReconciled(h, 'acme');
  });

  it('tells a retry whose answer was evicted that it is no longer kept, and never calls the upstream again', async () => {
    const h = await startHarness({ settings: { answers: { ...answerStoreBounds, entriesMax: 2 } } });
    const client = h.client('acme');
    const [a, b, c] = [completion(), completion(), completion()];
    for (const request of [a, b, c]) expect((await client.complete(request)).ok).toBe(true);
    // Two are kept: the third pushed the first out.
    expect(h.gateway.carpool.answers.ledger.stats.evicted).toBe(1);
    const evicted = await client.complete(a);
    expect(!evicted.ok && statusOf(evicted.error)).toEqual({
      codeName: 'ALREADY_EXISTS',
      details: 'this request id already completed; the answer is no longer kept, and a new request needs a new id',
      pushbackMs: undefined,
    });
    expect((await client.complete(c)).ok).toBe(true);
    expect(h.emulator.stats().requests).toBe(3);
    await settled(h, 'everything to settle');
    expectReconciled(h, 'acme');
  });
});

describe('a stream whose client leaves', () => {
  it('drains by default: charged in full, and a retry replays every event and the summary', async () => {
    const h = await startHarness({ emulator: { outputTokensMin: 90, outputTokensMax: 90, tokensPerSecond: 300 } });
    const request = completion({ maxTokens: 200 });
    const seen = await leaveStream(h, 'acme', request, 1);
    expect(seen.some((item) => item.kind === 'event' && item.event.type === 'message_stop')).toBe(false);
    // While the first still drains, the same id again is told it runs, with a hint.
    const running = await collect(h.client('acme').streamComplete(request));
    const refusal = running.at(-1);
    expect(refusal?.kind === 'error' && statusOf(refusal.error).codeName).toBe('ABORTED');
    expect(refusal?.kind === 'error' && statusOf(refusal.error).pushbackMs).toBeGreaterThan(0);
    await settled(h, 'the drained stream to settle');
    expect(h.emulator.stats().keys[h.keyOf(h.accountIds[0]!)]?.clientClosed ?? 0).toBe(0);
    const upstream = h.emulatorUsage();
    expect(upstream.output).toBe(90);
    expectReconciled(h, 'acme');
    expect(h.settled).toMatchObject([{ outcome: 'ok', clientLeft: true, estimated: false }]);

    const replay = await within(collect(h.client('acme').streamComplete(request)), 'the replay', 2_000);
    const types = replay.filter((item) => item.kind === 'event').map((item) => (item.kind === 'event' ? item.event.type : ''));
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    // The replay begins with the very events the client saw.
    for (const [i, item] of seen.entries()) if (item.kind === 'event') expect(replay[i]).toEqual(item);
    const summary = replay.at(-1);
    expect(summary?.kind === 'summary' && summary.summary.usage.outputTokens).toBe(90);
    expect(textOf(replay).length).toBeGreaterThan(textOf(seen).length);
    expect(h.emulator.stats().requests).toBe(1);
    expectReconciled(h, 'acme');
  });

  it('aborts for a tenant that asks: the upstream is cancelled and the charge is the input plus the relayed output, flagged estimated', async () => {
    // 60 output tokens at 15 a second: a delta of 3 tokens every 200 ms, so the client's leaving
    // reaches the upstream before the next one and what was relayed is what the client saw.
    const h = await startHarness({
      tenants: [{ id: 'quitter', onClientCancel: 'abort' }],
      emulator: { outputTokensMin: 60, outputTokensMax: 60, tokensPerSecond: 15 },
    });
    const request = completion({ maxTokens: 200 });
    const seen = await leaveStream(h, 'quitter', request, 3);
    await settled(h, 'the aborted stream to settle', 3_000);
    const rows = Object.values(h.emulator.stats().keys);
    // The emulator saw its client close the connection before the end, 51 of the 60 tokens unmade.
    expect(rows.reduce((sum, row) => sum + row.clientClosed, 0)).toBe(1);
    const upstream = h.emulatorUsage();
    expect(upstream.output).toBe(9);
    const relayedText = textOf(seen);
    const estimate = Math.ceil(new TextEncoder().encode(relayedText).length / relayedBytesPerToken);
    const charged = { input: upstream.input, output: estimate, cacheWrite: upstream.cacheWrite, cacheRead: upstream.cacheRead };
    expect(h.tenantUsed('quitter', 'requests')).toBe(1);
    expect(h.tenantUsed('quitter', 'output_tokens')).toBe(estimate);
    expect(h.tenantUsed('quitter', 'weighted_tokens')).toBe(weightedTokens(charged, defaultTokenWeights));
    expect(h.accountsUsed('input_tokens')).toBe(upstream.input + upstream.cacheWrite);
    expect(h.accountsUsed('output_tokens')).toBe(estimate);
    expect(h.settled).toMatchObject([{ outcome: 'failed', clientLeft: true, estimated: true, usage: charged }]);
    expect(h.gateway.carpool.stats.settlementsEstimated).toBe(1);

    // The id ran and was charged: a retry is told so, and runs nothing.
    const retried = await collect(h.client('quitter').streamComplete(request));
    const last = retried.at(-1);
    expect(last?.kind === 'error' && statusOf(last.error).codeName).toBe('ALREADY_EXISTS');
    expect(last?.kind === 'error' && statusOf(last.error).details).toContain('its client cancelled the stream');
    expect(h.emulator.stats().requests).toBe(1);
  });
});

describe('a stalled upstream', () => {
  it("releases the reservation at the client's deadline plus the drain grace, with a lease sized to the call", async () => {
    const graceMs = 1_000;
    const h = await startHarness({ emulator: { outputTokensMin: 12, outputTokensMax: 12 }, settings: { drainGraceMs: graceMs } });
    // 3 head events, 4 deltas, content_block_stop, message_delta: then nothing, never message_stop.
    h.inject({ kind: 'stall-mid-stream', afterEvents: 9 });
    const request = completion({ maxTokens: 64 });
    const startedMs = Date.now();
    const deadlineMs = startedMs + 1_000;
    const items = await within(collect(h.client('acme').streamComplete(request, { deadlineMs })), 'the client to give up', 3_000);
    const last = items.at(-1);
    expect(last?.kind === 'error' && statusOf(last.error).codeName).toBe('DEADLINE_EXCEEDED');
    // Past the client's deadline the call still holds its reservation, for the grace...
    const reservation = h.runtime.reservations.get(`${request.requestId}#requests` as never);
    expect(reservation).toBeDefined();
    // ...whose lease is the call's upstream deadline plus the settle margin, not the longest lease.
    const leaseMs = (reservation?.leaseExpiresMs ?? 0) - (reservation?.reservedAtMs ?? 0);
    expect(leaseMs).toBeLessThanOrEqual(deadlineMs + graceMs - startedMs + reservationSettleMarginMs);
    expect(leaseMs).toBeGreaterThanOrEqual(graceMs + reservationSettleMarginMs);
    expect(leaseMs).toBeLessThan(reservationLeaseMsMax / 10);
    await sleep(Math.max(0, deadlineMs + graceMs / 2 - Date.now()));
    expect(h.runtime.reservations.get(`${request.requestId}#requests` as never)).toBeDefined();
    // ...and then no longer: the upstream call is cut and settled with the usage it reported.
    await settled(h, 'the stalled call to be cut at the deadline plus the grace', 3_000);
    expect(Date.now() - deadlineMs).toBeGreaterThanOrEqual(graceMs - 50);
    expect(h.emulatorUsage().output).toBe(12);
    expectReconciled(h, 'acme');
    expect(h.settled).toMatchObject([{ outcome: 'failed', clientLeft: true, estimated: false }]);
  });
});
