// Proves the degraded mode's rules under random settings, requests and pool states: nothing is
// degraded unless the policy has degrade settings, the pool is short by them, and the request's
// tier has a rule (vip never); a degraded request only loses what its rule names (max_tokens cut
// to the cap, never raised; the model mapped only when the rule names it), and reports exactly the
// actions it took in its header.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Tier } from '../../src/mesh/policy/policy-schema.js';
import { type DegradeSettings, validateDegradeSettings } from '../../src/mesh/policy/schedule-schema.js';
import { actionsOf, degradedHeaderOf, degradeFor, shortageOf } from '../../src/schedule/degrade.js';
import { checkProperty } from '../support/property.js';

const models = ['claude-opus-4-1', 'claude-sonnet-4-6', 'claude-haiku-4-5'];

const arbRule = fc
  .record(
    {
      maxTokens: fc.integer({ min: 1, max: 4_096 }),
      models: fc.dictionary(fc.constantFrom(...models), fc.constantFrom(...models)),
      waitMs: fc.integer({ min: 1, max: 60_000 }),
    },
    { requiredKeys: [] },
  )
  .filter((rule) => Object.keys(rule).length > 0);

const arbSettings: fc.Arbitrary<DegradeSettings> = fc
  .record({
    utilisationPercent: fc.integer({ min: 1, max: 100 }),
    pausedAccounts: fc.integer({ min: 0, max: 4 }),
    tiers: fc.record({ paid: arbRule, free: arbRule }, { requiredKeys: [] }),
  })
  .map((value) => {
    const checked = validateDegradeSettings(value, 'degrade');
    if (!checked.ok) throw new Error(JSON.stringify(checked.error));
    return checked.value;
  });

const arbCapacity = fc.record({ permits: fc.integer({ min: 0, max: 32 }), busy: fc.integer({ min: 0, max: 64 }), paused: fc.integer({ min: 0, max: 6 }) });

describe('degrade rules', () => {
  it('degrade only a short pool, only a tier with a rule, and only by what the rule names', () => {
    checkProperty(
      fc.property(
        fc.option(arbSettings, { nil: undefined }),
        fc.constantFrom<Tier>('vip', 'paid', 'free'),
        fc.integer({ min: 1, max: 8_192 }),
        fc.option(fc.constantFrom(...models, 'claude-3-unknown'), { nil: undefined }),
        arbCapacity,
        (settings, tier, maxTokens, model, capacity) => {
          const degraded = degradeFor(settings, { tier, maxTokens, model }, () => capacity);
          if (degraded === undefined) {
            // Full service: no settings, vip, no rule, not short, or a rule with nothing to change.
            const rule = tier === 'vip' ? undefined : settings?.tiers[tier];
            if (settings !== undefined && rule !== undefined && shortageOf(settings, capacity) !== undefined) {
              expect(rule.waitMs).toBeUndefined();
              expect(rule.maxTokens === undefined || maxTokens <= rule.maxTokens).toBe(true);
              expect(model === undefined || rule.models?.[model] === undefined || rule.models[model] === model).toBe(true);
            }
            return;
          }
          expect(tier).not.toBe('vip');
          expect(settings).toBeDefined();
          const rule = settings!.tiers[degraded.tier];
          expect(degraded.tier).toBe(tier);
          expect(rule).toBeDefined();
          expect(degraded.reason).toBe(shortageOf(settings!, capacity));
          if (degraded.maxTokens !== undefined) expect(degraded.maxTokens).toEqual({ from: maxTokens, to: rule!.maxTokens });
          else expect(rule!.maxTokens === undefined || maxTokens <= rule!.maxTokens).toBe(true);
          if (degraded.model !== undefined) expect(degraded.model).toEqual({ from: model, to: rule!.models?.[model!] });
          expect(degraded.waitMs).toBe(rule!.waitMs);
          const header = degradedHeaderOf(degraded);
          expect(header.startsWith(`reason=${degraded.reason}`)).toBe(true);
          expect(header.split('; ')).toHaveLength(1 + actionsOf(degraded).length);
          expect(header).toMatch(/^[\x20-\x7e]+$/);
        },
      ),
    );
  });

  it('call the pool short by busy share or by paused accounts, as documented', () => {
    const settings: DegradeSettings = { utilisationPercent: 80, pausedAccounts: 2, tiers: {} };
    expect(shortageOf(settings, { permits: 10, busy: 7, paused: 0 })).toBeUndefined();
    expect(shortageOf(settings, { permits: 10, busy: 8, paused: 0 })).toBe('utilisation');
    expect(shortageOf(settings, { permits: 10, busy: 0, paused: 2 })).toBe('paused-accounts');
    expect(shortageOf(settings, { permits: 0, busy: 0, paused: 0 })).toBe('utilisation');
    expect(shortageOf({ ...settings, pausedAccounts: 0 }, { permits: 10, busy: 0, paused: 9 })).toBeUndefined();
  });
});
