// The simulator runs the request path through every node core, and its books catch a break.
import { describe, expect, it } from 'vitest';
import type { RequestId } from '../../src/core/ids.js';
import type { GatePort } from '../../sim/request-books.js';
import { MeshNode, type MeshNodeOptions } from '../../src/mesh/mesh-node.js';
import { loadScenario, parseScenario, withOverrides } from '../../sim/scenario-file.js';
import type { Scenario, ScheduleWorkload } from '../../sim/scenario.js';
import type { SimResult } from '../../sim/sim-result.js';
import { runScenario } from '../../sim/simulator.js';
import { slottedQueue } from '../../sim/sim-requests.js';
import { defaultTierQueueLimits, TierQueue } from '../../src/schedule/tier-queue.js';
import { randomScenario } from '../../sim/swarm.js';

/** The fifo schedule (the plain relay's baseline), the policy's defaults otherwise. */
const fifo: ScheduleWorkload = {
  mode: 'fifo',
  levels: 4,
  escapeEvery: 10,
  escapeAfterMs: 5_000,
  agingMs: 2_000,
  levelTokensPerMinute: 50_000,
  quantumTokens: 16_384,
  countersBy: 'used',
};

/** The shipped `requests` scenario cut to 7 simulated seconds: the isolation and part of the bridge partition. */
async function requestsScenario(): Promise<Scenario> {
  const loaded = await loadScenario('requests');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
  const short = withOverrides(loaded.value, { durationMs: 7_000 });
  if (!short.ok) throw new Error(JSON.stringify(short.error));
  return short.value;
}

/** Mutant, as in test/sim/request-path.test.ts: every settlement is made twice (the gate itself ignores the second). */
function settlesTwice(gate: GatePort): GatePort {
  return {
    ...gate,
    settle: (requestId: RequestId, used) => {
      const settlements = gate.settle(requestId, used);
      gate.settle(requestId, used);
      return settlements;
    },
  };
}

function checkersOf(result: SimResult): string[] {
  return [...new Set(result.failures.map((failure) => failure.checker))].sort();
}

describe('the simulator with a request-path workload', () => {
  it('is deterministic, passes every checker on each seed, and forwards across regions', async () => {
    const scenario = await requestsScenario();
    for (const seed of [1, 2, 3]) {
      // The mesh nodes as the simulator builds them, to count the health records they carried.
      const meshes: MeshNode[] = [];
      const mesh = (options: MeshNodeOptions): MeshNode => {
        const node = new MeshNode(options);
        meshes.push(node);
        return node;
      };
      const result = runScenario(scenario, seed, { mesh });
      expect(result.failures, `seed ${seed}`).toEqual([]);
      const path = result.requestPath;
      expect(path).toBeDefined();
      if (path === undefined) return;
      // Every admitted request ended once, and the path did real work: calls, retries, forwards,
      // and forwards refused while eu-west was cut off.
      expect(path.submitted).toBeGreaterThan(400);
      expect(path.settled + path.withdrawn).toBe(path.admitted);
      expect(path.completed).toBeGreaterThan(path.admitted / 2);
      expect(path.forwards).toBeGreaterThan(0);
      expect(path.forwardsRefused).toBeGreaterThan(0);
      expect(path.retries).toBeGreaterThan(0);
      expect(path.producedTokens.output).toBeGreaterThan(0);
      // The pools' health records travel as mesh frames, to every region.
      expect(meshes.every((node) => node.stats.healthRecordsReceived > 0)).toBe(true);
    }
    const again = runScenario(scenario, 2);
    const first = runScenario(scenario, 2);
    expect(again.traceHash).toBe(first.traceHash);
    expect(again.requestPath).toEqual(first.requestPath);
    expect(runScenario(scenario, 3).traceHash).not.toBe(first.traceHash);
  });

  it('fails the settled-once checker on a gate that settles twice', async () => {
    const result = runScenario(await requestsScenario(), 1, { requests: { gate: settlesTwice } });
    expect(result.ok).toBe(false);
    expect(checkersOf(result)).toEqual(['settled-once']);
    expect(result.failures.map((failure) => failure.message).join('\n')).toMatch(/settled after it had already been settled/);
  });

  it('passes on swarm scenarios built on it (partitions, pauses and skews drawn per seed)', async () => {
    const base = await requestsScenario();
    for (const seed of [1, 2]) {
      const result = runScenario(randomScenario(seed, base), seed);
      expect(result.failures, `swarm seed ${seed}`).toEqual([]);
      expect(result.requestPath?.settled).toBeGreaterThan(0);
    }
  });

  it('ends every request and releases every permit when the arrivals outrun the slots (the gateway shuts down)', async () => {
    // Five regions at 200 requests/s each with long answers: far more than the 32 slots of a
    // region serve, so each queue holds about a minute of work when the arrivals end, more than
    // the 10 s liveness budget. Before the shutdown, every seed ended with requests left open.
    const base = await requestsScenario();
    const scenario: Scenario = {
      ...base,
      regions: 5,
      durationMs: 3_000,
      convergenceBudgetMs: 10_000,
      faults: [],
      workload: {
        ...base.workload,
        tenants: 20,
        requestsPerSecond: 200,
        maxTokens: 4_096,
        requestPath: { accountsPerRegion: 3, concurrencyMax: 8, inputTokensMax: 2_000, accountWaitMs: 2_000 },
      },
    };
    for (const seed of [1, 2]) {
      const result = runScenario(scenario, seed);
      expect(result.failures, `seed ${seed}`).toEqual([]);
      const path = result.requestPath;
      expect(path).toBeDefined();
      if (path === undefined) return;
      // The queued backlog was withdrawn unserved when the arrivals ended, the running calls
      // settled, and the run converged inside its budget.
      expect(path.closed).toBeGreaterThan(0);
      expect(path.completed).toBeGreaterThan(0);
      expect(path.settled + path.withdrawn).toBe(path.admitted);
      expect(path.completed + path.failed + path.queueFull + path.closed).toBe(path.admitted);
      expect(result.simulatedMs).toBeLessThan(scenario.durationMs + scenario.convergenceBudgetMs);
    }
  });

  it('runs as many calls at once as the workload gives each region slots', async () => {
    // In fifo mode: the dynamic mode caps the running calls lower still, at the permits the
    // pool's serving accounts offer (as the gateway does; the next test).
    const base = await requestsScenario();
    const scenario = (slotsPerRegion: number | undefined): Scenario => ({
      ...base,
      regions: 3,
      durationMs: 2_000,
      convergenceBudgetMs: 10_000,
      faults: [],
      workload: {
        ...base.workload,
        requestsPerSecond: 200,
        maxTokens: 256,
        requestPath: {
          accountsPerRegion: 8,
          concurrencyMax: 32,
          inputTokensMax: 2_000,
          accountWaitMs: 2_000,
          schedule: fifo,
          ...(slotsPerRegion === undefined ? {} : { slotsPerRegion }),
        },
      },
    });
    const few = runScenario(scenario(undefined), 1);
    const many = runScenario(scenario(256), 1);
    expect(few.failures).toEqual([]);
    expect(many.failures).toEqual([]);
    // 32 slots (the default) close a backlog when the arrivals end; 256 serve the same arrivals as they come.
    expect(few.requestPath?.closed).toBeGreaterThan(0);
    expect(many.requestPath?.closed).toBe(0);
    expect(many.requestPath?.completed).toBeGreaterThan(few.requestPath?.completed ?? 0);
  });

  it('caps the running calls in dynamic mode at the permits the pool offers, so the backlog waits in the tier queue', async () => {
    // 8 accounts of 2 permits per node against 256 slots: without the cap every request would
    // leave the tier queue at once and wait, tier-blind, for a permit.
    const base = await requestsScenario();
    const scenario = (mode: 'fifo' | 'dynamic'): Scenario => ({
      ...base,
      regions: 2,
      durationMs: 2_000,
      convergenceBudgetMs: 10_000,
      faults: [],
      workload: {
        ...base.workload,
        requestsPerSecond: 200,
        requestPath: { accountsPerRegion: 4, concurrencyMax: 2, inputTokensMax: 2_000, accountWaitMs: 2_000, slotsPerRegion: 256, schedule: { ...fifo, mode } },
      },
    });
    const capped = runScenario(scenario('dynamic'), 1);
    const open = runScenario(scenario('fifo'), 1);
    expect(capped.failures).toEqual([]);
    expect(open.failures).toEqual([]);
    // Capped, requests wait for a slot, not for a permit: none expires in the pool's queue, and the backlog stays queued.
    expect(capped.requestPath?.permitExpired).toBe(0);
    expect(open.requestPath?.permitExpired).toBeGreaterThan(0);
    expect(capped.requestPath?.closed).toBeGreaterThan(open.requestPath?.closed ?? 0);
  });

  it('gives a queue of any slot count whole places within its bounds', () => {
    for (const slots of [1, 33, 255, 8_192]) {
      const limits = slottedQueue(defaultTierQueueLimits, slots);
      expect(limits.inFlightMax).toBe(slots);
      for (const depth of [limits.totalDepthMax, limits.tierDepthMax]) expect(Number.isInteger(depth) && depth >= 1, `${slots} slots`).toBe(true);
      expect(limits.tierDepthMax).toBeLessThanOrEqual(limits.totalDepthMax);
      expect(() => new TierQueue(limits)).not.toThrow();
    }
  });

  it('refuses crash faults with a request path', async () => {
    const scenario = await requestsScenario();
    const file = { ...scenario, swarmFaults: ['partition'] };
    const crashing = parseScenario({ ...file, faults: [{ kind: 'crash', atMs: 1_000, durationMs: 500, node: 1, durable: true }] });
    expect(crashing.ok ? 'parsed' : crashing.error.field).toBe('faults[0]');
    const swarming = parseScenario({ ...file, swarmFaults: ['partition', 'crash'] });
    expect(swarming.ok ? 'parsed' : swarming.error.field).toBe('swarmFaults');
    expect(parseScenario(file).ok).toBe(true);
    const crash = { kind: 'crash', atMs: 1_000, durationMs: 500, node: 1, durable: true } as const;
    expect(() => runScenario({ ...scenario, faults: [crash] }, 1)).toThrow(/without crash faults/);
  });
});
