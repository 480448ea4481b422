import { degradeModelMapMax, gatewayMaxTokensMax, policyAccountsMax, tierQueueDepthMax, tierQueueWaitMsMax } from '../../core/limits.js';
import { ok, type Result } from '../../core/result.js';
import { invalid, isFields, isOneOf, type PolicyError, validateIntegerIn } from './field-checks.js';
import type { SettingsRead } from './policy-schema.js';

/**
 * The policy's scheduling settings: how a node's admission queue (src/schedule/tier-queue.ts)
 * orders waiting requests, and when lower tiers are served degraded rather than refused
 * (src/schedule/degrade.ts). Both are document `settings` entries, `schedule` and `degrade`, each
 * set whole (numbers that must agree live in one entry) and read with defaults filled.
 *
 *   "settings": {
 *     "schedule": { "mode": "dynamic", "levels": 4, "rateWindowMs": 60000, ... },
 *     "degrade": { "utilisationPercent": 85, "pausedAccounts": 1,
 *                  "tiers": { "free": { "maxTokens": 1024, "models": { "claude-opus-4-1": "claude-haiku-4-5" }, "waitMs": 60000 } } }
 *   }
 *
 * The tiers themselves are policy-schema.ts's; this file only imports nothing from it so that the
 * schedule cores can read these types without the whole policy model.
 */

export const scheduleTiers = ['vip', 'paid', 'free'] as const;
type Tier = (typeof scheduleTiers)[number];

export const scheduleModes = ['dynamic', 'fifo'] as const;
/**
 * `dynamic`: tiers first (with the bounded escape of aged lower-tier work), then the multi-level
 * feedback queue, then virtual token counters; see src/schedule/tier-queue.ts.
 * `fifo`: one arrival-order queue for every tier and tenant: what a plain round-robin relay does,
 * kept as the baseline the scheduling benchmark compares against.
 */
export type ScheduleMode = (typeof scheduleModes)[number];

export interface ScheduleSettings {
  readonly mode: ScheduleMode;
  /** Levels of the feedback queue within each tier: 1 (no feedback) to 8. */
  readonly levels: number;
  /** The short rolling window of a tenant's token rate, in 10-second buckets. */
  readonly rateWindowMs: number;
  /** The long rolling window of a tenant's spend, in minute buckets. */
  readonly historyWindowMs: number;
  /**
   * Weighted tokens per minute a tenant of tier weight 1 may use, over either window, before it
   * drops one level; each doubling past it drops one more. A tier of weight w may use w times it.
   */
  readonly levelTokensPerMinute: number;
  /** Every this many of a tenant's requests queued behind its first drop it one more level. */
  readonly depthPerLevel: number;
  /** A waiting request rises one level per this much waiting, back to the top level. */
  readonly agingMs: number;
  /** Weights of the tiers for fairness: the virtual counters and the level thresholds. */
  readonly tierWeights: Readonly<Record<Tier, number>>;
  /** A lower tier's request that waited this long may start ahead of a higher tier's… */
  readonly escapeAfterMs: number;
  /** …at most once in every this many starts; 0 keeps the tiers strictly ordered. */
  readonly escapeEvery: number;
}

export const defaultScheduleSettings: ScheduleSettings = Object.freeze({
  mode: 'dynamic',
  levels: 4,
  rateWindowMs: 60_000,
  historyWindowMs: 900_000,
  levelTokensPerMinute: 50_000,
  depthPerLevel: 16,
  agingMs: 2_000,
  tierWeights: Object.freeze({ vip: 4, paid: 2, free: 1 }),
  escapeAfterMs: 5_000,
  escapeEvery: 10,
});

/** Bounds of the numeric settings; each checked by `validateScheduleSettings`. */
export const scheduleSettingsBounds = Object.freeze({
  levels: { min: 1, max: 8 },
  rateWindowMs: { min: 10_000, max: 600_000 },
  historyWindowMs: { min: 60_000, max: 86_400_000 },
  levelTokensPerMinute: { min: 1, max: 1_000_000_000 },
  depthPerLevel: { min: 1, max: tierQueueDepthMax },
  agingMs: { min: 100, max: tierQueueWaitMsMax },
  escapeAfterMs: { min: 0, max: tierQueueWaitMsMax },
  escapeEvery: { min: 0, max: 1_000 },
});
export const tierWeightMax = 1_000;

/** A degraded request of one tier: at least one of the three. */
export interface DegradeRule {
  /** `max_tokens` is cut to this. */
  readonly maxTokens?: number;
  /** Requested model → the cheaper one served instead; models not named keep theirs. */
  readonly models?: Readonly<Record<string, string>>;
  /** The request may wait this long in the queue (instead of the node's wait). */
  readonly waitMs?: number;
}

/** The tiers that may be degraded: vip never is. */
export const degradableTiers = ['paid', 'free'] as const;
export type DegradableTier = (typeof degradableTiers)[number];

export interface DegradeSettings {
  /** The pool is short when the calls held are at least this share of what its accounts take… */
  readonly utilisationPercent: number;
  /** …or when at least this many accounts are paused (cooling down, circuit open, revoked); 0: never by this. */
  readonly pausedAccounts: number;
  /** The rule of each degraded tier; a tier not named is never degraded. */
  readonly tiers: Readonly<Partial<Record<DegradableTier, DegradeRule>>>;
}

const modelNamePattern = /^[\x21-\x7e]{1,128}$/;

/** Whole schedule settings, every field given and within its bounds; `field` prefixes the paths. */
export function validateScheduleSettings(value: unknown, field: string): Result<ScheduleSettings, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  for (const name of Object.keys(value)) if (!(name in defaultScheduleSettings)) return invalid(`${field}.${name}`, 'unknown setting');
  if (!isOneOf(scheduleModes, value.mode)) return invalid(`${field}.mode`, `must be one of ${scheduleModes.join(', ')}`);
  const numbers: Record<string, number> = {};
  for (const [name, { min, max }] of Object.entries(scheduleSettingsBounds)) {
    const checked = validateIntegerIn(value[name], `${field}.${name}`, min, max);
    if (!checked.ok) return checked;
    numbers[name] = checked.value;
  }
  if (numbers.rateWindowMs! % 10_000 !== 0) return invalid(`${field}.rateWindowMs`, 'must be a whole number of 10-second buckets');
  if (numbers.historyWindowMs! % 60_000 !== 0) return invalid(`${field}.historyWindowMs`, 'must be a whole number of minutes');
  if (numbers.escapeEvery === 1)
    return invalid(`${field}.escapeEvery`, 'must be 0 (strict tiers) or at least 2: 1 would let every start skip the higher tiers');
  const weights = value.tierWeights;
  if (!isFields(weights)) return invalid(`${field}.tierWeights`, 'must be an object of tier to weight');
  const tierWeights: Partial<Record<Tier, number>> = {};
  for (const name of Object.keys(weights)) if (!isOneOf(scheduleTiers, name)) return invalid(`${field}.tierWeights.${name}`, 'unknown tier');
  let above: number | undefined;
  for (const tier of scheduleTiers) {
    const weight = validateIntegerIn(weights[tier], `${field}.tierWeights.${tier}`, 1, tierWeightMax);
    if (!weight.ok) return weight;
    if (above !== undefined && weight.value > above) return invalid(`${field}.tierWeights.${tier}`, 'must not exceed the weight of the tier above');
    tierWeights[tier] = above = weight.value;
  }
  return ok(
    Object.freeze({
      ...(numbers as Omit<ScheduleSettings, 'mode' | 'tierWeights'>),
      mode: value.mode,
      tierWeights: Object.freeze(tierWeights as Record<Tier, number>),
    }),
  );
}

/** Whole degrade settings: the shortage thresholds and a rule for each tier named (vip refused). */
export function validateDegradeSettings(value: unknown, field: string): Result<DegradeSettings, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  for (const name of Object.keys(value))
    if (name !== 'utilisationPercent' && name !== 'pausedAccounts' && name !== 'tiers') return invalid(`${field}.${name}`, 'unknown setting');
  const utilisation = validateIntegerIn(value.utilisationPercent, `${field}.utilisationPercent`, 1, 100);
  if (!utilisation.ok) return utilisation;
  const paused = validateIntegerIn(value.pausedAccounts, `${field}.pausedAccounts`, 0, policyAccountsMax);
  if (!paused.ok) return paused;
  if (!isFields(value.tiers)) return invalid(`${field}.tiers`, 'must be an object of tier to rule');
  const rules: Partial<Record<DegradableTier, DegradeRule>> = {};
  for (const [tier, given] of Object.entries(value.tiers)) {
    const path = `${field}.tiers.${tier}`;
    if (tier === 'vip') return invalid(path, 'vip is never degraded');
    if (!isOneOf(degradableTiers, tier)) return invalid(path, `unknown tier; degradable tiers are ${degradableTiers.join(', ')}`);
    const rule = validateDegradeRule(given, path);
    if (!rule.ok) return rule;
    rules[tier] = rule.value;
  }
  return ok(Object.freeze({ utilisationPercent: utilisation.value, pausedAccounts: paused.value, tiers: Object.freeze(rules) }));
}

function validateDegradeRule(value: unknown, path: string): Result<DegradeRule, PolicyError> {
  if (!isFields(value)) return invalid(path, 'must be an object');
  const rule: { maxTokens?: number; models?: Readonly<Record<string, string>>; waitMs?: number } = {};
  for (const [name, given] of Object.entries(value)) {
    if (name === 'maxTokens') {
      const checked = validateIntegerIn(given, `${path}.maxTokens`, 1, gatewayMaxTokensMax);
      if (!checked.ok) return checked;
      rule.maxTokens = checked.value;
    } else if (name === 'waitMs') {
      const checked = validateIntegerIn(given, `${path}.waitMs`, 1, tierQueueWaitMsMax);
      if (!checked.ok) return checked;
      rule.waitMs = checked.value;
    } else if (name === 'models') {
      if (!isFields(given)) return invalid(`${path}.models`, 'must be an object of model to model');
      const entries = Object.entries(given);
      if (entries.length > degradeModelMapMax) return invalid(`${path}.models`, `at most ${degradeModelMapMax} models`);
      for (const [from, to] of entries)
        if (!modelNamePattern.test(from) || typeof to !== 'string' || !modelNamePattern.test(to))
          return invalid(`${path}.models`, 'model names are 1 to 128 printable characters without spaces');
      rule.models = Object.freeze(Object.fromEntries(entries) as Record<string, string>);
    } else {
      return invalid(`${path}.${name}`, 'unknown action; actions are maxTokens, models, waitMs');
    }
  }
  if (Object.keys(rule).length === 0) return invalid(path, 'names no action; give maxTokens, models or waitMs');
  return ok(Object.freeze(rule));
}

// ---- Storage and updates ----

/** The document's `settings` entries of the two (see policy-schema.ts "Storage"). */
export const scheduleSettingKey = 'schedule';
export const degradeSettingKey = 'degrade';

/** Degrade settings as they start when a first update names only some fields: no tier degraded yet. */
export const defaultDegradeSettings: DegradeSettings = Object.freeze({ utilisationPercent: 85, pausedAccounts: 1, tiers: Object.freeze({}) });

/**
 * An update (PATCH /policy/settings): given fields merge over what is stored (or the defaults),
 * `tierWeights` field by field, and the result must validate whole; `null` drops the entry. A
 * degrade update's `tiers` replaces the stored rules whole, so a rule is removed by leaving it out.
 */
export type ScheduleSettingsPatch = Readonly<Record<string, unknown>>;
export type DegradeSettingsPatch = Readonly<Record<string, unknown>>;

/** Only the shape of a patch; `scheduleWrite` and `degradeWrite` check the merged result. */
export function validateSettingsObjectPatch(value: unknown, field: string): Result<Readonly<Record<string, unknown>> | null, PolicyError> {
  if (value === null) return ok(null);
  if (!isFields(value)) return invalid(field, 'must be an object, or null to return to the defaults');
  return ok(Object.freeze({ ...value }));
}

/** The policy's schedule settings, defaults when it sets none or stores an invalid entry (reported). */
export function readScheduleSettings(stored: (key: string) => unknown): SettingsRead<ScheduleSettings> {
  const entry = stored(scheduleSettingKey);
  if (entry === undefined) return { settings: defaultScheduleSettings, errors: [] };
  const checked = validateScheduleSettings(entry, 'settings.schedule');
  return checked.ok ? { settings: checked.value, errors: [] } : { settings: defaultScheduleSettings, errors: [checked.error] };
}

/** The policy's degrade settings, or undefined (nothing is ever degraded) when it sets none or an invalid entry (reported). */
export function readDegradeSettings(stored: (key: string) => unknown): SettingsRead<DegradeSettings | undefined> {
  const entry = stored(degradeSettingKey);
  if (entry === undefined) return { settings: undefined, errors: [] };
  const checked = validateDegradeSettings(entry, 'settings.degrade');
  return checked.ok ? { settings: checked.value, errors: [] } : { settings: undefined, errors: [checked.error] };
}

/** The whole schedule entry after `patch`, validated; undefined drops it. */
export function scheduleWrite(stored: (key: string) => unknown, patch: ScheduleSettingsPatch | null): Result<object | undefined, PolicyError> {
  if (patch === null) return ok(undefined);
  const current = readScheduleSettings(stored).settings;
  const weights = patch.tierWeights;
  const merged = { ...current, ...patch, tierWeights: isFields(weights) ? { ...current.tierWeights, ...weights } : (weights ?? current.tierWeights) };
  const checked = validateScheduleSettings(merged, 'settings.schedule');
  if (!checked.ok) return checked;
  return ok(JSON.parse(JSON.stringify(checked.value)) as object);
}

/** The whole degrade entry after `patch`, validated; undefined drops it. */
export function degradeWrite(stored: (key: string) => unknown, patch: DegradeSettingsPatch | null): Result<object | undefined, PolicyError> {
  if (patch === null) return ok(undefined);
  const current = readDegradeSettings(stored).settings ?? defaultDegradeSettings;
  const checked = validateDegradeSettings({ ...current, ...patch }, 'settings.degrade');
  if (!checked.ok) return checked;
  return ok(JSON.parse(JSON.stringify(checked.value)) as object);
}
