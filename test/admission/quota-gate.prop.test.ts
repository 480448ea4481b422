// Proves strict and escrow limits are never overrun, at any moment, under any seeded schedule of
// arrivals, settlements, frame loss, duplication, latency and a partition, and every request is decided once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { QuotaDecision } from '../../src/admission/quota-gate.js';
import { chargedKey } from '../../src/admission/quota.js';
import type { RequestId } from '../../src/core/ids.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { GateMesh, quotaRequest } from '../support/gate-mesh.js';
import { emptyPolicy } from '../support/mesh-network.js';
import { checkProperty } from '../support/property.js';

interface Arrival {
  readonly atMs: number;
  readonly node: number;
  readonly amount: number;
  /** If set, the request is settled this long after it is admitted, with this share of its estimate used. */
  readonly settle: { readonly afterMs: number; readonly usedPercent: number } | null;
}

interface Scenario {
  readonly seed: number;
  readonly limit: number;
  readonly loss: number;
  readonly duplicate: number;
  readonly latencyMsMax: number;
  /** Slow gossip leaves the quorum rounds alone to carry reservations between nodes. */
  readonly gossipIntervalMs: number;
  /** One node cut off from both others for a while. */
  readonly partition: { readonly node: number; readonly fromMs: number; readonly lengthMs: number } | null;
  readonly arrivals: readonly Arrival[];
}

const arbScenario: fc.Arbitrary<Scenario> = fc.record({
  seed: fc.nat(),
  limit: fc.integer({ min: 1, max: 80 }),
  loss: fc.constantFrom(0, 0.2, 0.5),
  duplicate: fc.constantFrom(0, 0.3),
  latencyMsMax: fc.integer({ min: 1, max: 80 }),
  gossipIntervalMs: fc.constantFrom(50, 250, 1_000),
  partition: fc.option(fc.record({ node: fc.nat(2), fromMs: fc.nat(600), lengthMs: fc.integer({ min: 50, max: 2_000 }) }), { nil: null }),
  arrivals: fc.array(
    fc.record({
      // Arrivals come in bursts 40 ms apart, so rounds at different nodes overlap.
      atMs: fc.nat(15).map((slot) => slot * 40),
      node: fc.nat(2),
      amount: fc.integer({ min: 1, max: 25 }),
      settle: fc.option(fc.record({ afterMs: fc.nat(400), usedPercent: fc.integer({ min: 0, max: 100 }) }), { nil: null }),
    }),
    { minLength: 1, maxLength: 30 },
  ),
});

const stepMs = 5;
/** Time after the last event for every round to finish (timeout 500 ms) and gossip to settle. */
const drainMs = 3_000;

/**
 * Runs one scenario under a `weighted_tokens` day limit in `mode` and checks, after every
 * admission, that what admitted requests are charged (their estimate, or their usage once
 * settled) stays within the limit.
 */
function runScenario(mode: 'strict' | 'escrow', scenario: Scenario): void {
  const rule: LimitRule = { metric: 'weighted_tokens', window: 'day', sliding: false, limit: scenario.limit, mode };
  const faults = { loss: scenario.loss, duplicate: scenario.duplicate, latencyMsMax: scenario.latencyMsMax };
  const policy = emptyPolicy({ gossipIntervalMs: scenario.gossipIntervalMs, digestIntervalMs: 1_000, heartbeatIntervalMs: 250 });
  const mesh = new GateMesh(3, scenario.seed, faults, { quorumTimeoutMs: 500, policy });
  mesh.run(100);
  const startMs = mesh.nowMs;
  const key = chargedKey('tenant', 'acme', rule, startMs);
  const arrivals = [...scenario.arrivals].sort((a, b) => a.atMs - b.atMs);
  const decisions = new Map<string, QuotaDecision[]>();
  /** What each admitted request is charged now. */
  const charged = new Map<string, number>();
  const settles: { atMs: number; id: string; used: number }[] = [];
  let chargedMax = 0;
  let next = 0;
  const partition = scenario.partition;
  const others = (node: number): number[] => [0, 1, 2].filter((n) => n !== node);
  const lastEventMs = Math.max(arrivals.at(-1)!.atMs + 400, partition === null ? 0 : partition.fromMs + partition.lengthMs);
  for (let elapsed = 0; elapsed <= lastEventMs + drainMs; elapsed += stepMs) {
    if (partition !== null && elapsed === partition.fromMs - (partition.fromMs % stepMs))
      for (const o of others(partition.node)) mesh.network.cut(partition.node, o);
    if (partition !== null && elapsed >= partition.fromMs + partition.lengthMs) mesh.network.healAll();
    while (next < arrivals.length && arrivals[next]!.atMs <= elapsed) {
      const arrival = arrivals[next]!;
      const id = `r${next++}`;
      mesh.nodes[arrival.node]!.gate.admit(quotaRequest(id, [rule], { weighted_tokens: arrival.amount }), mesh.nowMs, (decision) => {
        decisions.set(id, [...(decisions.get(id) ?? []), decision]);
        if (!decision.ok) return;
        charged.set(id, arrival.amount);
        let total = 0;
        for (const amount of charged.values()) total += amount;
        chargedMax = Math.max(chargedMax, total);
        expect(total, `admitting ${id} at node ${arrival.node} brought the charged total past the limit`).toBeLessThanOrEqual(scenario.limit);
        if (arrival.settle !== null) {
          settles.push({ atMs: elapsed + arrival.settle.afterMs, id, used: Math.floor((arrival.amount * arrival.settle.usedPercent) / 100) });
        }
      });
    }
    for (const settle of settles.filter((s) => s.atMs <= elapsed)) {
      const node = arrivals[Number(settle.id.slice(1))]!.node;
      mesh.nodes[node]!.gate.settle(settle.id as RequestId, new Map([['weighted_tokens', settle.used]]));
      charged.set(settle.id, settle.used);
    }
    settles.splice(0, settles.length, ...settles.filter((s) => s.atMs > elapsed));
    mesh.step(stepMs);
  }
  // Every request was decided exactly once.
  expect(decisions.size).toBe(arrivals.length);
  for (const [id, list] of decisions) expect(list.length, `decisions of ${id}`).toBe(1);
  // The links are healed and gossip has settled: every node counts exactly what is charged.
  let total = 0;
  for (const amount of charged.values()) total += amount;
  expect(total).toBeLessThanOrEqual(scenario.limit);
  expect(chargedMax).toBeLessThanOrEqual(scenario.limit);
  for (const node of mesh.nodes) expect(node.counter.value(key), `counter at ${node.mesh.self}`).toBe(total);
}

describe('QuotaGate limits under faults', () => {
  it('strict: the admitted total never exceeds the limit', () => {
    checkProperty(
      fc.property(arbScenario, (scenario) => runScenario('strict', scenario)),
      50,
    );
  });

  it('escrow: the admitted total never exceeds the limit', () => {
    checkProperty(
      fc.property(arbScenario, (scenario) => runScenario('escrow', scenario)),
      50,
    );
  });
});
