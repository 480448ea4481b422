import { assert, isCount } from '../core/assert.js';
import type { RequestId, TenantId, UserId } from '../core/ids.js';
import { concurrencyHeldMax, concurrencyKeysMax, concurrencyRetryAfterMs } from '../core/limits.js';
import { err, ok, type Result } from '../core/result.js';
import type { Rejection } from './outcome.js';

/**
 * The in-flight cap of the admission pipeline: how many requests of one tenant (the policy's
 * `concurrencyMax`), and optionally of one user within it, may run on this node at once.
 *
 * The flow. A request that has passed authentication, rate and quota checks calls `acquire` with
 * its id and caps; on success it holds a permit until it finishes, and the caller calls `release`
 * on every way out (completion, upstream error, client cancel), typically in a `finally`. Both
 * are idempotent on the request id: acquiring an id already held returns the permit it holds
 * rather than taking a second slot, and releasing an id not held changes nothing. So a retried
 * acquire and a release that races a cancel cannot skew the counts.
 *
 * Per node, not per mesh. A tenant may have up to `concurrencyMax` requests in flight on each
 * node that serves it. A mesh-wide cap would need a quorum round on every acquire and again on
 * every release, putting a cross-region round trip in front of each request. Gossip cannot stand
 * in for it: in-flight counts change twice per request, far faster than a delta crosses the mesh,
 * so every node would decide on counts already stale, and the overshoot (Σ admit rate ×
 * propagation delay) would be as large as the cap is meant to prevent. A per-node count is also
 * exact and self-cleaning: it needs no lease, because the node holds the request's connection and
 * sees it end, and if the node crashes its counts go with it instead of lingering in the mesh as
 * slots nobody will release. Operators wanting a mesh-wide figure divide it by the nodes serving
 * the tenant.
 *
 * A cap of zero admits nothing, exactly as the policy validator reads the field: a count, with
 * no value reserved to mean "unlimited" (a quota `limit` of zero likewise admits nothing). A
 * tenant that should not be capped gets a cap above anything it could reach. A cap lowered while
 * requests are held takes effect as they drain: held permits are never revoked.
 *
 * The bounds. Held request ids are capped by `heldMax` and tenant and user keys by `keysMax`;
 * a key is deleted when its count drops to zero, so memory follows what is in flight. When
 * either table is full a new request is refused with `concurrency-full`, which the caller should
 * map to `shed` (503): it is this node's capacity, not the client's consumption. Forgetting a
 * held request to make room would instead let its tenant past its cap. A request refused for its
 * own tenant's or user's cap gets the `concurrency` rejection (429) with a constant retry hint,
 * since nothing here knows when a held request will end.
 *
 * Nothing here reads a clock: the limiter is a plain table advanced by calls.
 */

/** What a held request holds: the slots it was counted in. */
export interface ConcurrencyPermit {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  /** The user whose cap the request was also counted against, if it had one. */
  readonly user: UserId | undefined;
}

/** A user's own in-flight cap, inside the tenant's. */
export interface UserConcurrencyCap {
  readonly id: UserId;
  /** Requests of this user in flight at once; zero admits none. */
  readonly max: number;
}

export interface ConcurrencyLimiterOptions {
  /** Request ids held at once: 1 to `concurrencyHeldMax` (the default). */
  readonly heldMax?: number;
  /** Tenant and user keys tracked at once: 1 to `concurrencyKeysMax` (the default). */
  readonly keysMax?: number;
}

/** A tenant's or user's cap is reached; `scope` says which, for metrics. */
export type ConcurrencyRejection = Extract<Rejection, { kind: 'concurrency' }> & { readonly scope: 'tenant' | 'user' };

export type ConcurrencyError =
  | ConcurrencyRejection
  /** This node's table of held requests (`held`) or of tenant and user keys (`keys`) is full. */
  | { readonly kind: 'concurrency-full'; readonly table: 'held' | 'keys'; readonly max: number }
  /**
   * The request id is already held for another tenant or user. Handing over that permit would
   * let this request run uncounted and later release a slot another tenant still uses.
   */
  | Extract<Rejection, { kind: 'invalid' }>;

/** Plain counters for the metrics binding (style guide §9). */
export class ConcurrencyStats {
  acquired = 0;
  /** Acquires of an id already held, answered with its permit. */
  reacquired = 0;
  refusedTenant = 0;
  refusedUser = 0;
  refusedFull = 0;
  idConflicts = 0;
  released = 0;
}

/** One tenant's in-flight requests, and those of its users that have a cap. */
interface TenantSlots {
  held: number;
  readonly users: Map<UserId, number>;
}

export class ConcurrencyLimiter {
  readonly heldMax: number;
  readonly keysMax: number;
  readonly stats = new ConcurrencyStats();

  private readonly held = new Map<RequestId, ConcurrencyPermit>();
  private readonly tenants = new Map<TenantId, TenantSlots>();
  /** Tenant keys plus user keys across all tenants. */
  private keyCount = 0;

  constructor(options: ConcurrencyLimiterOptions = {}) {
    this.heldMax = options.heldMax ?? concurrencyHeldMax;
    this.keysMax = options.keysMax ?? concurrencyKeysMax;
    assert(Number.isSafeInteger(this.heldMax) && this.heldMax >= 1 && this.heldMax <= concurrencyHeldMax, 'concurrency heldMax out of range');
    assert(Number.isSafeInteger(this.keysMax) && this.keysMax >= 1 && this.keysMax <= concurrencyKeysMax, 'concurrency keysMax out of range');
  }

  /** Requests held on this node. */
  get size(): number {
    return this.held.size;
  }

  /** Tenant and user keys tracked; each has at least one request in flight. */
  get keys(): number {
    return this.keyCount;
  }

  /** The tenant's requests in flight on this node. */
  inFlight(tenant: TenantId): number {
    return this.tenants.get(tenant)?.held ?? 0;
  }

  /** The user's requests in flight on this node, among those acquired with a user cap. */
  inFlightUser(tenant: TenantId, user: UserId): number {
    return this.tenants.get(tenant)?.users.get(user) ?? 0;
  }

  /**
   * Takes a slot of the tenant's cap (and of the user's, if given) for the request, or says why
   * not. An id already held for the same tenant and user gets its permit back without a second
   * slot, whatever the caps are now: it is already counted.
   */
  acquire(requestId: RequestId, tenant: TenantId, tenantMax: number, user?: UserConcurrencyCap): Result<ConcurrencyPermit, ConcurrencyError> {
    assert(isCount(tenantMax), 'a tenant concurrency cap is a count');
    assert(user === undefined || isCount(user.max), 'a user concurrency cap is a count');
    const existing = this.held.get(requestId);
    if (existing !== undefined) {
      if (existing.tenant === tenant && existing.user === user?.id) {
        this.stats.reacquired++;
        return ok(existing);
      }
      this.stats.idConflicts++;
      return err({ kind: 'invalid', field: 'requestId', reason: 'is already in flight for another tenant or user' });
    }
    const slots = this.tenants.get(tenant);
    if ((slots?.held ?? 0) >= tenantMax) {
      this.stats.refusedTenant++;
      return err({ kind: 'concurrency', scope: 'tenant', retryAfterMs: concurrencyRetryAfterMs });
    }
    const userHeld = user === undefined ? undefined : slots?.users.get(user.id);
    if (user !== undefined && (userHeld ?? 0) >= user.max) {
      this.stats.refusedUser++;
      return err({ kind: 'concurrency', scope: 'user', retryAfterMs: concurrencyRetryAfterMs });
    }
    // Caps first: a request over its own cap is told so, whatever this node's load.
    if (this.held.size >= this.heldMax) {
      this.stats.refusedFull++;
      return err({ kind: 'concurrency-full', table: 'held', max: this.heldMax });
    }
    const keysNew = (slots === undefined ? 1 : 0) + (user !== undefined && userHeld === undefined ? 1 : 0);
    if (this.keyCount + keysNew > this.keysMax) {
      this.stats.refusedFull++;
      return err({ kind: 'concurrency-full', table: 'keys', max: this.keysMax });
    }

    let tenantSlots = slots;
    if (tenantSlots === undefined) {
      tenantSlots = { held: 0, users: new Map() };
      this.tenants.set(tenant, tenantSlots);
    }
    tenantSlots.held++;
    if (user !== undefined) tenantSlots.users.set(user.id, (userHeld ?? 0) + 1);
    this.keyCount += keysNew;
    const permit: ConcurrencyPermit = Object.freeze({ requestId, tenant, user: user?.id });
    this.held.set(requestId, permit);
    this.stats.acquired++;
    return ok(permit);
  }

  /** Frees the request's slots; false, changing nothing, if the id is not held (or no longer). */
  release(requestId: RequestId): boolean {
    const permit = this.held.get(requestId);
    if (permit === undefined) return false;
    this.held.delete(requestId);
    const slots = this.tenants.get(permit.tenant);
    assert(slots !== undefined && slots.held >= 1, 'a held permit is counted in its tenant');
    if (permit.user !== undefined) {
      const userHeld = slots.users.get(permit.user);
      assert(userHeld !== undefined && userHeld >= 1, 'a held permit is counted in its user');
      if (userHeld === 1) {
        slots.users.delete(permit.user);
        this.keyCount--;
      } else {
        slots.users.set(permit.user, userHeld - 1);
      }
    }
    slots.held--;
    if (slots.held === 0) {
      assert(slots.users.size === 0, 'a user holds requests only within its tenant');
      this.tenants.delete(permit.tenant);
      this.keyCount--;
    }
    this.stats.released++;
    return true;
  }
}
