// A reference model of AccountPool for ./account-pool.prop.test.ts: the pool as first written,
// before acquire was optimized, kept as the plain statement of what acquire decides. It scans
// every account on every request, builds a candidate object for each, checks quota room for all
// of them up front and hands the strategies filtered arrays. Only picking differs from that first
// version, in one place: least loaded breaks ties with a draw among the tied (dropping one
// without quota room and drawing again) rather than a reservoir pass; see ../../src/pool/strategies.ts.
import { assert } from '../../src/core/assert.js';
import type { AccountId, RegionId, TenantId } from '../../src/core/ids.js';
import { noAccountRetryAfterMsMin } from '../../src/core/limits.js';
import type { Random } from '../../src/core/random.js';
import { err, ok, type Result } from '../../src/core/result.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import type { AccountFeedback } from '../../src/pool/account-feedback.js';
import { AccountHealth, disableReasonText } from '../../src/pool/account-health.js';
import type { AccountPoolOptions, AccountRequest, AccountSelection, AccountStatus, FeedbackReport, PoolError } from '../../src/pool/account-pool.js';
import { PoolStats } from '../../src/pool/account-pool.js';
import { type AccountRoom, noAccountAmounts } from '../../src/pool/account-usage.js';
import { type CancelOutcome, type Permit, type PermitEvent, PermitTable, type WaiterId } from '../../src/pool/permits.js';
import type { BaseStrategyName } from '../../src/pool/strategies.js';
import { mix32, stableHash } from '../../src/pool/stable-hash.js';

interface Entry {
  account: Account;
  dedicated: ReadonlySet<TenantId> | undefined;
  readonly health: AccountHealth;
  readonly idHash: number;
}

interface Scored {
  readonly entry: Entry;
  readonly id: AccountId;
  readonly idHash: number;
  readonly weight: number;
  readonly concurrencyMax: number;
  readonly inFlight: number;
  readonly queued: number;
  /** Window headroom: the reference pool's accounts have no windows (full). */
  readonly headroom: number;
  readonly probe: boolean;
  /** Quota room for the request's estimate. */
  readonly room: boolean;
}

/** The rendezvous score as first written (pairs of lanes, a floating-point remainder). */
function referenceScore(keyHash: number, accountHash: number, weight: number): number {
  const lanes = (hash: number): [number, number] => [(hash % 0x1_0000_0000) >>> 0, Math.floor(hash / 0x1_0000_0000) >>> 0];
  const [keyLo, keyHi] = lanes(keyHash);
  const [accountLo, accountHi] = lanes(accountHash);
  const lo = mix32(keyLo ^ mix32(accountLo ^ 0x9e3779b9));
  const hi = mix32(keyHi ^ mix32(accountHi ^ 0x7f4a7c15) ^ lo);
  const u = ((hi >>> 11) * 0x1_0000_0000 + lo + 0.5) / 2 ** 53;
  return weight / -Math.log(u);
}

const load = (c: Scored): number => (c.inFlight + c.queued) / c.concurrencyMax;

class ReferenceSelector {
  private cursor: AccountId | undefined;
  private readonly credits = new Map<AccountId, number>();

  constructor(
    private readonly base: BaseStrategyName,
    private readonly random: Random,
  ) {}

  /** The candidate to take among those with quota room, or undefined for none. */
  pick(candidates: readonly Scored[], keyHash: number | undefined): Scored | undefined {
    if (keyHash !== undefined) {
      const ranked = candidates.map((c) => ({ c, score: referenceScore(keyHash, c.idHash, c.weight) }));
      ranked.sort((x, y) => y.score - x.score || (x.c.id < y.c.id ? -1 : 1));
      return ranked.find(({ c }) => c.room)?.c;
    }
    if (this.base === 'least-loaded') return this.leastLoaded(candidates);
    const admitted = candidates.filter((c) => c.room);
    if (admitted.length === 0) return undefined;
    return this.base === 'round-robin' ? this.roundRobin(admitted) : this.weighted(admitted);
  }

  forget(id: AccountId): void {
    this.credits.delete(id);
  }

  private roundRobin(candidates: readonly Scored[]): Scored {
    let next: Scored | undefined;
    let first = candidates[0] as Scored;
    for (const candidate of candidates) {
      if (candidate.id < first.id) first = candidate;
      if (this.cursor !== undefined && candidate.id > this.cursor && (next === undefined || candidate.id < next.id)) next = candidate;
    }
    const chosen = next ?? first;
    this.cursor = chosen.id;
    return chosen;
  }

  private weighted(candidates: readonly Scored[]): Scored {
    let total = 0;
    let best: Scored | undefined;
    let bestCredit = -Infinity;
    for (const candidate of candidates) {
      const credit = (this.credits.get(candidate.id) ?? 0) + candidate.weight;
      this.credits.set(candidate.id, credit);
      total += candidate.weight;
      if (credit > bestCredit || (credit === bestCredit && best !== undefined && candidate.id < best.id)) {
        best = candidate;
        bestCredit = credit;
      }
    }
    const chosen = best as Scored;
    this.credits.set(chosen.id, bestCredit - total);
    return chosen;
  }

  /** Loads lightest first; within a load, draw, and drop a draw without room by moving the last into its place. */
  private leastLoaded(candidates: readonly Scored[]): Scored | undefined {
    // Array.prototype.sort is stable: candidate order within a load.
    const sorted = [...candidates].sort((a, b) => load(a) - load(b));
    for (let start = 0; start < sorted.length;) {
      let end = start;
      while (end < sorted.length && load(sorted[end] as Scored) === load(sorted[start] as Scored)) end++;
      const group = sorted.slice(start, end);
      start = end;
      while (group.length > 0) {
        const j = group.length === 1 ? 0 : this.random.int(group.length);
        const chosen = group[j] as Scored;
        if (chosen.room) return chosen;
        group[j] = group[group.length - 1] as Scored;
        group.pop();
      }
    }
    return undefined;
  }
}

function tierOf(entry: Entry, tenant: TenantId, localRegion: RegionId | undefined): number | undefined {
  let tier = 0;
  if (entry.dedicated === undefined) tier += 2;
  else if (!entry.dedicated.has(tenant)) return undefined;
  if (localRegion !== undefined && entry.account.homeRegion !== localRegion) tier += 1;
  return tier;
}

const tierCount = 4;
const sharedTierFirst = 2;

function sameTenants(a: ReadonlySet<TenantId> | undefined, b: ReadonlySet<TenantId> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && [...a].every((tenant) => b.has(tenant));
}

export class ReferencePool {
  readonly stats = new PoolStats();
  readonly sticky: boolean;
  readonly vipSpillToShared: boolean;

  private readonly entries = new Map<AccountId, Entry>();
  private readonly permits: PermitTable<TenantId>;
  private readonly selector: ReferenceSelector;
  private readonly random: Random;
  private readonly room: AccountRoom | undefined;

  constructor(options: AccountPoolOptions) {
    this.random = options.random;
    this.sticky = options.sticky ?? true;
    this.vipSpillToShared = options.vipSpillToShared ?? true;
    this.room = options.room;
    this.permits = new PermitTable<TenantId>(options.permits);
    this.selector = new ReferenceSelector(options.strategy ?? 'least-loaded', options.random);
  }

  update(accounts: Iterable<Account>): void {
    const next = new Map<AccountId, Account>();
    for (const account of accounts) next.set(account.id, account);
    for (const id of [...this.entries.keys()]) {
      if (next.has(id)) continue;
      this.entries.delete(id);
      this.permits.removeAccount(id);
      this.selector.forget(id);
    }
    for (const account of next.values()) {
      const dedicated = account.dedicatedTenants === undefined || account.dedicatedTenants.length === 0 ? undefined : new Set(account.dedicatedTenants);
      const entry = this.entries.get(account.id);
      if (entry === undefined) {
        this.entries.set(account.id, { account, dedicated, health: new AccountHealth(this.random), idHash: stableHash(account.id) });
        continue;
      }
      entry.account = account;
      if (!sameTenants(entry.dedicated, dedicated)) {
        entry.dedicated = dedicated;
        this.permits.evict(account.id, (tenant) => dedicated !== undefined && !dedicated.has(tenant), 'not-allowed');
      }
    }
    if (!this.vipSpillToShared) {
      const vipTenants = new Set<TenantId>();
      for (const entry of this.entries.values()) for (const tenant of entry.dedicated ?? []) vipTenants.add(tenant);
      for (const entry of this.entries.values()) {
        if (entry.dedicated === undefined) this.permits.evict(entry.account.id, (tenant) => vipTenants.has(tenant), 'not-allowed');
      }
    }
    for (const account of next.values()) this.permits.setAccount(account.id, account.concurrencyMax);
  }

  acquire(request: AccountRequest, nowMs: number): Result<AccountSelection, PoolError> {
    assert(Number.isFinite(request.deadlineMs), 'a permit deadline is a finite time');
    const keyHash = this.sticky && request.sessionKey !== undefined ? stableHash(request.sessionKey) : undefined;
    const estimate = request.estimate ?? noAccountAmounts;
    const tiers: Scored[][] = Array.from({ length: tierCount }, () => []);
    let hasDedicated = false;
    let dedicatedBackAtMs = Infinity;
    let sharedBackAtMs = Infinity;
    const note = (tier: number, atMs: number): void => {
      if (tier < sharedTierFirst) dedicatedBackAtMs = Math.min(dedicatedBackAtMs, atMs);
      else sharedBackAtMs = Math.min(sharedBackAtMs, atMs);
    };

    for (const entry of this.entries.values()) {
      const tier = tierOf(entry, request.tenant, request.localRegion);
      if (tier === undefined) continue;
      if (tier < sharedTierFirst) hasDedicated = true;
      const backAtMs = this.servableAtMs(entry, nowMs);
      if (backAtMs === nowMs && request.excluded?.has(entry.account.id) !== true) {
        const room = this.room?.hasRoom(entry.account, estimate, nowMs);
        // Out of room: back when its window turns, as a non-candidate in the first version.
        if (room !== undefined && !room.ok) note(tier, nowMs + room.error.retryAfterMs);
        const { account } = entry;
        (tiers[tier] as Scored[]).push({
          entry,
          id: account.id,
          idHash: entry.idHash,
          weight: account.weight,
          concurrencyMax: account.concurrencyMax,
          inFlight: this.permits.inFlight(account.id),
          queued: this.permits.queued(account.id),
          headroom: 10,
          probe: entry.health.isProbe(nowMs),
          room: room === undefined || room.ok,
        });
      } else if (backAtMs !== undefined) {
        note(tier, backAtMs);
      }
    }

    const tiersUsed = hasDedicated && !this.vipSpillToShared ? sharedTierFirst : tierCount;
    for (let tier = 0; tier < tiersUsed; tier++) {
      const free = (tiers[tier] as Scored[]).filter((candidate) => this.permits.canGrant(candidate.id));
      const chosen = this.selector.pick(free, keyHash);
      if (chosen === undefined) continue;
      const acquired = this.permits.acquire(chosen.id, request.deadlineMs, request.tenant, nowMs);
      assert(acquired.ok && acquired.value.kind === 'granted', 'a permit the table can grant is granted');
      this.stats.granted++;
      if (chosen.probe) {
        chosen.entry.health.beginProbe(nowMs);
        this.stats.probes++;
      }
      if (hasDedicated && tier >= sharedTierFirst) this.stats.vipSpills++;
      if (tier % 2 === 1) this.stats.remoteGrants++;
      return ok({ kind: 'granted', permit: acquired.value.permit, account: chosen.entry.account, probe: chosen.probe });
    }

    for (let tier = 0; tier < tiersUsed; tier++) {
      const queueable = (tiers[tier] as Scored[]).filter((candidate) => !candidate.probe);
      const chosen = this.selector.pick(queueable, keyHash);
      if (chosen === undefined) continue;
      const acquired = this.permits.acquire(chosen.id, request.deadlineMs, request.tenant, nowMs);
      if (!acquired.ok) {
        if (acquired.error.kind === 'busy') this.stats.busy++;
        assert(acquired.error.kind !== 'unknown-account', 'pool accounts are in the permit table');
        return err(acquired.error);
      }
      assert(acquired.value.kind === 'queued', 'an account without a free permit queues');
      this.stats.queued++;
      return ok({ kind: 'queued', waiterId: acquired.value.waiterId, account: chosen.entry.account });
    }

    for (let tier = 0; tier < tiersUsed; tier++) {
      for (const candidate of tiers[tier] as Scored[]) if (candidate.room) note(tier, candidate.entry.health.availableAtMs(nowMs) ?? Infinity);
    }
    this.stats.noAccount++;
    const backAtMs = tiersUsed === tierCount ? Math.min(dedicatedBackAtMs, sharedBackAtMs) : dedicatedBackAtMs;
    const retryAfterMs = Number.isFinite(backAtMs) ? Math.max(noAccountRetryAfterMsMin, backAtMs - nowMs) : undefined;
    return err({ kind: 'no-account', retryAfterMs });
  }

  release(permit: Permit): Result<undefined, { readonly kind: 'unknown-permit'; readonly permitId: Permit['id'] }> {
    return this.permits.release(permit.id);
  }

  cancel(waiterId: WaiterId): CancelOutcome {
    return this.permits.cancel(waiterId);
  }

  tick(nowMs: number): void {
    this.permits.tick(nowMs);
  }

  takeEvents(): PermitEvent<TenantId>[] {
    return this.permits.takeEvents();
  }

  onFeedback(accountId: AccountId, feedback: AccountFeedback, nowMs: number): FeedbackReport | undefined {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return undefined;
    const change = entry.health.onFeedback(feedback, nowMs);
    if (change.alert !== undefined) this.stats.alerts++;
    const evicted = change.to === 'healthy' ? 0 : this.permits.evict(accountId, () => true, 'account-unavailable');
    return { ...change, accountId, evicted };
  }

  enable(accountId: AccountId): boolean {
    const entry = this.entries.get(accountId);
    if (entry === undefined) return false;
    entry.health.enable();
    return true;
  }

  status(nowMs: number): AccountStatus[] {
    const statuses: AccountStatus[] = [];
    for (const entry of this.entries.values()) {
      const { account } = entry;
      statuses.push({
        id: account.id,
        kind: account.kind,
        homeRegion: account.homeRegion,
        state: entry.health.state(nowMs),
        inFlight: this.permits.inFlight(account.id),
        queued: this.permits.queued(account.id),
        concurrencyMax: account.concurrencyMax,
        availableAtMs: entry.health.availableAtMs(nowMs),
        dedicated: entry.dedicated !== undefined,
        disabledReason: entry.health.disabledReason === undefined ? undefined : disableReasonText(entry.health.disabledReason),
        disabled: entry.health.disabledReason,
        shared: undefined,
        windows: undefined,
      });
    }
    return statuses.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** When the account could serve, quota room aside: the first version's `eligibleAtMs` before its room check. */
  private servableAtMs(entry: Entry, nowMs: number): number | undefined {
    const { account, health } = entry;
    if (account.concurrencyMax === 0) return undefined;
    const atMs = health.canServe(nowMs) ? nowMs : health.availableAtMs(nowMs);
    if (atMs === undefined) return undefined;
    assert(atMs >= nowMs, 'an account that cannot serve now is back later');
    return atMs;
  }
}
