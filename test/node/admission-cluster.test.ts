// Proves the quota modes hold between real node processes on loopback: a strict or escrow limit
// admitted concurrently at three nodes is never exceeded in total, an eventual limit reached at
// one node is enforced at another once gossip arrives, and a node cut off from the majority
// refuses strict requests with 503 and a retry hint instead of admitting them alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, sleep } from '../support/cluster.js';

interface Answer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: { admitted?: boolean; rejection?: { kind: string } };
}

function tenant(limits: readonly object[], userLimits: readonly object[] = []): object {
  return {
    tier: 'paid',
    requireSignature: false,
    concurrencyMax: 100,
    weights: { input: 1000, output: 5000, cacheWrite: 1250, cacheRead: 100 },
    limits,
    userLimits,
  };
}

describe('admission across a 3-node mesh', () => {
  let cluster: Cluster;
  let nextId = 0;

  async function admit(i: number, tenantId: string, amounts: Record<string, number>, user?: string): Promise<Answer> {
    // The test-only route of test/support/test-node.ts: production serves no admission route.
    const response = await cluster.testFetch(i, '/admission/admit', {
      tenant: tenantId,
      ...(user === undefined ? {} : { user }),
      requestId: `req-${nextId++}`,
      amounts,
    });
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Answer['body'] };
  }

  /** Puts a tenant at node 0 and waits until every node knows it. */
  async function putTenant(id: string, limits: readonly object[], userLimits: readonly object[] = []): Promise<void> {
    await cluster.request(0, 'PUT', `/policy/tenants/${id}`, tenant(limits, userLimits));
    for (let i = 0; i < 3; i++) {
      for (let attempt = 0; ; attempt++) {
        const policy = (await cluster.request(i, 'GET', '/policy')) as { tenants: { id: string }[] };
        if (policy.tenants.some((t) => t.id === id)) break;
        if (attempt > 100) throw new Error(`node ${i} never saw tenant ${id}`);
        await sleep(50);
      }
    }
  }

  beforeAll(async () => {
    cluster = await Cluster.start(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  for (const mode of ['strict', 'escrow'] as const) {
    it(`${mode}: 90 concurrent requests at three nodes admit at most the limit of 30; one at a time fill it exactly`, async () => {
      const id = `${mode}-co`;
      await putTenant(id, [{ metric: 'requests', window: 'day', sliding: false, limit: 30, mode }]);
      const answers = await Promise.all(Array.from({ length: 90 }, (_, k) => admit(k % 3, id, { requests: 1 })));
      const burst = answers.filter((a) => a.status === 200).length;
      expect(burst).toBeLessThanOrEqual(30);
      // Strict batches refused only for each other's pending reservations retry once, so a burst
      // still uses most of the limit (without the retry, 1 to 3 of 30 were admitted here).
      expect(burst).toBeGreaterThanOrEqual(mode === 'strict' ? 15 : 1);
      for (const refused of answers.filter((a) => a.status !== 200)) {
        expect([429, 503]).toContain(refused.status);
        expect(refused.retryAfter).not.toBeNull();
      }
      // Without contention the same limit is used to the last unit, and not one more. (Under a
      // burst, concurrent strict batches count each other's pending reservations, so some
      // requests are refused although the total ends below the limit: the false rejections
      // the mode table in README.md measures.)
      let admitted = burst;
      for (let k = 0; k < 40; k++) if ((await admit(k % 3, id, { requests: 1 })).status === 200) admitted++;
      expect(admitted).toBe(30);
      const index = Math.floor(Date.now() / 86_400_000);
      const ref = { scope: 'tenant', subject: id, metric: 'requests', unit: 'day', index };
      // Refunds of refused requests arrive by gossip: wait until every node reads exactly that.
      for (let i = 0; i < 3; i++) {
        let value = await cluster.value(i, ref);
        for (let attempt = 0; value !== admitted && attempt < 100; attempt++) {
          await sleep(50);
          value = await cluster.value(i, ref);
        }
        expect(value).toBe(admitted);
      }
    }, 30_000);
  }

  it('eventual: a limit used up at one node is enforced at another once gossip arrives', async () => {
    const id = 'eventual-co';
    await putTenant(id, [{ metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000, mode: 'eventual' }]);
    expect((await admit(0, id, { weighted_tokens: 1_000 })).status).toBe(200);
    const index = Math.floor(Date.now() / 86_400_000);
    await cluster.value(1, { scope: 'tenant', subject: id, metric: 'weighted_tokens', unit: 'day', index }, 1_000);
    const refused = await admit(1, id, { weighted_tokens: 1 });
    expect(refused.status).toBe(429);
    expect(refused.body.rejection?.kind).toBe('quota');
  }, 30_000);

  it('user limits: each user of a tenant has its own strict limit inside the tenant limit', async () => {
    const id = 'users-co';
    await putTenant(
      id,
      [{ metric: 'requests', window: 'day', sliding: false, limit: 100, mode: 'eventual' }],
      [{ metric: 'requests', window: 'day', sliding: false, limit: 2, mode: 'strict' }],
    );
    const first = [await admit(0, id, { requests: 1 }, 'alice'), await admit(1, id, { requests: 1 }, 'alice'), await admit(2, id, { requests: 1 }, 'alice')];
    expect(first.map((a) => a.status)).toEqual([200, 200, 429]);
    expect((await admit(2, id, { requests: 1 }, 'bob')).status).toBe(200);
  }, 30_000);

  it('strict: a node cut off from the majority answers 503 no-quorum; the majority still admits', async () => {
    const id = 'partitioned-co';
    await putTenant(id, [{ metric: 'requests', window: 'day', sliding: false, limit: 100, mode: 'strict' }]);
    cluster.isolate(2);
    try {
      await sleep(200);
      const alone = await admit(2, id, { requests: 1 });
      expect(alone.status).toBe(503);
      expect(alone.body.rejection?.kind).toBe('no-quorum');
      expect(Number(alone.retryAfter)).toBeGreaterThan(0);
      expect((await admit(0, id, { requests: 1 })).status).toBe(200);
    } finally {
      cluster.healAll();
    }
    await cluster.waitConnected();
  }, 30_000);
});
