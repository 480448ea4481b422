import { GcraLimiter, type GcraDecision, type RateKey, rateKey } from '../../admission/gcra.js';
import type { Rejection } from '../../admission/outcome.js';
import { assert } from '../../core/assert.js';
import type { TenantId, UserId } from '../../core/ids.js';
import { err, OK_VOID, type Result } from '../../core/result.js';
import type { RateLimitSettings } from './gateway-settings.js';

/**
 * The two rate limiters in front of admission (src/admission/gcra.ts describes both): one per
 * client IP and user, so one client of a tenant cannot spend the tenant's whole rate, and one per
 * tenant, its burst at this node. A request takes one cell of each; the client's is taken first,
 * so a request refused for the tenant's rate has spent one client cell, which only a client
 * already sending at its tenant's limit can notice.
 *
 * A request without a named user is limited as the tenant's anonymous user (the tenant id as the
 * user), and a peer whose IP the transport could not tell (a Unix socket, a proxy that hides it)
 * shares the bucket `unknown` with every such peer of the user: the stricter reading, since
 * those clients cannot be told apart.
 */
export type RateRefusal = Extract<Rejection, { kind: 'rate' | 'shed' | 'invalid' }>;

const unknownIp = 'unknown';

export class RequestRateLimits {
  readonly client: GcraLimiter<RateKey>;
  readonly tenant: GcraLimiter<TenantId>;

  constructor(settings: RateLimitSettings) {
    this.client = new GcraLimiter(settings.client);
    this.tenant = new GcraLimiter(settings.tenant);
  }

  /** Takes one request of both rates, or says which refused and when to come back. */
  take(peerIp: string | undefined, tenant: TenantId, user: UserId, nowMs: number): Result<undefined, RateRefusal> {
    const key = rateKey(peerIp ?? unknownIp, user);
    if (!key.ok) return key;
    const byClient = refusalOf(this.client.take(key.value, nowMs));
    if (byClient !== undefined) return err(byClient);
    const byTenant = refusalOf(this.tenant.take(tenant, nowMs));
    if (byTenant !== undefined) return err(byTenant);
    return OK_VOID;
  }
}

/**
 * A limiter full of active keys is this node's capacity, not the client's rate, so it sheds
 * (503) as gcra.ts asks. A cost above the burst cannot happen: every request costs one cell and
 * a burst is at least one.
 */
function refusalOf(decision: GcraDecision): RateRefusal | undefined {
  if (decision.allowed) return undefined;
  assert(decision.reason !== 'cost-exceeds-burst', 'a request costs one cell, within any burst');
  if (decision.reason === 'limiter-full') return { kind: 'shed', retryAfterMs: decision.retryAfterMs };
  return { kind: 'rate', retryAfterMs: decision.retryAfterMs };
}
