// Proves the queue's usage figure is mesh-wide: what one node's settlements charge reaches another
// node's TenantUsage through the counter's deltas, in both the 10-second and the minute series; what
// other nodes served a tenant excludes the node's own charges; and a tenant heavy at one node drops
// a level in the other node's queue.
import { describe, expect, it } from 'vitest';
import { asReplicaId, type TenantId } from '../../../src/core/ids.js';
import { WindowedCounter } from '../../../src/crdt/windowed-counter.js';
import { defaultScheduleSettings } from '../../../src/mesh/policy/schedule-schema.js';
import { ScheduleUsage } from '../../../src/node/gateway/schedule-usage.js';
import { TierQueue } from '../../../src/schedule/tier-queue.js';

const heavy = 'heavy-co' as TenantId;
const light = 'light-co' as TenantId;

describe('ScheduleUsage', () => {
  it("carries one node's charges to another node's queue", () => {
    const nowMs = 1_800_000_000_000;
    const east = new WindowedCounter(asReplicaId('east'), { horizonMs: 3_600_000 });
    const west = new WindowedCounter(asReplicaId('west'), { horizonMs: 3_600_000 });
    const eastUsage = new ScheduleUsage(east);
    const westUsage = new ScheduleUsage(west);
    // 400,000 weighted tokens in the last minute at east: 8x a free tenant's 50,000 per minute.
    for (let i = 0; i < 40; i++) eastUsage.charge(heavy, 10_000, nowMs - 50_000 + i * 1_000);
    expect(westUsage.tokensOver(heavy, 60_000, 'sec10', nowMs)).toBe(0);
    west.join(east.takeDelta());
    expect(westUsage.tokensOver(heavy, 60_000, 'sec10', nowMs)).toBe(400_000);
    expect(westUsage.tokensOver(heavy, 900_000, 'minute', nowMs)).toBe(400_000);
    // What other nodes served: all of it seen from west, none of it from east (its own).
    westUsage.charge(heavy, 5_000, nowMs);
    expect(westUsage.othersOver(heavy, 60_000, nowMs)).toBe(400_000);
    expect(eastUsage.othersOver(heavy, 60_000, nowMs)).toBe(0);
    east.join(west.takeDelta());
    expect(eastUsage.othersOver(heavy, 60_000, nowMs)).toBe(5_000);
    const queue = new TierQueue(undefined, { settings: defaultScheduleSettings, usage: westUsage });
    queue.enqueue({ tier: 'free', tenant: heavy, costTokens: 100 }, nowMs);
    queue.enqueue({ tier: 'free', tenant: light, costTokens: 100 }, nowMs);
    expect(queue.levelOf(heavy, 'free', nowMs)).toBe(3);
    expect(queue.levelOf(light, 'free', nowMs)).toBe(0);
    expect(queue.dequeue(nowMs)?.tenant).toBe(light);
  });
});
