import { assert } from '../core/assert.js';
import type { AccountId, NodeId, RegionId, TenantId } from '../core/ids.js';
import { noAccountRetryAfterMsMin, policyAccountsMax, probeOutRetryAfterMs, sharedPauseNewsMs } from '../core/limits.js';
import type { Random } from '../core/random.js';
import { err, ok, type Result } from '../core/result.js';
import type { Account, AccountKind } from '../mesh/policy/policy-schema.js';
import type { AccountFeedback, UnifiedLimits } from './account-feedback.js';
import { unifiedWindowNames } from './account-feedback.js';
import {
  AccountHealth,
  defaultHealthTimings,
  type DisableReason,
  disableReasonText,
  type HealthChange,
  type HealthState,
  healthStates,
  type HealthTimings,
} from './account-health.js';
import { type HealthRecord, HealthRegister, type SharedHealth } from './health-register.js';
import { type AccountAmounts, type AccountRoom, noAccountAmounts } from './account-usage.js';
import {
  type CancelOutcome,
  type Permit,
  type PermitError,
  type PermitEvent,
  PermitTable,
  type PermitTableOptions,
  type PermitView,
  type WaiterId,
} from './permits.js';
import { type BaseStrategyName, baseStrategyNames, type Candidate, headroomOf, Selector } from './strategies.js';
import { stableHash } from './stable-hash.js';

/**
 * The carpool: this node's view of the upstream accounts, which one a request should use, the
 * permits that cap each account's concurrency, and each account's health.
 *
 * Picking an account, in order:
 *  1. Who may use it. An account with `dedicatedTenants` serves only those tenants (VIP
 *     isolation); a shared account serves anyone. A tenant that has dedicated accounts uses
 *     them first and spills to the shared ones only when none of its own can take the request
 *     (unless `vipSpillToShared` is off, for tenants that must never share an account). A
 *     shared tenant never touches a dedicated account: isolation that gave way under load would
 *     be no isolation, while spilling a VIP onto the shared pool only costs the shared tenants
 *     what any busy tenant would.
 *  2. Where it lives. With `localRegion`, accounts homed there come before accounts that need a
 *     forward to their home region (DESIGN.md §6), within each of the tiers above. So the
 *     tiers are: dedicated local, dedicated remote, shared local, shared remote.
 *  3. Whether it can serve: not tried by this request before, a non-zero cap, healthy (or
 *     half-open with its probe free), and quota room for the request's estimate in the mesh's
 *     view of the account's limits (`AccountRoom`).
 *  4. Capacity. The first tier with an eligible account that has a free permit wins, and the
 *     strategy picks among its accounts with free permits (sticky: the rendezvous winner, so a
 *     session spills over only while its pinned account is full, paused or out of room). When
 *     every eligible account is full, the request queues (if its deadline allows) on the one
 *     the strategy picks among the first tier's eligible accounts; a half-open account takes
 *     its single probe and no queue.
 *  5. Nothing eligible: a typed `no-account` refusal whose retry hint is the earliest moment an
 *     account the tenant may use comes back (a cooldown's end, a quota window's turn), or none
 *     when only an operator can help (every account disabled or none configured).
 *
 * Waiting and outcomes follow ./permits.ts: `acquire` answers granted or queued; grants,
 * expiries and evictions of queued requests come out of `takeEvents()`. Waiters queue only on
 * healthy accounts, and an account that turns unhealthy evicts its waiters at once, so a
 * grant handed over by a release never sends a call into a paused account.
 *
 * Policy changes (`update`) keep the health and permits of accounts that remain: a changed cap
 * takes effect as permits drain or hands new permits to waiters, a changed dedication evicts
 * waiters of tenants no longer allowed, and a removed account stops being offered while the
 * calls it has in flight finish and release normally.
 */
export interface AccountPoolOptions {
  readonly random: Random;
  /** The strategy when a request has no session key (or the pool is not sticky). */
  readonly strategy?: BaseStrategyName;
  /** Whether session keys pin requests to accounts (rendezvous). */
  readonly sticky?: boolean;
  /** The accounts' own limits in the mesh counters; without it, quota room is not checked. */
  readonly room?: AccountRoom;
  /** Whether a tenant with dedicated accounts may spill onto shared ones. */
  readonly vipSpillToShared?: boolean;
  readonly permits?: PermitTableOptions;
  readonly timings?: HealthTimings;
  /**
   * This node, for the mesh-wide health register (./health-register.ts); without it health is
   * this node's own. The region decides which accounts are homed here: only their home region
   * publishes an account's pauses, and only it probes an account whose pause has ended.
   */
  readonly shared?: { readonly node: NodeId; readonly region: RegionId };
}

/** Which strategy and stickiness the pool uses, and its health timings; the policy's `settings.pool`. */
export interface PoolConfig {
  readonly strategy: BaseStrategyName;
  readonly sticky: boolean;
  readonly timings: HealthTimings;
}

/** See `AccountPool.capacity`. */
export interface PoolCapacity {
  /** Permits of the accounts that can serve now. */
  readonly permits: number;
  /** Calls holding a permit or waiting for one. */
  readonly busy: number;
  /** Accounts (with a non-zero cap) that cannot serve now. */
  readonly paused: number;
}

export interface AccountRequest {
  readonly tenant: TenantId;
  /** Absolute time until which the request may wait for a permit; at or before now: no waiting. */
  readonly deadlineMs: number;
  /** From `sessionKeyOf`; undefined for none. */
  readonly sessionKey?: string | undefined;
  /** Accounts this request already tried (`AttemptPlan.tried`). */
  readonly excluded?: ReadonlySet<AccountId> | undefined;
  /** Prefer accounts homed in this region. */
  readonly localRegion?: RegionId | undefined;
  /** What the call will at most take, for the accounts' quota room; none when omitted. */
  readonly estimate?: AccountAmounts | undefined;
  /** The tenant's own strategy (its policy override); the pool's when omitted. */
  readonly strategy?: BaseStrategyName | undefined;
}

export type AccountSelection =
  /** `probe`: the account is half-open and this call decides whether its circuit closes. */
  | { readonly kind: 'granted'; readonly permit: Permit; readonly account: Account; readonly probe: boolean }
  /** The outcome comes out of `takeEvents()` under `waiterId`; the call will go to `account`. */
  | { readonly kind: 'queued'; readonly waiterId: WaiterId; readonly account: Account };

export type PoolError =
  /** No account the tenant may use can serve now; `retryAfterMs` undefined when only an operator can help. */
  { readonly kind: 'no-account'; readonly retryAfterMs: number | undefined } | Exclude<PermitError, { readonly kind: 'unknown-account' }>;

/** What happened to an account on feedback: for metrics, logs and the operator's alert. */
export interface FeedbackReport extends HealthChange {
  readonly accountId: AccountId;
  /** Waiters sent elsewhere because the account stopped being healthy. */
  readonly evicted: number;
}

export interface AccountStatus {
  readonly id: AccountId;
  readonly kind: AccountKind;
  readonly homeRegion: RegionId;
  readonly state: HealthState;
  readonly inFlight: number;
  readonly queued: number;
  readonly concurrencyMax: number;
  readonly availableAtMs: number | undefined;
  readonly dedicated: boolean;
  /** Why the account is disabled, for the operator; undefined when it is not. */
  readonly disabledReason: string | undefined;
  readonly disabled: DisableReason | undefined;
  /** The mesh's last word on the account (./health-register.ts); undefined when none was heard. */
  readonly shared: SharedHealth | undefined;
  /** A subscription's windows as its last answer reported them; undefined for none. */
  readonly windows: UnifiedLimits | undefined;
}

/** What a forwarded call's home node decides before it calls an account homed here. */
export type ForwardAdmission = { readonly ok: true; readonly probe: boolean } | { readonly ok: false; readonly retryAfterMs: number | undefined };

/** Plain counters for the metrics binding. */
export class PoolStats {
  granted = 0;
  probes = 0;
  queued = 0;
  noAccount = 0;
  busy = 0;
  /** Grants of a VIP tenant's request to a shared account. */
  vipSpills = 0;
  /** Grants to an account homed outside the requested local region. */
  remoteGrants = 0;
  alerts = 0;
  /** Health records this node wrote to the mesh's register. */
  sharedWrites = 0;
  /** Forwarded calls the home node turned away because the account could not serve. */
  forwardsRefused = 0;
}

/**
 * An account as the pool holds it. It is its own strategy `Candidate`: the fields a strategy
 * reads are copied from the account at `update`, and the permit counts are refreshed from the
 * live `permits` view each time the entry is offered, so a pick builds no objects and looks
 * nothing up.
 */
interface Entry extends Candidate {
  account: Account;
  dedicated: ReadonlySet<TenantId> | undefined;
  readonly health: AccountHealth;
  /** Set by `update` once the account is in the permit table; see `PermitTable.view`. */
  permits: PermitView;
  weight: number;
  concurrencyMax: number;
  inFlight: number;
  queued: number;
  /** Per-ten of the subscription window left (./strategies.ts `headroomOf`); 10 when unknown. */
  headroom: number;
  /** The mesh's last word on the account; undefined when none was heard. */
  shared: SharedHealth | undefined;
  windows: UnifiedLimits | undefined;
}

/** Which accounts a tier offers the strategy: those with a free permit, or those a request may queue on. */
type Offer = 'grant' | 'queue';

/** Tier of an account for a tenant, lower first; undefined when the tenant may not use it. */
function tierOf(entry: Entry, tenant: TenantId, localRegion: RegionId | undefined): number | undefined {
  let tier = 0;
  if (entry.dedicated === undefined) tier += 2;
  else if (!entry.dedicated.has(tenant)) return undefined;
  if (localRegion !== undefined && entry.account.homeRegion !== localRegion) tier += 1;
  return tier;
}

/** What an entry sees before `update` has put its account in the permit table: no permits. */
const retiredView: PermitView = { max: 0, inFlight: 0, retired: true, waiters: { size: 0 } };

const tierCount = 4;
const sharedTierFirst = 2;

function sameTenants(a: ReadonlySet<TenantId> | undefined, b: ReadonlySet<TenantId> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && [...a].every((tenant) => b.has(tenant));
}

export class AccountPool {
  readonly stats = new PoolStats();
  sticky: boolean;
  readonly vipSpillToShared: boolean;
  /** The mesh-wide health register, when the pool has one; the mesh node replicates it. */
  readonly register: HealthRegister | undefined;

  private readonly entries = new Map<AccountId, Entry>();
  /**
   * The entries by who may use them, each list in `entries` order (which the strategies see, and
   * least loaded's tie-breaking depends on): shared accounts, and each VIP tenant's dedicated
   * ones. Rebuilt by `update`; bounded by the policy's accounts and their dedications.
   */
  private shared: Entry[] = [];
  private readonly dedicatedByTenant = new Map<TenantId, Entry[]>();
  /** The entries one tier offers the strategy: scratch reused by every `acquire`, at most the policy's accounts long. */
  private readonly offered: Entry[] = [];
  private readonly permits: PermitTable<TenantId>;
  /** One selector per strategy (each keeps its own cursor or credits), made when first used. */
  private readonly selectors = new Map<BaseStrategyName, Selector>();
  private strategy: BaseStrategyName;
  private timings: HealthTimings;
  private readonly random: Random;
  private readonly room: AccountRoom | undefined;
  private readonly region: RegionId | undefined;

  constructor(options: AccountPoolOptions) {
    this.random = options.random;
    this.sticky = options.sticky ?? true;
    this.vipSpillToShared = options.vipSpillToShared ?? true;
    this.room = options.room;
    this.permits = new PermitTable<TenantId>(options.permits);
    this.strategy = options.strategy ?? 'least-loaded';
    this.timings = options.timings ?? defaultHealthTimings;
    this.region = options.shared?.region;
    this.register =
      options.shared === undefined
        ? undefined
        : new HealthRegister(options.shared.node, options.shared.region, (record, nowMs) => this.onShared(record, nowMs));
  }

  /** The policy's pool settings: the default strategy and stickiness, and health timings for pauses decided from now on. */
  configure(config: PoolConfig): void {
    this.strategy = config.strategy;
    this.sticky = config.sticky;
    this.timings = config.timings;
    for (const entry of this.entries.values()) entry.health.configure(config.timings);
  }

  get defaultStrategy(): BaseStrategyName {
    return this.strategy;
  }

  // ---- Policy ----

  /** Makes the pool hold exactly `accounts` (the policy's), keeping the state of those that stay. */
  update(accounts: Iterable<Account>): void {
    const next = new Map<AccountId, Account>();
    for (const account of accounts) {
      next.set(account.id, account);
      assert(next.size <= policyAccountsMax, 'the pool holds the policy accounts');
    }
    for (const id of [...this.entries.keys()]) {
      if (next.has(id)) continue;
      this.entries.delete(id);
      this.permits.removeAccount(id);
      for (const selector of this.selectors.values()) selector.forget(id);
    }
    for (const account of next.values()) {
      const dedicated = account.dedicatedTenants === undefined || account.dedicatedTenants.length === 0 ? undefined : new Set(account.dedicatedTenants);
      const entry = this.entries.get(account.id);
      if (entry === undefined) {
        this.entries.set(account.id, {
          account,
          dedicated,
          health: new AccountHealth(this.random, this.timings),
          // A placeholder until the account is in the permit table, a few lines down.
          permits: retiredView,
          id: account.id,
          idHash: stableHash(account.id),
          weight: account.weight,
          concurrencyMax: account.concurrencyMax,
          inFlight: 0,
          queued: 0,
          headroom: headroomOf(undefined),
          // A record heard before the policy named the account applies from the start.
          shared: this.register?.get(account.id)?.health,
          windows: undefined,
        });
        continue;
      }
      entry.account = account;
      entry.weight = account.weight;
      entry.concurrencyMax = account.concurrencyMax;
      if (!sameTenants(entry.dedicated, dedicated)) {
        entry.dedicated = dedicated;
        this.permits.evict(account.id, (tenant) => dedicated !== undefined && !dedicated.has(tenant), 'not-allowed');
      }
    }
    if (!this.vipSpillToShared) {
      // A tenant that just got dedicated accounts must not be handed a shared one it queued for.
      const vipTenants = new Set<TenantId>();
      for (const entry of this.entries.values()) for (const tenant of entry.dedicated ?? []) vipTenants.add(tenant);
      for (const entry of this.entries.values()) {
        if (entry.dedicated === undefined) this.permits.evict(entry.account.id, (tenant) => vipTenants.has(tenant), 'not-allowed');
      }
    }
    // Caps last, once every waiter left is allowed: a raised cap hands permits to waiters.
    for (const account of next.values()) this.permits.setAccount(account.id, account.concurrencyMax);
    for (const entry of this.entries.values()) {
      const view = this.permits.view(entry.id);
      assert(view !== undefined, 'pool accounts are in the permit table');
      entry.permits = view;
    }
    this.shared = [];
    this.dedicatedByTenant.clear();
    for (const entry of this.entries.values()) {
      if (entry.dedicated === undefined) this.shared.push(entry);
      for (const tenant of entry.dedicated ?? []) {
        const own = this.dedicatedByTenant.get(tenant);
        if (own === undefined) this.dedicatedByTenant.set(tenant, [entry]);
        else own.push(entry);
      }
    }
    // Drops references to removed entries; the next acquire grows it again.
    this.offered.length = 0;
  }

  account(id: AccountId): Account | undefined {
    return this.entries.get(id)?.account;
  }

  get size(): number {
    return this.entries.size;
  }

  // ---- Requests ----

  /** Picks an account for a request and takes (or queues for) one of its permits; see the file comment. */
  acquire(request: AccountRequest, nowMs: number): Result<AccountSelection, PoolError> {
    assert(Number.isFinite(request.deadlineMs), 'a permit deadline is a finite time');
    const selector = this.selectorOf(request.strategy ?? this.strategy);
    const keyHash = this.sticky && request.sessionKey !== undefined ? stableHash(request.sessionKey) : undefined;
    const estimate = request.estimate ?? noAccountAmounts;
    const { room } = this;
    // Quota room is the one costly check (a read of the mesh counters per rule), so it is left
    // to the strategy, which asks it only about the accounts it would take, best first.
    const admits = room === undefined ? undefined : (entry: Entry): boolean => room.hasRoom(entry.account, estimate, nowMs).ok;
    const hasDedicated = this.dedicatedByTenant.has(request.tenant);
    const tiersUsed = hasDedicated && !this.vipSpillToShared ? sharedTierFirst : tierCount;

    for (let tier = 0; tier < tiersUsed; tier++) {
      const count = this.offer(tier, 'grant', request, nowMs);
      const chosen = selector.pickAdmitted(this.offered, count, keyHash, admits);
      if (chosen === undefined) continue;
      const acquired = this.permits.acquire(chosen.id, request.deadlineMs, request.tenant, nowMs);
      assert(acquired.ok && acquired.value.kind === 'granted', 'a permit the table can grant is granted');
      this.stats.granted++;
      const probe = chosen.health.isProbe(nowMs);
      if (probe) {
        chosen.health.beginProbe(nowMs);
        this.stats.probes++;
      }
      if (hasDedicated && tier >= sharedTierFirst) this.stats.vipSpills++;
      if (tier % 2 === 1) this.stats.remoteGrants++;
      return ok({ kind: 'granted', permit: acquired.value.permit, account: chosen.account, probe });
    }

    for (let tier = 0; tier < tiersUsed; tier++) {
      const count = this.offer(tier, 'queue', request, nowMs);
      const chosen = selector.pickAdmitted(this.offered, count, keyHash, admits);
      if (chosen === undefined) continue;
      const acquired = this.permits.acquire(chosen.id, request.deadlineMs, request.tenant, nowMs);
      if (!acquired.ok) {
        if (acquired.error.kind === 'busy') this.stats.busy++;
        assert(acquired.error.kind !== 'unknown-account', 'pool accounts are in the permit table');
        return err(acquired.error);
      }
      assert(acquired.value.kind === 'queued', 'an account without a free permit queues');
      this.stats.queued++;
      return ok({ kind: 'queued', waiterId: acquired.value.waiterId, account: chosen.account });
    }

    this.stats.noAccount++;
    const backAtMs = this.backAtMs(request, estimate, tiersUsed, nowMs);
    const retryAfterMs = Number.isFinite(backAtMs) ? Math.max(noAccountRetryAfterMsMin, backAtMs - nowMs) : undefined;
    return err({ kind: 'no-account', retryAfterMs });
  }

  /** Returns a permit after its call ended; see `PermitTable.release`. */
  release(permit: Permit): Result<undefined, { readonly kind: 'unknown-permit'; readonly permitId: Permit['id'] }> {
    return this.permits.release(permit.id);
  }

  /** Withdraws a queued request; see `PermitTable.cancel`. */
  cancel(waiterId: WaiterId): CancelOutcome {
    return this.permits.cancel(waiterId);
  }

  /** Expires waiters past their deadline. */
  tick(nowMs: number): void {
    this.permits.tick(nowMs);
  }

  /** Outcomes of queued requests since the last call; the context is the waiter's tenant. */
  takeEvents(): PermitEvent<TenantId>[] {
    return this.permits.takeEvents();
  }

  // ---- Health ----

  /**
   * Feeds one call's outcome to its account's health. Undefined for an account no longer in
   * the pool: its health is gone with it. At the account's home region, a change the rest of the
   * mesh must know (a pause, a disable, the end of one) is written to the shared register.
   */
  onFeedback(accountId: AccountId, feedback: AccountFeedback, nowMs: number): FeedbackReport | undefined {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return undefined;
    if ((feedback.kind === 'success' || feedback.kind === 'rate-limited') && feedback.rateLimits.unified !== undefined) {
      entry.windows = feedback.rateLimits.unified;
      entry.headroom = headroomOf(entry.windows);
    }
    const change = entry.health.onFeedback(feedback, nowMs);
    if (change.alert !== undefined) this.stats.alerts++;
    this.publish(entry, nowMs);
    const evicted = this.canServe(entry, nowMs) ? 0 : this.permits.evict(accountId, () => true, 'account-unavailable');
    return { ...change, accountId, evicted };
  }

  /**
   * Disables an account for a reason no call reported (a credential that cannot be renewed);
   * its waiters go elsewhere, and the whole mesh hears it. Undefined for an account not in the pool.
   */
  disable(accountId: AccountId, reason: DisableReason, nowMs: number): FeedbackReport | undefined {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return undefined;
    const change = entry.health.disable(reason, nowMs);
    if (change.alert !== undefined) this.stats.alerts++;
    this.write(entry, { kind: 'disabled', reason }, nowMs);
    const evicted = this.permits.evict(accountId, () => true, 'account-unavailable');
    return { ...change, accountId, evicted };
  }

  /**
   * Operator action: re-enables a disabled account, here and (through the register) in every
   * region, from whichever region it is called. Returns whether the account exists.
   */
  enable(accountId: AccountId, nowMs: number): boolean {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return false;
    entry.health.enable();
    this.write(entry, { kind: 'available' }, nowMs);
    return true;
  }

  /**
   * For the home node of a forwarded call: whether the account may take it now. The origin's pool
   * has decided on its own view; this is the home's, which alone grants the one probe of a
   * half-open account, so however many regions see a pause end, one call tests the upstream.
   */
  admitForward(accountId: AccountId, nowMs: number): ForwardAdmission {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return { ok: false, retryAfterMs: undefined };
    if (!this.canServe(entry, nowMs)) {
      this.stats.forwardsRefused++;
      // While the one probe is out the answer is seconds away, not the probe's timeout: the origin
      // asks again soon (and hears `available` through the register as soon as the probe succeeds).
      if (this.stateOf(entry, nowMs) === 'half-open') return { ok: false, retryAfterMs: probeOutRetryAfterMs };
      const atMs = this.availableAtMs(entry, nowMs);
      return { ok: false, retryAfterMs: atMs === undefined ? undefined : Math.max(noAccountRetryAfterMsMin, atMs - nowMs) };
    }
    const probe = entry.health.isProbe(nowMs);
    if (probe) {
      entry.health.beginProbe(nowMs);
      this.stats.probes++;
    }
    return { ok: true, probe };
  }

  /** Every account's state, in id order: for status pages and gauges. */
  status(nowMs: number): AccountStatus[] {
    const statuses: AccountStatus[] = [];
    for (const entry of this.entries.values()) {
      const { account } = entry;
      const reason = entry.shared?.kind === 'disabled' ? entry.shared.reason : entry.health.disabledReason;
      // (a disable of this node's own that the mesh has not yet heard still shows)
      statuses.push({
        id: account.id,
        kind: account.kind,
        homeRegion: account.homeRegion,
        state: this.stateOf(entry, nowMs),
        inFlight: this.permits.inFlight(account.id),
        queued: this.permits.queued(account.id),
        concurrencyMax: account.concurrencyMax,
        availableAtMs: this.availableAtMs(entry, nowMs),
        dedicated: entry.dedicated !== undefined,
        disabledReason: reason === undefined ? undefined : disableReasonText(reason),
        disabled: reason,
        shared: entry.shared,
        windows: entry.windows,
      });
    }
    return statuses.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Accounts per health state: a gauge with a bounded label set. */
  stateCounts(nowMs: number): Record<HealthState, number> {
    const counts = Object.fromEntries(healthStates.map((state) => [state, 0])) as Record<HealthState, number>;
    for (const entry of this.entries.values()) counts[this.stateOf(entry, nowMs)]++;
    return counts;
  }

  /** Permits held, waiters queued and outcomes undrained, across accounts: for leak checks and gauges. */
  /**
   * How short the pool is, for the degraded mode (src/schedule/degrade.ts): the permits of the
   * accounts that can serve now, the calls holding or waiting for one, and the accounts that
   * cannot serve (cooling down, circuit open, paused or disabled by the mesh). O(accounts).
   */
  capacity(nowMs: number): PoolCapacity {
    let permits = 0;
    let paused = 0;
    for (const entry of this.entries.values()) {
      if (entry.concurrencyMax === 0) continue;
      if (this.canServe(entry, nowMs)) permits += entry.concurrencyMax;
      else paused++;
    }
    return { permits, busy: this.permits.heldCount + this.permits.waitingCount, paused };
  }

  totals(): { readonly held: number; readonly waiting: number; readonly pendingEvents: number } {
    return { held: this.permits.heldCount, waiting: this.permits.waitingCount, pendingEvents: this.permits.pendingEvents };
  }

  // ---- Internals ----

  /**
   * Puts into `offered` the accounts of `tier` that could take the request now, quota room aside
   * (the strategy asks about that): allowed and in the tier, not tried by this request, a
   * non-zero cap, able to serve, and with a free permit (`grant`) or not a half-open probe
   * (`queue`). Returns how many, in `entries` order.
   */
  private offer(tier: number, purpose: Offer, request: AccountRequest, nowMs: number): number {
    const { localRegion, excluded } = request;
    const remote = tier % 2 === 1;
    if (remote && localRegion === undefined) return 0;
    const group = tier < sharedTierFirst ? this.dedicatedByTenant.get(request.tenant) : this.shared;
    if (group === undefined) return 0;
    let count = 0;
    for (const entry of group) {
      if (localRegion !== undefined && (entry.account.homeRegion !== localRegion) !== remote) continue;
      if (entry.concurrencyMax === 0 || excluded?.has(entry.id) === true || !this.canServe(entry, nowMs)) continue;
      if (purpose === 'grant' ? !this.permits.canGrantIn(entry.permits) : entry.health.isProbe(nowMs)) continue;
      entry.inFlight = entry.permits.inFlight;
      entry.queued = entry.permits.waiters.size;
      this.offered[count++] = entry;
    }
    return count;
  }

  /**
   * For a refusal: the earliest time an account the tenant may use in the tiers in use could
   * take the request, or ∞ when only an operator can help. A full scan, with every quota check,
   * as only a request that found nothing comes here.
   */
  private backAtMs(request: AccountRequest, estimate: AccountAmounts, tiersUsed: number, nowMs: number): number {
    let dedicatedBackAtMs = Infinity;
    let sharedBackAtMs = Infinity;
    // Bounded by the policy's accounts.
    for (const entry of this.entries.values()) {
      const tier = tierOf(entry, request.tenant, request.localRegion);
      if (tier === undefined) continue;
      let atMs = this.eligibleAtMs(entry, request.excluded, estimate, nowMs);
      if (atMs === nowMs && request.excluded?.has(entry.id) !== true) {
        // Eligible, yet neither granted nor queued: a half-open account whose permits are all
        // held by calls from before the circuit opened. It is back as soon as one of those ends.
        atMs = this.availableAtMs(entry, nowMs);
      }
      if (atMs === undefined) continue;
      if (tier < sharedTierFirst) dedicatedBackAtMs = Math.min(dedicatedBackAtMs, atMs);
      else sharedBackAtMs = Math.min(sharedBackAtMs, atMs);
    }
    return tiersUsed === tierCount ? Math.min(dedicatedBackAtMs, sharedBackAtMs) : dedicatedBackAtMs;
  }

  /**
   * When the account could take this request: `nowMs` if it can now (or could, were it not
   * excluded), a later time if it is paused or out of quota room until then, undefined if
   * waiting will not help (disabled, or a cap of zero).
   */
  private eligibleAtMs(entry: Entry, excluded: ReadonlySet<AccountId> | undefined, estimate: AccountAmounts, nowMs: number): number | undefined {
    const { account } = entry;
    if (account.concurrencyMax === 0) return undefined;
    // Paused, circuit open, or half-open with its probe out: back when that ends.
    const atMs = this.canServe(entry, nowMs) ? nowMs : this.availableAtMs(entry, nowMs);
    if (atMs === undefined) return undefined;
    assert(atMs >= nowMs, 'an account that cannot serve now is back later');
    if (excluded?.has(account.id) === true) return atMs;
    if (atMs > nowMs || this.room === undefined) return atMs;
    const room = this.room.hasRoom(account, estimate, nowMs);
    return room.ok ? nowMs : nowMs + room.error.retryAfterMs;
  }

  // ---- Shared health ----

  /** Whether a call may go to the account now: its own health and the mesh's word agree. */
  private canServe(entry: Entry, nowMs: number): boolean {
    return entry.health.canServe(nowMs) && sharedAllows(entry.shared, nowMs);
  }

  /** When the account can next take a call, by its own health and the mesh's word; undefined while disabled. */
  private availableAtMs(entry: Entry, nowMs: number): number | undefined {
    const own = entry.health.availableAtMs(nowMs);
    const { shared } = entry;
    if (own === undefined || shared?.kind === 'disabled') return undefined;
    return shared?.kind === 'paused' ? Math.max(own, shared.untilMs) : own;
  }

  /** The state shown for the account: the mesh's pause or disable while it lasts, else its own. */
  private stateOf(entry: Entry, nowMs: number): HealthState {
    const { shared } = entry;
    if (shared?.kind === 'disabled') return 'disabled';
    const own = entry.health.state(nowMs);
    if (shared?.kind === 'paused' && nowMs < shared.untilMs && own !== 'disabled') return shared.cause;
    return own;
  }

  /**
   * At the account's home region, tells the mesh what its health now says, when that differs
   * from the register's word: a pause (until when, and why), a disable, or the end of a pause
   * once the account served again. Elsewhere nothing is written: the home saw the same answer
   * (it made the call), and one writer per account keeps the register quiet.
   */
  private publish(entry: Entry, nowMs: number): void {
    if (this.register === undefined || entry.account.homeRegion !== this.region) return;
    const state = entry.health.state(nowMs);
    const { shared } = entry;
    switch (state) {
      case 'disabled': {
        const reason = entry.health.disabledReason;
        if (reason !== undefined && shared?.kind !== 'disabled') this.write(entry, { kind: 'disabled', reason }, nowMs);
        return;
      }
      case 'throttled':
      case 'exhausted':
      case 'overloaded':
      case 'circuit-open': {
        const untilMs = entry.health.availableAtMs(nowMs);
        if (untilMs === undefined) return;
        // The same pause heard again (every 429 of a burst) is not news; a longer one is.
        if (shared?.kind === 'paused' && shared.cause === state && untilMs - shared.untilMs < sharedPauseNewsMs) return;
        this.write(entry, { kind: 'paused', cause: state, untilMs }, nowMs);
        return;
      }
      case 'healthy':
        if (shared !== undefined && shared.kind !== 'available' && (shared.kind !== 'paused' || nowMs >= shared.untilMs))
          this.write(entry, { kind: 'available' }, nowMs);
        return;
      case 'half-open':
        return;
    }
  }

  private write(entry: Entry, health: SharedHealth, nowMs: number): void {
    if (this.register === undefined) return;
    this.register.write(entry.account.id, health, nowMs);
    this.stats.sharedWrites++;
  }

  /**
   * A record the register took (a peer's, or this node's own): the account follows it. `available`
   * (an operator's re-enable from any region, or the home's success after a pause) lifts what
   * this node had disabled or paused for itself; a pause or disable sends the account's waiters
   * elsewhere at once.
   */
  private onShared(record: HealthRecord, nowMs: number): void {
    const entry = this.entries.get(record.account);
    if (entry === undefined) return;
    entry.shared = record.health;
    // The home saw it serve after a pause, or an operator re-enabled it: what this node had paused
    // on its own view (a forwarded 429, the home turning calls away while its probe was out) ends.
    if (record.health.kind === 'available') entry.health.resume();
    if (!this.canServe(entry, nowMs)) this.permits.evict(entry.id, () => true, 'account-unavailable');
  }

  private selectorOf(strategy: BaseStrategyName): Selector {
    let selector = this.selectors.get(strategy);
    if (selector === undefined) {
      selector = new Selector(strategy, this.random);
      this.selectors.set(strategy, selector);
      assert(this.selectors.size <= baseStrategyNames.length, 'one selector per strategy');
    }
    return selector;
  }
}

/**
 * Whether the mesh's word lets a call go: a pause holds until its time (the home region's probe
 * decides after it: see `admitForward`), a disable until someone re-enables.
 */
function sharedAllows(shared: SharedHealth | undefined, nowMs: number): boolean {
  if (shared === undefined || shared.kind === 'available') return true;
  if (shared.kind === 'disabled') return false;
  return nowMs >= shared.untilMs;
}

/** The windows of a subscription as a status page lists them, for the metrics binding. */
export function windowUtilizations(status: AccountStatus): { readonly window: (typeof unifiedWindowNames)[number]; readonly utilization: number }[] {
  const out: { window: (typeof unifiedWindowNames)[number]; utilization: number }[] = [];
  for (const window of unifiedWindowNames) {
    const utilization = status.windows?.windows[window]?.utilization;
    if (utilization !== undefined) out.push({ window, utilization });
  }
  return out;
}
