// Proves the scheduling comparison runs its three arms as the design names them and that the
// dynamic arm serves the top tier first where the baselines do not.
import { describe, expect, it } from 'vitest';
import { armScenario, formatComparison, publishedFigures, runComparison } from '../../sim/compare.js';
import { formatCompareProgress } from '../../sim/compare.js';
import { loadScenario, parseScenario } from '../../sim/scenario-file.js';
import type { Scenario } from '../../sim/scenario.js';

async function overload(): Promise<Scenario> {
  const loaded = await loadScenario('sched-overload');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
  return loaded.value;
}

/** sched-overload at a tenth of its size: 2 s of 400 requests/s per region into 8 accounts through 16 slots per region (fewer than the accounts take, so the queue orders the backlog). */
async function smallOverload(): Promise<Scenario> {
  const base = await overload();
  const path = base.workload.requestPath;
  if (path === undefined) throw new Error('sched-overload has a request path');
  const parsed = parseScenario({
    ...base,
    durationMs: 2_000,
    faults: [],
    workload: { ...base.workload, requestsPerSecond: 400, requestPath: { ...path, accountsPerRegion: 4, slotsPerRegion: 16 } },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value;
}

describe('the scheduling comparison', () => {
  it('builds direct, round-robin pool and dynamic priority arms from one scenario', async () => {
    const base = await overload();
    const arm = (name: 'direct' | 'round-robin' | 'dynamic'): Scenario => {
      const built = armScenario(base, name);
      if (!built.ok) throw new Error(JSON.stringify(built.error));
      return built.value;
    };
    const direct = arm('direct').workload.requestPath;
    expect([direct?.accountsTotal, direct?.strategy, direct?.schedule?.mode]).toEqual([1, 'round-robin', 'fifo']);
    const roundRobin = arm('round-robin').workload.requestPath;
    expect([roundRobin?.accountsTotal, roundRobin?.strategy, roundRobin?.schedule?.mode]).toEqual([undefined, 'round-robin', 'fifo']);
    const dynamic = arm('dynamic').workload.requestPath;
    expect([dynamic?.accountsTotal, dynamic?.strategy, dynamic?.schedule]).toEqual([undefined, 'least-loaded', base.workload.requestPath?.schedule]);
    // The same load and faults in every arm.
    for (const name of ['direct', 'round-robin', 'dynamic'] as const) {
      expect(arm(name).workload.requestsPerSecond).toBe(base.workload.requestsPerSecond);
      expect(arm(name).faults).toEqual(base.faults);
    }
    const bare = parseScenario({ ...base, workload: { ...base.workload, requestPath: undefined } });
    if (!bare.ok) throw new Error(JSON.stringify(bare.error));
    const refused = armScenario(bare.value, 'dynamic');
    expect(refused.ok ? 'built' : refused.error.field).toBe('workload.requestPath');
  });

  it('runs the arms on one seed: every checker passes, and dynamic priority serves vip first', async () => {
    const base = await smallOverload();
    const seen: string[] = [];
    const results = runComparison(base, 1, (arm) => seen.push(arm));
    if (!results.ok) throw new Error(JSON.stringify(results.error));
    const [direct, roundRobin, dynamic] = results.value;
    if (direct === undefined || roundRobin === undefined || dynamic === undefined) throw new Error('three arms');
    for (const result of results.value) expect(result.failures, result.arm).toEqual([]);
    // One account serves a fraction of what the pools do.
    expect(direct.servedQps).toBeLessThan(roundRobin.servedQps / 4);
    // The same arrivals reach every arm.
    expect(new Set(results.value.map((result) => result.submitted)).size).toBe(1);
    // The baseline treats tiers alike; dynamic priority refuses vip least and serves it sooner.
    const refused = (tier: 'vip' | 'free', result: typeof dynamic): number => result.tiers[tier].refusedRate ?? 1;
    expect(refused('vip', dynamic)).toBeLessThan(refused('vip', roundRobin));
    expect(refused('vip', dynamic)).toBeLessThan(refused('free', dynamic));
    expect(dynamic.tiers.vip.latencyMsP99 ?? Infinity).toBeLessThan(roundRobin.tiers.vip.latencyMsP99 ?? 0);
    const table = formatComparison(base, 1, results.value);
    expect(table).toContain('| direct | 1 |');
    expect(table).toContain('| round-robin pool | 8 |');
    expect(table).toContain(`| 14,200, ${publishedFigures.dynamic.p99Ms} |`);
    expect(table).not.toContain('FAILED');
  });

  it('prints progress naming the arm', () => {
    expect(formatCompareProgress('sched-overload', 3, 'round-robin', 1, 18_000, 40_000)).toBe(
      '[compare sched-overload seed 3] round-robin pool (2/3): 45% simulated 18s of 40s',
    );
  });
});
