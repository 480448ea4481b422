// Proves the accounting of a client that leaves holds across a forward to the account's home
// region, with two real region nodes in one process (mesh over ws, the gRPC endpoints and the
// Forward service on loopback, one paced emulator): a unary call past its deadline runs on at the
// home node and is charged at both ends, and a retry at the origin gets the kept answer; a stream
// the client leaves is drained and charged in full under drain, and under abort the home node
// cancels its upstream call (the emulator sees the connection close) and both ends charge the
// input plus the relayed output, flagged estimated. Each ends reconciling the tenant's counters
// (at the origin) and the account's (at the home node) with what the emulator counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TokenUsage, weightedTokens } from '../../../src/admission/estimate.js';
import { defaultTokenWeights } from '../../../src/mesh/policy/policy-schema.js';
import type { CarpoolClient, StreamItem } from '../../../src/net/grpc/carpool-client.js';
import type { CompleteRequest } from '../../../src/net/grpc/carpool-handler.js';
import type { Emulator } from '../../../src/upstream/emulator/emulator-server.js';
import { relayedBytesPerToken } from '../../../src/upstream/relayed-usage.js';
import { type RegionNode, roomyRules, startTwoRegions, type TwoRegions, westAccount } from '../../support/two-regions.js';
import { until, within } from '../../support/wait.js';

const fromUtf8 = new TextDecoder();
const utf8 = new TextEncoder();
const tenantRules = roomyRules({ requests: 1_000_000, output_tokens: 1_000_000_000, weighted_tokens: 1_000_000_000 });
/** 45 output tokens at 15 a second: a delta of 3 tokens every 200 ms, an answer in 3 s. */
const outputTokens = 45;

let regions: TwoRegions;
let emulator: Emulator;
let eastRegion: RegionNode;
let westRegion: RegionNode;
let nextId = 0;

function request(): CompleteRequest {
  const body = { model: 'claude-sonnet-4-6', max_tokens: 200, messages: [{ role: 'user', content: 'Forward me something long' }] };
  return { requestId: `fwdc-${++nextId}`, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' };
}

function client(tenant: string): CarpoolClient {
  return regions.client(eastRegion, tenant);
}

function used(region: RegionNode, scope: 'tenant' | 'account', subject: string, metric: string): number {
  return regions.used(region, scope, subject, metric);
}

function upstream(): TokenUsage & { readonly requests: number; readonly clientClosed: number } {
  const rows = Object.values(emulator.stats().keys);
  const sum = (pick: (row: (typeof rows)[number]) => number): number => rows.reduce((total, row) => total + pick(row), 0);
  return {
    requests: sum((r) => r.messages),
    input: sum((r) => r.inputTokens),
    output: sum((r) => r.outputTokens),
    cacheWrite: sum((r) => r.cacheCreationInputTokens),
    cacheRead: sum((r) => r.cacheReadInputTokens),
    clientClosed: sum((r) => r.clientClosed),
  };
}

/**
 * The origin done (no reservation open, no handler running) and the emulator's answer over. A
 * drained forward settles only once the home node's result, sent after it charged the account,
 * arrived; an aborted one does not wait for the home node, whose charge the test waits for.
 */
async function settled(what: string, timeoutMs = 8_000): Promise<void> {
  await until(
    () => eastRegion.runtime.reservations.openCount === 0 && emulator.stats().responsesInFlight === 0 && eastRegion.gateway.carpool.inFlight === 0,
    what,
    timeoutMs,
  );
}

/** The deltas of what the emulator counted since `before`. */
function since(before: ReturnType<typeof upstream>): ReturnType<typeof upstream> {
  const now = upstream();
  return {
    requests: now.requests - before.requests,
    input: now.input - before.input,
    output: now.output - before.output,
    cacheWrite: now.cacheWrite - before.cacheWrite,
    cacheRead: now.cacheRead - before.cacheRead,
    clientClosed: now.clientClosed - before.clientClosed,
  };
}

/** What the tenant (at the origin) and the account (at the home node) were charged so far. */
function charges(tenant: string): { tenantRequests: number; tenantOutput: number; tenantWeighted: number; accountInput: number; accountOutput: number } {
  return {
    tenantRequests: used(eastRegion, 'tenant', tenant, 'requests'),
    tenantOutput: used(eastRegion, 'tenant', tenant, 'output_tokens'),
    tenantWeighted: used(eastRegion, 'tenant', tenant, 'weighted_tokens'),
    accountInput: used(westRegion, 'account', westAccount, 'input_tokens'),
    accountOutput: used(westRegion, 'account', westAccount, 'output_tokens'),
  };
}

async function leaveStream(tenant: string, req: CompleteRequest, leaveAfter: number): Promise<StreamItem[]> {
  const controller = new AbortController();
  const seen: StreamItem[] = [];
  for await (const item of client(tenant).streamComplete(req, { signal: controller.signal })) {
    seen.push(item);
    if (seen.filter((i) => i.kind === 'event' && i.event.type === 'content_block_delta').length === leaveAfter) controller.abort();
    if (item.kind !== 'event') break;
  }
  return seen;
}

function textOf(items: readonly StreamItem[]): string {
  return items
    .map((item) =>
      item.kind === 'event' && item.event.type === 'content_block_delta'
        ? ((JSON.parse(fromUtf8.decode(item.event.dataJson)) as { delta: { text?: string } }).delta.text ?? '')
        : '',
    )
    .join('');
}

beforeAll(async () => {
  regions = await startTwoRegions({
    secret: 'forward-cancel-test-mesh-secret',
    emulator: { seed: 11, outputTokensMin: outputTokens, outputTokensMax: outputTokens, tokensPerSecond: 15 },
    tenants: [
      { id: 'acme', onClientCancel: 'drain' },
      { id: 'quitter', onClientCancel: 'abort' },
    ],
    tenantRules,
  });
  ({ emulator, east: eastRegion, west: westRegion } = regions);
}, 30_000);

afterAll(async () => {
  await regions?.close();
});

describe('a client that leaves a forwarded call', () => {
  it('unary past its deadline: the home node runs it on, both ends charge it, and a retry at the origin gets the kept answer', async () => {
    const before = upstream();
    const base = charges('acme');
    const req = request();
    const first = await client('acme').complete(req, { deadlineMs: Date.now() + 500 });
    expect(!first.ok && first.error.kind === 'status' && first.error.codeName).toBe('DEADLINE_EXCEEDED');
    await settled('the forwarded call to finish and settle');
    const counted = since(before);
    expect(counted).toMatchObject({ requests: 1, output: outputTokens, clientClosed: 0 });
    const after = charges('acme');
    expect(after.tenantRequests - base.tenantRequests).toBe(1);
    expect(after.tenantOutput - base.tenantOutput).toBe(counted.output);
    expect(after.tenantWeighted - base.tenantWeighted).toBe(weightedTokens(counted, defaultTokenWeights));
    expect(after.accountInput - base.accountInput).toBe(counted.input + counted.cacheWrite);
    expect(after.accountOutput - base.accountOutput).toBe(counted.output);
    expect(eastRegion.settled.at(-1)).toMatchObject({ requestId: req.requestId, servedRegion: 'eu-west', clientLeft: true, estimated: false, outcome: 'ok' });

    const retried = await within(client('acme').complete(req), 'the retry at the origin', 2_000);
    if (!retried.ok) throw new Error(JSON.stringify(retried.error));
    expect(retried.value.servedRegion).toBe('eu-west');
    expect(retried.value.usage.outputTokens).toBe(outputTokens);
    expect(since(before).requests).toBe(1);
    expect(charges('acme')).toEqual(after);
  });

  it('stream under drain: read on to its end at the home node and charged in full at both ends', async () => {
    const before = upstream();
    const base = charges('acme');
    const seen = await leaveStream('acme', request(), 1);
    expect(seen.some((item) => item.kind === 'event' && item.event.type === 'message_stop')).toBe(false);
    await settled('the drained forward to settle');
    const counted = since(before);
    expect(counted).toMatchObject({ requests: 1, output: outputTokens, clientClosed: 0 });
    const after = charges('acme');
    expect(after.tenantOutput - base.tenantOutput).toBe(outputTokens);
    expect(after.tenantWeighted - base.tenantWeighted).toBe(weightedTokens(counted, defaultTokenWeights));
    expect(after.accountOutput - base.accountOutput).toBe(outputTokens);
    expect(eastRegion.settled.at(-1)).toMatchObject({ clientLeft: true, estimated: false, outcome: 'ok' });
  });

  it('stream under abort: the home node cancels its upstream call, and both ends charge the input plus the relayed output, estimated', async () => {
    const before = upstream();
    const base = charges('quitter');
    const seen = await leaveStream('quitter', request(), 3);
    await settled('the aborted forward to settle', 4_000);
    const counted = since(before);
    // The emulator saw the home node hang up before the end: 9 of 45 tokens made.
    expect(counted).toMatchObject({ requests: 1, clientClosed: 1, output: 9 });
    const estimate = Math.ceil(utf8.encode(textOf(seen)).length / relayedBytesPerToken);
    const charged = { input: counted.input, output: estimate, cacheWrite: counted.cacheWrite, cacheRead: counted.cacheRead };
    const after = charges('quitter');
    expect(after.tenantRequests - base.tenantRequests).toBe(1);
    expect(after.tenantOutput - base.tenantOutput).toBe(estimate);
    expect(after.tenantWeighted - base.tenantWeighted).toBe(weightedTokens(charged, defaultTokenWeights));
    // The home node charged the account the same: what it relayed to the origin is what the client saw.
    await until(() => charges('quitter').accountOutput - base.accountOutput === estimate, 'the account charge at the home node', 2_000);
    expect(charges('quitter').accountInput - base.accountInput).toBe(counted.input + counted.cacheWrite);
    expect(eastRegion.settled.at(-1)).toMatchObject({ clientLeft: true, estimated: true, outcome: 'failed', usage: charged, servedRegion: 'eu-west' });
    expect(eastRegion.gateway.carpool.stats.settlementsEstimated).toBe(1);
  });
});
