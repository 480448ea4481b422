// Proves which of a previous run's credentials the launcher carries over: a tenant still in the
// config keeps its key, a removed one is dropped, a new one is minted, a key that is not its
// tenant's is replaced; and that the saved files are read back, or nothing when there are none.
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultLocalConfig, type LocalTenant } from '../../src/local/local-config.js';
import { forgetSavedCredentials, planKeys, readSavedCredentials } from '../../src/local/local-credentials.js';
import { writeLocalState } from '../../src/local/local-state.js';

const [demo, trial] = defaultLocalConfig().tenants as [LocalTenant, LocalTenant];
const keyOf = (tenant: string): string => `cp_${tenant}_${'Xy7'.repeat(11)}`;
const dir = mkdtempSync(join(tmpdir(), 'carpool-credentials-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('planKeys', () => {
  it('keeps the keys of tenants still configured, mints for new ones, drops removed ones', () => {
    const plan = planKeys([demo, trial], { demo: keyOf('demo'), gone: keyOf('gone') });
    expect([...plan.reused]).toEqual([['demo', keyOf('demo')]]);
    expect(plan.toMint).toEqual(['trial']);
    expect(plan.dropped).toEqual(['gone']);
    expect(plan.replaced).toEqual([]);
  });

  it('replaces a saved key that is not a key of its tenant', () => {
    const plan = planKeys([demo, trial], { demo: keyOf('trial'), trial: 'not-a-key' });
    expect(plan.reused.size).toBe(0);
    expect(plan.toMint).toEqual(['demo', 'trial']);
    expect(plan.replaced).toEqual(['demo', 'trial']);
  });

  it('mints every key when nothing was saved', () => {
    expect(planKeys([demo, trial], {})).toEqual({ reused: new Map(), toMint: ['demo', 'trial'], dropped: [], replaced: [] });
  });
});

describe('readSavedCredentials', () => {
  it('reads nothing from an empty directory', async () => {
    expect(await readSavedCredentials(dir)).toEqual({ secret: undefined, adminToken: undefined, apiKeys: {}, problem: undefined });
  });

  it('reads the secret, the token and the keys back, and forgets the keys when asked', async () => {
    await writeFile(join(dir, 'mesh.secret'), 'a-saved-mesh-secret-0123\n');
    await writeFile(join(dir, 'admin.token'), 'short\n');
    await writeLocalState(join(dir, 'state.json'), {
      version: 1,
      pid: 1,
      startedAtMs: 0,
      emulator: 'http://127.0.0.1:1',
      regions: [],
      apiKeys: { demo: keyOf('demo') },
      adminToken: 'ignored-here-0123456789',
      pids: {},
    });
    // A token too short for the config is not reused: a new one is generated instead.
    expect(await readSavedCredentials(dir)).toEqual({
      secret: 'a-saved-mesh-secret-0123',
      adminToken: undefined,
      apiKeys: { demo: keyOf('demo') },
      problem: undefined,
    });
    await forgetSavedCredentials(dir);
    expect((await readSavedCredentials(dir)).apiKeys).toEqual({});
  });

  it('says why a state file it cannot use was not read', async () => {
    await writeFile(join(dir, 'state.json'), '{"version": 99}');
    const saved = await readSavedCredentials(dir);
    expect(saved.apiKeys).toEqual({});
    expect(saved.problem).toMatch(/not a local mesh state file/);
  });
});
