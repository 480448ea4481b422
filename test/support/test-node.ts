// A node process for integration tests and the mesh benchmark: the production node (config file,
// MeshRuntime, authenticated admin endpoint, gRPC endpoint when configured), started exactly as
// `carpool node` starts it, plus the test-only counter routes of ./counter-routes.ts on a
// loopback port of their own. Production has no route that writes counters; tests that need to
// put counts on real processes start this instead.
//
//   node --import tsx test/support/test-node.ts --config FILE --test-port N
//
// Prints what `carpool node` prints, then `test routes http://127.0.0.1:<port>`; stops on SIGINT
// or SIGTERM.
import { parseArgs } from 'node:util';
import { loadNodeConfig, startNode } from '../../src/node/run-node.js';
import { startCounterRoutes } from './counter-routes.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, 'test-port': { type: 'string' } } });
if (values.config === undefined || values['test-port'] === undefined) {
  console.error('usage: test-node.ts --config FILE --test-port N');
  process.exit(2);
}
const loaded = await loadNodeConfig(values.config);
if (typeof loaded === 'string') {
  console.error(`test node: ${loaded}`);
  process.exit(2);
}
const node = await startNode(loaded, (line) => console.log(line));
const routes = await startCounterRoutes(node.runtime, Number(values['test-port']));
console.log(`test routes http://127.0.0.1:${routes.port}`);
await new Promise<void>((done) => {
  process.once('SIGINT', () => done());
  process.once('SIGTERM', () => done());
});
await routes.close();
await node.stop();
