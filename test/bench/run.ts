// Entry point of `npm run bench -- [suite…] [--quick] [--runs N]`. Suites: admission, crdt, gateway, http, ledger, mesh, scheduling, sim, upstream.
import { admissionBench } from './admission.bench.js';
import { crdtBench } from './crdt.bench.js';
import { gatewayBench } from './gateway.bench.js';
import { type BenchContext, missedTargets } from './harness.js';
import { httpBench } from './http.bench.js';
import { ledgerBench } from './ledger.bench.js';
import { meshBench } from './mesh.bench.js';
import { schedulingBench } from './scheduling.bench.js';
import { simBench } from './sim.bench.js';
import { upstreamBench } from './upstream.bench.js';

const suites: Record<string, (ctx: BenchContext) => void | Promise<void>> = {
  admission: admissionBench,
  crdt: crdtBench,
  gateway: gatewayBench,
  http: httpBench,
  ledger: ledgerBench,
  mesh: meshBench,
  scheduling: schedulingBench,
  sim: simBench,
  upstream: upstreamBench,
};

async function main(argv: readonly string[]): Promise<number> {
  const names: string[] = [];
  let runs = 5;
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--runs') {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
        console.error('--runs takes an integer from 1 to 100');
        return 2;
      }
    } else if (arg in suites) names.push(arg);
    else {
      console.error(`unknown benchmark "${arg}"; suites: ${Object.keys(suites).join(', ')}; options: --quick, --runs N`);
      return 2;
    }
  }
  const ctx: BenchContext = { runs, quick };
  for (const name of names.length > 0 ? names : Object.keys(suites)) await suites[name]!(ctx);
  const missed = missedTargets();
  if (missed.length > 0) {
    console.log(`\n${missed.length} target(s) missed: ${missed.join('; ')}`);
    return 1;
  }
  console.log('\nall targets met');
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
