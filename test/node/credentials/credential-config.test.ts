// Proves how a renewable OAuth credential is configured: credentialsFile/credentialsEnv on oauth
// accounts only, upstream.oauth validated field by field with Claude Code's defaults, a credential
// file readable by group or others refused at start naming the field, Claude Code's file shape and
// the bare shape both read, and no error text carrying a token.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../../src/core/ids.js';
import { credentialJson, parseCredentialJson } from '../../../src/node/credentials/oauth-credential.js';
import { readAccountCredentials } from '../../../src/node/gateway/upstream-targets.js';
import { defaultOAuthSettings, parseNodeConfig } from '../../../src/node/node-config.js';

const base = {
  node: 'n1',
  region: 'us-east',
  listen: { host: '127.0.0.1', port: 7401 },
  members: [{ id: 'n1', region: 'us-east', url: 'ws://127.0.0.1:7401' }],
  secret: 'sixteen-characters-at-least',
};
const withUpstream = (upstream: unknown): unknown => ({ ...base, upstream });
const fieldOf = (raw: unknown): string | undefined => {
  const parsed = parseNodeConfig(raw);
  return parsed.ok ? undefined : parsed.error.field;
};
const claudeFile = {
  claudeAiOauth: {
    accessToken: 'sk-ant-oat01-secret-access',
    refreshToken: 'sk-ant-ort01-secret-refresh',
    expiresAt: 1_900_000_000_000,
    scopes: ['user:inference'],
  },
};

describe('renewable OAuth credentials in the node config', () => {
  it('reads credentialsFile and credentialsEnv with the oauth defaults, and names each mistake', () => {
    const parsed = parseNodeConfig(
      withUpstream({
        baseUrl: 'https://api.anthropic.com',
        accounts: { a: { kind: 'oauth', credentialsFile: 'a.json' }, b: { kind: 'oauth', credentialsEnv: 'B_CRED' } },
      }),
    );
    expect(parsed.ok && parsed.value.upstream?.oauth).toEqual(defaultOAuthSettings);
    expect(parsed.ok && [...(parsed.value.upstream?.accounts.values() ?? [])].map((account) => account.format)).toEqual(['renewable', 'renewable']);
    expect(defaultOAuthSettings.clientId).toBe('9d1c250a-e61b-44d9-88ed-5944d1962f5e');
    const accounts = { a: { kind: 'oauth', credentialsFile: 'a.json' } };
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts: { a: { kind: 'api-key', credentialsFile: 'a.json' } } }))).toBe(
      'upstream.accounts.a.credentialsFile',
    );
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts: { a: { kind: 'oauth', credentialsEnv: '1X' } } }))).toBe(
      'upstream.accounts.a.credentialsEnv',
    );
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts: { a: { kind: 'oauth', credentialsFile: 'a.json', keyFile: 'a.token' } } }))).toBe(
      'upstream.accounts.a',
    );
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts, oauth: { tokenUrl: 'ftp://x' } }))).toBe('upstream.oauth.tokenUrl');
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts, oauth: { clientId: 'has space' } }))).toBe('upstream.oauth.clientId');
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts, oauth: { refreshLeadMs: 10 } }))).toBe('upstream.oauth.refreshLeadMs');
    expect(fieldOf(withUpstream({ baseUrl: 'https://x', accounts, oauth: { leadMs: 1000 } }))).toBe('upstream.oauth.leadMs');
  });

  it('refuses a credential file others may read, naming the field and not the token, and reads a private one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carpool-oauth-config-'));
    try {
      await writeFile(join(dir, 'a.json'), JSON.stringify(claudeFile));
      await chmod(join(dir, 'a.json'), 0o644);
      const parsed = parseNodeConfig(withUpstream({ baseUrl: 'https://x', accounts: { a: { kind: 'oauth', credentialsFile: 'a.json' } } }));
      if (!parsed.ok) throw new Error(parsed.error.reason);
      const open = await readAccountCredentials(parsed.value.upstream, { baseDir: dir, env: {} });
      expect(open.ok ? undefined : open.error).toMatchObject({
        field: 'upstream.accounts.a.credentialsFile',
        reason: expect.stringContaining('chmod 600 a.json') as unknown,
      });
      await chmod(join(dir, 'a.json'), 0o600);
      const read = await readAccountCredentials(parsed.value.upstream, { baseDir: dir, env: {} });
      expect(read.ok && read.value.get('a' as AccountId)?.held).toEqual({
        kind: 'oauth',
        credential: { accessToken: 'sk-ant-oat01-secret-access', refreshToken: 'sk-ant-ort01-secret-refresh', expiresAtMs: 1_900_000_000_000 },
      });
      const fromEnv = parseNodeConfig(withUpstream({ baseUrl: 'https://x', accounts: { a: { kind: 'oauth', credentialsEnv: 'A_CRED' } } }));
      if (!fromEnv.ok) throw new Error(fromEnv.error.reason);
      const badEnv = await readAccountCredentials(fromEnv.value.upstream, {
        baseDir: dir,
        env: { A_CRED: '{"accessToken": "sk-ant-oat01-leak", "refreshToken": 5' },
      });
      expect(badEnv.ok ? undefined : badEnv.error.field).toBe('upstream.accounts.a.credentialsEnv');
      expect(JSON.stringify(badEnv)).not.toContain('sk-ant-oat01-leak');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads both shapes, names the bad field, and writes back keeping the other fields', () => {
    const bare = parseCredentialJson(JSON.stringify({ accessToken: 'a1', refreshToken: 'r1', expiresAt: 5 }));
    expect(bare).toEqual({ ok: true, value: { accessToken: 'a1', refreshToken: 'r1', expiresAtMs: 5 } });
    expect(parseCredentialJson(JSON.stringify({ claudeAiOauth: { ...claudeFile.claudeAiOauth, expiresAt: 'soon' } }))).toMatchObject({
      ok: false,
      error: { field: 'claudeAiOauth.expiresAt' },
    });
    const written = JSON.parse(credentialJson({ accessToken: 'a2', refreshToken: 'r2', expiresAtMs: 9 }, claudeFile)) as typeof claudeFile;
    expect(written).toEqual({ claudeAiOauth: { accessToken: 'a2', refreshToken: 'r2', expiresAt: 9, scopes: ['user:inference'] } });
  });
});
