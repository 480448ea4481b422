// Proves the simulated request path's laws over random seeds and shapes.
// It settles every request once, keeps every account within its limits, and charges exactly
// what was produced.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { defaultRequestRunConfig, runRequestPaths, simAccounts } from '../../sim/request-run.js';
import { checkProperty } from '../support/property.js';

describe('the simulated request path over seeds', () => {
  it('passes its checkers for any seed, region count, load, quota and fault rate', () => {
    checkProperty(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 20, max: 300 }),
        fc.option(fc.integer({ min: 5_000, max: 200_000 }), { nil: undefined }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 8 }),
        (seed, regions, requestsPerSecond, tokensPerDay, faultPerMille, concurrencyMax) => {
          const base = defaultRequestRunConfig({ regions });
          const shape = {
            ...(base.accounts[0] as (typeof base.accounts)[number]),
            faults: { overloaded: faultPerMille, serverError: Math.floor(faultPerMille / 2), rateLimited: faultPerMille, cutStream: faultPerMille },
          };
          const config = {
            ...base,
            durationMs: 2_000,
            requestsPerSecond,
            quota: tokensPerDay === undefined ? undefined : { tokensPerDay },
            accounts: simAccounts(regions, 2, shape, concurrencyMax),
          };
          const result = runRequestPaths(config, seed);
          if (!result.ok) throw new Error(`seed ${seed}: ${result.failures.map((f) => `[${f.checker}] ${f.message}`).join('\n')}`);
          const { figures } = result;
          if (figures.settled + figures.withdrawn !== figures.admitted)
            throw new Error(`seed ${seed}: ${figures.admitted} admitted, ${figures.settled} settled, ${figures.withdrawn} withdrawn`);
        },
      ),
      25,
    );
  });
});
