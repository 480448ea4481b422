// Proves the subscription windows of an OAuth account under an injected clock: a window starts at
// the first charge and resets whole at its real end (start + length), utilisation rises and the
// status goes allowed → allowed_warning → rejected, a spent window refuses until it ends (the later
// end when both are spent), output may overdraw a window, weighted tokens are priced per kind, and
// the unified headers carry the real names and formats.
import { describe, expect, it } from 'vitest';
import { unifiedHeaders, utilizationText } from '../../../src/upstream/emulator/rate-limit-headers.js';
import {
  fiveHourMs,
  inputCharge,
  outputCharge,
  sevenDayMs,
  type SubscriptionLimits,
  SubscriptionWindows,
} from '../../../src/upstream/emulator/subscription-windows.js';

const startMs = 1_790_000_000_000;
const limits = (fiveHourBudget: number, sevenDayBudget: number, warningUtilization = 0.8): SubscriptionLimits => ({
  unit: 'requests',
  fiveHour: { budget: fiveHourBudget, lengthMs: fiveHourMs },
  sevenDay: { budget: sevenDayBudget, lengthMs: sevenDayMs },
  warningUtilization,
});

describe('SubscriptionWindows', () => {
  it('raises utilisation with each charge and moves allowed → allowed_warning → rejected', () => {
    const windows = new SubscriptionWindows(limits(10, 100));
    const statuses: string[] = [];
    const utilizations: number[] = [];
    for (let i = 0; i < 10; i++) {
      expect(windows.admit(startMs + i).ok).toBe(true);
      windows.charge(1, startMs + i);
      const state = windows.state(startMs + i);
      statuses.push(state.fiveHour.status);
      utilizations.push(state.fiveHour.utilization);
    }
    expect(utilizations.map((u) => Math.round(u * 1000) / 1000)).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(statuses).toEqual(['allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed_warning', 'allowed_warning', 'rejected']);
    const state = windows.state(startMs + 10);
    expect(state.status).toBe('rejected');
    expect(state.representative.name).toBe('five_hour');
    expect(state.sevenDay).toMatchObject({ status: 'allowed', utilization: 0.1 });
  });

  it('starts a window at its first charge and resets it whole at start + 5 h, not at a fixed time', () => {
    const windows = new SubscriptionWindows(limits(2, 100));
    // Nothing charged yet: the window would end one length from now, and moves with now.
    expect(windows.state(startMs).fiveHour.resetAtMs).toBe(startMs + fiveHourMs);
    expect(windows.state(startMs + 1_000).fiveHour.resetAtMs).toBe(startMs + 1_000 + fiveHourMs);
    const firstMs = startMs + 60_000;
    windows.charge(1, firstMs);
    windows.charge(1, firstMs + 3_600_000);
    const refused = windows.admit(firstMs + 3_600_001);
    expect(refused).toEqual({ ok: false, error: { kind: 'window-exhausted', window: 'five_hour', resetAtMs: firstMs + fiveHourMs } });
    expect(windows.admit(firstMs + fiveHourMs - 1).ok).toBe(false);
    expect(windows.admit(firstMs + fiveHourMs).ok).toBe(true);
    expect(windows.state(firstMs + fiveHourMs).fiveHour).toMatchObject({ status: 'allowed', utilization: 0 });
    // The weekly window keeps counting across the 5-hour reset, from its own start.
    expect(windows.state(firstMs + fiveHourMs).sevenDay).toMatchObject({ utilization: 0.02, resetAtMs: firstMs + sevenDayMs });
  });

  it('refuses until the later end when both windows are spent, and names that window', () => {
    const windows = new SubscriptionWindows(limits(5, 5));
    for (let i = 0; i < 5; i++) windows.charge(1, startMs);
    expect(windows.admit(startMs)).toEqual({ ok: false, error: { kind: 'window-exhausted', window: 'seven_day', resetAtMs: startMs + sevenDayMs } });
    const state = windows.state(startMs);
    expect(state.representative).toMatchObject({ name: 'seven_day', status: 'rejected', resetAtMs: startMs + sevenDayMs });
    // After the 5-hour end only the weekly window still refuses.
    expect(windows.admit(startMs + fiveHourMs).ok).toBe(false);
    expect(windows.admit(startMs + sevenDayMs).ok).toBe(true);
  });

  it('names the fuller window as representative while nothing is spent', () => {
    const windows = new SubscriptionWindows(limits(100, 4));
    windows.charge(2, startMs);
    const state = windows.state(startMs);
    expect(state.status).toBe('allowed');
    expect(state.representative.name).toBe('seven_day');
    expect(new SubscriptionWindows(limits(100, 100)).state(startMs).representative.name).toBe('five_hour');
  });

  it('exhausts a window now with a chosen end, and reopens it empty at that end', () => {
    const windows = new SubscriptionWindows(limits(100, 1000));
    windows.charge(3, startMs);
    windows.exhaust('five_hour', startMs + 10, 3_000);
    expect(windows.admit(startMs + 10)).toEqual({ ok: false, error: { kind: 'window-exhausted', window: 'five_hour', resetAtMs: startMs + 3_010 } });
    expect(windows.state(startMs + 3_009).fiveHour).toMatchObject({ status: 'rejected', utilization: 1, resetAtMs: startMs + 3_010 });
    expect(windows.admit(startMs + 3_010).ok).toBe(true);
    expect(windows.state(startMs + 3_010).fiveHour.utilization).toBe(0);
    windows.exhaust('seven_day', startMs + 3_010, 60_000);
    expect(windows.admit(startMs + 3_010)).toMatchObject({ ok: false, error: { window: 'seven_day', resetAtMs: startMs + 63_010 } });
  });

  it('lets output overdraw a window (utilisation above 1) and never reopens it on a clock that steps back', () => {
    const windows = new SubscriptionWindows({ ...limits(100, 1000), unit: 'weighted-tokens' });
    windows.charge(90, startMs);
    expect(windows.admit(startMs).ok).toBe(true);
    windows.charge(outputCharge('weighted-tokens', 4), startMs + 1);
    expect(windows.state(startMs + 1).fiveHour).toMatchObject({ status: 'rejected', utilization: 1.1 });
    expect(windows.admit(startMs - 5_000).ok).toBe(false);
  });

  it('prices weighted tokens per kind and requests at one each', () => {
    const usage = { inputTokens: 100, cacheCreationInputTokens: 100, cacheReadInputTokens: 100 };
    expect(inputCharge('weighted-tokens', usage)).toBe(100 + 125 + 10);
    expect(inputCharge('requests', usage)).toBe(1);
    expect(outputCharge('weighted-tokens', 3)).toBe(15);
    expect(outputCharge('requests', 3)).toBe(0);
  });
});

describe('unifiedHeaders', () => {
  it('writes the real names: statuses, fractions, unix-second resets and the representative claim', () => {
    const windows = new SubscriptionWindows(limits(4, 100));
    for (let i = 0; i < 3; i++) windows.charge(1, startMs + 400);
    expect(unifiedHeaders(windows.state(startMs + 500))).toEqual({
      'anthropic-ratelimit-unified-status': 'allowed',
      'anthropic-ratelimit-unified-reset': String(Math.ceil((startMs + 400 + fiveHourMs) / 1000)),
      'anthropic-ratelimit-unified-representative-claim': 'five_hour',
      'anthropic-ratelimit-unified-5h-status': 'allowed',
      'anthropic-ratelimit-unified-5h-utilization': '0.75',
      'anthropic-ratelimit-unified-5h-reset': String(Math.ceil((startMs + 400 + fiveHourMs) / 1000)),
      'anthropic-ratelimit-unified-7d-status': 'allowed',
      'anthropic-ratelimit-unified-7d-utilization': '0.03',
      'anthropic-ratelimit-unified-7d-reset': String(Math.ceil((startMs + 400 + sevenDayMs) / 1000)),
    });
  });

  it('formats utilisation with at most four decimals', () => {
    expect(utilizationText(0)).toBe('0');
    expect(utilizationText(1 / 3)).toBe('0.3333');
    expect(utilizationText(1.08)).toBe('1.08');
  });
});
