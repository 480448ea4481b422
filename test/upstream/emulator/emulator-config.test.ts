// Proves accounts files are validated with errors naming the bad field (subscription logins and
// windows included), defaults are filled,
// generated keys are deterministic in the seed, and the model check is permissive by default.
import { describe, expect, it } from 'vitest';
import { emulatorFaultsMax } from '../../../src/core/limits.js';
import {
  defaultAccountLimits,
  defaultSubscriptionLimits,
  generatedAccounts,
  isServedModel,
  parseAccountsFile,
} from '../../../src/upstream/emulator/emulator-config.js';
import { fiveHourMs, sevenDayMs } from '../../../src/upstream/emulator/subscription-windows.js';

function fieldOf(raw: unknown): string | undefined {
  const parsed = parseAccountsFile(raw);
  return parsed.ok ? undefined : parsed.error.field;
}

describe('parseAccountsFile', () => {
  it('reads keys, kinds, limits and faults, filling defaults', () => {
    const parsed = parseAccountsFile({
      accounts: [
        { key: 'sk-ant-api03-first', requestsPerMinute: 50 },
        { key: 'sk-ant-oat01-second', kind: 'oauth', faults: [{ kind: 'overloaded', count: 2 }] },
      ],
      models: ['claude-sonnet-4-6'],
    });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.accounts[0]).toEqual({
      key: 'sk-ant-api03-first',
      kind: 'api-key',
      limits: { ...defaultAccountLimits, requestsPerMinute: 50 },
      faults: [],
    });
    expect(parsed.value.accounts[1]!.faults).toEqual([{ key: 'sk-ant-oat01-second', count: 2, action: { kind: 'overloaded' } }]);
    expect(parsed.value.models).toEqual(['claude-sonnet-4-6']);
  });

  it('names the bad field', () => {
    expect(fieldOf([])).toBe('(root)');
    expect(fieldOf({ accounts: [] })).toBe('accounts');
    expect(fieldOf({ accounts: [{ key: 'short' }] })).toBe('accounts[0].key');
    expect(fieldOf({ accounts: [{ key: 'has a space in it' }] })).toBe('accounts[0].key');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1', kind: 'password' }] })).toBe('accounts[0].kind');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1', requestsPerMinute: 0 }] })).toBe('accounts[0].requestsPerMinute');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1', outputTokensPerMinute: '8000' }] })).toBe('accounts[0].outputTokensPerMinute');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1', faults: [{ kind: 'boom' }] }] })).toBe('accounts[0].faults[0].kind');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1' }, { key: 'sk-ant-valid-1' }] })).toBe('accounts[1].key');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1', tier: 4 }] })).toBe('accounts[0].tier');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1' }], models: ['bad model'] })).toBe('models[0]');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-valid-1' }], region: 'eu' })).toBe('region');
    const manyFaults = Array.from({ length: emulatorFaultsMax }, () => ({ kind: 'overloaded' }));
    expect(
      fieldOf({
        accounts: [
          { key: 'sk-ant-valid-1', faults: manyFaults },
          { key: 'sk-ant-valid-2', faults: [{ kind: 'overloaded' }] },
        ],
      }),
    ).toBe('accounts');
  });
});

describe('parseAccountsFile: subscription logins and windows', () => {
  const oauth = { refreshToken: 'sk-ant-ort01-third', accessTokenLifetimeMs: 5000 };

  it('reads a renewable login and its windows, filling the window defaults', () => {
    const parsed = parseAccountsFile({
      accounts: [{ key: 'sk-ant-oat01-third', kind: 'oauth', oauth, windows: { fiveHourBudget: 200, sevenDayBudget: 2000 } }],
    });
    expect(parsed.ok && parsed.value.accounts[0]).toMatchObject({
      oauth,
      windows: { unit: 'requests', fiveHour: { budget: 200, lengthMs: fiveHourMs }, sevenDay: { budget: 2000, lengthMs: sevenDayMs }, warningUtilization: 0.8 },
    });
    const custom = parseAccountsFile({
      accounts: [
        {
          key: 'sk-ant-oat01-third',
          kind: 'oauth',
          windows: { unit: 'weighted-tokens', fiveHourBudget: 1, sevenDayBudget: 2, fiveHourMs: 1000, sevenDayMs: 2000, warningUtilization: 0.5 },
        },
      ],
    });
    expect(custom.ok && custom.value.accounts[0]!.windows).toEqual({
      unit: 'weighted-tokens',
      fiveHour: { budget: 1, lengthMs: 1000 },
      sevenDay: { budget: 2, lengthMs: 2000 },
      warningUtilization: 0.5,
    });
    expect(defaultSubscriptionLimits.fiveHour.lengthMs).toBe(fiveHourMs);
  });

  it('names the bad field of a login or a window', () => {
    const account = (extra: Record<string, unknown>): unknown => ({ accounts: [{ key: 'sk-ant-oat01-third', kind: 'oauth', ...extra }] });
    expect(fieldOf({ accounts: [{ key: 'sk-ant-api03-first', oauth }] })).toBe('accounts[0].oauth');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-api03-first', windows: { fiveHourBudget: 1, sevenDayBudget: 1 } }] })).toBe('accounts[0].windows');
    expect(fieldOf(account({ oauth: { ...oauth, accessTokenLifetimeMs: 999 } }))).toBe('accounts[0].oauth.accessTokenLifetimeMs');
    expect(fieldOf(account({ oauth: { ...oauth, refreshToken: 'short' } }))).toBe('accounts[0].oauth.refreshToken');
    expect(fieldOf(account({ oauth: { ...oauth, refreshToken: 'sk-ant-oat01-third' } }))).toBe('accounts[0].oauth.refreshToken');
    expect(fieldOf(account({ oauth: { ...oauth, expiresAt: 1 } }))).toBe('accounts[0].oauth.expiresAt');
    expect(fieldOf(account({ windows: { fiveHourBudget: 1 } }))).toBe('accounts[0].windows.sevenDayBudget');
    expect(fieldOf(account({ windows: { fiveHourBudget: 0, sevenDayBudget: 1 } }))).toBe('accounts[0].windows.fiveHourBudget');
    expect(fieldOf(account({ windows: { fiveHourBudget: 1, sevenDayBudget: 1, unit: 'dollars' } }))).toBe('accounts[0].windows.unit');
    expect(fieldOf(account({ windows: { fiveHourBudget: 1, sevenDayBudget: 1, warningUtilization: 1.5 } }))).toBe('accounts[0].windows.warningUtilization');
    expect(fieldOf(account({ windows: { fiveHourBudget: 1, sevenDayBudget: 1, fiveHourMs: 10 } }))).toBe('accounts[0].windows.fiveHourMs');
    expect(fieldOf({ accounts: [{ key: 'sk-ant-oat01-third', kind: 'oauth', oauth }, { key: 'sk-ant-ort01-third' }] })).toBe('accounts[1].key');
    expect(
      fieldOf({
        accounts: [{ key: 'sk-ant-api03-first' }, { key: 'sk-ant-oat01-third', kind: 'oauth', oauth: { ...oauth, refreshToken: 'sk-ant-api03-first' } }],
      }),
    ).toBe('accounts[1].oauth.refreshToken');
  });
});

describe('generatedAccounts', () => {
  it('derives distinct keys from the seed, the same for the same seed', () => {
    const keys = generatedAccounts(3, 7).map((a) => a.key);
    expect(keys).toEqual(generatedAccounts(3, 7).map((a) => a.key));
    expect(new Set(keys).size).toBe(3);
    expect(keys[0]).toMatch(/^sk-ant-emu-0-[0-9a-f]{16}$/);
    expect(generatedAccounts(1, 8)[0]!.key).not.toBe(keys[0]);
  });
});

describe('isServedModel', () => {
  it('serves any claude-* name by default, and only the listed ones when configured', () => {
    expect(isServedModel('claude-sonnet-4-6', undefined)).toBe(true);
    expect(isServedModel('gpt-4o', undefined)).toBe(false);
    expect(isServedModel('claude-sonnet-4-6', ['claude-haiku-4-5'])).toBe(false);
  });
});
