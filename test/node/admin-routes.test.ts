// Proves the node runtime keeps its account pool equal to the policy's accounts.
// The admin routes show the pool's health (GET /pool) and re-enable an account an auth failure
// disabled (POST /pool/accounts/<id>/enable), with an AccountCaller built from the runtime's parts.
import { afterEach, describe, expect, it } from 'vitest';
import { usedUnder } from '../../src/admission/quota.js';
import { type AccountId, asNodeId, asRegionId, asTenantId } from '../../src/core/ids.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { AccountCaller } from '../../src/node/account-caller.js';
import type { AdminPrincipal } from '../../src/admission/admin-access.js';
import type { AdminReply } from '../../src/net/admin-http.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { AdminRoutes } from '../../src/node/admin-routes.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import type { AccountStatus } from '../../src/pool/account-pool.js';
import { generatedAccounts } from '../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../src/upstream/emulator/emulator-server.js';
import { parseFaults } from '../../src/upstream/emulator/fault-plan.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import { within } from '../support/wait.js';

const node = asNodeId('n0');
const region = asRegionId('us-east');
const requestsRule: LimitRule = { metric: 'requests', window: 'day30', sliding: false, limit: 1_000, mode: 'eventual' };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function runtime(): Promise<MeshRuntime> {
  const started = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      members: [{ id: node, region, url: 'ws://127.0.0.1:1' }],
      secret: { kind: 'inline', value: 'admin-routes-test-secret' },
      tls: undefined,
    },
    secret: new TextEncoder().encode('admin-routes-test-secret'),
  });
  cleanups.push(() => started.stop());
  return started;
}

interface PoolView {
  readonly accounts: AccountStatus[];
  readonly states: Record<string, number>;
  readonly totals: { readonly held: number; readonly waiting: number };
}

const operator: AdminPrincipal = { name: 'admin', role: 'admin' };

function handle(routes: AdminRoutes, method: string, path: string[], body?: unknown): Promise<AdminReply> {
  return routes.handle({ method, path, query: new URLSearchParams(), body, caller: operator });
}

function routesOf(mesh: MeshRuntime): AdminRoutes {
  return new AdminRoutes(mesh, new AdminService({ runtime: mesh, crypto: nodeAuthCrypto }));
}

async function poolView(routes: AdminRoutes): Promise<PoolView> {
  const reply = await handle(routes, 'GET', ['pool']);
  expect(reply.status).toBe(200);
  return reply.body as PoolView;
}

function putAccount(routes: AdminRoutes, id: string): Promise<unknown> {
  const account = { kind: 'api-key', homeRegion: region, weight: 1, concurrencyMax: 2, limits: [requestsRule] };
  return handle(routes, 'PUT', ['policy', 'accounts', id], account).then((reply) => expect(reply.status).toBe(200));
}

describe('the pool admin routes', () => {
  it('list the policy accounts as the pool sees them, and follow policy edits', async () => {
    const mesh = await runtime();
    const routes = routesOf(mesh);
    expect((await poolView(routes)).accounts).toEqual([]);
    await putAccount(routes, 'acct-b');
    await putAccount(routes, 'acct-a');
    const view = await poolView(routes);
    expect(view.accounts.map((a) => [a.id, a.state, a.concurrencyMax])).toEqual([
      ['acct-a', 'healthy', 2],
      ['acct-b', 'healthy', 2],
    ]);
    expect(view.states).toMatchObject({ healthy: 2, disabled: 0 });
    expect(view.totals).toMatchObject({ held: 0, waiting: 0 });
    await handle(routes, 'DELETE', ['policy', 'accounts', 'acct-b']);
    expect((await poolView(routes)).accounts.map((a) => a.id)).toEqual(['acct-a']);
    expect((await handle(routes, 'PUT', ['pool'], {})).status).toBe(405);
  });

  it('show an account a 401 disabled and enable it again; 404 for an unknown account', async () => {
    const mesh = await runtime();
    const routes = routesOf(mesh);
    const emulator: Emulator = await startEmulator({ accounts: generatedAccounts(2, 9) });
    cleanups.push(() => emulator.close());
    const client = new UpstreamClient();
    cleanups.push(() => client.close(1_000));
    const ids = ['acct-0', 'acct-1'] as AccountId[];
    for (const id of ids) await putAccount(routes, id);
    const caller = new AccountCaller({
      pool: mesh.pool,
      usage: mesh.accountUsage,
      client,
      targets: (id) => {
        const key = emulator.keys[ids.indexOf(id)];
        return key === undefined ? undefined : { baseUrl: emulator.url, credential: { kind: 'api-key', key } };
      },
      localRegion: mesh.config.region,
      poolChanges: (listener) => mesh.onPoolChange(listener),
    });
    cleanups.push(() => Promise.resolve(caller.close()));

    const faults = parseFaults({ kind: 'unauthorized' });
    expect(faults.ok && emulator.addFaults(faults.value).ok).toBe(true);
    const result = await within(
      caller.call({
        tenant: asTenantId('acme'),
        request: { body: { model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] } },
        stream: false,
        acquireDeadlineMs: Date.now() + 1_000,
        inputTokensEstimate: 5,
      }),
      'a call through the runtime pool',
    );
    if (!result.ok) throw new Error(JSON.stringify(result.error));
    const revoked = result.value.attempts[0]?.accountId as AccountId;
    expect(result.value.attempts.map((a) => a.outcome)).toEqual(['auth-failed', 'success']);
    // The call was charged in the node's mesh counter, where every region would see it.
    expect(usedUnder(mesh.counter, 'account', result.value.accountId, requestsRule, Date.now())).toBe(1);

    let view = await poolView(routes);
    expect(view.accounts.find((a) => a.id === revoked)?.state).toBe('disabled');
    expect(view.states).toMatchObject({ healthy: 1, disabled: 1 });

    const enabled = await handle(routes, 'POST', ['pool', 'accounts', revoked, 'enable']);
    expect(enabled).toMatchObject({ status: 200, body: { enabled: revoked, status: { id: revoked, state: 'healthy' } } });
    view = await poolView(routes);
    expect(view.states).toMatchObject({ healthy: 2, disabled: 0 });

    expect((await handle(routes, 'POST', ['pool', 'accounts', 'acct-none', 'enable'])).status).toBe(404);
    expect((await handle(routes, 'GET', ['pool', 'accounts', revoked, 'enable'])).status).toBe(405);
  });
});
