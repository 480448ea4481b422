import { emulatorAccountsMax, emulatorFaultsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { type Fault, parseFault } from './fault-plan.js';
import type { OAuthAccountConfig } from './oauth-tokens.js';
import { PromptHash } from './prompt-hash.js';
import type { AccountLimits } from './rate-limiter.js';
import { fiveHourMs, sevenDayMs, type SubscriptionLimits } from './subscription-windows.js';
import { isJson } from './token-count.js';

/**
 * The accounts an emulator serves, and the JSON file that lists them (`carpool emulate
 * --accounts FILE`):
 *
 * ```json
 * {
 *   "accounts": [
 *     { "key": "sk-ant-api03-first", "kind": "api-key",
 *       "requestsPerMinute": 50, "inputTokensPerMinute": 30000, "outputTokensPerMinute": 8000 },
 *     { "key": "sk-ant-oat01-second", "kind": "oauth",
 *       "faults": [{ "kind": "overloaded", "count": 2 }] },
 *     { "key": "sk-ant-oat01-third", "kind": "oauth",
 *       "oauth": { "refreshToken": "sk-ant-ort01-third", "accessTokenLifetimeMs": 5000 },
 *       "windows": { "unit": "requests", "fiveHourBudget": 200, "sevenDayBudget": 2000,
 *                    "fiveHourMs": 18000000, "sevenDayMs": 604800000, "warningUtilization": 0.8 } }
 *   ],
 *   "models": ["claude-sonnet-4-6"]
 * }
 * ```
 *
 * An API key is accepted in `x-api-key` or as `Authorization: Bearer` (the SDK sends it either
 * way, depending on version); an OAuth (subscription) token only as a bearer token, as the real
 * API has it. Limits left out take `defaultAccountLimits`; `faults` (see fault-plan.ts) are aimed
 * at the account's own key. `models`, when given, is the exact set of model names served;
 * otherwise any name shaped like `claude-*` is. Every error names the field it is about.
 *
 * OAuth accounts only:
 *   - `oauth` makes the login renewable (oauth-tokens.ts): `key` is then the first access token,
 *     valid `accessTokenLifetimeMs` (1 s or more) from start; `refreshToken` is honoured once at
 *     `POST /v1/oauth/token`, which answers a new access token and a new refresh token. Without
 *     `oauth`, `key` is a static token that never expires, as before.
 *   - `windows` are the subscription's 5-hour and 7-day budgets (subscription-windows.ts), in
 *     `requests` (the default unit) or `weighted-tokens`; lengths default to 5 h and 7 days, the
 *     warning share to 0.8. Left out, an OAuth account gets `defaultSubscriptionLimits`, budgets
 *     no test reaches, so its answers still carry the `anthropic-ratelimit-unified-*` headers.
 *     A key and a refresh token are distinct across the whole file.
 */
export type AccountKind = 'api-key' | 'oauth';

export interface EmulatorAccount {
  readonly key: string;
  readonly kind: AccountKind;
  readonly limits: AccountLimits;
  readonly faults: readonly Fault[];
  /** OAuth accounts only: a renewable login; absent, the key is a static token. */
  readonly oauth?: OAuthAccountConfig | undefined;
  /** OAuth accounts only: the subscription windows; absent, `defaultSubscriptionLimits`. */
  readonly windows?: SubscriptionLimits | undefined;
}

export interface AccountsFile {
  readonly accounts: readonly EmulatorAccount[];
  readonly models: readonly string[] | undefined;
}

export interface ConfigError {
  readonly kind: 'bad-config';
  readonly field: string;
  readonly reason: string;
}

/** Limits roughly of a high usage tier, so that a test that does not ask for a limit never meets one. */
export const defaultAccountLimits: AccountLimits = Object.freeze({
  requestsPerMinute: 4_000,
  inputTokensPerMinute: 2_000_000,
  outputTokensPerMinute: 400_000,
});

/** Windows of a subscription that no test reaches, so an OAuth account left unconfigured still reports them. */
export const defaultSubscriptionLimits: SubscriptionLimits = Object.freeze({
  unit: 'requests',
  fiveHour: Object.freeze({ budget: 1_000_000, lengthMs: fiveHourMs }),
  sevenDay: Object.freeze({ budget: 10_000_000, lengthMs: sevenDayMs }),
  warningUtilization: 0.8,
});

/** Longest access-token lifetime configurable: a year, the life of Claude Code's long-lived setup token. */
const accessTokenLifetimeMsMax = 365 * 24 * 60 * 60 * 1000;
/** Longest window configurable: far past the real weekly window, short of anything a timer cannot hold. */
const windowMsMax = 4 * sevenDayMs;
/** A budget above this is no budget a test could spend. */
const windowBudgetMax = 1_000_000_000_000;

/** Key lengths accepted: long enough not to be guessed by accident, short enough for a header. */
const keyLengthMin = 8;
const keyLengthMax = 256;
/** A per-minute limit above this is no limit a test could reach. */
const perMinuteMax = 1_000_000_000;

/** Printable ASCII without spaces: what fits a header value untouched. */
const keyPattern = /^[\x21-\x7e]+$/;
const modelPattern = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/;
/** The names served when no set is configured. */
const claudeModelPattern = /^claude-[a-z0-9][a-z0-9.-]*$/;

const bad = (field: string, reason: string): Result<never, ConfigError> => err({ kind: 'bad-config', field, reason });

/** `count` API-key accounts with default limits and keys derived from `seed`: the same seed, the same keys. */
export function generatedAccounts(count: number, seed: number): EmulatorAccount[] {
  const accounts: EmulatorAccount[] = [];
  for (let i = 0; i < count; i++) {
    const suffix = new PromptHash().update(`carpool-emulator-key:${seed}:${i}`).digest();
    accounts.push({ key: `sk-ant-emu-${i}-${suffix}`, kind: 'api-key', limits: defaultAccountLimits, faults: [] });
  }
  return accounts;
}

export function parseAccountsFile(raw: unknown): Result<AccountsFile, ConfigError> {
  if (!isJson(raw)) return bad('(root)', 'must be a JSON object with an "accounts" array');
  for (const field of Object.keys(raw)) if (!['accounts', 'models'].includes(field)) return bad(field, 'unknown field');
  if (!Array.isArray(raw.accounts) || raw.accounts.length === 0 || raw.accounts.length > emulatorAccountsMax) {
    return bad('accounts', `must be an array of 1 to ${emulatorAccountsMax} accounts`);
  }
  const accounts: EmulatorAccount[] = [];
  const keys = new Set<string>();
  for (const [i, entry] of (raw.accounts as unknown[]).entries()) {
    const parsed = parseAccount(entry, `accounts[${i}]`);
    if (!parsed.ok) return parsed;
    if (keys.has(parsed.value.key)) return bad(`accounts[${i}].key`, 'is listed twice');
    keys.add(parsed.value.key);
    const refreshToken = parsed.value.oauth?.refreshToken;
    if (refreshToken !== undefined) {
      if (keys.has(refreshToken)) return bad(`accounts[${i}].oauth.refreshToken`, 'is listed twice (as a key or a refresh token)');
      keys.add(refreshToken);
    }
    accounts.push(parsed.value);
  }
  const faults = accounts.reduce((sum, account) => sum + account.faults.length, 0);
  if (faults > emulatorFaultsMax) return bad('accounts', `list ${faults} faults in all, more than the ${emulatorFaultsMax} an emulator queues`);
  let models: string[] | undefined;
  if (raw.models !== undefined) {
    if (!Array.isArray(raw.models) || raw.models.length === 0) return bad('models', 'must be a non-empty array of model names');
    models = [];
    for (const [i, model] of (raw.models as unknown[]).entries()) {
      if (typeof model !== 'string' || model.length > 128 || !modelPattern.test(model)) return bad(`models[${i}]`, 'must be a model name');
      models.push(model);
    }
  }
  return ok({ accounts, models });
}

function parseAccount(raw: unknown, field: string): Result<EmulatorAccount, ConfigError> {
  if (!isJson(raw)) return bad(field, 'must be an object with a key');
  for (const name of Object.keys(raw)) {
    if (!['key', 'kind', 'requestsPerMinute', 'inputTokensPerMinute', 'outputTokensPerMinute', 'faults', 'oauth', 'windows'].includes(name))
      return bad(`${field}.${name}`, 'unknown field');
  }
  const key = raw.key;
  if (typeof key !== 'string' || key.length < keyLengthMin || key.length > keyLengthMax || !keyPattern.test(key)) {
    return bad(`${field}.key`, `must be ${keyLengthMin} to ${keyLengthMax} printable ASCII characters without spaces`);
  }
  const kind = raw.kind ?? 'api-key';
  if (kind !== 'api-key' && kind !== 'oauth') return bad(`${field}.kind`, 'must be "api-key" or "oauth"');
  const limit = (name: keyof AccountLimits): Result<number, ConfigError> => {
    const value = raw[name];
    if (value === undefined) return ok(defaultAccountLimits[name]);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > perMinuteMax)
      return bad(`${field}.${name}`, `must be an integer from 1 to ${perMinuteMax}`);
    return ok(value);
  };
  const requestsPerMinute = limit('requestsPerMinute');
  if (!requestsPerMinute.ok) return requestsPerMinute;
  const inputTokensPerMinute = limit('inputTokensPerMinute');
  if (!inputTokensPerMinute.ok) return inputTokensPerMinute;
  const outputTokensPerMinute = limit('outputTokensPerMinute');
  if (!outputTokensPerMinute.ok) return outputTokensPerMinute;
  const faults: Fault[] = [];
  if (raw.faults !== undefined) {
    if (!Array.isArray(raw.faults)) return bad(`${field}.faults`, 'must be an array of faults');
    for (const [i, entry] of (raw.faults as unknown[]).entries()) {
      const fault = parseFault(entry, `${field}.faults[${i}]`, key);
      if (!fault.ok)
        return bad(
          fault.error.kind === 'bad-fault' ? fault.error.field : `${field}.faults`,
          fault.error.kind === 'bad-fault' ? fault.error.reason : 'too many faults',
        );
      faults.push(fault.value);
    }
  }
  if (kind !== 'oauth' && (raw.oauth !== undefined || raw.windows !== undefined)) {
    return bad(`${field}.${raw.oauth !== undefined ? 'oauth' : 'windows'}`, 'is for "oauth" accounts only');
  }
  const oauth = raw.oauth === undefined ? ok(undefined) : parseOAuth(raw.oauth, `${field}.oauth`);
  if (!oauth.ok) return oauth;
  if (oauth.value !== undefined && oauth.value.refreshToken === key) return bad(`${field}.oauth.refreshToken`, 'must differ from the key');
  const windows = raw.windows === undefined ? ok(undefined) : parseWindows(raw.windows, `${field}.windows`);
  if (!windows.ok) return windows;
  return ok({
    key,
    kind,
    limits: {
      requestsPerMinute: requestsPerMinute.value,
      inputTokensPerMinute: inputTokensPerMinute.value,
      outputTokensPerMinute: outputTokensPerMinute.value,
    },
    faults,
    oauth: oauth.value,
    windows: windows.value,
  });
}

/** A whole number within [min, max], or `fallback` when absent. */
function wholeNumber(raw: Record<string, unknown>, name: string, field: string, min: number, max: number, fallback?: number): Result<number, ConfigError> {
  const value = raw[name];
  if (value === undefined && fallback !== undefined) return ok(fallback);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    return bad(`${field}.${name}`, `must be an integer from ${min} to ${max}`);
  return ok(value);
}

function parseOAuth(raw: unknown, field: string): Result<OAuthAccountConfig, ConfigError> {
  if (!isJson(raw)) return bad(field, 'must be an object with a refreshToken and an accessTokenLifetimeMs');
  for (const name of Object.keys(raw)) if (!['refreshToken', 'accessTokenLifetimeMs'].includes(name)) return bad(`${field}.${name}`, 'unknown field');
  const refreshToken = raw.refreshToken;
  if (typeof refreshToken !== 'string' || refreshToken.length < keyLengthMin || refreshToken.length > keyLengthMax || !keyPattern.test(refreshToken)) {
    return bad(`${field}.refreshToken`, `must be ${keyLengthMin} to ${keyLengthMax} printable ASCII characters without spaces`);
  }
  const lifetime = wholeNumber(raw, 'accessTokenLifetimeMs', field, 1000, accessTokenLifetimeMsMax);
  if (!lifetime.ok) return lifetime;
  return ok({ refreshToken, accessTokenLifetimeMs: lifetime.value });
}

function parseWindows(raw: unknown, field: string): Result<SubscriptionLimits, ConfigError> {
  if (!isJson(raw)) return bad(field, 'must be an object with fiveHourBudget and sevenDayBudget');
  const names = ['unit', 'fiveHourBudget', 'sevenDayBudget', 'fiveHourMs', 'sevenDayMs', 'warningUtilization'];
  for (const name of Object.keys(raw)) if (!names.includes(name)) return bad(`${field}.${name}`, 'unknown field');
  const unit = raw.unit ?? 'requests';
  if (unit !== 'requests' && unit !== 'weighted-tokens') return bad(`${field}.unit`, 'must be "requests" or "weighted-tokens"');
  const fiveHourBudget = wholeNumber(raw, 'fiveHourBudget', field, 1, windowBudgetMax);
  if (!fiveHourBudget.ok) return fiveHourBudget;
  const sevenDayBudget = wholeNumber(raw, 'sevenDayBudget', field, 1, windowBudgetMax);
  if (!sevenDayBudget.ok) return sevenDayBudget;
  const fiveHourLength = wholeNumber(raw, 'fiveHourMs', field, 1000, windowMsMax, fiveHourMs);
  if (!fiveHourLength.ok) return fiveHourLength;
  const sevenDayLength = wholeNumber(raw, 'sevenDayMs', field, 1000, windowMsMax, sevenDayMs);
  if (!sevenDayLength.ok) return sevenDayLength;
  const warning = raw.warningUtilization ?? 0.8;
  if (typeof warning !== 'number' || !(warning > 0 && warning <= 1)) return bad(`${field}.warningUtilization`, 'must be a number above 0 and at most 1');
  return ok({
    unit,
    fiveHour: { budget: fiveHourBudget.value, lengthMs: fiveHourLength.value },
    sevenDay: { budget: sevenDayBudget.value, lengthMs: sevenDayLength.value },
    warningUtilization: warning,
  });
}

/** Whether a model name is served: the configured set, or any `claude-*` name without one. */
export function isServedModel(model: string, models: readonly string[] | undefined): boolean {
  if (models !== undefined) return models.includes(model);
  return claudeModelPattern.test(model);
}
