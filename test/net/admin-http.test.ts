// Proves the admin HTTP endpoint's guard on every route it documents.
// The route list is read from the top of src/net/admin-http.ts, so the two cannot drift. No token,
// a wrong one or another scheme is 401 with one message and `www-authenticate: Bearer`; a viewer
// token is 403 on every write route and served on every read route; an admin token is served
// everywhere; a foreign Host is 421 and a foreign Origin 403 before any token is looked at; a write
// without content-type application/json is 415; no answer carries a CORS header; and none of the
// refused requests changes the policy.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../src/admission/admin-access.js';
import { asNodeId, asRegionId, type TenantId } from '../../src/core/ids.js';
import { type AdminServer, startAdminHttp } from '../../src/net/admin-http.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { AdminRoutes } from '../../src/node/admin-routes.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { ledgerRow, MemoryUsageReader } from '../support/memory-usage-reader.js';

const adminToken = 'http-test-admin-token-0123';
const viewerToken = 'http-test-viewer-token-0123';
const node = asNodeId('http-1');
const region = asRegionId('us-east');

interface Route {
  readonly role: 'v' | 'a';
  readonly method: string;
  readonly path: string;
}

/** The query a route cannot be answered without. */
const withQuery: Readonly<Record<string, string>> = {
  '/counters': '/counters?scope=tenant&subject=acme&metric=requests&unit=day',
  '/counters/read': '/counters/read?key=tenant/acme/requests/day:20454',
  '/usage/export': '/usage/export?since=0&format=csv',
};

/** Every route of the documented list, with its placeholders filled in. */
function documentedRoutes(keyId: string): Route[] {
  const source = readFileSync(new URL('../../src/net/admin-http.ts', import.meta.url), 'utf8');
  const routes: Route[] = [];
  for (const match of source.matchAll(/^ \*\s+([va]) (GET|PUT|POST|DELETE|PATCH)\s+(\S+)/gm)) {
    const template = (match[3] as string).split(/[[?]/)[0] as string;
    const path = template
      .replace('/policy/accounts/{id}', '/policy/accounts/acct-1')
      .replace('/pool/accounts/{id}', '/pool/accounts/acct-1')
      .replace('{id}', 'acme')
      .replace('{keyId}', keyId.split(':')[1] as string);
    routes.push({ role: match[1] as 'v' | 'a', method: match[2] as string, path: withQuery[path] ?? path });
  }
  return routes;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: { error?: string; field?: string };
}

/** A raw request, so that Host and Origin can be set as any client could. */
function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const length = body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...length, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Answer['body'] = {};
        try {
          parsed = JSON.parse(text) as Answer['body'];
        } catch {
          // GET /metrics answers text.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

let runtime: MeshRuntime;
let server: AdminServer;
let routes: Route[];

const json = { 'content-type': 'application/json' };
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const bodyOf = (route: Route): string | undefined => (route.method === 'GET' ? undefined : '{}');

beforeAll(async () => {
  const secret = 'admin-http-test-secret';
  runtime = await MeshRuntime.start({
    config: {
      node,
      region,
      listen: { host: '127.0.0.1', port: 0 },
      admin: undefined,
      members: [{ id: node, region, url: 'ws://127.0.0.1:1' }],
      secret: { kind: 'inline', value: secret },
      tls: undefined,
    },
    secret: new TextEncoder().encode(secret),
  });
  const service = new AdminService({ runtime, crypto: nodeAuthCrypto, usage: new MemoryUsageReader([ledgerRow({ requestId: 'r1' })]) });
  const tokens = new AdminTokens(nodeAuthCrypto, [
    { name: 'admin', role: 'admin', token: adminToken },
    { name: 'grafana', role: 'viewer', token: viewerToken },
  ]);
  server = await startAdminHttp({
    host: '127.0.0.1',
    port: 0,
    handler: new AdminRoutes(runtime, service, {
      metrics: { render: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4', text: '# no samples\n' }) },
    }),
    tokens,
    allowedHosts: ['carpool-admin.internal:8401'],
    allowedOrigins: ['https://ops.example'],
  });
  const operator = { name: 'setup', role: 'admin' as const };
  expect(service.putTenant(operator, 'acme', { tier: 'paid', requireSignature: false, concurrencyMax: 4, limits: [] }, undefined).ok).toBe(true);
  expect(service.putAccount(operator, 'acct-1', { kind: 'api-key', homeRegion: 'us-east', weight: 1, concurrencyMax: 2, limits: [] }, undefined).ok).toBe(true);
  const key = service.createKey(operator, 'acme', { name: 'ci' }, undefined);
  if (!key.ok) throw new Error('no key');
  routes = documentedRoutes(key.value.key.keyId);
}, 20_000);

afterAll(async () => {
  await server?.close();
  await runtime?.stop();
});

describe('the admin HTTP guard, on every documented route', () => {
  it('knows the documented routes, reads and writes among them', () => {
    expect(routes.length).toBeGreaterThanOrEqual(20);
    expect(routes.filter((route) => route.role === 'a').every((route) => route.method !== 'GET')).toBe(true);
    expect(routes.filter((route) => route.role === 'v').every((route) => route.method === 'GET')).toBe(true);
  });

  it('refuses a missing token, a wrong one and another scheme with 401 and one message', async () => {
    const policyBefore = JSON.stringify(runtime.policy.tenants().get('acme' as TenantId));
    for (const route of routes) {
      for (const headers of [
        {},
        bearer('not-a-configured-token'),
        bearer(`${adminToken}x`),
        { authorization: `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}` },
        { authorization: adminToken },
      ]) {
        const answer = await send(server.port, route.method, route.path, { ...json, ...headers }, bodyOf(route));
        expect([route.method, route.path, answer.status, answer.body.error]).toEqual([route.method, route.path, 401, 'missing or unknown admin token']);
        expect(answer.headers['www-authenticate']).toBe('Bearer realm="carpool-admin"');
      }
    }
    expect(JSON.stringify(runtime.policy.tenants().get('acme' as TenantId))).toBe(policyBefore);
  });

  it('lets a viewer read every read route and refuses it every write route with 403', async () => {
    for (const route of routes) {
      const answer = await send(server.port, route.method, route.path, { ...json, ...bearer(viewerToken) }, bodyOf(route));
      if (route.role === 'a')
        expect([route.path, answer.status, answer.body.error]).toEqual([route.path, 403, `the token grafana has the role viewer; ${route.method} needs admin`]);
      else expect([route.path, answer.status]).toEqual([route.path, 200]);
    }
    expect(runtime.policy.tenant('acme' as TenantId)).toBeDefined();
  });
});

describe('the admin HTTP guard against other origins', () => {
  it('answers 421 for a Host that is not this endpoint, before the token is checked', async () => {
    for (const host of ['evil.example', `evil.example:${server.port}`, `127.0.0.1:${server.port + 1}`, 'carpool-admin.internal']) {
      const answer = await send(server.port, 'GET', '/policy', { host, ...bearer(adminToken) });
      expect([host, answer.status]).toEqual([host, 421]);
    }
    for (const host of [
      `127.0.0.1:${server.port}`,
      `localhost:${server.port}`,
      `LOCALHOST:${server.port}`,
      `[::1]:${server.port}`,
      'carpool-admin.internal:8401',
    ]) {
      const answer = await send(server.port, 'GET', '/policy', { host, ...bearer(adminToken) });
      expect([host, answer.status]).toEqual([host, 200]);
    }
  });

  it('refuses an Origin that is not configured with 403, and never sends a CORS header', async () => {
    const foreign = await send(server.port, 'GET', '/policy', { origin: 'https://evil.example', ...bearer(adminToken) });
    expect(foreign.status).toBe(403);
    const allowed = await send(server.port, 'GET', '/policy', { origin: 'https://ops.example', ...bearer(adminToken) });
    expect(allowed.status).toBe(200);
    const preflight = await send(server.port, 'OPTIONS', '/policy/tenants/acme', { origin: 'https://evil.example', 'access-control-request-method': 'DELETE' });
    expect(preflight.status).toBe(403);
    for (const answer of [foreign, allowed, preflight]) {
      expect(Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    }
  });

  it('refuses a write without content-type application/json with 415, so a text/plain form post never reaches a handler', async () => {
    const body = JSON.stringify({ tier: 'vip', requireSignature: false, concurrencyMax: 1_000, limits: [] });
    for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, {}]) {
      const answer = await send(server.port, 'PUT', '/policy/tenants/acme', { ...headers, ...bearer(adminToken) }, body);
      expect(answer.status).toBe(415);
    }
    // The cross-origin form a browser could send (text/plain, an Origin, no token) fails before that.
    const forged = await send(server.port, 'POST', '/usage/adjustments', { 'content-type': 'text/plain', origin: 'https://evil.example' }, body);
    expect(forged.status).toBe(403);
    expect(runtime.policy.tenant('acme' as TenantId)?.tier).toBe('paid');
    const withCharset = await send(
      server.port,
      'PUT',
      '/policy/tenants/acme',
      { 'content-type': 'application/json; charset=utf-8', ...bearer(adminToken) },
      body,
    );
    expect(withCharset.status).toBe(200);
    expect(runtime.policy.tenant('acme' as TenantId)?.tier).toBe('vip');
  });
});

describe('the admin HTTP endpoint with an admin token', () => {
  it('serves every route (some answer 400 for the empty body, none 401, 403, 405 or "no such route")', async () => {
    // Removals last: each route must still find its subject.
    const ordered = [...routes].sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    for (const route of ordered) {
      const answer = await send(server.port, route.method, route.path, { ...json, ...bearer(adminToken) }, bodyOf(route));
      expect([route.method, route.path, [401, 403, 405].includes(answer.status), answer.body.error === 'no such route']).toEqual([
        route.method,
        route.path,
        false,
        false,
      ]);
    }
  });
});
