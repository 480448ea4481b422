// Proves the usage a standalone run's queues read is what settlements charged, seen a delay later.
import { describe, expect, it } from 'vitest';
import { asRegionId, asTenantId } from '../../src/core/ids.js';
import { defaultScheduleSettings } from '../../src/mesh/policy/schedule-schema.js';
import { TierQueue } from '../../src/schedule/tier-queue.js';
import { SettledUsage } from '../../sim/settled-usage.js';

const heavy = asTenantId('heavy');
const light = asTenantId('light');
const east = asRegionId('us-east');
const west = asRegionId('us-west');

describe('SettledUsage', () => {
  it('shows a settlement to its own region at once and to the others once the replication delay has passed', () => {
    const usage = new SettledUsage(50);
    const [atEast, atWest] = [usage.viewFor(east), usage.viewFor(west)];
    usage.charge(east, heavy, 1_000, 10_000);
    expect(atEast.tokensOver(heavy, 60_000, 'sec10', 10_000)).toBe(1_000);
    expect(atEast.othersOver(heavy, 60_000, 10_000)).toBe(0);
    expect(atWest.tokensOver(heavy, 60_000, 'sec10', 10_049)).toBe(0);
    expect(atWest.tokensOver(heavy, 60_000, 'sec10', 10_050)).toBe(1_000);
    expect(atWest.tokensOver(heavy, 900_000, 'minute', 10_050)).toBe(1_000);
    expect(atWest.othersOver(heavy, 60_000, 10_050)).toBe(1_000);
    expect(atEast.othersOver(heavy, 60_000, 10_050)).toBe(0);
    expect(atWest.tokensOver(light, 60_000, 'sec10', 10_050)).toBe(0);
  });

  it('sums the buckets that overlap the span, as the replicated counter does', () => {
    const settled = new SettledUsage(0);
    const usage = settled.viewFor(east);
    settled.charge(west, heavy, 100, 5_000); // bucket 0 of 10 s, minute 0
    settled.charge(east, heavy, 200, 65_000); // bucket 6, minute 1
    settled.charge(west, heavy, 400, 125_000); // bucket 12, minute 2
    // The last minute at 125 s reaches back into bucket 6 (65.001 s to 125 s overlap buckets 6 to 12).
    expect(usage.tokensOver(heavy, 60_000, 'sec10', 125_000)).toBe(600);
    expect(usage.tokensOver(heavy, 10_000, 'sec10', 125_000)).toBe(400);
    // Minute buckets overlapping (65 s, 125 s] are minutes 1 and 2; over (5 s, 125 s], minute 0 too.
    expect(usage.tokensOver(heavy, 60_000, 'minute', 125_000)).toBe(600);
    expect(usage.tokensOver(heavy, 120_000, 'minute', 125_000)).toBe(700);
    // Zero charges (a request that reached no model) change nothing.
    settled.charge(east, light, 0, 130_000);
    expect(usage.tokensOver(light, 60_000, 'sec10', 130_000)).toBe(0);
    // Others: what us-west served.
    expect(usage.othersOver(heavy, 130_000, 125_000)).toBe(500);
  });

  it('keeps buckets only as far back as the longest window the schedule reads', () => {
    const usage = new SettledUsage(0);
    usage.charge(east, heavy, 100, 0);
    usage.charge(east, heavy, 1, 86_400_000 + 120_000);
    expect(usage.viewFor(west).tokensOver(heavy, 86_400_000, 'minute', 86_400_000 + 120_000)).toBe(1);
  });

  it('drops a heavy tenant below a light one in the tier queue that reads it', () => {
    const usage = new SettledUsage(50);
    const settings = { ...defaultScheduleSettings, levelTokensPerMinute: 1_000 };
    const queue = new TierQueue({ tierDepthMax: 8, totalDepthMax: 16, inFlightMax: 1, quantumTokens: 100 }, { settings, usage: usage.viewFor(west) });
    usage.charge(east, heavy, 50_000, 0);
    queue.enqueue({ tier: 'free', tenant: heavy, costTokens: 10 }, 100);
    queue.enqueue({ tier: 'free', tenant: light, costTokens: 10 }, 101);
    expect(queue.levelOf(heavy, 'free', 101)).toBeGreaterThan(0);
    expect(queue.dequeue(102)?.tenant).toBe(light);
  });
});
