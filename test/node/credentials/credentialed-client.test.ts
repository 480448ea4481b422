// Proves the client wrapper the home node calls through: a 401 "OAuth token has expired" renews
// the credential once and sends the call once more with the new token, unary and streamed (the
// caller sees only the second answer); many calls that meet the expiry together cause one refresh;
// a second 401 is returned as it is; a refusal returns the 401; a passing refresh failure turns the
// 401's feedback into a network one (cool down, not disable); API keys pass straight through.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccountId } from '../../../src/core/ids.js';
import { err, ok, type Result } from '../../../src/core/result.js';
import { AccountCredentials } from '../../../src/node/credentials/account-credentials.js';
import { CredentialVault } from '../../../src/node/credentials/credential-vault.js';
import { CredentialedClient } from '../../../src/node/credentials/credentialed-client.js';
import type { OAuthCredential } from '../../../src/node/credentials/oauth-credential.js';
import { systemClock } from '../../../src/platform/system-clock.js';
import type { RefreshFailure, TokenEndpoint } from '../../../src/node/credentials/token-endpoint.js';
import { systemTimers } from '../../../src/upstream/call-guard.js';
import type { SseEvent } from '../../../src/upstream/sse-parser.js';
import { UpstreamClient } from '../../../src/upstream/upstream-client.js';
import { type LocalUpstream, recordedMessage, recordedStream, sseHeaders, startUpstream } from '../../upstream/local-upstream.js';

const expiredBody = JSON.stringify({
  type: 'error',
  error: { type: 'authentication_error', message: 'OAuth token has expired. Please obtain a new token or refresh your existing token.' },
});
const invalidBody = JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: 'Invalid bearer token' } });
const request = { body: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] } };
const acct = 'acct-1' as AccountId;
const keyAccount = 'acct-key' as AccountId;

/** Access tokens the fake upstream takes; any other bearer is answered "expired". */
let live: Set<string>;
/** Bearer tokens answered "invalid" instead. */
let revoked: Set<string>;
let upstream: LocalUpstream;
let client: UpstreamClient;
let refreshes: string[];
let nextAnswer: () => Result<OAuthCredential, RefreshFailure>;
let disabled: string[];
let credentials: AccountCredentials;
let credentialed: CredentialedClient;

const issued = (n: number): OAuthCredential => ({ accessToken: `access-${n}`, refreshToken: `refresh-${n}`, expiresAtMs: Date.now() + 3_600_000 });

beforeEach(async () => {
  live = new Set();
  revoked = new Set();
  refreshes = [];
  disabled = [];
  upstream = await startUpstream((req, res) => {
    const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    const key = req.headers['x-api-key'];
    if (key !== 'sk-ant-key' && (bearer === undefined || !live.has(bearer))) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(bearer !== undefined && revoked.has(bearer) ? invalidBody : expiredBody);
      return;
    }
    if ((JSON.parse(req.body) as { stream?: boolean }).stream === true) res.writeHead(200, sseHeaders).end(recordedStream);
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(recordedMessage));
  });
  client = new UpstreamClient();
  const endpoint: TokenEndpoint = {
    refresh: async (refreshToken) => {
      refreshes.push(refreshToken);
      // A refresh takes a moment, so concurrent callers overlap it.
      await new Promise((resolve) => setTimeout(resolve, 20));
      return nextAnswer();
    },
  };
  nextAnswer = () => {
    live.add('access-2');
    return ok(issued(2));
  };
  const started = AccountCredentials.start(
    {
      baseUrl: upstream.baseUrl,
      refreshLeadMs: 1_000,
      endpoint,
      vault: new CredentialVault(undefined, () => Date.now()),
      pool: { disable: (id) => void disabled.push(id), enable: () => true },
      clock: systemClock,
      timers: systemTimers,
      log: () => {},
    },
    new Map([
      [acct, { held: { kind: 'oauth', credential: issued(1) }, fromEnv: true }],
      [keyAccount, { held: { kind: 'api-key', key: 'sk-ant-key' }, fromEnv: true }],
    ]),
  );
  if (!started.ok) throw new Error(started.error);
  credentials = started.value;
  credentialed = new CredentialedClient(client, credentials, systemClock);
});

afterEach(async () => {
  credentials.close();
  await client.close(100);
  await upstream.close();
});

const target = (id: AccountId) => {
  const found = credentials.target(id);
  if (found === undefined) throw new Error('no target');
  return found;
};

const bearersSent = (): (string | undefined)[] => upstream.requests.map((r) => /^Bearer (.+)$/.exec(String(r.headers.authorization ?? ''))?.[1]);

describe('CredentialedClient', () => {
  it('renews an expired token and sends a unary call once more with the new one', async () => {
    const result = await credentialed.complete(target(acct), request);
    expect(result.ok).toBe(true);
    expect(bearersSent()).toEqual(['access-1', 'access-2']);
    expect(refreshes).toEqual(['refresh-1']);
    expect(credentialed.stats.retried).toBe(1);
    // The next call goes out with the renewed token at once.
    expect((await credentialed.complete(target(acct), request)).ok).toBe(true);
    expect(bearersSent()).toEqual(['access-1', 'access-2', 'access-2']);
  });

  it("does the same for a stream: the caller sees only the retried stream's events", async () => {
    const events: SseEvent[] = [];
    const result = await credentialed.stream(target(acct), request, { onEvent: (event) => void events.push(event) });
    expect(result.ok).toBe(true);
    expect(events[0]?.event).toBe('message_start');
    expect(events.filter((event) => event.event === 'message_start')).toHaveLength(1);
    expect(bearersSent()).toEqual(['access-1', 'access-2']);
  });

  it('renews once for many calls that meet the expiry together', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => credentialed.complete(target(acct), request)));
    expect(results.every((result) => result.ok)).toBe(true);
    expect(refreshes).toEqual(['refresh-1']);
  });

  it('returns a second 401 as it is, without a second renewal', async () => {
    nextAnswer = () => {
      revoked.add('access-2');
      return ok(issued(2));
    };
    const result = await credentialed.complete(target(acct), request);
    expect(!result.ok && result.error.kind === 'http-status' && [result.error.status, result.error.feedback]).toEqual([
      401,
      { kind: 'auth-failed', status: 401 },
    ]);
    expect(refreshes).toEqual(['refresh-1']);
    expect(upstream.requests).toHaveLength(2);
  });

  it('returns the 401 after a refusal (the refresher disabled the account), and a network feedback after a passing failure', async () => {
    nextAnswer = () => err({ kind: 'transient', detail: 'the token endpoint answered 503' });
    const passing = await credentialed.complete(target(acct), request);
    expect(!passing.ok && passing.error.feedback?.kind).toBe('network');
    expect(disabled).toEqual([]);
    nextAnswer = () => err({ kind: 'refused', status: 400, code: 'invalid_grant' });
    const refused = await credentialed.complete(target(acct), request);
    expect(!refused.ok && refused.error.feedback).toEqual({ kind: 'auth-failed', status: 401 });
    expect(disabled).toEqual([acct]);
    expect(upstream.requests).toHaveLength(2);
  });

  it('sends API-key calls straight through', async () => {
    expect((await credentialed.complete(target(keyAccount), request)).ok).toBe(true);
    expect(refreshes).toEqual([]);
  });
});
