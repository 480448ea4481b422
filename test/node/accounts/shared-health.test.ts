// Proves mesh-wide account health with real node processes: a subscription window exhausted at
// one region (a 429 whose unified headers give the real reset) pauses the account in all three
// regions within a second, no region sends it a request until the reset, and it serves again
// after; a 401 disables the account everywhere with its reason, and one operator re-enable, made
// at another region, brings it back everywhere. Every test reconciles what the tenant was charged
// with what the emulator counted.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshRegion, meshRegions, type SubscriptionMesh, startSubscriptionMesh } from '../../support/subscription-mesh.js';
import { sleep, untilAsync } from '../../support/wait.js';

let mesh: SubscriptionMesh;

beforeAll(async () => {
  mesh = await startSubscriptionMesh({
    accounts: [
      { id: 'sub-us', homeRegion: 'us-east' },
      { id: 'sub-eu', homeRegion: 'eu-west' },
    ],
    // A static access token: these tests are about health, not renewal.
    credential: (account) => ({ kind: 'oauth', key: account.key }),
  });
}, 90_000);

afterAll(async () => {
  await mesh?.stop();
}, 30_000);

function client(region: MeshRegion): Anthropic {
  return new Anthropic({ apiKey: mesh.apiKey, baseURL: mesh.region(region).http, maxRetries: 0 });
}

async function ask(region: MeshRegion): Promise<void> {
  const message = await client(region).messages.create({
    model: 'claude-sonnet-4-5',
    max_tokens: 16,
    messages: [{ role: 'user', content: `hello from ${region}` }],
  });
  expect(message.usage.output_tokens).toBeGreaterThan(0);
}

function keyStats(id: string) {
  const key = mesh.accounts.find((a) => a.id === id)!.key;
  return mesh.emulator.stats().keys[key]!;
}

async function accountIn(region: MeshRegion, id: string): Promise<Record<string, unknown>> {
  return (await mesh.pool(region)).find((a) => a.id === id)!;
}

/** Waits until every region's pool shows the account in `state`; at most a second, polled every 20 ms. */
async function everyRegionHolds(id: string, state: string): Promise<void> {
  const all = async (): Promise<boolean> => {
    for (const region of meshRegions) if ((await accountIn(region, id)).state !== state) return false;
    return true;
  };
  await untilAsync(all, `every region to hold ${id} ${state}`, 1_000, 20);
}

async function reconcile(): Promise<void> {
  await untilAsync(async () => (await mesh.charged()).output === mesh.counted().output, 'the ledgers to settle', 5_000);
  const charged = await mesh.charged();
  const counted = mesh.counted();
  expect(charged.output).toBe(counted.output);
  expect(charged.input).toBe(counted.input);
}

describe('account health shared by the mesh (real processes)', () => {
  it('pauses an exhausted subscription in every region within a second, and nobody calls it until the reset', async () => {
    const sub = mesh.accounts.find((a) => a.id === 'sub-us')!;
    const resetInMs = 4_500;
    expect(mesh.emulator.exhaustWindow(sub.key, 'five_hour', resetInMs)).toBe(true);
    const resetAtMs = Date.now() + resetInMs;
    // us-east tries its own account first: the 429 comes back there, and the call moves to sub-eu.
    await ask('us-east');
    expect(keyStats('sub-us').windowRefusals).toBe(1);
    const heardAtMs = Date.now();
    await everyRegionHolds('sub-us', 'exhausted');
    expect(Date.now() - heardAtMs).toBeLessThan(1_000);
    for (const region of meshRegions) {
      const status = await accountIn(region, 'sub-us');
      // The pause ends at the window's real end (resets are whole seconds), not after a fixed cooldown.
      expect(Math.abs((status.availableAtMs as number) - resetAtMs)).toBeLessThan(1_500);
    }
    // Load from every region while the window is spent: all of it goes to sub-eu.
    const requestsBefore = keyStats('sub-us').requests;
    for (let round = 0; round < 4 && Date.now() < resetAtMs - 1_500; round++) await Promise.all(meshRegions.map((region) => ask(region)));
    expect(keyStats('sub-us').requests).toBe(requestsBefore);
    // After the reset the account serves again: us-east's own calls go to it.
    await sleep(Math.max(0, resetAtMs - Date.now() + 1_200));
    await untilAsync(
      async () => {
        await ask('us-east');
        return keyStats('sub-us').messages > 0;
      },
      'sub-us to serve after its reset',
      10_000,
      100,
    );
    expect(keyStats('sub-us').windowRefusals).toBe(1);
    await reconcile();
  }, 60_000);

  it('a 401 disables the account everywhere with its reason; one re-enable at another region brings it back everywhere', async () => {
    const sub = mesh.accounts.find((a) => a.id === 'sub-eu')!;
    expect(mesh.emulator.addFaults([{ key: sub.key, count: 1, action: { kind: 'unauthorized' } }]).ok).toBe(true);
    // eu-west tries its own account first and meets the 401.
    await ask('eu-west');
    await everyRegionHolds('sub-eu', 'disabled');
    for (const region of meshRegions) expect((await accountIn(region, 'sub-eu')).disabledReason).toBe('the upstream answered 401');
    const metrics = await (
      await fetch(`${mesh.region('ap-south').admin}/metrics`, { headers: { authorization: 'Bearer subscription-mesh-admin-token' } })
    ).text();
    expect(metrics).toMatch(/carpool_account_disabled\{[^}]*account="sub-eu"[^}]*reason="auth-failed"[^}]*\} 1/);
    // The operator re-enables it once, at ap-south (a region that does not even hold its credential).
    const enabled = await mesh.admin('ap-south', 'POST', '/pool/accounts/sub-eu/enable', { reason: 'credential fixed' });
    expect(enabled.status).toBe(200);
    await everyRegionHolds('sub-eu', 'healthy');
    const served = keyStats('sub-eu').messages;
    await ask('eu-west');
    expect(keyStats('sub-eu').messages).toBe(served + 1);
    await reconcile();
  }, 60_000);
});
