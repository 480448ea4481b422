// Proves, over gRPC in front of the emulator, that statuses say what is true: a 10 MB body and
// max_tokens 1e9 are INVALID_ARGUMENT naming the bound (not RESOURCE_EXHAUSTED "quota reached"),
// a request whose estimate alone is over the tenant's limit is FAILED_PRECONDITION saying it can
// never fit (with no retry hint), a request at the bounds is served, and a failed QUORUM GetUsage
// of a tenant with only eventual limits does not speak of a strict quota. Nothing refused is
// charged or reaches the upstream; what is served reconciles with the emulator.
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayMaxTokensMax, gatewayRequestJsonBytesMax } from '../../../src/core/limits.js';
import type { ClientError } from '../../../src/net/grpc/carpool-client.js';
import { closeAll, completion, model, rulesOf, startHarness, utf8, weighted } from './gateway-harness.js';

afterEach(closeAll);

function statusOf(error: ClientError): { codeName: string; details: string; pushbackMs: number | undefined } {
  if (error.kind !== 'status') throw new Error(`not a status: ${error.detail}`);
  return { codeName: error.codeName, details: error.details, pushbackMs: error.pushbackMs };
}

describe('requests past a bound', () => {
  it('refuses a 10 MB body and max_tokens 1e9 with INVALID_ARGUMENT naming the bound, and charges nothing', async () => {
    const h = await startHarness();
    const client = h.client('acme');
    const big = JSON.stringify({ model, max_tokens: 64, messages: [{ role: 'user', content: 'x'.repeat(10 * 1024 * 1024) }] });
    const body = await client.complete(completion({ requestJson: utf8.encode(big) }));
    expect(!body.ok && statusOf(body.error)).toEqual({
      codeName: 'INVALID_ARGUMENT',
      details: `invalid request_json: is ${utf8.encode(big).length} bytes, over the bound of ${gatewayRequestJsonBytesMax} bytes a request may carry`,
      pushbackMs: undefined,
    });
    const tokens = await client.complete(completion({ maxTokens: 1e9 }));
    expect(!tokens.ok && statusOf(tokens.error)).toEqual({
      codeName: 'INVALID_ARGUMENT',
      details: `invalid request_json.max_tokens: is 1000000000, over the bound of ${gatewayMaxTokensMax} (the largest output window of current models)`,
      pushbackMs: undefined,
    });
    expect(h.emulator.stats().requests).toBe(0);
    expect(h.tenantUsed('acme', 'requests')).toBe(0);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(0);
    expect(h.runtime.reservations.openCount).toBe(0);
    // At the bound a request is served, and charged what the emulator counted.
    const atBound = await client.complete(completion({ maxTokens: gatewayMaxTokensMax }));
    expect(atBound.ok).toBe(true);
    const upstream = h.emulatorUsage();
    expect(upstream.requests).toBe(1);
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.accountsUsed('output_tokens')).toBe(upstream.output);
  });

  it('refuses a request whose estimate alone is over the tenant limit as one that can never fit, without a retry hint', async () => {
    const h = await startHarness({ tenants: [{ id: 'small', limits: rulesOf({ requests: 100, weighted_tokens: 5_000 }) }] });
    const client = h.client('small');
    const refused = await client.complete(completion({ maxTokens: 2_000 }));
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    const status = statusOf(refused.error);
    expect(status.codeName).toBe('FAILED_PRECONDITION');
    expect(status.details).toMatch(
      /^the request can never fit: its estimate of \d+ weighted_tokens is over the tenant's limit of 5000 per day30; lower max_tokens or shorten the request$/,
    );
    expect(status.pushbackMs).toBeUndefined();
    expect(h.emulator.stats().requests).toBe(0);
    expect(h.tenantUsed('small', 'weighted_tokens')).toBe(0);
    // A request that fits an empty window is served and charged what the emulator counted.
    const fits = await client.complete(completion({ maxTokens: 64 }));
    expect(fits.ok).toBe(true);
    const upstream = h.emulatorUsage();
    expect(h.tenantUsed('small', 'requests')).toBe(1);
    expect(h.tenantUsed('small', 'weighted_tokens')).toBe(weighted(upstream));
  });
});

describe('GetUsage at QUORUM without a quorum', () => {
  it('says the QUORUM read failed, not that a strict quota could not be checked, for a tenant with only eventual limits', async () => {
    // Two members that never answer: this node alone is no majority of three. The tenant's ids
    // are guarded by this node alone (`idempotency: region`), so its completions need no round.
    const h = await startHarness({ absentMembers: 2, tenants: [{ id: 'acme', idempotency: 'region' }] });
    const client = h.client('acme');
    const local = await client.getUsage({ consistency: 'local', user: '' });
    expect(local.ok).toBe(true);
    const quorum = await client.getUsage({ consistency: 'quorum', user: '' }, { deadlineMs: Date.now() + 5_000 });
    expect(!quorum.ok && statusOf(quorum.error)).toEqual({
      codeName: 'UNAVAILABLE',
      details: 'too few regions answered the QUORUM read (a LOCAL read answers now); retry in 1 s',
      pushbackMs: 1_000,
    });
    // Eventual admission needs no round either: a completion is still served and counted once.
    const served = await client.complete(completion());
    expect(served.ok).toBe(true);
    const upstream = h.emulatorUsage();
    expect(h.tenantUsed('acme', 'requests')).toBe(1);
    expect(h.tenantUsed('acme', 'weighted_tokens')).toBe(weighted(upstream));
    expect(h.accountsUsed('requests')).toBe(1);
  });
});
