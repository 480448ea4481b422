import type { Clock } from '../../core/clock.js';
import type { AccountId } from '../../core/ids.js';
import { err, ok, type Result } from '../../core/result.js';
import type { DisableReason } from '../../pool/account-health.js';
import type { FeedbackReport } from '../../pool/account-pool.js';
import type { Timers } from '../../upstream/call-guard.js';
import type { Credential, UpstreamTarget } from '../../upstream/upstream-request.js';
import type { SourcedCredential } from '../gateway/upstream-targets.js';
import { type CredentialVault, type KeptIn, type VaultEntry } from './credential-vault.js';
import { fingerprintOf, type HeldCredential, upstreamCredentialOf } from './held-credential.js';
import { refreshDelayMs } from './refresh-schedule.js';
import type { RefreshFailure, TokenEndpoint } from './token-endpoint.js';

/**
 * The credentials of the accounts this node calls (it is their home region's node), and the
 * renewal of the OAuth ones.
 *
 * Targets. `target(id)` gives one object per account for the node's life; its `credential` is
 * read at each call, so a call always goes out with the access token held now, and the routes and
 * callers that keep a target never hold a stale token.
 *
 * Renewal of a renewable OAuth credential (held-credential.ts `oauth`):
 *   1. a timer fires `refreshLeadMs` before the access token expires (refresh-schedule.ts);
 *   2. one refresh per account runs at a time: the timer, a call that met a 401 "token expired"
 *      (./credentialed-client.ts) and any other caller await the same promise. A caller that
 *      names the access token it found stale gets the current one at once if it was renewed since;
 *   3. the answer's rotated refresh token is kept (./credential-vault.ts: the store or the file)
 *      before the new access token is used. The old refresh token is void by then, so a write
 *      that fails is logged loudly and the credential used from memory all the same;
 *   4. a passing failure (network, 5xx, 429) is retried with a bounded backoff; a refusal
 *      (`invalid_grant`, any 400/401/403) disables the account in the pool with the reason
 *      `refresh refused: <code>`, counts it and logs it. No timer runs for it after that; a new
 *      credential (admin call, SIGHUP) starts over.
 *
 * Replacing. `replace` (the admin call) and `reload` (SIGHUP) swap an account's credential;
 * `reload` also enables an account this refresher had disabled (the admin call does that itself,
 * for any credential reason, and says so in its answer). A
 * refresh in flight at that moment finishes but its answer is dropped: each swap starts a new
 * generation, and only an answer of the current generation is taken.
 *
 * Secrets never leave: log lines, results and stats carry account ids, outcomes and codes only.
 */
export interface AccountCredentialsOptions {
  readonly baseUrl: string;
  readonly refreshLeadMs: number;
  readonly endpoint: TokenEndpoint;
  readonly vault: CredentialVault;
  /** Where a refused refresh disables the account. */
  readonly pool: {
    disable(accountId: AccountId, reason: DisableReason, nowMs: number): FeedbackReport | undefined;
    enable(accountId: AccountId, nowMs: number): boolean;
  };
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: (line: string) => void;
  /** Told when a refusal disabled the account (the node logs the alert as for any other). */
  readonly onAlert?: (report: FeedbackReport) => void;
}

export type RefreshOutcome =
  | { readonly kind: 'renewed' }
  | { readonly kind: 'failed'; readonly detail: string }
  | { readonly kind: 'refused'; readonly detail: string }
  | { readonly kind: 'not-renewable' };

export const refreshOutcomes = ['ok', 'transient', 'refused'] as const;
export type RefreshOutcomeLabel = (typeof refreshOutcomes)[number];

/** Counts for the metrics binding; labelled by configured account ids, a bounded set. */
export class CredentialStats {
  readonly refreshes = new Map<AccountId, Record<RefreshOutcomeLabel, number>>();

  count(accountId: AccountId, outcome: RefreshOutcomeLabel): void {
    let counts = this.refreshes.get(accountId);
    if (counts === undefined) {
      counts = { ok: 0, transient: 0, refused: 0 };
      this.refreshes.set(accountId, counts);
    }
    counts[outcome]++;
  }
}

/** An account's target: its credential read from the entry at each call. */
class LiveTarget implements UpstreamTarget {
  constructor(
    readonly baseUrl: string,
    private readonly entry: { readonly credential: Credential },
  ) {}

  get credential(): Credential {
    return this.entry.credential;
  }
}

class Entry {
  credential: Credential;
  generation = 0;
  inflight: Promise<RefreshOutcome> | undefined = undefined;
  timer: unknown = undefined;
  failures = 0;
  refused = false;
  readonly target: UpstreamTarget;

  constructor(
    readonly accountId: AccountId,
    public vault: VaultEntry,
    baseUrl: string,
  ) {
    this.credential = upstreamCredentialOf(vault.held);
    this.target = new LiveTarget(baseUrl, this);
  }

  set(vault: VaultEntry): void {
    this.vault = vault;
    this.credential = upstreamCredentialOf(vault.held);
  }
}

export class AccountCredentials {
  readonly stats = new CredentialStats();
  private readonly entries = new Map<AccountId, Entry>();
  private readonly targetAccounts = new WeakMap<UpstreamTarget, AccountId>();
  private closed = false;

  private constructor(private readonly options: AccountCredentialsOptions) {}

  /**
   * The credentials to start from (the configured ones, or what the vault kept of them), each
   * renewable one scheduled. Refreshes that are due already start at once.
   */
  static start(options: AccountCredentialsOptions, configured: ReadonlyMap<AccountId, SourcedCredential>): Result<AccountCredentials, string> {
    const credentials = new AccountCredentials(options);
    for (const [id, sourced] of configured) {
      const initial = options.vault.initial(id, sourced);
      if (!initial.ok) return err(`upstream.accounts.${id}: ${initial.error}`);
      if (initial.value !== undefined) credentials.add(id, initial.value);
    }
    return ok(credentials);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The account's target, one object for the node's life; undefined without a credential. */
  target(accountId: AccountId): UpstreamTarget | undefined {
    return this.entries.get(accountId)?.target;
  }

  /** The account a target of `target()` belongs to. */
  accountOf(target: UpstreamTarget): AccountId | undefined {
    return this.targetAccounts.get(target);
  }

  /** Whether the account's credential can be renewed. */
  renewable(accountId: AccountId): boolean {
    return this.entries.get(accountId)?.vault.held.kind === 'oauth';
  }

  /** Accounts whose renewal was refused and that got no new credential since: the alert gauge. */
  refusedCount(): number {
    let count = 0;
    for (const entry of this.entries.values()) if (entry.refused) count++;
    return count;
  }

  /**
   * Renews the account's access token, or joins the renewal in flight. With `staleToken` (the
   * access token a call found expired), a credential renewed since is answered at once.
   */
  refresh(accountId: AccountId, staleToken?: string): Promise<RefreshOutcome> {
    const entry = this.entries.get(accountId);
    if (entry === undefined || entry.vault.held.kind !== 'oauth') return Promise.resolve({ kind: 'not-renewable' });
    if (entry.inflight !== undefined) return entry.inflight;
    if (staleToken !== undefined && entry.vault.held.credential.accessToken !== staleToken) return Promise.resolve({ kind: 'renewed' });
    this.options.timers.cancel(entry.timer);
    entry.timer = undefined;
    const inflight = this.renew(entry).finally(() => {
      if (entry.inflight === inflight) entry.inflight = undefined;
    });
    entry.inflight = inflight;
    return inflight;
  }

  /**
   * Puts a new credential in place for the account (an operator's), kept where this node keeps
   * credentials. The account's refusal, if any, is forgotten and its schedule starts over.
   */
  async replace(accountId: AccountId, held: HeldCredential, origin?: string): Promise<Result<KeptIn, string>> {
    const existing = this.entries.get(accountId);
    const vault: VaultEntry = {
      held,
      origin: origin ?? existing?.vault.origin ?? fingerprintOf(undefined),
      ...(existing?.vault.file === undefined ? {} : { file: existing.vault.file }),
    };
    const kept = await this.options.vault.keep(accountId, vault);
    if (!kept.ok) return kept;
    const entry = existing ?? this.add(accountId, vault);
    this.swap(entry, kept.value.kept === 'file' ? { ...vault, origin: fingerprintOf(held), file: kept.value.file } : vault);
    return ok(kept.value.kept);
  }

  /**
   * SIGHUP: the configuration's credentials read again. An account whose configured credential
   * changed takes it; one whose configuration still holds what its credential descends from keeps
   * the credential it has (renewed since, perhaps); new accounts are added, and accounts no longer
   * configured are dropped unless an operator gave them their credential.
   */
  reload(configured: ReadonlyMap<AccountId, SourcedCredential>): { readonly changed: AccountId[]; readonly removed: AccountId[] } {
    const changed: AccountId[] = [];
    const removed: AccountId[] = [];
    for (const [id, sourced] of configured) {
      const origin = fingerprintOf(sourced.held);
      const entry = this.entries.get(id);
      const vault: VaultEntry = { held: sourced.held, origin, ...(sourced.file === undefined ? {} : { file: sourced.file }) };
      if (entry === undefined) {
        this.add(id, vault);
        changed.push(id);
      } else if (entry.vault.origin !== origin) {
        // The refresher disabled the account for the credential just replaced: the new one gets its chance.
        if (entry.refused) this.options.pool.enable(id, this.options.clock.nowMs());
        this.swap(entry, vault);
        changed.push(id);
      }
    }
    for (const [id, entry] of this.entries) {
      if (configured.has(id) || entry.vault.origin === fingerprintOf(undefined)) continue;
      this.options.timers.cancel(entry.timer);
      entry.generation++;
      this.entries.delete(id);
      removed.push(id);
    }
    return { changed, removed };
  }

  /** Stops every timer; refreshes in flight finish, and their answers are dropped. */
  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) {
      this.options.timers.cancel(entry.timer);
      entry.timer = undefined;
      entry.generation++;
    }
  }

  private add(accountId: AccountId, vault: VaultEntry): Entry {
    const entry = new Entry(accountId, vault, this.options.baseUrl);
    this.entries.set(accountId, entry);
    this.targetAccounts.set(entry.target, accountId);
    this.schedule(entry);
    return entry;
  }

  private swap(entry: Entry, vault: VaultEntry): void {
    entry.generation++;
    entry.failures = 0;
    entry.refused = false;
    entry.set(vault);
    this.schedule(entry);
  }

  private schedule(entry: Entry): void {
    this.options.timers.cancel(entry.timer);
    entry.timer = undefined;
    const held = entry.vault.held;
    if (this.closed || held.kind !== 'oauth' || entry.refused) return;
    const nowMs = this.options.clock.nowMs();
    const delayMs = refreshDelayMs(held.credential.expiresAtMs, nowMs, this.options.refreshLeadMs, entry.failures);
    // setTimeout holds at most 2^31 - 1 ms (24.8 days); a longer wait is taken in steps.
    const stepMs = Math.min(delayMs, 2_147_483_647);
    const dueMs = nowMs + delayMs;
    entry.timer = this.options.timers.start(() => {
      entry.timer = undefined;
      if (this.options.clock.nowMs() < dueMs && stepMs < delayMs) this.schedule(entry);
      else void this.refresh(entry.accountId);
    }, stepMs);
    (entry.timer as { unref?: () => void } | undefined)?.unref?.();
  }

  private async renew(entry: Entry): Promise<RefreshOutcome> {
    const held = entry.vault.held;
    if (held.kind !== 'oauth') return { kind: 'not-renewable' };
    const generation = entry.generation;
    const answer = await this.options.endpoint.refresh(held.credential.refreshToken);
    // Replaced (or closed) while the request ran: the answer is for a credential no longer held.
    if (generation !== entry.generation || this.entries.get(entry.accountId) !== entry)
      return { kind: 'failed', detail: 'the credential was replaced during the refresh' };
    if (!answer.ok) return this.failed(entry, answer.error);
    const renewed: VaultEntry = { ...entry.vault, held: { kind: 'oauth', credential: answer.value } };
    const kept = await this.options.vault.keep(entry.accountId, renewed);
    if (!kept.ok) {
      this.options.log(
        `account ${entry.accountId}: the renewed credential could not be kept (${kept.error}); it is used from memory, and a restart will need a new credential`,
      );
    }
    if (generation !== entry.generation) return { kind: 'failed', detail: 'the credential was replaced during the refresh' };
    entry.failures = 0;
    entry.set(kept.ok && kept.value.kept === 'file' ? { ...renewed, origin: fingerprintOf(renewed.held), file: kept.value.file } : renewed);
    this.stats.count(entry.accountId, 'ok');
    this.schedule(entry);
    return { kind: 'renewed' };
  }

  private failed(entry: Entry, failure: RefreshFailure): RefreshOutcome {
    if (failure.kind === 'transient') {
      entry.failures++;
      this.stats.count(entry.accountId, 'transient');
      this.options.log(`account ${entry.accountId}: credential refresh failed (${failure.detail}); retry ${entry.failures} follows`);
      this.schedule(entry);
      return { kind: 'failed', detail: failure.detail };
    }
    const detail = `refresh refused: ${failure.code}`;
    entry.refused = true;
    this.stats.count(entry.accountId, 'refused');
    this.options.log(
      `account ${entry.accountId}: credential ${detail} (HTTP ${failure.status}); the account is disabled until its credential is replaced (PUT /pool/accounts/${entry.accountId}/credential, or a new one in its file and SIGHUP)`,
    );
    const report = this.options.pool.disable(entry.accountId, { kind: 'credential', detail }, this.options.clock.nowMs());
    if (report?.alert !== undefined) this.options.onAlert?.(report);
    return { kind: 'refused', detail };
  }
}
