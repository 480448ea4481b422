// Proves the token endpoint client against a loopback server: the request Claude Code sends (JSON
// grant, refresh token, client id), the answer read into a credential with its expiry from the
// send time and the old refresh token kept when none comes back, 400 invalid_grant as a refusal
// with its code, 5xx/429/oversized/unparsable answers as passing failures, and no token in any detail.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { oauthTokenResponseBytesMax } from '../../../src/core/limits.js';
import { HttpTokenEndpoint } from '../../../src/node/credentials/token-endpoint.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

async function endpointAnswering(status: number, body: string, seen: string[] = []): Promise<HttpTokenEndpoint> {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      seen.push(`${req.headers['content-type']} ${text}`);
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/oauth/token`;
  return new HttpTokenEndpoint({ tokenUrl: url, clientId: 'client-1' }, { clock: { nowMs: () => 1_000 } });
}

describe('HttpTokenEndpoint', () => {
  it('sends the refresh grant as JSON and reads the rotated credential', async () => {
    const seen: string[] = [];
    const endpoint = await endpointAnswering(
      200,
      JSON.stringify({ access_token: 'new-access', refresh_token: 'new-refresh', expires_in: 28_800, token_type: 'Bearer' }),
      seen,
    );
    expect(await endpoint.refresh('old-refresh')).toEqual({
      ok: true,
      value: { accessToken: 'new-access', refreshToken: 'new-refresh', expiresAtMs: 1_000 + 28_800_000 },
    });
    expect(seen).toEqual(['application/json {"grant_type":"refresh_token","refresh_token":"old-refresh","client_id":"client-1"}']);
  });

  it('keeps the old refresh token when the answer has none', async () => {
    const endpoint = await endpointAnswering(200, JSON.stringify({ access_token: 'new-access', expires_in: 60 }));
    expect(await endpoint.refresh('old-refresh')).toMatchObject({ ok: true, value: { refreshToken: 'old-refresh' } });
  });

  it('reads invalid_grant as a refusal, and a 503, a 429 or a bad answer as passing, never echoing a token', async () => {
    const cases: [number, string, unknown][] = [
      [
        400,
        JSON.stringify({ error: 'invalid_grant', error_description: 'Refresh token old-refresh is revoked' }),
        { kind: 'refused', status: 400, code: 'invalid_grant' },
      ],
      [401, 'not json old-refresh', { kind: 'refused', status: 401, code: 'http-401' }],
      [503, 'overloaded', { kind: 'transient', detail: 'the token endpoint answered 503' }],
      [429, '{}', { kind: 'transient', detail: 'the token endpoint answered 429' }],
      [
        200,
        JSON.stringify({ access_token: 'has space', expires_in: 60 }),
        { kind: 'transient', detail: 'the token endpoint answered 200 without a usable access_token' },
      ],
      [
        200,
        'x'.repeat(oauthTokenResponseBytesMax + 1),
        { kind: 'transient', detail: `the token endpoint's answer is over ${oauthTokenResponseBytesMax} bytes` },
      ],
    ];
    for (const [status, body, expected] of cases) {
      const endpoint = await endpointAnswering(status, body);
      const answer = await endpoint.refresh('old-refresh');
      expect(answer).toEqual({ ok: false, error: expected });
      expect(JSON.stringify(answer)).not.toContain('old-refresh');
      server?.closeAllConnections();
      await new Promise<void>((resolve) => server?.close(() => resolve()));
      server = undefined;
    }
  });

  it('reads a refused connection as passing', async () => {
    const endpoint = new HttpTokenEndpoint({ tokenUrl: 'http://127.0.0.1:9/v1/oauth/token', clientId: 'c' }, { clock: { nowMs: () => 0 } });
    expect(await endpoint.refresh('r')).toMatchObject({ ok: false, error: { kind: 'transient' } });
  });
});
