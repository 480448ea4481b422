// Proves the node configuration parser accepts a valid file and names the field of every mistake.
// The gateway's fields are covered too (gRPC endpoint, admin token, upstream credentials, rate
// limits), and credentials resolve from inline text, the environment and files. The member id may
// come from an environment variable handed to the parser (a StatefulSet pod's name).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { defaultRateLimitSettings } from '../../src/node/gateway/gateway-settings.js';
import { resolveUpstreamTargets } from '../../src/node/gateway/upstream-targets.js';
import { parseNodeConfig } from '../../src/node/node-config.js';

const valid = {
  node: 'n1',
  region: 'r1',
  listen: { host: '127.0.0.1', port: 7401 },
  admin: { host: '127.0.0.1', port: 8401 },
  members: [
    { id: 'n1', region: 'r1', url: 'ws://127.0.0.1:7401' },
    { id: 'n2', region: 'r2', url: 'wss://10.0.0.2:7401' },
  ],
  secret: 'sixteen-chars-at-least',
  // The admin endpoint needs a token; a named one here, so the gateway cases can add `adminToken`.
  adminTokens: [{ name: 'ops', role: 'admin', token: 'an-ops-admin-token-0123' }],
};

function fieldOf(raw: unknown): string | undefined {
  const parsed = parseNodeConfig(raw);
  return parsed.ok ? undefined : parsed.error.field;
}

describe('parseNodeConfig', () => {
  it('accepts a valid configuration', () => {
    const parsed = parseNodeConfig(valid);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.value.members).toHaveLength(2);
      expect(parsed.value.secret).toEqual({ kind: 'inline', value: valid.secret });
    }
    const fromEnv = parseNodeConfig({ ...valid, secret: undefined });
    expect(fromEnv.ok && fromEnv.value.secret.kind).toBe('env');
  });

  it('names the field of each mistake', () => {
    expect(fieldOf([])).toBe('(root)');
    expect(fieldOf({ ...valid, nodes: 1 })).toBe('nodes');
    expect(fieldOf({ ...valid, node: 'has space' })).toBe('node');
    expect(fieldOf({ ...valid, node: 'x'.repeat(49) })).toBe('node');
    expect(fieldOf({ ...valid, listen: { host: '127.0.0.1', port: 70_000 } })).toBe('listen.port');
    expect(fieldOf({ ...valid, admin: { port: 1 } })).toBe('admin.host');
    expect(fieldOf({ ...valid, members: [] })).toBe('members');
    expect(fieldOf({ ...valid, members: [valid.members[0], { id: 'n2', region: 'r2', url: 'http://x' }] })).toBe('members[1].url');
    expect(fieldOf({ ...valid, members: [valid.members[0], valid.members[0]] })).toBe('members[1].id');
    expect(fieldOf({ ...valid, members: [valid.members[1]] })).toBe('members');
    expect(fieldOf({ ...valid, region: 'elsewhere' })).toBe('region');
    expect(fieldOf({ ...valid, secret: 'short' })).toBe('secret');
    expect(fieldOf({ ...valid, secretFile: 'x' })).toBe('secret');
    expect(fieldOf({ ...valid, tls: { certFile: 'c' } })).toBe('tls.keyFile');
  });

  it('takes a top-level "$comment" (a string or lines) and still refuses a misspelt field', () => {
    expect(parseNodeConfig({ ...valid, $comment: 'node n1 of the example mesh' }).ok).toBe(true);
    expect(parseNodeConfig({ ...valid, $comment: ['two', 'lines'] }).ok).toBe(true);
    expect(parseNodeConfig({ ...valid, $comment: 42 })).toMatchObject({ ok: false, error: { field: '$comment' } });
    expect(parseNodeConfig({ ...valid, $comment: ['ok', 7] })).toMatchObject({ ok: false, error: { field: '$comment' } });
    const misspelt = parseNodeConfig({ ...valid, $comment: 'x', secertFile: 'mesh.secret' });
    expect(misspelt).toMatchObject({ ok: false, error: { field: 'secertFile' } });
    expect(misspelt.ok ? '' : misspelt.error.reason).toMatch(/unknown field/);
  });
});

describe('parseNodeConfig: the gateway fields', () => {
  const gateway = {
    ...valid,
    grpc: { host: '127.0.0.1', port: 9401 },
    adminTokenFile: 'admin.token',
    upstream: {
      baseUrl: 'https://api.anthropic.com',
      accounts: {
        'acct-1': { kind: 'api-key', keyEnv: 'ACCT1_KEY' },
        'acct-2': { kind: 'oauth', keyFile: 'acct-2.token' },
        'acct-3': { kind: 'api-key', key: 'sk-ant-inline' },
      },
    },
    rateLimits: { client: { rate: 60, periodMs: 60_000, burst: 10 } },
  };

  it('accepts them, and leaves them out of a mesh-only configuration', () => {
    const parsed = parseNodeConfig(gateway);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.grpc).toEqual({ host: '127.0.0.1', port: 9401 });
    expect(parsed.value.adminToken).toEqual({ kind: 'file', path: 'admin.token' });
    expect(parsed.value.upstream?.baseUrl).toBe('https://api.anthropic.com');
    expect([...(parsed.value.upstream?.accounts ?? new Map())]).toEqual([
      ['acct-1', { kind: 'api-key', credential: { kind: 'env', name: 'ACCT1_KEY' }, format: 'token' }],
      ['acct-2', { kind: 'oauth', credential: { kind: 'file', path: 'acct-2.token' }, format: 'token' }],
      ['acct-3', { kind: 'api-key', credential: { kind: 'inline', value: 'sk-ant-inline' }, format: 'token' }],
    ]);
    expect(parsed.value.rateLimits).toEqual({ client: { rate: 60, periodMs: 60_000, burst: 10 }, tenant: defaultRateLimitSettings.tenant });
    const meshOnly = parseNodeConfig(valid);
    expect(meshOnly.ok && [meshOnly.value.grpc, meshOnly.value.upstream, meshOnly.value.adminToken]).toEqual([undefined, undefined, undefined]);
  });

  it('names the field of each mistake', () => {
    expect(fieldOf({ ...gateway, grpc: { host: '127.0.0.1', port: -1 } })).toBe('grpc.port');
    expect(fieldOf({ ...gateway, adminToken: 'sixteen-chars-at-least' })).toBe('adminToken');
    expect(fieldOf({ ...valid, adminToken: 'short' })).toBe('adminToken');
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, baseUrl: 'ftp://x' } })).toBe('upstream.baseUrl');
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, extra: 1 } })).toBe('upstream.extra');
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, accounts: { 'acct-1': { kind: 'cookie', key: 'k' } } } })).toBe(
      'upstream.accounts.acct-1.kind',
    );
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, accounts: { 'acct-1': { kind: 'oauth', key: 'k', keyEnv: 'K' } } } })).toBe(
      'upstream.accounts.acct-1',
    );
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, accounts: { 'acct-1': { kind: 'oauth', keyEnv: '1BAD' } } } })).toBe(
      'upstream.accounts.acct-1.keyEnv',
    );
    expect(fieldOf({ ...gateway, upstream: { ...gateway.upstream, accounts: { 'acct-1': { kind: 'oauth', key: 'has space' } } } })).toBe(
      'upstream.accounts.acct-1.key',
    );
    expect(fieldOf({ ...gateway, rateLimits: { client: { rate: 0, periodMs: 1, burst: 1 } } })).toBe('rateLimits.client.rate');
    expect(fieldOf({ ...gateway, rateLimits: { tenant: { rate: 1, periodMs: 1 } } })).toBe('rateLimits.tenant.burst');
    expect(fieldOf({ ...gateway, rateLimits: { perIp: {} } })).toBe('rateLimits.perIp');
  });

  it('reads the HTTP front door with its bounds and models, and names the field of each mistake', () => {
    const http = { host: '127.0.0.1', port: 9501, bodyBytesMax: 65_536, connectionsMax: 100, models: ['claude-a', { id: 'claude-b', displayName: 'B' }] };
    const parsed = parseNodeConfig({ ...gateway, http });
    expect(parsed.ok && parsed.value.http).toEqual({
      host: '127.0.0.1',
      port: 9501,
      bounds: { bodyBytesMax: 65_536, connectionsMax: 100 },
      models: [{ id: 'claude-a' }, { id: 'claude-b', displayName: 'B' }],
    });
    const plain = parseNodeConfig({ ...gateway, http: { host: '127.0.0.1', port: 9501 } });
    expect(plain.ok && plain.value.http).toEqual({ host: '127.0.0.1', port: 9501, bounds: {}, models: undefined });
    expect(fieldOf({ ...valid, http })).toBe('http');
    expect(fieldOf({ ...gateway, http: { ...http, port: 70_000 } })).toBe('http.port');
    expect(fieldOf({ ...gateway, http: { ...http, bodyBytesMax: 1e9 } })).toBe('http.bodyBytesMax');
    expect(fieldOf({ ...gateway, http: { ...http, headersTimeoutMs: 9_000, requestTimeoutMs: 5_000 } })).toBe('http.headersTimeoutMs');
    expect(fieldOf({ ...gateway, http: { ...http, models: [] } })).toBe('http.models');
    expect(fieldOf({ ...gateway, http: { ...http, models: ['claude-a', 'claude-a'] } })).toBe('http.models[1]');
    expect(fieldOf({ ...gateway, http: { ...http, models: [{ id: 'x', name: 'y' }] } })).toBe('http.models[0].name');
    expect(fieldOf({ ...gateway, http: { ...http, tls: true } })).toBe('http.tls');
  });

  it('resolves credentials from inline text, the environment and files, and names a missing one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carpool-config-'));
    try {
      await writeFile(join(dir, 'acct-2.token'), 'oauth-token-from-file\n');
      const parsed = parseNodeConfig(gateway);
      if (!parsed.ok) throw new Error(parsed.error.reason);
      const targets = await resolveUpstreamTargets(parsed.value.upstream, { baseDir: dir, env: { ACCT1_KEY: 'sk-ant-from-env' } });
      expect(targets.ok).toBe(true);
      if (!targets.ok) return;
      expect(targets.value.get('acct-1' as AccountId)).toEqual({
        baseUrl: 'https://api.anthropic.com',
        credential: { kind: 'api-key', key: 'sk-ant-from-env' },
      });
      expect(targets.value.get('acct-2' as AccountId)?.credential).toEqual({ kind: 'oauth', token: 'oauth-token-from-file' });
      expect(targets.value.get('acct-3' as AccountId)?.credential).toEqual({ kind: 'api-key', key: 'sk-ant-inline' });
      const missingEnv = await resolveUpstreamTargets(parsed.value.upstream, { baseDir: dir, env: {} });
      expect(missingEnv.ok ? undefined : missingEnv.error.field).toBe('upstream.accounts.acct-1.keyEnv');
      const missingFile = await resolveUpstreamTargets(parsed.value.upstream, { baseDir: join(dir, 'nowhere'), env: { ACCT1_KEY: 'k' } });
      expect(missingFile.ok ? undefined : missingFile.error.field).toBe('upstream.accounts.acct-2.keyFile');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parseNodeConfig: the admin surface', () => {
  const withTokens = (adminTokens: unknown): unknown => ({ ...valid, adminTokens });

  it("reads named tokens with roles and the admin endpoint's allowed hosts and origins", () => {
    const parsed = parseNodeConfig({
      ...valid,
      admin: { host: '0.0.0.0', port: 8401, allowedHosts: ['admin.internal:8401', '[fd00::1]:8401'], allowedOrigins: ['https://ops.example.com'] },
      adminToken: 'the-admin-token-0123',
      adminTokens: [
        { name: 'grafana', role: 'viewer', tokenFile: 'grafana.token' },
        { name: 'oncall', role: 'admin', token: 'the-oncall-token-0123' },
      ],
    });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.admin).toEqual({
      host: '0.0.0.0',
      port: 8401,
      allowedHosts: ['admin.internal:8401', '[fd00::1]:8401'],
      allowedOrigins: ['https://ops.example.com'],
    });
    expect(parsed.value.adminToken).toEqual({ kind: 'inline', value: 'the-admin-token-0123' });
    expect(parsed.value.adminTokens).toEqual([
      { name: 'grafana', role: 'viewer', token: { kind: 'file', path: 'grafana.token' } },
      { name: 'oncall', role: 'admin', token: { kind: 'inline', value: 'the-oncall-token-0123' } },
    ]);
  });

  it('refuses an admin endpoint without any token, since it would refuse every request', () => {
    expect(fieldOf({ ...valid, adminTokens: undefined })).toBe('admin');
    expect(fieldOf({ ...valid, adminTokens: [] })).toBe('admin');
    const meshOnly = parseNodeConfig({ ...valid, admin: undefined, adminTokens: undefined });
    expect(meshOnly.ok).toBe(true);
  });

  it('names the field of each mistake', () => {
    expect(fieldOf({ ...valid, adminToken: 'has a space in it, 0123' })).toBe('adminToken');
    expect(fieldOf(withTokens({}))).toBe('adminTokens');
    expect(fieldOf(withTokens(Array.from({ length: 33 }, (_, i) => ({ name: `t${i}`, role: 'viewer', token: `token-number-${i}-0123456` }))))).toBe(
      'adminTokens',
    );
    expect(fieldOf(withTokens([{ name: 'Bad Name', role: 'viewer', token: 'sixteen-chars-at-least' }]))).toBe('adminTokens[0].name');
    expect(fieldOf(withTokens([{ name: 'ops', role: 'root', token: 'sixteen-chars-at-least' }]))).toBe('adminTokens[0].role');
    expect(fieldOf(withTokens([{ name: 'ops', role: 'viewer' }]))).toBe('adminTokens[0]');
    expect(fieldOf(withTokens([{ name: 'ops', role: 'viewer', token: 'x', tokenFile: 'y' }]))).toBe('adminTokens[0]');
    expect(fieldOf(withTokens([{ name: 'ops', role: 'viewer', token: 'short' }]))).toBe('adminTokens[0].token');
    expect(fieldOf(withTokens([{ name: 'ops', role: 'viewer', token: 'sixteen-chars-at-least', scope: 'all' }]))).toBe('adminTokens[0].scope');
    expect(
      fieldOf(
        withTokens([
          { name: 'ops', role: 'viewer', token: 'sixteen-chars-at-least' },
          { name: 'ops', role: 'admin', token: 'another-token-0123456' },
        ]),
      ),
    ).toBe('adminTokens[1].name');
    expect(
      fieldOf(
        withTokens([
          { name: 'a', role: 'viewer', token: 'sixteen-chars-at-least' },
          { name: 'b', role: 'admin', token: 'sixteen-chars-at-least' },
        ]),
      ),
    ).toBe('adminTokens[1].token');
    expect(
      fieldOf({ ...(withTokens([{ name: 'admin', role: 'viewer', token: 'sixteen-chars-at-least' }]) as object), adminToken: 'the-admin-token-0123' }),
    ).toBe('adminTokens[0].name');
    expect(fieldOf({ ...valid, admin: { ...valid.admin, allowedHosts: ['evil host'] } })).toBe('admin.allowedHosts[0]');
    expect(fieldOf({ ...valid, admin: { ...valid.admin, allowedOrigins: ['ops.example.com'] } })).toBe('admin.allowedOrigins[0]');
    expect(fieldOf({ ...valid, admin: { ...valid.admin, cors: true } })).toBe('admin.cors');
  });
});

describe('parseNodeConfig: the member id from the environment', () => {
  // One config for every pod of a StatefulSet (deploy/k8s/): each takes its id from POD_NAME.
  const shared = {
    ...valid,
    node: { env: 'POD_NAME' },
    members: [
      { id: 'carpool-r1-0', region: 'r1', url: 'ws://carpool-r1-0.carpool-mesh:7401' },
      { id: 'carpool-r1-1', region: 'r1', url: 'ws://carpool-r1-1.carpool-mesh:7401' },
      { id: 'carpool-r2-0', region: 'r2', url: 'ws://carpool-r2-0.carpool-mesh:7401' },
    ],
  };

  function refusal(raw: unknown, env: Record<string, string | undefined>): { field: string; reason: string } | undefined {
    const parsed = parseNodeConfig(raw, env);
    return parsed.ok ? undefined : { field: parsed.error.field, reason: parsed.error.reason };
  }

  it('takes the id from the named variable, each pod its own', () => {
    for (const pod of ['carpool-r1-0', 'carpool-r1-1']) {
      const parsed = parseNodeConfig(shared, { POD_NAME: pod, OTHER: 'carpool-r2-0' });
      expect(parsed.ok && parsed.value.node).toBe(pod);
    }
    // The id must still be a member of this region: the region check runs on the id from the environment.
    expect(refusal(shared, { POD_NAME: 'carpool-r2-0' })).toMatchObject({ field: 'region' });
  });

  it('refuses an unset, empty or invalid variable, naming the field and the variable', () => {
    expect(refusal(shared, {})).toEqual({ field: 'node', reason: 'takes the member id from the environment variable POD_NAME, which is not set' });
    // Without an environment handed in, the parser reads none: the same refusal.
    expect(refusal(shared, undefined as unknown as Record<string, string>)?.reason).toMatch(/POD_NAME, which is not set/);
    expect(refusal(shared, { POD_NAME: '' })).toEqual({ field: 'node', reason: 'takes the member id from the environment variable POD_NAME, which is empty' });
    expect(refusal(shared, { POD_NAME: 'has space' })?.reason).toMatch(/^the environment variable POD_NAME holds "has space", which is not a member id/);
    expect(refusal(shared, { POD_NAME: 'x'.repeat(49) })).toMatchObject({ field: 'node' });
  });

  it('refuses an id from the environment that is not one of members, saying where it came from', () => {
    expect(refusal(shared, { POD_NAME: 'carpool-r1-7' })).toEqual({
      field: 'members',
      reason: 'must include this node "carpool-r1-7" (the value of the environment variable POD_NAME)',
    });
  });

  it('checks the form of the object', () => {
    expect(refusal({ ...shared, node: { env: 'not a name' } }, { POD_NAME: 'carpool-r1-0' })).toMatchObject({ field: 'node.env' });
    expect(refusal({ ...shared, node: { env: 'POD_NAME', fallback: 'n1' } }, { POD_NAME: 'carpool-r1-0' })).toMatchObject({ field: 'node.fallback' });
    expect(refusal({ ...shared, node: {} }, { POD_NAME: 'carpool-r1-0' })).toMatchObject({ field: 'node.env' });
    expect(refusal({ ...shared, node: ['POD_NAME'] }, { POD_NAME: 'carpool-r1-0' })).toMatchObject({ field: 'node' });
    expect(refusal({ ...shared, node: 7 }, {})).toMatchObject({ field: 'node' });
  });
});
