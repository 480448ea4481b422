// Proves `carpool admin pool` shows what an operator needs of each account: its state, when it is
// back, a subscription's window utilisation and why it is disabled.
import { describe, expect, it } from 'vitest';
import { poolLines } from '../../src/admin-cli/admin-format.js';

describe('carpool admin pool', () => {
  it('lists state, time to come back, window utilisation and the disable reason', () => {
    const nowMs = 1_800_000_000_000;
    const lines = poolLines(
      {
        accounts: [
          {
            id: 'sub-1',
            homeRegion: 'us-east',
            state: 'exhausted',
            inFlight: 0,
            concurrencyMax: 8,
            queued: 0,
            availableAtMs: nowMs + 90 * 60_000,
            windows: { status: 'rejected', windows: { 'five-hour': { utilization: 1.02 }, 'seven-day': { utilization: 0.415 } } },
          },
          {
            id: 'sub-2',
            homeRegion: 'eu-west',
            state: 'disabled',
            inFlight: 0,
            concurrencyMax: 8,
            queued: 0,
            disabledReason: 'credential: refresh refused: invalid_grant',
          },
          { id: 'key-1', homeRegion: 'eu-west', state: 'healthy', inFlight: 2, concurrencyMax: 8, queued: 1 },
        ],
      },
      nowMs,
    );
    expect(lines[0]).toMatch(/^ACCOUNT\s+HOME\s+STATE\s+IN FLIGHT\s+QUEUED\s+BACK IN\s+WINDOWS\s+WHY/);
    expect(lines[1]).toMatch(/^sub-1\s+us-east\s+exhausted\s+0\/8\s+0\s+1.5 h\s+5h 102% 7d 42%\s+-$/);
    expect(lines[2]).toMatch(/sub-2\s+eu-west\s+disabled\s+0\/8\s+0\s+-\s+-\s+credential: refresh refused: invalid_grant$/);
    expect(lines[3]).toMatch(/^key-1\s+eu-west\s+healthy\s+2\/8\s+1\s+-\s+-\s+-$/);
  });
});
