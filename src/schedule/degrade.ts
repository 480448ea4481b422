import { type DegradeSettings, degradableTiers, type DegradableTier } from '../mesh/policy/schedule-schema.js';
import type { Tier } from '../mesh/policy/policy-schema.js';
import type { PoolCapacity } from '../pool/account-pool.js';

/**
 * The degraded mode: when the pool is short, a request of a tier the policy's `degrade` rules
 * name is served with less (a smaller `max_tokens`, a cheaper model, a longer wait in the queue)
 * instead of being refused; every other tier, and vip always, keeps full service.
 *
 *   pool short?  busy ≥ utilisationPercent % of the permits the serving accounts offer
 *                (busy: calls holding or waiting for a permit; no serving account: short),
 *                or pausedAccounts > 0 and at least that many accounts cannot serve
 *   └ yes, and the tier has a rule ─▶ the rule's actions that change this request:
 *        maxTokens  `max_tokens` cut to the cap (only when it asked for more)
 *        models     the requested model mapped to the cheaper one (only when it is named)
 *        waitMs     the request may wait this long in the queue
 *      nothing changed ─▶ full service (a request already within the rule is not "degraded")
 *
 * The gateway applies the result before admission, so the reservation is of the degraded request,
 * and tells the client which actions applied (`carpool-degraded` header or gRPC metadata, see
 * `degradedHeaderOf`). Pure: the caller reads the pool and the policy.
 */
export interface DegradeRequest {
  readonly tier: Tier;
  readonly maxTokens: number;
  readonly model: string | undefined;
}

export type ShortageReason = 'utilisation' | 'paused-accounts';

export interface Degraded {
  readonly tier: DegradableTier;
  readonly reason: ShortageReason;
  readonly maxTokens?: { readonly from: number; readonly to: number };
  readonly model?: { readonly from: string; readonly to: string };
  readonly waitMs?: number;
}

/** The actions a degraded request reports, as metric labels and in the header. */
export const degradeActions = ['max-tokens', 'model', 'wait'] as const;
export type DegradeAction = (typeof degradeActions)[number];

/** Why the pool is short now, or undefined when it is not. */
export function shortageOf(settings: DegradeSettings, capacity: PoolCapacity): ShortageReason | undefined {
  if (capacity.permits === 0 || capacity.busy * 100 >= settings.utilisationPercent * capacity.permits) return 'utilisation';
  if (settings.pausedAccounts > 0 && capacity.paused >= settings.pausedAccounts) return 'paused-accounts';
  return undefined;
}

/** How to serve `request` degraded, or undefined for full service; see the file comment. */
export function degradeFor(settings: DegradeSettings | undefined, request: DegradeRequest, capacity: () => PoolCapacity): Degraded | undefined {
  if (settings === undefined) return undefined;
  const tier = request.tier;
  if (!isDegradable(tier)) return undefined;
  const rule = settings.tiers[tier];
  if (rule === undefined) return undefined;
  const reason = shortageOf(settings, capacity());
  if (reason === undefined) return undefined;
  const cut = rule.maxTokens !== undefined && request.maxTokens > rule.maxTokens ? { from: request.maxTokens, to: rule.maxTokens } : undefined;
  const mapped = request.model !== undefined && rule.models !== undefined && Object.hasOwn(rule.models, request.model) ? rule.models[request.model] : undefined;
  const model = mapped !== undefined && mapped !== request.model && request.model !== undefined ? { from: request.model, to: mapped } : undefined;
  if (cut === undefined && model === undefined && rule.waitMs === undefined) return undefined;
  return {
    tier,
    reason,
    ...(cut === undefined ? {} : { maxTokens: cut }),
    ...(model === undefined ? {} : { model }),
    ...(rule.waitMs === undefined ? {} : { waitMs: rule.waitMs }),
  };
}

export function actionsOf(degraded: Degraded): DegradeAction[] {
  const actions: DegradeAction[] = [];
  if (degraded.maxTokens !== undefined) actions.push('max-tokens');
  if (degraded.model !== undefined) actions.push('model');
  if (degraded.waitMs !== undefined) actions.push('wait');
  return actions;
}

/**
 * The `carpool-degraded` value: the reason, then each action with what it changed, e.g.
 * `reason=utilisation; max-tokens=4096->1024; model=claude-opus-4-1->claude-haiku-4-5; wait-ms=60000`.
 * Model names are printable ASCII without spaces (the policy checks them), so it is a valid header.
 */
export function degradedHeaderOf(degraded: Degraded): string {
  const parts = [`reason=${degraded.reason}`];
  if (degraded.maxTokens !== undefined) parts.push(`max-tokens=${degraded.maxTokens.from}->${degraded.maxTokens.to}`);
  if (degraded.model !== undefined) parts.push(`model=${degraded.model.from}->${degraded.model.to}`);
  if (degraded.waitMs !== undefined) parts.push(`wait-ms=${degraded.waitMs}`);
  return parts.join('; ');
}

export const degradedHeader = 'carpool-degraded';

function isDegradable(tier: Tier): tier is DegradableTier {
  return (degradableTiers as readonly string[]).includes(tier);
}
