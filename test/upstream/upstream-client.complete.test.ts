// Proves complete() sends the right credential and version headers, returns the message with
// its usage (cache tokens included), request id and feedback, maps error statuses to typed
// errors with the right feedback, reuses one keep-alive connection, and never echoes a secret.
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { countingTimers, type LocalUpstream, nextTurn, recordedMessage, startUpstream } from './local-upstream.js';

const secret = 'sk-ant-test-0123456789abcdef';
let server: LocalUpstream | undefined;
let client: UpstreamClient | undefined;

afterEach(async () => {
  await client?.close(1_000);
  await server?.close();
  client = server = undefined;
});

const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };

describe('UpstreamClient.complete', () => {
  it('returns the message, its usage with cache tokens, the request id and success feedback', async () => {
    server = await startUpstream((_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'request-id': 'req_abc',
        'anthropic-ratelimit-requests-remaining': '99',
        'anthropic-ratelimit-tokens-reset': '2030-01-01T00:00:00Z',
      });
      res.end(JSON.stringify(recordedMessage));
    });
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } }, request);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.message).toEqual(recordedMessage);
    expect(result.value.usage).toEqual({ input: 30, output: 7, cacheWrite: 5, cacheRead: 1200 });
    expect(result.value.requestId).toBe('req_abc');
    expect(result.value.cancelled).toBe(false);
    expect(result.value.feedback).toMatchObject({ kind: 'success', rateLimits: { requests: { remaining: 99 }, tokens: { resetAtMs: Date.UTC(2030, 0, 1) } } });
    expect(timers.pending()).toBe(0);
    expect(client.stats().callsInFlight).toBe(0);
  });

  it('sends x-api-key for API keys, Bearer for OAuth, the version and beta headers, and stream: false', async () => {
    server = await startUpstream((_req, res) => res.end(JSON.stringify(recordedMessage)));
    client = new UpstreamClient();
    await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } }, request);
    await client.complete(
      { baseUrl: `${server.baseUrl}/prefix/`, credential: { kind: 'oauth', token: 'oauth-token-1' } },
      { ...request, anthropicVersion: '2024-10-22', anthropicBeta: 'prompt-caching-2024-07-31, oauth-2025-04-20' },
    );
    const [first, second] = server.requests;
    expect(first).toMatchObject({ method: 'POST', url: '/v1/messages' });
    expect(first?.headers).toMatchObject({ 'x-api-key': secret, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' });
    expect(first?.headers.authorization).toBeUndefined();
    expect(first?.headers['anthropic-beta']).toBeUndefined();
    expect(JSON.parse(first?.body ?? '')).toEqual({ ...request.body, stream: false });
    expect(second?.url).toBe('/prefix/v1/messages');
    expect(second?.headers).toMatchObject({
      authorization: 'Bearer oauth-token-1',
      'anthropic-version': '2024-10-22',
      'anthropic-beta': 'prompt-caching-2024-07-31, oauth-2025-04-20',
    });
    expect(second?.headers['x-api-key']).toBeUndefined();
  });

  it('runs sequential calls over one keep-alive connection', async () => {
    server = await startUpstream((_req, res) => res.end(JSON.stringify(recordedMessage)));
    client = new UpstreamClient();
    const target: UpstreamTarget = { baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } };
    for (let i = 0; i < 5; i++) {
      expect((await client.complete(target, request)).ok).toBe(true);
      // undici marks a connection free one I/O turn after its body ended; a call dispatched
      // sooner opens a second connection rather than wait.
      await nextTurn();
    }
    expect(server.requests.length).toBe(5);
    expect(server.connectionsTotal()).toBe(1);
    expect(client.stats().connectionsOpen).toBe(1);
  });

  const statuses: [number, Record<string, string>, object, object][] = [
    [
      429,
      { 'retry-after': '7', 'anthropic-ratelimit-requests-remaining': '0' },
      { type: 'error', error: { type: 'rate_limit_error', message: 'Number of requests has exceeded your rate limit' } },
      { kind: 'rate-limited', retryAfterMs: 7_000, rateLimits: { requests: { remaining: 0 } } },
    ],
    [529, {}, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, { kind: 'overloaded' }],
    [401, {}, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } }, { kind: 'auth-failed', status: 401 }],
    [403, {}, { type: 'error', error: { type: 'permission_error', message: 'no' } }, { kind: 'auth-failed', status: 403 }],
    [500, {}, { type: 'error', error: { type: 'api_error', message: 'Internal server error' } }, { kind: 'server-error', status: 500 }],
    [400, {}, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: required' } }, { kind: 'client-error', status: 400 }],
  ];
  for (const [status, headers, body, feedback] of statuses) {
    it(`maps status ${status} to an http-status error with ${JSON.stringify(feedback)}`, async () => {
      server = await startUpstream((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${status}`, ...headers });
        res.end(JSON.stringify(body));
      });
      client = new UpstreamClient();
      const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } }, request);
      expect(result.ok).toBe(false);
      if (result.ok) return;
      const apiError = (body as { error: { type: string; message: string } }).error;
      expect(result.error).toMatchObject({
        kind: 'http-status',
        status,
        errorType: apiError.type,
        message: apiError.message,
        requestId: `req_${status}`,
        feedback,
      });
      // A whole error body leaves its connection reusable.
      await nextTurn();
      expect((await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } }, request)).ok).toBe(false);
      expect(server.connectionsTotal()).toBe(1);
    });
  }

  it('scrubs the secret from an error that echoes it', async () => {
    server = await startUpstream((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `bad key ${String(req.headers['x-api-key'])}` } }));
    });
    client = new UpstreamClient();
    const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: secret } }, request);
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).not.toContain(secret);
    expect(!result.ok && result.error.kind === 'http-status' && result.error.message).toBe('bad key [redacted]');
  });

  it('refuses a credential HTTP cannot carry without sending it or naming it', async () => {
    server = await startUpstream((_req, res) => res.end('{}'));
    client = new UpstreamClient();
    const badSecret = 'sk-ant-line\r\nx-injected: 1';
    const result = await client.complete({ baseUrl: server.baseUrl, credential: { kind: 'api-key', key: badSecret } }, request);
    expect(result).toMatchObject({ ok: false, error: { kind: 'invalid-request', feedback: undefined } });
    expect(JSON.stringify(result)).not.toContain('sk-ant-line');
    expect(server.requests.length).toBe(0);
    expect((await client.complete({ baseUrl: 'ftp://example.com', credential: { kind: 'api-key', key: secret } }, request)).ok).toBe(false);
  });

  it('reports a refused connection as a network error with network feedback', async () => {
    const closed = await startUpstream(() => undefined);
    const baseUrl = closed.baseUrl;
    await closed.close();
    const timers = countingTimers();
    client = new UpstreamClient({ timers });
    const result = await client.complete({ baseUrl, credential: { kind: 'api-key', key: secret } }, request);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.kind).toBe('network');
    expect(result.error.feedback?.kind).toBe('network');
    expect(JSON.stringify(result.error)).toContain('ECONNREFUSED');
    expect(timers.pending()).toBe(0);
  });
});
