// Proves the launcher's restart delay starts small, doubles with each death that follows a short
// run, stops at the cap, and starts over after a stable run.
import { describe, expect, it } from 'vitest';
import { childRestartDelayMsInitial, childRestartDelayMsMax, RestartBackoff } from '../../src/local/restart-backoff.js';

describe('RestartBackoff', () => {
  it('doubles from the initial delay up to the cap', () => {
    const backoff = new RestartBackoff();
    const delays = Array.from({ length: 10 }, () => backoff.onExit(0));
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    expect(delays[0]).toBe(childRestartDelayMsInitial);
    expect(Math.max(...delays)).toBe(childRestartDelayMsMax);
    // A long crash loop stays at the cap (the exponent does not overflow into Infinity or NaN).
    for (let i = 0; i < 2_000; i++) backoff.onExit(0);
    expect(backoff.onExit(0)).toBe(childRestartDelayMsMax);
  });

  it('starts over after a run of at least stableMs, not after a shorter one', () => {
    const backoff = new RestartBackoff({ delayMsInitial: 100, delayMsMax: 1_000, stableMs: 5_000 });
    expect([backoff.onExit(0), backoff.onExit(4_999), backoff.onExit(100)]).toEqual([100, 200, 400]);
    expect(backoff.onExit(5_000)).toBe(100);
    expect(backoff.consecutiveFailures).toBe(1);
    expect(backoff.onExit(10)).toBe(200);
  });
});
