// Proves a swarm on worker threads reports the same per-seed outcomes, in order, as one thread.
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../../sim/scenario-file.js';
import { runSwarmSeeds, type SwarmOutcome } from '../../sim/swarm-pool.js';

/** What a seed's run decided, without its wall time (the only part that may differ). */
function verdict(outcome: SwarmOutcome): unknown {
  if (outcome.kind === 'crash') return { seed: outcome.seed, crash: outcome.error.split('\n')[0] };
  const { result } = outcome;
  return {
    seed: outcome.seed,
    scenario: outcome.scenario.name,
    ok: result.ok,
    traceHash: result.traceHash,
    failures: result.failures,
    stats: result.stats,
    quota: result.quota,
  };
}

describe('swarm pool', () => {
  it('gives the same outcomes in seed order on 2 workers as in this thread', async () => {
    const loaded = await loadScenario('swarm-strict');
    if (!loaded.ok) throw new Error('the swarm-strict scenario does not load');
    const base = { ...loaded.value, durationMs: 3_000, convergenceBudgetMs: 3_000 };
    const inThread: SwarmOutcome[] = [];
    await runSwarmSeeds(base, 11, 5, 1, (outcome) => inThread.push(outcome));
    const onWorkers: SwarmOutcome[] = [];
    await runSwarmSeeds(base, 11, 5, 2, (outcome) => onWorkers.push(outcome));
    expect(onWorkers.map((o) => o.seed)).toEqual([11, 12, 13, 14, 15]);
    expect(onWorkers.map(verdict)).toEqual(inThread.map(verdict));
    // Different seeds really ran: a pool that repeated one seed would not pass the line above alone.
    expect(new Set(inThread.map((o) => (o.kind === 'result' ? o.result.traceHash : o.error))).size).toBe(5);
  }, 120_000);
});
