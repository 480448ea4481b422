// Proves the simulator is deterministic per (scenario, seed), that it drives the real mesh to
// convergence through every kind of fault, and that its checkers catch a broken replica.
import { describe, expect, it } from 'vitest';
import type { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { Fault } from '../../sim/scenario.js';
import { loadScenario, withOverrides } from '../../sim/scenario-file.js';
import { runScenario } from '../../sim/simulator.js';
import { smallScenario } from '../support/scenarios.js';

describe('simulator', () => {
  const scenario = smallScenario([
    { kind: 'partition', atMs: 2_000, durationMs: 2_000, partition: 'isolate', node: 1 },
    { kind: 'crash', atMs: 4_500, durationMs: 1_000, node: 2, durable: false },
  ]);

  it('gives the same trace hash for the same seed and different ones for different seeds', () => {
    const first = runScenario(scenario, 7);
    const again = runScenario(scenario, 7);
    const other = runScenario(scenario, 8);
    expect(again.traceHash).toBe(first.traceHash);
    expect(again.stats).toEqual(first.stats);
    expect(other.traceHash).not.toBe(first.traceHash);
    expect(first.replay).toContain('--seed 7');
  });

  it('converges after every kind of fault heals', () => {
    const faults: Fault[] = [
      { kind: 'partition', atMs: 500, durationMs: 1_000, partition: 'majority' },
      { kind: 'partition', atMs: 1_600, durationMs: 800, partition: 'ring' },
      { kind: 'partition', atMs: 2_500, durationMs: 800, partition: 'bridge', node: 0 },
      { kind: 'partition', atMs: 3_400, durationMs: 800, partition: 'one-way', node: 2 },
      { kind: 'crash', atMs: 4_300, durationMs: 700, node: 1, durable: true },
      { kind: 'crash', atMs: 5_100, durationMs: 700, node: 3, durable: false },
      { kind: 'pause', atMs: 5_900, durationMs: 600, node: 4 },
      { kind: 'skew', atMs: 1_000, durationMs: 3_000, node: 2, skewMs: -20_000 },
      { kind: 'strobe', atMs: 4_000, durationMs: 3_000, node: 0, skewMs: 5_000, periodMs: 300 },
    ];
    const result = runScenario(smallScenario(faults, { regions: 5 }), 3);
    expect(result.failures).toEqual([]);
    expect(result.stats.requests).toBeGreaterThan(1_000);
    const labels = result.convergence.map((c) => c.fault);
    for (const label of [
      'partition:majority',
      'partition:ring',
      'partition:bridge',
      'partition:one-way',
      'crash:durable',
      'crash:amnesia',
      'pause',
      'skew',
      'strobe',
      'final',
    ]) {
      expect(labels).toContain(label);
    }
    for (const figure of result.convergence) expect(figure.convergedAfterMs).toBeLessThan(5_000);
  });

  it('catches a replica that drops deltas for one key but acknowledges them (proof that the checkers can fail)', () => {
    let dropped = 0;
    const broken = (index: number, counter: WindowedCounter): void => {
      if (index !== 1) return;
      const join = counter.join.bind(counter);
      // Drop other replicas' entries for one key, keep the version ranges: the digest then
      // claims changes the state does not hold, so no repair ever comes.
      counter.join = (delta) => {
        const kept = delta.entries.filter((e) => e.replica === counter.self || !e.key.subject.endsWith('-0'));
        dropped += delta.entries.length - kept.length;
        return join({ entries: kept, ranges: delta.ranges });
      };
    };
    const result = runScenario(smallScenario([]), 5, { instrument: broken });
    expect(dropped).toBeGreaterThan(0);
    expect(result.ok).toBe(false);
    expect(result.failures.map((f) => f.checker)).toContain('final-read');
    // The same run without the broken replica passes.
    expect(runScenario(smallScenario([]), 5).ok).toBe(true);
  });

  it('runs extra checkers and fails the run on their message', () => {
    let calls = 0;
    const result = runScenario(smallScenario([]), 2, {
      checkers: [
        (view) => {
          calls++;
          return view.phase === 'liveness' && view.replicas.every((r) => r.up) ? 'quota exceeded (test checker)' : undefined;
        },
      ],
    });
    expect(calls).toBeGreaterThan(100);
    expect(result.failures.some((f) => f.checker === 'custom' && f.message.includes('quota exceeded'))).toBe(true);
  });

  it('runs the eventual admission decision: bounded overshoot in steady state, more under a partition', () => {
    const quota = { mode: 'eventual' as const, tokensPerDay: 150_000 };
    const workload = { tenants: 2, requestsPerSecond: 100, arrivals: 'poisson' as const, burstSize: 5, maxTokens: 2_000, quota };
    const steady = runScenario(smallScenario([], { regions: 3, durationMs: 10_000, workload }), 4);
    expect(steady.failures).toEqual([]);
    expect(steady.quota?.admitted).toBeGreaterThan(0);
    expect(steady.quota?.rejected).toBeGreaterThan(0);
    expect(steady.quota!.overshootTokensMax).toBeLessThanOrEqual(steady.quota!.overshootBoundTokens);
    const split = runScenario(
      smallScenario([{ kind: 'partition', atMs: 500, durationMs: 8_000, partition: 'isolate', node: 0 }], { regions: 3, durationMs: 10_000, workload }),
      4,
    );
    expect(split.failures).toEqual([]);
    expect(split.quota!.overshootTokensMax).toBeGreaterThan(split.quota!.overshootBoundTokens);
  });

  it('admits strict requests in a mesh that starts inside a bridge partition: the edges recover through the bridge (issue 17)', async () => {
    // Before the relayed recovery the edges never recovered and nothing was admitted until the heal.
    const loaded = await loadScenario('bridge-cold-strict');
    if (!loaded.ok) throw new Error('bridge-cold-strict does not load');
    const scenario = withOverrides(loaded.value, { durationMs: 6_000 });
    if (!scenario.ok) throw new Error('bridge-cold-strict does not shorten');
    const result = runScenario(scenario.value, 3);
    expect(result.failures).toEqual([]);
    const quota = result.quota!;
    expect(quota.admitted).toBeGreaterThan(0.8 * (quota.admitted + quota.rejected));
    expect(quota.noQuorum).toBeLessThan(0.02 * (quota.admitted + quota.rejected));
    expect(quota.overshootTokensMax).toBe(0);
  });
});
