// Proves subscription logins that stay alive, with real node processes and the emulator's token
// endpoint: under load from three regions (12 s in `npm test`; the 60 s with
// RENEWAL_LOAD_MS=60000 npx vitest run test/node/accounts/subscription-renewal.test.ts), with access tokens that expire every four
// seconds, no client request fails because of expiry, each account is refreshed once per token
// period by its home region alone (no storm, no second region refreshing, no rotated-away token
// reused), and what the tenant was charged matches what the emulator counted. A refresh token
// revoked upstream disables its account in every region with the reason in GET /pool and the
// metrics.
import Anthropic from '@anthropic-ai/sdk';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshRegion, meshRegions, type SubscriptionMesh, startSubscriptionMesh } from '../../support/subscription-mesh.js';
import { sleep, untilAsync } from '../../support/wait.js';

const lifetimeMs = 4_000;
const leadMs = 1_000;
/** A refreshed token lives `lifetimeMs`; the next refresh is `leadMs` before it expires. */
const periodMs = lifetimeMs - leadMs;
/** The load's length; `npm test` keeps to 12 s for its time budget. */
const loadMs = Number(process.env.RENEWAL_LOAD_MS ?? 12_000);
if (!Number.isSafeInteger(loadMs) || loadMs < 5_000 || loadMs > 600_000) throw new Error('RENEWAL_LOAD_MS takes 5000 to 600000 ms');
const workersPerRegion = 3;
const requestsPerWorkerMax = 2_000;

let mesh: SubscriptionMesh;
let startedAtMs = 0;

beforeAll(async () => {
  startedAtMs = Date.now();
  mesh = await startSubscriptionMesh({
    accounts: [
      { id: 'sub-us', homeRegion: 'us-east' },
      { id: 'sub-eu', homeRegion: 'eu-west' },
      { id: 'sub-ap', homeRegion: 'ap-south' },
    ],
    emulatorAccount: (account) => ({ oauth: { refreshToken: `sk-ant-ort01-${account.id}-first`, accessTokenLifetimeMs: lifetimeMs } }),
    credential: (account, dir) => {
      const file = `${account.id}.credentials.json`;
      // Claude Code's credentials file: the access token the emulator issued at its start.
      const claudeAiOauth = { accessToken: account.key, refreshToken: `sk-ant-ort01-${account.id}-first`, expiresAt: Date.now() + lifetimeMs - 500 };
      writeFileSync(join(dir, file), JSON.stringify({ claudeAiOauth }), { mode: 0o600 });
      return { kind: 'oauth', credentialsFile: file };
    },
    upstream: (emulator) => ({ oauth: { tokenUrl: `${emulator.url}/v1/oauth/token`, refreshLeadMs: leadMs } }),
  });
}, 90_000);

afterAll(async () => {
  await mesh?.stop();
}, 30_000);

function keyStats(id: string) {
  const key = mesh.accounts.find((a) => a.id === id)!.key;
  return mesh.emulator.stats().keys[key]!;
}

describe('subscription logins kept alive (real processes)', () => {
  it(
    'serves load across token expiries with one refresh per account per period, from its home region only',
    async () => {
      const failures: string[] = [];
      let served = 0;
      let reportedOutput = 0;
      const endAtMs = Date.now() + loadMs;
      const worker = async (region: MeshRegion, n: number): Promise<void> => {
        const client = new Anthropic({ apiKey: mesh.apiKey, baseURL: mesh.region(region).http, maxRetries: 0 });
        for (let i = 0; i < requestsPerWorkerMax && Date.now() < endAtMs; i++) {
          try {
            const message = await client.messages.create({
              model: 'claude-sonnet-4-5',
              max_tokens: 12,
              messages: [{ role: 'user', content: `${region} ${n} ${i}` }],
            });
            served++;
            reportedOutput += message.usage.output_tokens;
          } catch (error) {
            failures.push(`${region}: ${(error as Error).message}`);
          }
          await sleep(20);
        }
      };
      await Promise.all(meshRegions.flatMap((region) => Array.from({ length: workersPerRegion }, (_, n) => worker(region, n))));
      const elapsedMs = Date.now() - startedAtMs;

      const refreshes = mesh.accounts.map((a) => `${a.id} ${keyStats(a.id).refreshes}`).join(', ');
      console.log(
        `renewal: ${served} requests served in ${loadMs / 1000} s from 3 regions, ${failures.length} failed; refreshes over ${(elapsedMs / 1000).toFixed(1)} s (${(elapsedMs / periodMs).toFixed(1)} periods): ${refreshes}`,
      );
      expect(failures.slice(0, 5)).toEqual([]);
      expect(served).toBeGreaterThan(loadMs / 200);
      for (const account of mesh.accounts) {
        const stats = keyStats(account.id);
        // No call met an expired token: each was refreshed before it expired.
        expect(stats.expiredTokenRefusals, account.id).toBe(0);
        // A second refresher (another region, or two at once) would present a rotated-away token.
        expect(stats.refreshesRefused, account.id).toBe(0);
        // One refresh per period over the mesh's life, give or take the first and the one in flight.
        const expected = elapsedMs / periodMs;
        expect(stats.refreshes, `${account.id} refreshed ${stats.refreshes} times in ${elapsedMs} ms`).toBeGreaterThanOrEqual(Math.floor(expected) - 2);
        expect(stats.refreshes, `${account.id} refreshed ${stats.refreshes} times in ${elapsedMs} ms`).toBeLessThanOrEqual(Math.ceil(expected) + 1);
        expect(stats.messages, account.id).toBeGreaterThan(0);
      }
      expect(mesh.emulator.stats().refreshesRefusedUnknown).toBe(0);
      // Every token accounted: what clients were told, what the tenant was charged, what the emulator counted.
      await untilAsync(async () => (await mesh.charged()).requests >= served, 'the ledgers to settle', 5_000);
      const charged = await mesh.charged();
      const counted = mesh.counted();
      expect(charged.output).toBe(counted.output);
      expect(charged.input).toBe(counted.input);
      expect(reportedOutput).toBe(counted.output);
    },
    loadMs + 60_000,
  );

  it('a refresh token revoked upstream disables its account in every region, the reason in GET /pool and the metrics', async () => {
    const sub = mesh.accounts.find((a) => a.id === 'sub-ap')!;
    expect(mesh.emulator.revokeRefreshToken(sub.key)).toBe(true);
    // The next scheduled refresh (within one period) is refused for good.
    await untilAsync(
      async () => {
        for (const region of meshRegions) {
          const status = (await mesh.pool(region)).find((a) => a.id === 'sub-ap');
          if (status?.state !== 'disabled') return false;
        }
        return true;
      },
      'every region to hold sub-ap disabled',
      periodMs + 3_000,
      50,
    );
    for (const region of meshRegions) {
      const status = (await mesh.pool(region)).find((a) => a.id === 'sub-ap')!;
      expect(status.disabledReason).toMatch(/^credential: refresh refused: invalid_grant/);
    }
    const metrics = await (
      await fetch(`${mesh.region('eu-west').admin}/metrics`, { headers: { authorization: 'Bearer subscription-mesh-admin-token' } })
    ).text();
    expect(metrics).toMatch(/carpool_account_disabled\{[^}]*account="sub-ap"[^}]*reason="credential"[^}]*\} 1/);
    // Calls go on, on the other accounts, from every region.
    const client = new Anthropic({ apiKey: mesh.apiKey, baseURL: mesh.region('ap-south').http, maxRetries: 0 });
    const messagesBefore = keyStats('sub-ap').messages;
    for (let i = 0; i < 3; i++)
      await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: `after ${i}` }] });
    expect(keyStats('sub-ap').messages).toBe(messagesBefore);
    await untilAsync(async () => (await mesh.charged()).output === mesh.counted().output, 'the ledgers to settle', 5_000);
  }, 60_000);
});
