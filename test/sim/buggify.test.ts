// Proves the aimed knobs of sim/buggify.ts build the interleavings they promise, seed by seed.
import { describe, expect, it } from 'vitest';
import { deltaAckTimeoutMsMin } from '../../src/core/limits.js';
import { SeededRandom } from '../../src/core/random.js';
import { buggifyGossipWindowMs, buggifyLateEdgeMsMax, buggifyLateEdgeMsMin } from '../../sim/buggify.js';
import { SimNetwork } from '../../sim/network.js';
import type { Fault, Scenario } from '../../sim/scenario.js';
import { parseScenario } from '../../sim/scenario-file.js';
import { randomScenario } from '../../sim/swarm.js';

const base: Scenario = {
  name: 'base',
  description: 'The base of the buggify tests.',
  regions: 4,
  durationMs: 5_000,
  convergenceBudgetMs: 6_000,
  gossipIntervalMs: 50,
  workload: { tenants: 4, requestsPerSecond: 50, arrivals: 'poisson', burstSize: 1, maxTokens: 1000, quota: { mode: 'strict', tokensPerDay: 100_000 } },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0, bytesPerMs: 0 },
  faults: [],
  buggify: true,
};
const seeds = Array.from({ length: 200 }, (_, i) => i + 1);
const knobbed = (knob: string): { seed: number; scenario: Scenario }[] =>
  seeds.map((seed) => ({ seed, scenario: randomScenario(seed, base) })).filter(({ scenario }) => scenario.description.includes(knob));

describe('buggify', () => {
  it('draws scenarios that are a function of their seed, with valid faults', () => {
    for (const seed of seeds.slice(0, 50)) {
      const scenario = randomScenario(seed, base);
      expect(scenario).toEqual(randomScenario(seed, base));
      // Slow and muted links are the knobs' own (no scenario file names them); the rest must parse.
      const { jitterMs, loss, duplicate, bytesPerMs } = scenario.network;
      const parsed = parseScenario({ ...scenario, network: { jitterMs, loss, duplicate, bytesPerMs } });
      expect(parsed.ok ? 'ok' : parsed.error, `seed ${seed}`).toBe('ok');
    }
  });

  it('loses a node’s last words to every peer, then to one, and crashes it without state to the end, before any resend', () => {
    const runs = knobbed('lost last words');
    expect(runs.length).toBeGreaterThan(50);
    for (const { seed, scenario } of runs) {
      const muted = scenario.network.mutedLinks ?? [];
      const from = muted[0]?.from as number;
      const crash = scenario.faults.find((f) => f.kind === 'crash' && f.node === from && f.atMs + f.durationMs === scenario.durationMs) as Fault & {
        kind: 'crash';
      };
      expect(crash, `seed ${seed}`).toBeDefined();
      expect(crash.durable).toBe(false);
      const toAll = muted.filter((link) => link.toMs < crash.atMs);
      const toOne = muted.filter((link) => link.toMs === crash.atMs);
      expect(new Set(toAll.map((link) => link.to))).toEqual(new Set([0, 1, 2, 3].filter((node) => node !== from)));
      expect(toOne).toHaveLength(1);
      const [first, last] = [toAll[0], toOne[0]] as [NonNullable<(typeof toAll)[0]>, NonNullable<(typeof toOne)[0]>];
      // The first lost batch is never resent before the crash, and each part holds a gossip batch.
      expect(crash.atMs - first.fromMs).toBeLessThan(deltaAckTimeoutMsMin);
      expect(first.toMs - first.fromMs).toBeGreaterThanOrEqual(buggifyGossipWindowMs);
      expect(last.fromMs).toBe(first.toMs);
      expect(last.toMs - last.fromMs).toBeGreaterThanOrEqual(buggifyGossipWindowMs);
    }
  });

  it('keeps the bridged crash an amnesia and brings one edge back late, after the restart', () => {
    const runs = knobbed('bridged amnesia');
    expect(runs.length).toBeGreaterThan(50);
    let late = 0;
    for (const { seed, scenario } of runs) {
      const bridges = scenario.faults.filter((f): f is Fault & { kind: 'partition' } => f.kind === 'partition' && f.partition === 'bridge');
      const aimed = bridges.flatMap((bridge) =>
        scenario.faults.filter(
          (f) =>
            f.kind === 'crash' &&
            f.node === bridge.node &&
            f.atMs > bridge.atMs &&
            f.atMs + f.durationMs <= bridge.atMs + bridge.durationMs + 2_000 &&
            scenario.faults.some(
              (edge) =>
                edge.kind === 'partition' &&
                edge.partition === 'isolate' &&
                edge.node !== bridge.node &&
                edge.atMs === f.atMs + f.durationMs &&
                edge.durationMs >= Math.min(buggifyLateEdgeMsMin, scenario.durationMs - edge.atMs) &&
                edge.durationMs <= buggifyLateEdgeMsMax,
            ),
        ),
      );
      if (aimed.length === 0) continue;
      late++;
      expect(
        aimed.some((crash) => crash.kind === 'crash' && !crash.durable),
        `seed ${seed}: the aimed crash was made durable`,
      ).toBe(true);
    }
    expect(late).toBeGreaterThan(runs.length / 2);
  });

  it('mutes a link for droppable frames inside its window only', () => {
    const network = new SimNetwork(
      3,
      { jitterMs: 0, loss: 0, duplicate: 0, bytesPerMs: 0, mutedLinks: [{ from: 0, to: 2, fromMs: 100, toMs: 200 }] },
      new SeededRandom(1),
    );
    expect(network.dropDroppable(99, 0, 2)).toBe(false);
    expect(network.dropDroppable(100, 0, 2)).toBe(true);
    expect(network.dropDroppable(199, 0, 2)).toBe(true);
    expect(network.dropDroppable(200, 0, 2)).toBe(false);
    expect(network.dropDroppable(150, 2, 0)).toBe(false);
    expect(network.dropDroppable(150, 0, 1)).toBe(false);
  });
});
