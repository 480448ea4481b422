// Proves the refresher: a renewable credential is refreshed `refreshLeadMs` before it expires,
// one refresh runs per account however many callers ask, passing failures back off (bounded) and
// heal, a refusal disables the account with its reason and counts it, the rotated token is kept
// before it is used, and a replacement during a refresh wins over that refresh's answer.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { AccountId } from '../../../src/core/ids.js';
import { err, ok, type Result } from '../../../src/core/result.js';
import { oauthRefreshBackoffMsMax, oauthRefreshBackoffMsMin } from '../../../src/core/limits.js';
import type { StoredCredentialRow } from '../../../src/ledger/sqlite-store.js';
import type { DisableReason } from '../../../src/pool/account-health.js';
import { AccountCredentials } from '../../../src/node/credentials/account-credentials.js';
import { CredentialVault } from '../../../src/node/credentials/credential-vault.js';
import { backoffMs, refreshDelayMs } from '../../../src/node/credentials/refresh-schedule.js';
import type { OAuthCredential } from '../../../src/node/credentials/oauth-credential.js';
import type { RefreshFailure, TokenEndpoint } from '../../../src/node/credentials/token-endpoint.js';
import type { SourcedCredential } from '../../../src/node/gateway/upstream-targets.js';

const acct = 'acct-1' as AccountId;
const leadMs = 1_000;
const start = 1_000_000;

/** A token endpoint the test answers by hand: each refresh waits until the test settles it. */
class FakeEndpoint implements TokenEndpoint {
  readonly calls: string[] = [];
  private pending: ((answer: Result<OAuthCredential, RefreshFailure>) => void)[] = [];

  refresh(refreshToken: string): Promise<Result<OAuthCredential, RefreshFailure>> {
    this.calls.push(refreshToken);
    return new Promise((resolve) => this.pending.push(resolve));
  }

  answer(answer: Result<OAuthCredential, RefreshFailure>): void {
    const next = this.pending.shift();
    if (next === undefined) throw new Error('no refresh is waiting');
    next(answer);
  }

  get waiting(): number {
    return this.pending.length;
  }
}

class MemoryTable {
  readonly rows = new Map<string, StoredCredentialRow>();
  readonly writes: string[] = [];
  putCredential(row: StoredCredentialRow): { ok: true; value: undefined } {
    this.rows.set(row.account, row);
    this.writes.push(row.json);
    return { ok: true, value: undefined };
  }
  credential(account: string): { ok: true; value: StoredCredentialRow | undefined } {
    return { ok: true, value: this.rows.get(account) };
  }
}

let clock: ManualClock;
let endpoint: FakeEndpoint;
let table: MemoryTable;
let disabled: { id: AccountId; reason: DisableReason }[];
let enabled: AccountId[];
let logs: string[];

const credential = (n: number, expiresAtMs: number): OAuthCredential => ({ accessToken: `access-${n}`, refreshToken: `refresh-${n}`, expiresAtMs });
const sourced = (c: OAuthCredential): SourcedCredential => ({ held: { kind: 'oauth', credential: c }, fromEnv: true });

function startCredentials(initial: OAuthCredential): AccountCredentials {
  const started = AccountCredentials.start(
    {
      baseUrl: 'http://upstream.test',
      refreshLeadMs: leadMs,
      endpoint,
      vault: new CredentialVault(table, () => clock.nowMs()),
      pool: {
        disable: (id, reason) => {
          disabled.push({ id, reason });
          return undefined;
        },
        enable: (id) => {
          enabled.push(id);
          return true;
        },
      },
      clock,
      timers: { start: (callback, delayMs) => setTimeout(callback, delayMs), cancel: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>) },
      log: (line) => logs.push(line),
    },
    new Map([[acct, sourced(initial)]]),
  );
  if (!started.ok) throw new Error(started.error);
  return started.value;
}

/** Advances the fake timers and the clock together, then lets promises settle. */
async function advance(ms: number): Promise<void> {
  clock.advance(ms);
  await vi.advanceTimersByTimeAsync(ms);
}

beforeEach(() => {
  vi.useFakeTimers();
  clock = new ManualClock(start);
  endpoint = new FakeEndpoint();
  table = new MemoryTable();
  disabled = [];
  enabled = [];
  logs = [];
});
afterEach(() => vi.useRealTimers());

describe('refresh schedule', () => {
  it('refreshes the lead time before expiry, at once when that is past, and backs off doubling to the cap', () => {
    expect(refreshDelayMs(start + 10_000, start, leadMs, 0)).toBe(9_000);
    expect(refreshDelayMs(start + 500, start, leadMs, 0)).toBe(0);
    expect([1, 2, 3].map(backoffMs)).toEqual([oauthRefreshBackoffMsMin, 2 * oauthRefreshBackoffMsMin, 4 * oauthRefreshBackoffMsMin]);
    expect(backoffMs(40)).toBe(oauthRefreshBackoffMsMax);
    // While the token lives, a retry is never later than its expiry; after, the plain backoff.
    expect(refreshDelayMs(start + 2_000, start, leadMs, 20)).toBe(2_000);
    expect(refreshDelayMs(start - 5_000, start, leadMs, 20)).toBe(oauthRefreshBackoffMsMax);
  });
});

describe('AccountCredentials', () => {
  it('refreshes before expiry, keeps the rotated token before using it, and schedules the next one', async () => {
    const credentials = startCredentials(credential(1, start + 10_000));
    const target = credentials.target(acct);
    expect(target?.credential).toEqual({ kind: 'oauth', token: 'access-1' });
    await advance(8_999);
    expect(endpoint.calls).toEqual([]);
    await advance(1);
    expect(endpoint.calls).toEqual(['refresh-1']);
    endpoint.answer(ok(credential(2, clock.nowMs() + 10_000)));
    await vi.advanceTimersByTimeAsync(0);
    // The same target object now carries the new token, and the store had it first.
    expect(target?.credential).toEqual({ kind: 'oauth', token: 'access-2' });
    expect(table.writes.map((json) => JSON.parse(json) as unknown)).toEqual([
      { accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: clock.nowMs() + 10_000 },
    ]);
    expect(credentials.stats.refreshes.get(acct)).toEqual({ ok: 1, transient: 0, refused: 0 });
    await advance(9_000);
    expect(endpoint.calls).toEqual(['refresh-1', 'refresh-2']);
    credentials.close();
  });

  it('runs one refresh for many concurrent callers, and answers a caller whose stale token was renewed since at once', async () => {
    const credentials = startCredentials(credential(1, start + 3_600_000));
    const callers = Array.from({ length: 50 }, () => credentials.refresh(acct, 'access-1'));
    expect(endpoint.calls).toEqual(['refresh-1']);
    endpoint.answer(ok(credential(2, start + 7_200_000)));
    const outcomes = await Promise.all(callers);
    expect(outcomes.every((outcome) => outcome.kind === 'renewed')).toBe(true);
    // A late caller that saw the old token does not refresh again.
    expect(await credentials.refresh(acct, 'access-1')).toEqual({ kind: 'renewed' });
    expect(endpoint.calls).toEqual(['refresh-1']);
    credentials.close();
  });

  it('retries passing failures with a doubling backoff and heals', async () => {
    const credentials = startCredentials(credential(1, start + 600_000));
    void credentials.refresh(acct);
    endpoint.answer(err({ kind: 'transient', detail: 'the token endpoint answered 503' }));
    await vi.advanceTimersByTimeAsync(0);
    await advance(oauthRefreshBackoffMsMin - 1);
    expect(endpoint.calls).toHaveLength(1);
    await advance(1);
    expect(endpoint.calls).toHaveLength(2);
    endpoint.answer(err({ kind: 'transient', detail: 'the token endpoint could not be reached (TypeError)' }));
    await vi.advanceTimersByTimeAsync(0);
    await advance(2 * oauthRefreshBackoffMsMin - 1);
    expect(endpoint.calls).toHaveLength(2);
    await advance(1);
    expect(endpoint.calls).toHaveLength(3);
    endpoint.answer(ok(credential(2, clock.nowMs() + 600_000)));
    await vi.advanceTimersByTimeAsync(0);
    expect(credentials.stats.refreshes.get(acct)).toEqual({ ok: 1, transient: 2, refused: 0 });
    expect(disabled).toEqual([]);
    expect(credentials.target(acct)?.credential).toEqual({ kind: 'oauth', token: 'access-2' });
    credentials.close();
  });

  it('disables the account on a refusal, with the reason, a count and a log line without any token, and stops trying', async () => {
    const credentials = startCredentials(credential(1, start + 5_000));
    await advance(4_000);
    endpoint.answer(err({ kind: 'refused', status: 400, code: 'invalid_grant' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(disabled).toEqual([{ id: acct, reason: { kind: 'credential', detail: 'refresh refused: invalid_grant' } }]);
    expect(credentials.refusedCount()).toBe(1);
    expect(credentials.stats.refreshes.get(acct)).toEqual({ ok: 0, transient: 0, refused: 1 });
    await advance(3_600_000);
    expect(endpoint.calls).toEqual(['refresh-1']);
    expect(logs.join('\n')).toContain('refresh refused: invalid_grant');
    expect(logs.join('\n')).not.toMatch(/access-1|refresh-1/);
    // A new credential (SIGHUP) enables the account again and starts over.
    expect(credentials.reload(new Map([[acct, sourced(credential(9, clock.nowMs() + 5_000))]]))).toEqual({ changed: [acct], removed: [] });
    expect(enabled).toEqual([acct]);
    expect(credentials.refusedCount()).toBe(0);
    await advance(4_000);
    expect(endpoint.calls).toEqual(['refresh-1', 'refresh-9']);
    credentials.close();
  });

  it('drops the answer of a refresh that a replacement overtook', async () => {
    const credentials = startCredentials(credential(1, start + 3_600_000));
    const refreshing = credentials.refresh(acct);
    expect(await credentials.replace(acct, { kind: 'oauth', credential: credential(5, start + 3_600_000) })).toEqual({ ok: true, value: 'store' });
    endpoint.answer(ok(credential(2, start + 7_200_000)));
    expect((await refreshing).kind).toBe('failed');
    expect(credentials.target(acct)?.credential).toEqual({ kind: 'oauth', token: 'access-5' });
    credentials.close();
  });

  it('starts from the stored credential while the configuration holds what it came from, and from the configuration once it changes', () => {
    // What a refresh would have kept: the rotated credential, with the fingerprint of refresh-1.
    const vault = new CredentialVault(table, () => clock.nowMs());
    table.putCredential({
      account: acct,
      kind: 'oauth',
      json: JSON.stringify({ accessToken: 'access-2', refreshToken: 'refresh-2', expiresAt: start + 7_200_000 }),
      origin: fingerprint(credential(1, 0)),
      updatedMs: start,
    });
    const kept = vault.initial(acct, sourced(credential(1, start + 3_600_000)));
    expect(kept.ok && kept.value?.held).toEqual({ kind: 'oauth', credential: credential(2, start + 7_200_000) });
    const pasted = vault.initial(acct, sourced(credential(7, start + 3_600_000)));
    expect(pasted.ok && pasted.value?.held).toEqual({ kind: 'oauth', credential: credential(7, start + 3_600_000) });
  });
});

function fingerprint(c: OAuthCredential): string {
  const vault = new CredentialVault(undefined, () => 0);
  const entry = vault.initial(acct, sourced(c));
  if (!entry.ok || entry.value === undefined) throw new Error('no entry');
  return entry.value.origin;
}
