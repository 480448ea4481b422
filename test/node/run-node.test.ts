// Proves a node config's admin tokens load as one set.
// `adminToken` loads as the admin named `admin`, each `adminTokens` entry with its name and role,
// token files are read relative to the config, and a token file that is unreadable, too short, or
// holds a token another name already has is refused with the field named. The member id, the mesh
// secret and account keys come from the environment loadNodeConfig is handed (a pod's, in tests).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNodeConfig } from '../../src/node/run-node.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function configWith(fields: Record<string, unknown>, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'carpool-run-node-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const config = {
    node: 'n1',
    region: 'r1',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    members: [{ id: 'n1', region: 'r1', url: 'ws://127.0.0.1:1' }],
    secret: 'sixteen-chars-at-least',
    ...fields,
  };
  await writeFile(join(dir, 'node.json'), JSON.stringify(config));
  return join(dir, 'node.json');
}

describe('loadNodeConfig: admin tokens', () => {
  it('loads adminToken as the admin named admin, and each named token with its role', async () => {
    const path = await configWith(
      {
        adminTokenFile: 'admin.token',
        adminTokens: [
          { name: 'grafana', role: 'viewer', tokenFile: 'grafana.token' },
          { name: 'oncall', role: 'admin', token: 'the-oncall-token-0123' },
        ],
      },
      { 'admin.token': 'the-admin-token-0123\n', 'grafana.token': 'the-grafana-token-0123\n' },
    );
    const loaded = await loadNodeConfig(path);
    if (typeof loaded === 'string') throw new Error(loaded);
    expect(loaded.adminTokens.size).toBe(3);
    expect(loaded.adminTokens.authenticate('the-admin-token-0123')).toEqual({ name: 'admin', role: 'admin' });
    expect(loaded.adminTokens.authenticate('the-grafana-token-0123')).toEqual({ name: 'grafana', role: 'viewer' });
    expect(loaded.adminTokens.authenticate('the-oncall-token-0123')).toEqual({ name: 'oncall', role: 'admin' });
  });

  it.each([
    ['an unreadable token file', { adminTokenFile: 'missing.token' }, {}, /^field adminTokenFile: cannot read missing.token/],
    [
      'a short token in a file',
      { adminTokenFile: 'admin.token' },
      { 'admin.token': 'short\n' },
      /^field adminTokenFile: the token in admin.token must be 16 to 512/,
    ],
    [
      'one token under two names',
      { adminTokenFile: 'admin.token', adminTokens: [{ name: 'grafana', role: 'viewer', tokenFile: 'grafana.token' }] },
      { 'admin.token': 'the-same-token-0123\n', 'grafana.token': 'the-same-token-0123\n' },
      /^field adminTokens\[0\]\.tokenFile: the same token as the one named admin/,
    ],
  ])('refuses %s, naming the field', async (_name, fields, files, message) => {
    const loaded = await loadNodeConfig(await configWith(fields, files));
    expect(loaded).toMatch(message);
  });
});

describe('loadNodeConfig: the environment it is handed', () => {
  it('takes the member id, the mesh secret and account keys from it, not from the process', async () => {
    const path = await configWith(
      {
        node: { env: 'POD_NAME' },
        admin: undefined,
        secret: undefined,
        upstream: { baseUrl: 'https://api.anthropic.com', accounts: { 'acct-1': { kind: 'api-key', keyEnv: 'ACCT1_KEY' } } },
      },
      {},
    );
    const env = { POD_NAME: 'n1', CARPOOL_MESH_SECRET: 'a-mesh-secret-of-the-pod', ACCT1_KEY: 'sk-ant-test-key' };
    const loaded = await loadNodeConfig(path, env);
    if (typeof loaded === 'string') throw new Error(loaded);
    expect(loaded.config.node).toBe('n1');
    expect(new TextDecoder().decode(loaded.secret)).toBe(env.CARPOOL_MESH_SECRET);
    expect([...loaded.credentials.keys()]).toEqual(['acct-1']);
    expect(await loadNodeConfig(path, { ...env, POD_NAME: undefined })).toMatch(
      /field node: takes the member id from the environment variable POD_NAME, which is not set/,
    );
  });
});
