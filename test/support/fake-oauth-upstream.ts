/**
 * A stand-in for a subscription's OAuth side on 127.0.0.1, in front of the emulator:
 *
 *   POST /v1/oauth/token   refresh_token grant: a new access token (living `lifetimeMs`) and a
 *                          new refresh token; the one presented is void from then on
 *                          (invalid_grant), as the real endpoint rotates them
 *   anything else          the Messages API: a bearer that is a live access token is swapped for
 *                          the emulator's key and the request passed on (so the emulator counts
 *                          it); any other bearer is answered 401 "OAuth token has expired"
 *
 * The test can expire the current access token early (`expireNow`), refuse every refresh
 * (`refuseAll`), and issue a credential out of band (`issue`, an operator's fresh login).
 */
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IssuedCredential {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresAt: number;
}

export interface RefreshRecord {
  readonly atMs: number;
  /** Whether the access token of the chain presented was still live: a refresh before expiry. */
  readonly beforeExpiry: boolean;
  readonly outcome: 'ok' | 'invalid_grant';
}

const expiredBody = JSON.stringify({
  type: 'error',
  error: { type: 'authentication_error', message: 'OAuth token has expired. Please obtain a new token or refresh your existing token.' },
});

export class FakeOAuthUpstream {
  readonly refreshes: RefreshRecord[] = [];
  /** Every token ever issued, to check that none leaks. */
  readonly issuedTokens: string[] = [];
  /** Bearer tokens of the Messages API calls, in order. */
  readonly bearers: string[] = [];
  refuseAll = false;
  private counter = 0;
  private readonly access = new Map<string, { expiresAt: number; refreshToken: string }>();
  private readonly refresh = new Map<string, string>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly lifetimeMs: number,
  ) {}

  static async start(emulatorUrl: string, emulatorKey: string, lifetimeMs: number): Promise<FakeOAuthUpstream> {
    const holder: { fake?: FakeOAuthUpstream } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => holder.fake?.handle(req.method ?? 'GET', req.url ?? '/', req.headers, Buffer.concat(chunks), res, emulatorUrl, emulatorKey));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fake = new FakeOAuthUpstream(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, lifetimeMs);
    holder.fake = fake;
    return fake;
  }

  /** A new chain, as an operator's fresh login would give. */
  issue(): IssuedCredential {
    this.counter++;
    const accessToken = `sk-ant-oat01-fake-access-${this.counter}-${Math.random().toString(36).slice(2)}`;
    const refreshToken = `sk-ant-ort01-fake-refresh-${this.counter}-${Math.random().toString(36).slice(2)}`;
    const expiresAt = Date.now() + this.lifetimeMs;
    this.access.set(accessToken, { expiresAt, refreshToken });
    this.refresh.set(refreshToken, accessToken);
    this.issuedTokens.push(accessToken, refreshToken);
    return { accessToken, refreshToken, expiresAt };
  }

  /** Expires every access token issued so far (the next call with one meets a 401). */
  expireNow(): void {
    for (const entry of this.access.values()) entry.expiresAt = Math.min(entry.expiresAt, Date.now() - 1);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(
    method: string,
    url: string,
    headers: Record<string, string | string[] | undefined>,
    body: Buffer,
    res: ServerResponse,
    emulatorUrl: string,
    emulatorKey: string,
  ): void {
    if (method === 'POST' && url === '/v1/oauth/token') {
      this.token(body, res);
      return;
    }
    const bearer = /^Bearer (.+)$/.exec(String(headers.authorization ?? ''))?.[1];
    const entry = bearer === undefined ? undefined : this.access.get(bearer);
    if (bearer !== undefined) this.bearers.push(bearer);
    if (entry === undefined || entry.expiresAt <= Date.now()) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(expiredBody);
      return;
    }
    const forwarded = { ...headers, authorization: `Bearer ${emulatorKey}`, host: new URL(emulatorUrl).host };
    const upstream = httpRequest(`${emulatorUrl}${url}`, { method, headers: forwarded }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  }

  private token(body: Buffer, res: ServerResponse): void {
    const fields = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const presented = String(fields.refresh_token);
    const access = this.refresh.get(presented);
    const beforeExpiry = access !== undefined && (this.access.get(access)?.expiresAt ?? 0) > Date.now();
    if (this.refuseAll || access === undefined || fields.grant_type !== 'refresh_token' || fields.client_id !== '9d1c250a-e61b-44d9-88ed-5944d1962f5e') {
      this.refreshes.push({ atMs: Date.now(), beforeExpiry, outcome: 'invalid_grant' });
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: 'Invalid refresh token' }));
      return;
    }
    // Rotation: the presented refresh token is void once answered.
    this.refresh.delete(presented);
    const next = this.issue();
    this.refreshes.push({ atMs: Date.now(), beforeExpiry, outcome: 'ok' });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ access_token: next.accessToken, refresh_token: next.refreshToken, expires_in: this.lifetimeMs / 1000, token_type: 'Bearer' }));
  }
}
