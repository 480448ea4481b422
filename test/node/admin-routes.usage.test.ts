// Proves the usage routes of the admin HTTP endpoint over a ledger.
// GET /usage/ledger answers totals, groups and the newest rows of one side with the node that
// answered, a viewer token suffices, a bad parameter is 400 naming it, and a node without a ledger
// answers 404 saying so. GET /usage/export streams CSV or JSON lines chunked, reads no further
// while the client does not take what was sent, and stops reading when the client goes. GET
// /counters/read answers several counter values, at QUORUM too, and refuses a malformed key or too
// many.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminTokens } from '../../src/admission/admin-access.js';
import { asNodeId, asRegionId } from '../../src/core/ids.js';
import { adminCounterReadKeysMax, usageExportSliceRowsMax } from '../../src/core/limits.js';
import { windowAt } from '../../src/crdt/window.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import { type AdminServer, startAdminHttp } from '../../src/net/admin-http.js';
import { AdminService } from '../../src/node/admin/admin-service.js';
import { csvHeader } from '../../src/node/admin/ledger-export.js';
import { AdminRoutes } from '../../src/node/admin-routes.js';
import { MeshRuntime } from '../../src/node/mesh-runtime.js';
import { nodeAuthCrypto } from '../../src/node/node-auth-crypto.js';
import { ledgerRow, MemoryUsageReader } from '../support/memory-usage-reader.js';
import { sleep } from '../support/wait.js';

const adminToken = 'usage-routes-admin-token-01';
const viewerToken = 'usage-routes-viewer-token-01';
const node = asNodeId('ledger-1');
const region = asRegionId('us-east');
const dayMs = 86_400_000;
const day0 = 20_454 * dayMs;

let runtime: MeshRuntime;
let service: AdminService;
const reader = new MemoryUsageReader([
  ledgerRow({ requestId: 'a1', tenant: 'acme', user: 'ann', model: 'claude-sonnet-4-6', chargedAtMs: day0 + 1_000, inputTokens: 100, outputTokens: 10 }),
  ledgerRow({ requestId: 'a2', tenant: 'acme', user: 'bob', model: 'claude-haiku-4-5', chargedAtMs: day0 + 2_000, inputTokens: 50, outputTokens: 5 }),
  ledgerRow({ requestId: 'a3', tenant: 'acme', user: 'ann', model: 'claude-sonnet-4-6', chargedAtMs: day0 + dayMs + 5, inputTokens: 7, outputTokens: 1 }),
  ledgerRow({ requestId: 'f1', tenant: 'acme', role: 'origin', account: 'acct-2', chargedAtMs: day0 + 3_000, inputTokens: 1, outputTokens: 1 }),
  ledgerRow({ requestId: 'h1', tenant: 'globex', role: 'home', account: 'acct-1', chargedAtMs: day0 + 4_000, inputTokens: 9, outputTokens: 9 }),
]);
let withLedger: AdminServer;
let withoutLedger: AdminServer;

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
}

function get(server: AdminServer, path: string, token = viewerToken): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const json = async (server: AdminServer, path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const answer = await get(server, path);
  return { status: answer.status, body: JSON.parse(answer.text) as Record<string, unknown> };
};

beforeAll(async () => {
  const secret = 'usage-routes-test-secret';
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
  const tokens = new AdminTokens(nodeAuthCrypto, [
    { name: 'admin', role: 'admin', token: adminToken },
    { name: 'grafana', role: 'viewer', token: viewerToken },
  ]);
  service = new AdminService({ runtime, crypto: nodeAuthCrypto, usage: reader });
  withLedger = await startAdminHttp({ host: '127.0.0.1', port: 0, handler: new AdminRoutes(runtime, service), tokens });
  withoutLedger = await startAdminHttp({
    host: '127.0.0.1',
    port: 0,
    handler: new AdminRoutes(runtime, new AdminService({ runtime, crypto: nodeAuthCrypto })),
    tokens,
  });
}, 20_000);

afterAll(async () => {
  await withLedger?.close();
  await withoutLedger?.close();
  await runtime?.stop();
});

describe('GET /usage/ledger', () => {
  it('answers totals, groups and the newest rows of the tenant side, with the node that answered', async () => {
    const { status, body } = await json(withLedger, '/usage/ledger?tenant=acme&groupBy=user,window:day&rows=2');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      node: 'ledger-1',
      side: 'tenant',
      totals: { requests: 4, inputTokens: 158, outputTokens: 17 },
      groupsTruncated: false,
      fromAggregates: 0,
    });
    expect(
      (body.groups as { key: Record<string, string>; totals: { requests: number } }[]).map((g) => [g.key.user, g.key['window:day'], g.totals.requests]),
    ).toEqual([
      ['', 'day:20454', 1],
      ['ann', 'day:20454', 1],
      ['ann', 'day:20455', 1],
      ['bob', 'day:20454', 1],
    ]);
    expect((body.rows as LedgerRow[]).map((row) => row.requestId)).toEqual(['a3', 'f1']);
  });

  it('answers the account side, where a home row counts and an origin row does not', async () => {
    const { body } = await json(withLedger, `/usage/ledger?side=account&since=${day0}&until=${new Date(day0 + dayMs).toISOString()}&groupBy=account`);
    expect(body).toMatchObject({ side: 'account', sinceMs: day0, untilMs: day0 + dayMs, totals: { requests: 3 } });
    expect((body.groups as { key: Record<string, string> }[]).map((g) => g.key.account)).toEqual(['acct-1']);
  });

  it('refuses a bad parameter with 400 naming it', async () => {
    for (const [query, field] of [
      ['side=both', 'side'],
      ['since=tomorrow', 'since'],
      ['groupBy=colour', 'groupBy'],
      ['rows=100000', 'rows'],
      ['tenant=a&tenant=b', 'tenant'],
      ['format=csv', 'format'],
    ]) {
      const { status, body } = await json(withLedger, `/usage/ledger?${query}`);
      expect([query, status, body.field]).toEqual([query, 400, field]);
    }
  });

  it('answers 404 on a node that keeps no ledger, saying why', async () => {
    for (const path of ['/usage/ledger', '/usage/export?since=0&format=csv']) {
      const { status, body } = await json(withoutLedger, path);
      expect([path, status, body.error]).toEqual([path, 404, 'this node keeps no usage ledger (no dataDir)']);
    }
  });
});

describe('GET /usage/export', () => {
  it('streams the rows of the range as CSV, chunked, oldest first, naming the node', async () => {
    const answer = await get(withLedger, `/usage/export?since=${day0}&until=${day0 + 2 * dayMs}&format=csv&tenant=acme`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/csv; charset=utf-8; header=present');
    expect(answer.headers['transfer-encoding']).toBe('chunked');
    expect(answer.headers['carpool-node']).toBe('ledger-1');
    const lines = answer.text.split('\r\n');
    expect(lines[0]).toBe(csvHeader().trimEnd());
    expect(lines.slice(1, -1).map((line) => line.split(',')[0])).toEqual(['a1', 'a2', 'f1', 'a3']);
    expect(lines.at(-1)).toBe('');
  });

  it('streams JSON lines of the account side', async () => {
    const answer = await get(withLedger, `/usage/export?since=${day0}&format=jsonl&side=account`);
    expect(answer.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(
      answer.text
        .trimEnd()
        .split('\n')
        .map((line) => (JSON.parse(line) as LedgerRow).requestId),
    ).toEqual(['a1', 'a2', 'h1', 'a3']);
  });

  it('refuses an export without since or format, naming it', async () => {
    expect(await json(withLedger, '/usage/export?format=csv')).toMatchObject({ status: 400, body: { field: 'since' } });
    expect(await json(withLedger, '/usage/export?since=0')).toMatchObject({ status: 400, body: { field: 'format' } });
    expect(await json(withLedger, '/usage/export?since=0&format=csv&rows=3')).toMatchObject({ status: 400, body: { field: 'rows' } });
  });
});

describe('an export that does not fit in memory', () => {
  const rowCount = 30 * usageExportSliceRowsMax;
  const big = new MemoryUsageReader(
    Array.from({ length: rowCount }, (_, i) => ledgerRow({ requestId: `big-${i}`, tenant: 'bigco', chargedAtMs: day0 + i, user: 'u'.repeat(40) })),
  );
  let server: AdminServer;

  beforeAll(async () => {
    const tokens = new AdminTokens(nodeAuthCrypto, [{ name: 'grafana', role: 'viewer', token: viewerToken }]);
    server = await startAdminHttp({
      host: '127.0.0.1',
      port: 0,
      handler: new AdminRoutes(runtime, new AdminService({ runtime, crypto: nodeAuthCrypto, usage: big })),
      tokens,
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Opens the export and hands back the response, paused, before any of its body is read. */
  function open(path: string): Promise<{ res: IncomingMessage; req: ReturnType<typeof httpRequest> }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: server.port, path, headers: { authorization: `Bearer ${viewerToken}` } }, (res) => {
        res.pause();
        resolve({ res, req });
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('reads no further while the client takes nothing, and every row once it does', async () => {
    big.calls.eachRow = 0;
    const { res } = await open(`/usage/export?since=${day0}&until=${day0 + rowCount}&format=jsonl`);
    // Long enough for an export without backpressure to read all of its slices.
    await sleep(300);
    const readWhilePaused = big.calls.eachRow;
    expect(readWhilePaused).toBeLessThan(30 / 2);
    let lines = 0;
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      lines += parts.length;
    });
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    expect([lines, rest]).toEqual([rowCount, '']);
    expect(big.calls.eachRow).toBeGreaterThanOrEqual(30);
  });

  it('stops reading when the client goes', async () => {
    big.calls.eachRow = 0;
    const { res, req } = await open(`/usage/export?since=${day0}&until=${day0 + rowCount}&format=csv`);
    await sleep(100);
    req.destroy();
    res.destroy();
    await sleep(200);
    const readWhenGone = big.calls.eachRow;
    await sleep(300);
    expect(big.calls.eachRow).toBe(readWhenGone);
    expect(readWhenGone).toBeLessThan(30 / 2);
    // The endpoint still answers.
    expect((await get(server, '/usage/ledger?tenant=bigco')).status).toBe(200);
  });
});

describe('GET /counters/read', () => {
  it('answers several counter values, locally and at QUORUM, each key once in the order asked', async () => {
    const operator = { name: 'setup', role: 'admin' as const };
    expect(
      service.putTenant(
        operator,
        'acme',
        {
          tier: 'paid',
          requireSignature: false,
          concurrencyMax: 4,
          limits: [{ metric: 'requests', window: 'day', sliding: false, limit: 100, mode: 'eventual' }],
        },
        undefined,
      ).ok,
    ).toBe(true);
    const charged = await service.adjustUsage(operator, {
      scope: 'tenant',
      subject: 'acme',
      metric: 'requests',
      window: 'day',
      kind: 'charge',
      amount: 3,
      reason: 'counters/read test',
    });
    expect(charged.ok).toBe(true);
    const today = windowAt('day', Date.now()).index;
    const keys = [
      `tenant/acme/requests/day:${today}`,
      `tenant/acme/requests/day:${today - 1}`,
      'account/a/b/output_tokens/hour:7',
      `tenant/acme/requests/day:${today}`,
    ];
    for (const consistency of ['local', 'quorum']) {
      const { status, body } = await json(
        withLedger,
        `/counters/read?${keys.map((key) => `key=${encodeURIComponent(key)}`).join('&')}&consistency=${consistency}`,
      );
      expect(status).toBe(200);
      expect(body).toEqual({
        node: 'ledger-1',
        consistency,
        counters: [
          { key: `tenant/acme/requests/day:${today}`, value: 3 },
          { key: `tenant/acme/requests/day:${today - 1}`, value: 0 },
          // A subject may hold `/`: the scope is the first part, metric and window the last two.
          { key: 'account/a/b/output_tokens/hour:7', value: 0 },
        ],
      });
    }
  });

  it('refuses a malformed key, too many keys, none, and an unknown consistency or parameter', async () => {
    const many = Array.from({ length: adminCounterReadKeysMax + 1 }, (_, i) => `key=tenant/t${i}/requests/day:1`).join('&');
    for (const [query, field] of [
      ['key=tenant/acme/requests', 'key'],
      ['key=tenant/acme/requests/fortnight:3', 'key'],
      ['key=Tenant/acme/requests/day:3', 'key'],
      ['key=tenant/acme/requests/day:-3', 'key'],
      ['', 'key'],
      [many, 'key'],
      ['key=tenant/acme/requests/day:3&consistency=strong', 'consistency'],
      ['key=tenant/acme/requests/day:3&keys=x', 'keys'],
    ] as const) {
      const { status, body } = await json(withLedger, `/counters/read?${query}`);
      expect([query.slice(0, 60), status, body.field]).toEqual([query.slice(0, 60), 400, field]);
    }
  });
});
