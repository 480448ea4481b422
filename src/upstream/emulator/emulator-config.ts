import { emulatorAccountsMax, emulatorFaultsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { type Fault, parseFault } from './fault-plan.js';
import { PromptHash } from './prompt-hash.js';
import type { AccountLimits } from './rate-limiter.js';
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
 *       "faults": [{ "kind": "overloaded", "count": 2 }] }
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
 */
export type AccountKind = 'api-key' | 'oauth';

export interface EmulatorAccount {
  readonly key: string;
  readonly kind: AccountKind;
  readonly limits: AccountLimits;
  readonly faults: readonly Fault[];
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
    if (!['key', 'kind', 'requestsPerMinute', 'inputTokensPerMinute', 'outputTokensPerMinute', 'faults'].includes(name)) return bad(`${field}.${name}`, 'unknown field');
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
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > perMinuteMax) return bad(`${field}.${name}`, `must be an integer from 1 to ${perMinuteMax}`);
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
      if (!fault.ok) return bad(fault.error.kind === 'bad-fault' ? fault.error.field : `${field}.faults`, fault.error.kind === 'bad-fault' ? fault.error.reason : 'too many faults');
      faults.push(fault.value);
    }
  }
  return ok({
    key,
    kind,
    limits: { requestsPerMinute: requestsPerMinute.value, inputTokensPerMinute: inputTokensPerMinute.value, outputTokensPerMinute: outputTokensPerMinute.value },
    faults,
  });
}

/** Whether a model name is served: the configured set, or any `claude-*` name without one. */
export function isServedModel(model: string, models: readonly string[] | undefined): boolean {
  if (models !== undefined) return models.includes(model);
  return claudeModelPattern.test(model);
}
