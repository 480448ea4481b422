// Proves cross-region forwarding between two real region nodes in one process (mesh over ws, the
// gRPC endpoints and the Forward service on loopback, one emulator): a call whose account is
// homed in the other region is served there and counted once for the tenant and the account,
// streamed or not; a repeated forward replays instead of calling the upstream again; a client
// retry of the same request id at another region is refused naming the region that ran it (the
// id is claimed mesh-wide) and counted nowhere again; a forged member proof is refused; a node
// without a majority cannot claim an id; and an account whose home region is unreachable is
// passed over, while the node, left without a majority, reports NOT_SERVING.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { weightedTokens } from '../../../src/admission/estimate.js';
import type { RequestId, TenantId } from '../../../src/core/ids.js';
import { defaultTokenWeights, type Tenant } from '../../../src/mesh/policy/policy-schema.js';
import type { CarpoolClient } from '../../../src/net/grpc/carpool-client.js';
import { ForwardClient } from '../../../src/net/grpc/forward-client.js';
import { signForward } from '../../../src/node/forward/member-mac.js';
import { nodeAuthCrypto } from '../../../src/node/node-auth-crypto.js';
import type { Emulator } from '../../../src/upstream/emulator/emulator-server.js';
import { healthOf } from '../../support/grpc-health.js';
import { east, eastNode, type RegionNode, roomyRules, startTwoRegions, type TwoRegions, westAccount, westNode } from '../../support/two-regions.js';
import { until } from '../../support/wait.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const secret = 'forwarding-test-mesh-secret';
const tenantRules = roomyRules({ requests: 1_000_000, weighted_tokens: 1_000_000_000 });

interface Region extends RegionNode {
  readonly client: CarpoolClient;
}

let regions: TwoRegions;
let emulator: Emulator;
let eastRegion: Region;
let westRegion: Region;
let apiKey = '';
let nextId = 0;

function request(
  stream = false,
  maxTokens = 32,
): { requestId: string; requestJson: Uint8Array; anthropicVersion: string; anthropicBeta: string; user: string } {
  const body = { model: 'claude-sonnet-4-6', max_tokens: maxTokens, messages: [{ role: 'user', content: `Forward me ${stream ? 'a stream' : 'a message'}` }] };
  return { requestId: `fwd-${++nextId}`, requestJson: utf8.encode(JSON.stringify(body)), anthropicVersion: '', anthropicBeta: '', user: '' };
}

function used(region: Region, scope: 'tenant' | 'account', subject: string, metric: string): number {
  return regions.used(region, scope, subject, metric);
}

function upstreamUsage(): { input: number; output: number; cacheWrite: number; cacheRead: number } {
  const rows = Object.values(emulator.stats().keys);
  const sum = (pick: (row: (typeof rows)[number]) => number): number => rows.reduce((total, row) => total + pick(row), 0);
  return {
    input: sum((r) => r.inputTokens),
    output: sum((r) => r.outputTokens),
    cacheWrite: sum((r) => r.cacheCreationInputTokens),
    cacheRead: sum((r) => r.cacheReadInputTokens),
  };
}

function upstreamRequests(): number {
  return Object.values(emulator.stats().keys).reduce((sum, row) => sum + row.messages, 0);
}

beforeAll(async () => {
  // 300 output tokens at 3,000 a second: a stream runs about 100 ms, long enough to leave mid-way.
  regions = await startTwoRegions({
    secret,
    emulator: { seed: 5, outputTokensMin: 300, outputTokensMax: 300, tokensPerSecond: 3_000 },
    tenants: [{ id: 'acme' }],
    tenantRules,
  });
  emulator = regions.emulator;
  apiKey = regions.keys.get('acme') as string;
  // Clients without a key: each call sends it as metadata.
  eastRegion = { ...regions.east, client: regions.client(regions.east) };
  westRegion = { ...regions.west, client: regions.client(regions.west) };
}, 30_000);

afterAll(async () => {
  await regions?.close();
});

describe('forwarding to the home region', () => {
  it('serves a call through the account home region, counted once for the tenant and the account', async () => {
    const before = upstreamRequests();
    const answer = await eastRegion.client.complete(request(), { metadata: { 'x-api-key': apiKey } });
    if (!answer.ok) throw new Error(JSON.stringify(answer.error));
    expect(answer.value.servedRegion).toBe('eu-west');
    const message = JSON.parse(fromUtf8.decode(answer.value.messageJson)) as { type: string; usage: { output_tokens: number } };
    expect(message.type).toBe('message');
    expect(upstreamRequests()).toBe(before + 1);
    expect(eastRegion.gateway.router.stats.forwards).toBeGreaterThanOrEqual(1);
    // The tenant is charged by the origin, the account by the home node; each once, everywhere.
    await until(
      () => used(westRegion, 'tenant', 'acme', 'requests') === 1 && used(eastRegion, 'account', westAccount, 'requests') === 1,
      'both counters converge',
      5_000,
    );
    expect(used(eastRegion, 'tenant', 'acme', 'requests')).toBe(1);
    expect(used(westRegion, 'account', westAccount, 'requests')).toBe(1);
    expect(used(westRegion, 'account', westAccount, 'output_tokens')).toBe(answer.value.usage.outputTokens);
  });

  it('streams a forwarded call event for event and settles its usage', async () => {
    const tenantBefore = used(eastRegion, 'tenant', 'acme', 'requests');
    const types: string[] = [];
    let summary: { usage: { outputTokens: number }; servedRegion: string } | undefined;
    for await (const item of eastRegion.client.streamComplete(request(true), { metadata: { 'x-api-key': apiKey } })) {
      if (item.kind === 'error') throw new Error(JSON.stringify(item.error));
      if (item.kind === 'event') types.push(item.event.type);
      else summary = item.summary;
    }
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(summary?.servedRegion).toBe('eu-west');
    expect(summary?.usage.outputTokens).toBeGreaterThan(0);
    expect(used(eastRegion, 'tenant', 'acme', 'requests')).toBe(tenantBefore + 1);
  });

  it('replays a repeated forward from the ledger without calling the upstream again', async () => {
    const forward = new ForwardClient();
    try {
      const body = utf8.encode(JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'once only' }] }));
      const requestId = `fwd-direct-${++nextId}` as RequestId;
      const wire = {
        requestId,
        accountId: westAccount,
        tenant: 'acme' as TenantId,
        requestJson: body,
        anthropicVersion: undefined,
        anthropicBeta: undefined,
        stream: false,
        originRegion: east,
        abortOnCancel: false,
      };
      const address = `127.0.0.1:${westRegion.gateway.port}`;
      const sign = (): ReturnType<typeof signForward> =>
        signForward(nodeAuthCrypto, utf8.encode(secret), eastNode, Date.now(), { requestId, accountId: westAccount, body });
      const before = upstreamRequests();
      const first = await forward.execute(address, wire, sign(), { deadlineMs: Date.now() + 10_000 });
      const second = await forward.execute(address, wire, sign(), { deadlineMs: Date.now() + 10_000 });
      if (!first.ok || !second.ok) throw new Error(JSON.stringify([first, second]));
      expect(first.value.outcome).toBe('ok');
      expect(first.value.replayed).toBe(false);
      expect(second.value.replayed).toBe(true);
      // The same origin asked again: it may never have heard the usage, so it gets it again.
      expect(second.value.usage).toEqual(first.value.usage);
      expect(fromUtf8.decode(second.value.messageJson)).toBe(fromUtf8.decode(first.value.messageJson));
      expect(upstreamRequests()).toBe(before + 1);
      // The replay keeps what the account said, not the rate-limit headers it said it with: by
      // now they are stale, and the origin's pool must not move the account's windows back.
      const feedbacks = [first.value.feedback, second.value.feedback];
      expect(feedbacks.map((f) => f?.kind)).toEqual(['success', 'success']);
      const limitsOf = (f: (typeof feedbacks)[number]): unknown => (f?.kind === 'success' ? f.rateLimits.requests : 'not a success');
      expect(limitsOf(first.value.feedback)).toBeDefined();
      expect(limitsOf(second.value.feedback)).toBeUndefined();

      const forged = await forward.execute(address, wire, { ...sign(), mac: 'f'.repeat(64) }, { deadlineMs: Date.now() + 10_000 });
      expect(forged.ok).toBe(false);
      if (!forged.ok) expect(forged.error.code).toBe('UNAUTHENTICATED');
    } finally {
      forward.close();
    }
  });

  it('refuses a client retry through another region, naming the region that ran it, and counts nothing again', async () => {
    const first = request();
    const answer = await eastRegion.client.complete(first, { metadata: { 'x-api-key': apiKey } });
    expect(answer.ok).toBe(true);
    const converged = (metric: string): boolean => used(westRegion, 'tenant', 'acme', metric) === used(eastRegion, 'tenant', 'acme', metric);
    await until(() => converged('requests') && converged('weighted_tokens'), 'the tenant counters converge', 5_000);
    const tenantBefore = used(westRegion, 'tenant', 'acme', 'requests');
    const weightedBefore = used(westRegion, 'tenant', 'acme', 'weighted_tokens');
    const accountBefore = used(westRegion, 'account', westAccount, 'requests');
    const upstreamBefore = upstreamRequests();
    // The client did not hear the answer and retries the same id at eu-west: the id's claim is
    // held by us-east, which ran it and keeps its answer (issue 13: it used to run again).
    const retried = await westRegion.client.complete(first, { metadata: { 'x-api-key': apiKey } });
    expect(!retried.ok && retried.error.kind === 'status' && { code: retried.error.codeName, details: retried.error.details }).toEqual({
      code: 'ALREADY_EXISTS',
      details: 'this request id already ran at region us-east (node use-1); send the retry there for its answer, or use a new id for a new request',
    });
    // There it gets the answer it missed, with nothing charged again.
    const again = await eastRegion.client.complete(first, { metadata: { 'x-api-key': apiKey } });
    if (!again.ok || !answer.ok) throw new Error(JSON.stringify(again));
    expect(again.value.messageJson).toEqual(answer.value.messageJson);
    expect(upstreamRequests()).toBe(upstreamBefore);
    expect(used(westRegion, 'account', westAccount, 'requests')).toBe(accountBefore);
    await until(() => converged('requests') && converged('weighted_tokens'), 'the tenant counters converge again', 5_000);
    expect(used(westRegion, 'tenant', 'acme', 'requests')).toBe(tenantBefore);
    expect(used(eastRegion, 'tenant', 'acme', 'weighted_tokens')).toBe(weightedBefore);
  });

  it('settles a forwarded stream the client left mid-way with its full usage', async () => {
    const before = upstreamUsage();
    const weightedBefore = used(eastRegion, 'tenant', 'acme', 'weighted_tokens');
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const item of eastRegion.client.streamComplete(request(true, 600), { metadata: { 'x-api-key': apiKey }, signal: controller.signal })) {
      if (item.kind === 'event') seen.push(item.event.type);
      if (item.kind === 'event' && item.event.type === 'content_block_delta') controller.abort();
      if (item.kind !== 'event') break;
    }
    expect(seen).not.toContain('message_stop');
    // The origin reads the forward on to its result, so the reservation settles with all 300 tokens.
    await until(
      () => eastRegion.runtime.reservations.openCount === 0 && upstreamUsage().output === before.output + 300,
      `the drained forward to settle`,
      5_000,
    ).catch((e: unknown) => {
      throw new Error(
        `${String(e)} open=${eastRegion.runtime.reservations.openCount} out=${upstreamUsage().output - before.output} inflight=${emulator.stats().responsesInFlight}`,
      );
    });
    const after = upstreamUsage();
    const delta = {
      input: after.input - before.input,
      output: after.output - before.output,
      cacheWrite: after.cacheWrite - before.cacheWrite,
      cacheRead: after.cacheRead - before.cacheRead,
    };
    await until(
      () => used(eastRegion, 'tenant', 'acme', 'weighted_tokens') === weightedBefore + weightedTokens(delta, defaultTokenWeights),
      'the tenant charged in full',
      3_000,
    );
    expect(eastRegion.gateway.carpool.stats.cancelled).toBeGreaterThanOrEqual(1);
  });

  it('refuses a request id it cannot claim without a majority, and says when to retry', async () => {
    await westRegion.gateway.stop(1_000);
    await westRegion.runtime.stop();
    await until(() => !eastRegion.runtime.node.peerConnected(westNode), 'the mesh link is down', 10_000);
    const upstreamBefore = upstreamRequests();
    const answer = await eastRegion.client.complete(request(), { metadata: { 'x-api-key': apiKey } });
    expect(!answer.ok && answer.error.kind === 'status' && { code: answer.error.codeName, details: answer.error.details }).toEqual({
      code: 'UNAVAILABLE',
      details: expect.stringMatching(
        /^too few regions answered the quorum round that claims this request id mesh-wide \(a region that reaches most of the mesh can\); retry in \d/,
      ) as string,
    });
    expect(upstreamRequests()).toBe(upstreamBefore);
    expect(eastRegion.runtime.reservations.openCount).toBe(0);
  });

  it('passes over an account whose home region is unreachable, and says when to retry', async () => {
    // West is down since the test above. Ids guarded by the answering node alone need no
    // majority, so this tenant's call reaches the pool, which has no account to call.
    expect(eastRegion.runtime.policy.upsertTenant({ ...(eastRegion.runtime.policy.tenant('acme' as TenantId) as Tenant), idempotency: 'region' }).ok).toBe(
      true,
    );
    const upstreamBefore = upstreamRequests();
    const answer = await eastRegion.client.complete(request(), { metadata: { 'x-api-key': apiKey } });
    expect(answer.ok).toBe(false);
    if (!answer.ok && answer.error.kind === 'status') {
      expect(answer.error.codeName).toBe('UNAVAILABLE');
      expect(answer.error.pushbackMs).toBeGreaterThan(0);
    }
    expect(upstreamRequests()).toBe(upstreamBefore);
    expect(eastRegion.gateway.router.stats.noRoute).toBeGreaterThan(0);
    // One of two members is no majority: the endpoint tells load balancers to look elsewhere.
    await until(() => !eastRegion.gateway.hasQuorum, 'east sees no quorum');
    let health = '';
    for (let tries = 0; tries < 30 && health !== 'NOT_SERVING'; tries++) {
      health = await healthOf(eastRegion.gateway.port, '');
      if (health !== 'NOT_SERVING') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(health).toBe('NOT_SERVING');
  });
});
