// Proves the emulator's subscription behaviour over HTTP under an injected clock: the OAuth token
// endpoint rotates refresh tokens (reuse and unknown tokens → 400 invalid_grant, bad requests →
// 400 with the reason), expired access tokens get the real 401 body while the previous token lives
// until its own expiry, subscription windows report the unified headers and answer 429 with
// retry-after until their real end, and the test hooks (revoke, expire, exhaust) and the stats
// they feed. Each test that sends messages reconciles the output tokens it was told with the
// emulator's count.
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { defaultAccountLimits, type EmulatorAccount } from '../../../src/upstream/emulator/emulator-config.js';
import { type Emulator, startEmulator } from '../../../src/upstream/emulator/emulator-server.js';
import { fiveHourMs } from '../../../src/upstream/emulator/subscription-windows.js';

const renewable = 'sk-ant-oat01-renewable-login';
const refreshToken = 'sk-ant-ort01-renewable-login';
const staticToken = 'sk-ant-oat01-static-login';
const apiKey = 'sk-ant-api03-plain-key';
const lifetimeMs = 5_000;
const startMs = 1_790_000_000_000;
const body = { model: 'claude-sonnet-4-6', max_tokens: 40, messages: [{ role: 'user', content: 'Hello, subscription' }] };

const emulators: Emulator[] = [];
afterEach(async () => {
  for (const emulator of emulators.splice(0)) await emulator.close();
});

async function start(clock: ManualClock, windows?: EmulatorAccount['windows'], accessTokenLifetimeMs = lifetimeMs): Promise<Emulator> {
  const emulator = await startEmulator({
    clock,
    accounts: [
      { key: renewable, kind: 'oauth', limits: defaultAccountLimits, faults: [], oauth: { refreshToken, accessTokenLifetimeMs }, windows },
      { key: staticToken, kind: 'oauth', limits: defaultAccountLimits, faults: [] },
      { key: apiKey, kind: 'api-key', limits: defaultAccountLimits, faults: [] },
    ],
  });
  emulators.push(emulator);
  return emulator;
}

function message(emulator: Emulator, token: string): Promise<Response> {
  return fetch(`${emulator.url}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function refresh(emulator: Emulator, token: string, form = false): Promise<Response> {
  const fields = { grant_type: 'refresh_token', refresh_token: token, client_id: '9d1c250a-e61b-44d9-88ed-5944d1962f5e' };
  return fetch(`${emulator.url}/v1/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' },
    body: form ? new URLSearchParams(fields).toString() : JSON.stringify(fields),
  });
}

function hook(emulator: Emulator, path: string, payload: unknown): Promise<Response> {
  return fetch(`${emulator.url}/_emulator/${path}`, { method: 'POST', body: JSON.stringify(payload) });
}

interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
  scope: string;
}

describe('the OAuth token endpoint', () => {
  it('rotates the refresh token, serves the new access token, and refuses the used refresh token', async () => {
    const clock = new ManualClock(startMs);
    const emulator = await start(clock);
    const response = await refresh(emulator, refreshToken);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const tokens = (await response.json()) as Tokens;
    expect(Object.keys(tokens).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
    expect(tokens).toMatchObject({ token_type: 'Bearer', expires_in: 5, scope: 'user:inference user:profile' });
    expect(tokens.access_token).toMatch(/^sk-ant-oat01-/);
    expect(tokens.refresh_token).toMatch(/^sk-ant-ort01-/);
    expect(emulator.currentRefreshToken(renewable)).toBe(tokens.refresh_token);
    expect((await message(emulator, tokens.access_token)).status).toBe(200);

    const reused = await refresh(emulator, refreshToken);
    expect(reused.status).toBe(400);
    expect(await reused.json()).toEqual({ error: 'invalid_grant', error_description: 'Refresh token not found or invalid' });
    const unknown = await refresh(emulator, 'sk-ant-ort01-never-issued-anywhere');
    expect(await unknown.json()).toMatchObject({ error: 'invalid_grant' });
    // Form encoding is accepted as well, and rotates again.
    const again = await refresh(emulator, tokens.refresh_token, true);
    expect(again.status).toBe(200);

    const stats = emulator.stats();
    expect(stats.keys[renewable]).toMatchObject({ refreshes: 2, refreshesRefused: 1, requests: 1, messages: 1 });
    expect(stats.refreshesRefusedUnknown).toBe(1);
  });

  it('answers a malformed token request 400 with the reason', async () => {
    const emulator = await start(new ManualClock(startMs));
    const post = (contentType: string, payload: string): Promise<Response> =>
      fetch(`${emulator.url}/v1/oauth/token`, { method: 'POST', headers: { 'content-type': contentType }, body: payload });
    const missing = await post('application/json', JSON.stringify({ grant_type: 'refresh_token', client_id: 'x' }));
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'invalid_request', error_description: 'Missing required parameter: refresh_token.' });
    const grant = await post('application/json', JSON.stringify({ grant_type: 'password', refresh_token: refreshToken, client_id: 'x' }));
    expect(await grant.json()).toMatchObject({ error: 'unsupported_grant_type' });
    expect(await (await post('text/plain', 'refresh please')).json()).toMatchObject({ error: 'invalid_request' });
    // None of them spent the refresh token.
    expect(emulator.currentRefreshToken(renewable)).toBe(refreshToken);
  });
});

describe('expired and unknown access tokens', () => {
  it('answers an expired token with the real 401 body, while a newer token and a static one keep working', async () => {
    const clock = new ManualClock(startMs);
    const emulator = await start(clock);
    clock.advance(4_000);
    const tokens = (await (await refresh(emulator, refreshToken)).json()) as Tokens;
    // The configured key is still within its own life after the refresh.
    expect((await message(emulator, renewable)).status).toBe(200);
    clock.advance(1_000);
    const expired = await message(emulator, renewable);
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual({
      type: 'error',
      error: { type: 'authentication_error', message: 'OAuth token has expired. Please obtain a new token or refresh your existing token.' },
      request_id: expired.headers.get('request-id'),
    });
    expect((await message(emulator, tokens.access_token)).status).toBe(200);
    clock.advance(lifetimeMs);
    expect((await message(emulator, tokens.access_token)).status).toBe(401);

    const unknown = await message(emulator, 'sk-ant-oat01-never-issued-anywhere');
    expect(unknown.status).toBe(401);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toBe('Invalid authentication credentials');
    // A static OAuth key (no "oauth" in its configuration) never expires.
    clock.advance(365 * 24 * 3_600_000);
    expect((await message(emulator, staticToken)).status).toBe(200);
    const stats = emulator.stats();
    expect(stats.keys[renewable]).toMatchObject({ expiredTokenRefusals: 2, messages: 2 });
    expect(stats.keys[staticToken]).toMatchObject({ expiredTokenRefusals: 0, messages: 1 });
  });
});

describe('subscription windows on the wire', () => {
  it('reports rising utilisation, warns, then refuses 429 with retry-after until the 5-hour window really ends', async () => {
    const clock = new ManualClock(startMs);
    const windows = {
      unit: 'requests' as const,
      fiveHour: { budget: 5, lengthMs: fiveHourMs },
      sevenDay: { budget: 100, lengthMs: 7 * 24 * 3_600_000 },
      warningUtilization: 0.8,
    };
    // A login that outlives the test, so only the windows speak.
    const emulator = await start(clock, windows, 30 * 24 * 3_600_000);
    const firstMs = clock.nowMs();
    const resetSeconds = String(Math.ceil((firstMs + fiveHourMs) / 1000));
    const seen: { status: string | null; utilization: string | null; window: string | null }[] = [];
    let outputTokens = 0;
    for (let i = 0; i < 5; i++) {
      const response = await message(emulator, staticToken);
      expect(response.status).toBe(200);
      outputTokens += ((await response.json()) as { usage: { output_tokens: number } }).usage.output_tokens;
      seen.push({
        status: response.headers.get('anthropic-ratelimit-unified-status'),
        utilization: response.headers.get('anthropic-ratelimit-unified-5h-utilization'),
        window: response.headers.get('anthropic-ratelimit-unified-5h-status'),
      });
      expect(response.headers.get('anthropic-ratelimit-unified-5h-reset')).toBe(resetSeconds);
      expect(response.headers.get('anthropic-ratelimit-unified-representative-claim')).toBe('five_hour');
      clock.advance(60_000);
    }
    // The static OAuth account has the default windows, far from spent; the renewable one the test's.
    expect(seen.map((s) => s.utilization)).toEqual(['0', '0', '0', '0', '0']);
    seen.length = 0;
    for (let i = 0; i < 5; i++) {
      const response = await message(emulator, renewable);
      outputTokens += ((await response.json()) as { usage: { output_tokens: number } }).usage.output_tokens;
      seen.push({
        status: response.headers.get('anthropic-ratelimit-unified-status'),
        utilization: response.headers.get('anthropic-ratelimit-unified-5h-utilization'),
        window: response.headers.get('anthropic-ratelimit-unified-5h-status'),
      });
    }
    expect(seen.map((s) => s.utilization)).toEqual(['0.2', '0.4', '0.6', '0.8', '1']);
    expect(seen.map((s) => s.status)).toEqual(['allowed', 'allowed', 'allowed', 'allowed_warning', 'rejected']);
    expect(seen.map((s) => s.window)).toEqual(['allowed', 'allowed', 'allowed', 'allowed_warning', 'rejected']);

    const windowStartMs = clock.nowMs();
    clock.advance(3_600_000);
    const refused = await message(emulator, renewable);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe(String(Math.ceil((windowStartMs + fiveHourMs - clock.nowMs()) / 1000)));
    expect(refused.headers.get('anthropic-ratelimit-unified-status')).toBe('rejected');
    expect(refused.headers.get('anthropic-ratelimit-unified-reset')).toBe(String(Math.ceil((windowStartMs + fiveHourMs) / 1000)));
    expect(refused.headers.get('anthropic-ratelimit-unified-7d-status')).toBe('allowed');
    expect(((await refused.json()) as { error: { type: string; message: string } }).error).toEqual({
      type: 'rate_limit_error',
      message: "This request would exceed your account's rate limit. Please try again later.",
    });

    clock.set(windowStartMs + fiveHourMs - 1);
    expect((await message(emulator, renewable)).status).toBe(429);
    clock.set(windowStartMs + fiveHourMs);
    const reopened = await message(emulator, renewable);
    expect(reopened.status).toBe(200);
    outputTokens += ((await reopened.json()) as { usage: { output_tokens: number } }).usage.output_tokens;
    expect(reopened.headers.get('anthropic-ratelimit-unified-5h-utilization')).toBe('0.2');
    expect(reopened.headers.get('anthropic-ratelimit-unified-7d-utilization')).toBe('0.06');

    const stats = emulator.stats();
    expect(stats.keys[renewable]).toMatchObject({ messages: 6, windowRefusals: 2, rateLimited: 2 });
    // API-key answers carry no unified headers; the reconciliation covers every message sent.
    expect(stats.keys[renewable]!.outputTokens + stats.keys[staticToken]!.outputTokens).toBe(outputTokens);
  });
});

describe('the test hooks', () => {
  it('exhausts a window now with a chosen reset, so calls get 429 until then and none reaches the account', async () => {
    const clock = new ManualClock(startMs);
    const emulator = await start(clock);
    const exhausted = await hook(emulator, 'windows/exhaust', { account: staticToken, window: '5h', resetInMs: 3_000 });
    expect(exhausted.status).toBe(200);
    expect(await exhausted.json()).toEqual({ account: staticToken, window: '5h', resetAtMs: startMs + 3_000 });
    const refused = await message(emulator, staticToken);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('3');
    expect(refused.headers.get('anthropic-ratelimit-unified-5h-reset')).toBe(String(Math.ceil((startMs + 3_000) / 1000)));
    clock.advance(2_999);
    expect((await message(emulator, staticToken)).status).toBe(429);
    clock.advance(1);
    const served = await message(emulator, staticToken);
    expect(served.status).toBe(200);
    const usage = ((await served.json()) as { usage: { output_tokens: number } }).usage;
    expect(emulator.stats().keys[staticToken]).toMatchObject({ windowRefusals: 2, messages: 1, outputTokens: usage.output_tokens });

    expect((await hook(emulator, 'windows/exhaust', { account: staticToken, window: '7d', resetInMs: 60_000 })).status).toBe(200);
    expect((await message(emulator, staticToken)).headers.get('anthropic-ratelimit-unified-representative-claim')).toBe('seven_day');
  });

  it('revokes a refresh token and expires access tokens on demand', async () => {
    const clock = new ManualClock(startMs);
    const emulator = await start(clock);
    expect((await hook(emulator, 'oauth/expire', { account: renewable })).status).toBe(200);
    expect((await message(emulator, renewable)).status).toBe(401);
    expect((await hook(emulator, 'oauth/revoke', { account: renewable })).status).toBe(200);
    const refused = await refresh(emulator, refreshToken);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: 'invalid_grant' });
    expect(emulator.stats().keys[renewable]).toMatchObject({ refreshes: 0, refreshesRefused: 1, expiredTokenRefusals: 1 });
  });

  it('refuses a hook that names no suitable account or a bad window', async () => {
    const emulator = await start(new ManualClock(startMs));
    const messageOf = async (response: Response): Promise<[number, string]> => [
      response.status,
      ((await response.json()) as { error: { message: string } }).error.message,
    ];
    expect(await messageOf(await hook(emulator, 'oauth/revoke', { account: 'sk-ant-oat01-nobody' }))).toEqual([
      400,
      'account: must be the key of a configured account',
    ]);
    expect((await messageOf(await hook(emulator, 'oauth/revoke', { account: staticToken })))[0]).toBe(400);
    expect((await messageOf(await hook(emulator, 'windows/exhaust', { account: apiKey, window: '5h', resetInMs: 1_000 })))[0]).toBe(400);
    expect(await messageOf(await hook(emulator, 'windows/exhaust', { account: staticToken, window: '1d', resetInMs: 1_000 }))).toEqual([
      400,
      'window: must be "5h" or "7d"',
    ]);
    expect((await messageOf(await hook(emulator, 'windows/exhaust', { account: staticToken, window: '5h', resetInMs: fiveHourMs + 1 })))[0]).toBe(400);
    expect((await fetch(`${emulator.url}/_emulator/windows/exhaust`)).status).toBe(404);
  });
});
