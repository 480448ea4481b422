import { defineConfig } from 'vitest/config';

/**
 * Test files that start real processes (`carpool node`, `carpool emulate`, a local mesh, the
 * Python client). Their processes need CPU of their own: beside a CPU-bound test file on a 2-core
 * machine a strict quorum round times out (a burst then admits nothing) and a 5-node cluster
 * takes longer than its start deadline. So they run after all other files, one file at a time,
 * each in its own process. A new test that spawns processes belongs in this list.
 */
const processTests = [
  'test/admin-cli/audit-e2e.test.ts',
  'test/admin-cli/run-admin.test.ts',
  'test/chaos/crash-mesh.test.ts',
  'test/chaos/wan-mesh.test.ts',
  'test/deploy/image.test.ts',
  'test/deploy/observability.test.ts',
  'test/ledger/sqlite-store-processes.test.ts',
  'test/local/local-launcher.test.ts',
  'test/local/local-mesh.test.ts',
  'test/local/mesh-e2e.test.ts',
  'test/net/grpc/python-client.test.ts',
  'test/net/http/claude-code-front-door.test.ts',
  'test/node/admission-cluster.test.ts',
  'test/node/forward-home-death.test.ts',
  'test/node/grpc-node-process.test.ts',
  'test/node/mesh-cluster.test.ts',
  'test/node/accounts/shared-health.test.ts',
  'test/node/accounts/subscription-renewal.test.ts',
  'test/node/oauth-credentials-process.test.ts',
  'test/node/store-failures.test.ts',
  'test/schedule/scheduling-bench.test.ts',
  'test/upstream/emulator/emulate-command.test.ts',
  'test/upstream/emulator/emulator-claude-code.test.ts',
];

const excluded = ['test/bench/**', 'node_modules/**'];

export default defineConfig({
  test: {
    // Property tests print their seed on failure (see test/support/property.ts); this keeps a
    // slow run from being mistaken for a hang.
    testTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'in-process',
          include: ['test/**/*.test.ts'],
          exclude: [...excluded, ...processTests],
          // One worker per core. Vitest's default leaves one core out, which on the 2-core CI
          // machine runs every file in turn while the other core idles.
          maxWorkers: '100%',
          // Each worker imports the modules once for all the files it runs instead of once per
          // file (about 0.4 s of CPU per file, a minute over the suite). The price: a test file
          // must leave no global state behind (close its servers, undo what it patches). To
          // check whether a failure comes from an earlier file, set `isolate: true` here.
          isolate: false,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: processTests,
          exclude: excluded,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
