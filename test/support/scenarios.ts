// Small simulator scenarios for tests: three regions, seconds of traffic, quick to run.
import type { Fault, Scenario } from '../../sim/scenario.js';

export const smallScenario = (faults: Fault[], overrides: Partial<Scenario> = {}): Scenario => ({
  name: 'test',
  description: 'a small scenario for tests',
  regions: 3,
  durationMs: 8_000,
  convergenceBudgetMs: 5_000,
  gossipIntervalMs: 50,
  workload: { tenants: 5, requestsPerSecond: 50, arrivals: 'poisson', burstSize: 5, maxTokens: 2_000 },
  network: { jitterMs: 5, loss: 0.05, duplicate: 0.05, bytesPerMs: 0 },
  faults,
  ...overrides,
});
