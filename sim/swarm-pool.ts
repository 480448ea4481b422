import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { assert } from '../src/core/assert.js';
import type { Scenario } from './scenario.js';
import type { SimResult } from './sim-result.js';
import { runScenario } from './simulator.js';
import { randomScenario } from './swarm.js';

/**
 * Runs the seeds of a swarm on worker threads (node:worker_threads), each seed on whichever worker
 * is free, and hands the outcomes back in seed order: a run is a pure function of (base, seed), so
 * the output is the same whatever the worker count, only sooner. One worker runs the seeds in
 * this thread, one after the other, as the swarm always did (and as a debugger or profiler likes).
 *
 * Each worker imports the simulator once and runs many seeds (about a second of start-up under
 * tsx, paid once per worker rather than per seed). A worker is handed its next seed only when it
 * returns the last, so a slow seed never holds up the others.
 */

/** More threads than this would only wait for the same cores; `--workers` is checked against it. */
export const swarmWorkersMax = 64;

/** The default: one worker per core the process may use. */
export function defaultSwarmWorkers(): number {
  return Math.min(swarmWorkersMax, Math.max(1, availableParallelism()));
}

/** What one seed gave: its result, or the error it threw (a finding like a failed check). */
export type SwarmOutcome =
  | { readonly seed: number; readonly scenario: Scenario; readonly kind: 'result'; readonly result: SimResult }
  | { readonly seed: number; readonly scenario: Scenario; readonly kind: 'crash'; readonly error: string };

/** The messages between the pool and a worker (sim/swarm-worker.ts). */
export interface SwarmTask {
  readonly seed: number;
}
export type SwarmReply =
  { readonly seed: number; readonly kind: 'result'; readonly result: SimResult } | { readonly seed: number; readonly kind: 'crash'; readonly error: string };

/** Seed `seed` of the swarm on `base`, run here; what a worker does for each task. */
export function runSwarmSeed(base: Scenario, seed: number): SwarmReply {
  const scenario = randomScenario(seed, base);
  try {
    return { seed, kind: 'result', result: runScenario(scenario, seed) };
  } catch (error) {
    return { seed, kind: 'crash', error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
}

/**
 * Runs seeds `firstSeed` … `firstSeed + count − 1` on `workers` threads and calls `onOutcome` for
 * each, in seed order.
 */
export async function runSwarmSeeds(
  base: Scenario,
  firstSeed: number,
  count: number,
  workers: number,
  onOutcome: (outcome: SwarmOutcome) => void,
): Promise<void> {
  assert(Number.isInteger(workers) && workers >= 1 && workers <= swarmWorkersMax, 'worker count out of range');
  const deliver = inSeedOrder(base, firstSeed, onOutcome);
  if (workers === 1 || count === 1) {
    for (let seed = firstSeed; seed < firstSeed + count; seed++) deliver(runSwarmSeed(base, seed));
    return;
  }
  let nextSeed = firstSeed;
  const endSeed = firstSeed + count;
  const threads = Array.from({ length: Math.min(workers, count) }, () => startWorker(base));
  try {
    await Promise.all(
      threads.map(async (thread) => {
        while (nextSeed < endSeed) deliver(await thread.run(nextSeed++));
      }),
    );
  } finally {
    await Promise.all(threads.map((thread) => thread.stop()));
  }
}

/** Buffers outcomes that arrive early and calls `onOutcome` for each as soon as its turn comes. */
function inSeedOrder(base: Scenario, firstSeed: number, onOutcome: (outcome: SwarmOutcome) => void): (reply: SwarmReply) => void {
  const early = new Map<number, SwarmReply>();
  let due = firstSeed;
  return (reply) => {
    early.set(reply.seed, reply);
    for (let next = early.get(due); next !== undefined; next = early.get(due)) {
      early.delete(due);
      // The scenario is drawn again here rather than cloned back: it is cheap and the same object.
      onOutcome({ ...next, scenario: next.kind === 'result' ? next.result.scenario : randomScenario(due, base) });
      due++;
    }
  };
}

interface SwarmThread {
  run(seed: number): Promise<SwarmReply>;
  stop(): Promise<void>;
}

/**
 * How a worker starts: the simulator is TypeScript, so the worker registers tsx's loader before it
 * imports sim/swarm-worker.ts. (`execArgv: ['--import', 'tsx']` does not do it on Node 20: the
 * worker's entry is resolved before the loader's hooks are in place.) Both are resolved from here,
 * so this works under `npm run sim`, vitest and plain node alike.
 */
const workerBoot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./swarm-worker.ts', import.meta.url).href)}); });`;

/** A worker of sim/swarm-worker.ts, one seed at a time. */
function startWorker(base: Scenario): SwarmThread {
  const worker = new Worker(workerBoot, { eval: true, workerData: { base } });
  let pending: { resolve: (reply: SwarmReply) => void; reject: (error: Error) => void } | undefined;
  worker.on('message', (reply: SwarmReply) => {
    const waiting = pending;
    pending = undefined;
    waiting?.resolve(reply);
  });
  const fail = (error: Error): void => {
    const waiting = pending;
    pending = undefined;
    waiting?.reject(error);
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`a swarm worker exited (status ${code}) with a seed in hand`)));
  return {
    run: (seed) =>
      new Promise<SwarmReply>((resolve, reject) => {
        assert(pending === undefined, 'a swarm worker runs one seed at a time');
        pending = { resolve, reject };
        worker.postMessage({ seed } satisfies SwarmTask);
      }),
    stop: async () => {
      await worker.terminate();
    },
  };
}
