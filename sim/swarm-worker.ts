// A swarm worker thread (see sim/swarm-pool.ts): runs each seed it is sent on the base scenario it
// was started with and posts the outcome back.
import { parentPort, workerData } from 'node:worker_threads';
import type { Scenario } from './scenario.js';
import { runSwarmSeed, type SwarmTask } from './swarm-pool.js';

const { base } = workerData as { readonly base: Scenario };
const port = parentPort;
if (port === null) throw new Error('sim/swarm-worker.ts runs as a worker thread of sim/swarm-pool.ts');
port.on('message', (task: SwarmTask) => port.postMessage(runSwarmSeed(base, task.seed)));
