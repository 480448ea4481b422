// Proves the pool and shedding settings of the policy document: they read as today's constants
// until set, a refused update names its bad field and writes nothing, partial updates merge over
// what is stored (null returning a field to its default), concurrent edits of different parts at
// two replicas both survive, garbage a peer stored reads as the default and is reported, and the
// strategy for a request is the tenant's, else its region's, else the mesh's.
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';
import { describe, expect, it } from 'vitest';
import { asTenantId } from '../../../src/core/ids.js';
import * as limits from '../../../src/core/limits.js';
import { PolicyDocument, poolSettingsOf } from '../../../src/mesh/policy/policy-document.js';
import {
  defaultHealthTimings,
  defaultMeshSettings,
  defaultPoolSettings,
  defaultTokenWeights,
  healthTimingNames,
  healthTimingsBounds,
  type PoolSettings,
  type SettingsPatch,
  strategyFor,
  type Tenant,
  validateTenant,
} from '../../../src/mesh/policy/policy-schema.js';
import { defaultShedThresholds } from '../../../src/node/gateway/gateway-settings.js';

const shed = {
  vip: { depthMax: 300, waitMsMax: 30_000 },
  paid: { depthMax: 200, waitMsMax: 20_000 },
  free: { depthMax: 100, waitMsMax: 10_000 },
};

/** A patch as an operator's JSON may hold it, not as the types allow. */
const loose = (value: unknown): SettingsPatch => value as SettingsPatch;

function refusedField(doc: PolicyDocument, patch: unknown): string | undefined {
  const before = JSON.stringify([doc.settings(), doc.poolSettings(), doc.shedSettings()]);
  doc.takeUpdates();
  const result = doc.updateSettings(loose(patch));
  // A refused update changes nothing and sends nothing.
  expect(JSON.stringify([doc.settings(), doc.poolSettings(), doc.shedSettings()])).toBe(before);
  expect(doc.takeUpdates()).toEqual([]);
  return result.ok ? undefined : result.error.field;
}

describe('pool and shedding settings: defaults', () => {
  it("read as today's constants until set", () => {
    const doc = new PolicyDocument(1);
    expect(doc.poolSettings()).toEqual(defaultPoolSettings);
    expect(doc.poolSettings()).toEqual({ strategy: 'round-robin', sticky: true, regionStrategy: {}, health: defaultHealthTimings });
    expect(defaultHealthTimings).toEqual({
      throttleShortMsMax: limits.throttleShortMsMax,
      rateLimitCooldownMs: limits.rateLimitCooldownMsDefault,
      rateLimitCooldownMsMax: limits.rateLimitCooldownMsMax,
      overloadBackoffMsBase: limits.overloadBackoffMsBase,
      overloadBackoffMsMax: limits.overloadBackoffMsMax,
      circuitFailuresMax: limits.circuitFailuresMax,
      circuitOpenMsBase: limits.circuitOpenMsBase,
      circuitOpenMsMax: limits.circuitOpenMsMax,
    });
    // No policy thresholds: each node keeps its own.
    expect(doc.shedSettings()).toBeUndefined();
    expect(doc.invalidEntries()).toEqual([]);
    // Every default lies within its own bounds.
    for (const name of healthTimingNames) {
      expect(defaultHealthTimings[name]).toBeGreaterThanOrEqual(healthTimingsBounds[name].min);
      expect(defaultHealthTimings[name]).toBeLessThanOrEqual(healthTimingsBounds[name].max);
    }
  });

  it('hand out the same object until the settings change, and defaults for a policy without them', () => {
    const doc = new PolicyDocument(1);
    const first = doc.poolSettings();
    expect(doc.poolSettings()).toBe(first);
    expect(doc.updateSettings({ gossipIntervalMs: 60 }).ok).toBe(true);
    expect(doc.poolSettings()).toEqual(first);
    expect(doc.updateSettings({ pool: { strategy: 'weighted' } }).ok).toBe(true);
    expect(doc.poolSettings()).not.toBe(first);
    expect(poolSettingsOf(doc).strategy).toBe('weighted');
    expect(poolSettingsOf(undefined)).toBe(defaultPoolSettings);
    expect(poolSettingsOf({})).toBe(defaultPoolSettings);
  });

  it("accept the gateway's default thresholds as policy thresholds", () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ shed: defaultShedThresholds }).ok).toBe(true);
    expect(doc.shedSettings()).toEqual(defaultShedThresholds);
  });
});

describe('pool and shedding settings: validation names the bad field', () => {
  const cases: readonly [string, unknown, string][] = [
    ['an unknown strategy', { pool: { strategy: 'random' } }, 'settings.pool.strategy'],
    ['a sticky that is not a boolean', { pool: { sticky: 'yes' } }, 'settings.pool.sticky'],
    ['pool that is not an object', { pool: 'fast' }, 'settings.pool'],
    ['an unknown pool setting', { pool: { speed: 1 } }, 'settings.pool.speed'],
    ['region strategies that are not an object', { pool: { regionStrategy: 'weighted' } }, 'settings.pool.regionStrategy'],
    ["a region's unknown strategy", { pool: { regionStrategy: { 'eu-west': 'fastest' } } }, 'settings.pool.regionStrategy.eu-west'],
    ['a region id with a space', { pool: { regionStrategy: { 'eu west': 'weighted' } } }, 'settings.pool.regionStrategy["eu west"]'],
    ['health that is not an object', { pool: { health: 5 } }, 'settings.pool.health'],
    ['an unknown health timing', { pool: { health: { cooldownMs: 5 } } }, 'settings.pool.health.cooldownMs'],
    ['a cap below the default cooldown', { pool: { health: { rateLimitCooldownMsMax: 5_000 } } }, 'settings.pool.health.rateLimitCooldownMsMax'],
    ['a default cooldown above the cap', { pool: { health: { rateLimitCooldownMs: 7 * 3_600_000 } } }, 'settings.pool.health.rateLimitCooldownMs'],
    [
      'a short throttle as long as the cap',
      { pool: { health: { throttleShortMsMax: 60_000, rateLimitCooldownMsMax: 60_000 } } },
      'settings.pool.health.throttleShortMsMax',
    ],
    ['an overload base above its cap', { pool: { health: { overloadBackoffMsBase: 120_000 } } }, 'settings.pool.health.overloadBackoffMsBase'],
    ['a circuit cap below its base', { pool: { health: { circuitOpenMsMax: 1_000 } } }, 'settings.pool.health.circuitOpenMsMax'],
    ['shed that is not an object', { shed: [1, 2] }, 'settings.shed'],
    ['an unknown tier', { shed: { gold: { depthMax: 1, waitMsMax: 1 } } }, 'settings.shed.gold'],
    ['a depth of zero', { shed: { ...shed, free: { depthMax: 0, waitMsMax: 0 } } }, 'settings.shed.free.depthMax'],
    ['a depth past the queue', { shed: { ...shed, vip: { depthMax: limits.tierQueueDepthMax + 1, waitMsMax: 30_000 } } }, 'settings.shed.vip.depthMax'],
    ['a wait past the queue', { shed: { ...shed, vip: { depthMax: 300, waitMsMax: limits.tierQueueWaitMsMax + 1 } } }, 'settings.shed.vip.waitMsMax'],
    ['an unknown threshold', { shed: { ...shed, free: { depth: 3 } } }, 'settings.shed.free.depth'],
    ['a first shed update without every tier', { shed: { free: { depthMax: 3, waitMsMax: 100 } } }, 'settings.shed.vip.depthMax'],
    ['a lower tier above the one before it', { shed: { ...shed, free: { depthMax: 250, waitMsMax: 1_000 } } }, 'settings.shed.free.depthMax'],
    ['a lower tier waiting longer', { shed: { ...shed, paid: { depthMax: 200, waitMsMax: 31_000 } } }, 'settings.shed.paid.waitMsMax'],
    ['a shed threshold of null', { shed: { ...shed, free: { depthMax: null, waitMsMax: 1 } } }, 'settings.shed.free.depthMax'],
  ];
  for (const [what, patch, field] of cases) {
    it(`refuses ${what}, naming ${field}`, () => {
      expect(refusedField(new PolicyDocument(1), patch)).toBe(field);
    });
  }

  it('refuses every health timing out of its bounds or not whole, by name', () => {
    for (const name of healthTimingNames) {
      const { min, max } = healthTimingsBounds[name];
      for (const bad of [min - 1, max + 1, min + 0.5, '5']) {
        expect(refusedField(new PolicyDocument(1), { pool: { health: { [name]: bad } } })).toBe(`settings.pool.health.${name}`);
      }
    }
  });

  it("checks a partial shed update against the policy's stored thresholds", () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ shed }).ok).toBe(true);
    expect(refusedField(doc, { shed: { paid: { waitMsMax: 40_000 } } })).toBe('settings.shed.paid.waitMsMax');
    expect(doc.shedSettings()).toEqual(shed);
  });

  it("refuses a tenant's unknown pool strategy, naming it", () => {
    const tenant = {
      id: 'acme',
      tier: 'paid',
      apiKeys: [],
      requireSignature: false,
      concurrencyMax: 4,
      weights: defaultTokenWeights,
      limits: [],
      poolStrategy: 'fastest',
    };
    expect(validateTenant(tenant)).toMatchObject({ ok: false, error: { field: 'tenants.acme.poolStrategy' } });
    expect(validateTenant({ ...tenant, poolStrategy: 'least-loaded' })).toMatchObject({ ok: true, value: { poolStrategy: 'least-loaded' } });
    const without = validateTenant({ ...tenant, poolStrategy: undefined });
    expect(without.ok && !('poolStrategy' in without.value)).toBe(true);
  });
});

describe('pool and shedding settings: partial updates merge', () => {
  it('keeps what a patch does not name, and null returns a field to its default', () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ pool: { strategy: 'weighted' } }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { sticky: false } }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { health: { rateLimitCooldownMsMax: 3_600_000 } } }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { health: { rateLimitCooldownMs: 60_000 } } }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { regionStrategy: { 'eu-west': 'least-loaded' } } }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { regionStrategy: { 'us-east': 'weighted' } } }).ok).toBe(true);
    const expected: PoolSettings = {
      strategy: 'weighted',
      sticky: false,
      regionStrategy: { 'eu-west': 'least-loaded', 'us-east': 'weighted' },
      health: { ...defaultHealthTimings, rateLimitCooldownMsMax: 3_600_000, rateLimitCooldownMs: 60_000 },
    };
    expect(doc.poolSettings()).toEqual(expected);
    // A cap below the stored default is refused even though the patch names only the cap.
    expect(refusedField(doc, { pool: { health: { rateLimitCooldownMsMax: 30_000 } } })).toBe('settings.pool.health.rateLimitCooldownMsMax');

    expect(doc.updateSettings(loose({ pool: { regionStrategy: { 'eu-west': null }, health: { rateLimitCooldownMs: null }, strategy: null } })).ok).toBe(true);
    expect(doc.poolSettings()).toEqual({
      ...expected,
      strategy: 'round-robin',
      regionStrategy: { 'us-east': 'weighted' },
      health: { ...defaultHealthTimings, rateLimitCooldownMsMax: 3_600_000 },
    });
    expect(doc.updateSettings({ pool: { health: null, regionStrategy: null, sticky: null } }).ok).toBe(true);
    expect(doc.poolSettings()).toEqual(defaultPoolSettings);
    // The mesh timings were never touched.
    expect(doc.settings()).toEqual(defaultMeshSettings);
  });

  it("merges a shed update over the policy's thresholds, and null hands shedding back to each node", () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ shed }).ok).toBe(true);
    expect(doc.updateSettings({ shed: { free: { depthMax: 10 } } }).ok).toBe(true);
    expect(doc.shedSettings()).toEqual({ ...shed, free: { depthMax: 10, waitMsMax: 10_000 } });
    expect(doc.updateSettings({ shed: null }).ok).toBe(true);
    expect(doc.shedSettings()).toBeUndefined();
  });

  it('writes nothing for an update that changes nothing', () => {
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ pool: { strategy: 'weighted', health: { circuitFailuresMax: 5 } }, shed }).ok).toBe(true);
    doc.takeUpdates();
    expect(doc.updateSettings({ pool: { strategy: 'weighted', health: { circuitFailuresMax: 5 } }, shed }).ok).toBe(true);
    expect(doc.updateSettings({ pool: { regionStrategy: null, health: {} } }).ok).toBe(true);
    expect(doc.takeUpdates()).toEqual([]);
  });
});

describe('pool and shedding settings across replicas', () => {
  function sync(from: PolicyDocument, to: PolicyDocument): void {
    for (const update of from.takeUpdates()) expect(to.onSyncMessage(update).ok).toBe(true);
  }

  it('keeps both of two concurrent edits of different parts', () => {
    const a = new PolicyDocument(1);
    const b = new PolicyDocument(2);
    expect(a.updateSettings({ pool: { strategy: 'least-loaded' } }).ok).toBe(true);
    expect(b.updateSettings({ pool: { health: { circuitFailuresMax: 7 } }, shed }).ok).toBe(true);
    sync(a, b);
    sync(b, a);
    for (const doc of [a, b]) {
      expect(doc.poolSettings()).toEqual({ ...defaultPoolSettings, strategy: 'least-loaded', health: { ...defaultHealthTimings, circuitFailuresMax: 7 } });
      expect(doc.shedSettings()).toEqual(shed);
    }
  });

  it("reads a peer's garbage as the default and reports it, naming the field", () => {
    const doc = new PolicyDocument(1);
    const peer = new Y.Doc();
    peer.clientID = 9;
    const settings = peer.getMap<unknown>('settings');
    settings.set('pool.strategy', 'random');
    settings.set('pool.sticky', true);
    settings.set('pool.health', { rateLimitCooldownMs: 60_000, rateLimitCooldownMsMax: 30_000 });
    settings.set('shed', { vip: { depthMax: 1, waitMsMax: 1 } });
    const encoder = encoding.createEncoder();
    syncProtocol.writeUpdate(encoder, Y.encodeStateAsUpdate(peer));
    expect(doc.onSyncMessage(encoding.toUint8Array(encoder)).ok).toBe(true);
    expect(doc.poolSettings()).toEqual(defaultPoolSettings);
    expect(doc.shedSettings()).toBeUndefined();
    expect(
      doc
        .invalidEntries()
        .map((error) => error.field)
        .sort(),
    ).toEqual(['settings.pool.health.rateLimitCooldownMs', 'settings.pool.strategy', 'settings.shed.paid.depthMax']);
    // An operator's valid update replaces the garbage.
    expect(doc.updateSettings({ pool: { strategy: 'weighted', health: { rateLimitCooldownMsMax: 60_000 } } }).ok).toBe(true);
    expect(doc.poolSettings()).toMatchObject({ strategy: 'weighted', health: { rateLimitCooldownMs: 60_000, rateLimitCooldownMsMax: 60_000 } });
  });
});

describe('strategyFor', () => {
  const settings: PoolSettings = { ...defaultPoolSettings, strategy: 'weighted', regionStrategy: { 'eu-west': 'least-loaded' } };
  const tenant = (poolStrategy?: Tenant['poolStrategy']): Pick<Tenant, 'poolStrategy'> => (poolStrategy === undefined ? {} : { poolStrategy });

  it("takes the tenant's, else the region's, else the mesh's", () => {
    expect(strategyFor(settings, 'eu-west', tenant('round-robin'))).toBe('round-robin');
    expect(strategyFor(settings, 'eu-west', tenant())).toBe('least-loaded');
    expect(strategyFor(settings, 'eu-west')).toBe('least-loaded');
    expect(strategyFor(settings, 'us-east', tenant())).toBe('weighted');
  });

  it("does not mistake Object.prototype's members for regions", () => {
    for (const region of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) expect(strategyFor(settings, region)).toBe('weighted');
    const doc = new PolicyDocument(1);
    expect(doc.updateSettings({ pool: { regionStrategy: JSON.parse('{"__proto__":"least-loaded"}') as Record<string, 'least-loaded'> } }).ok).toBe(true);
    expect(strategyFor(doc.poolSettings(), '__proto__')).toBe('least-loaded');
    expect(strategyFor(doc.poolSettings(), 'constructor')).toBe('round-robin');
  });

  it("is the tenant's own as the policy stores it", () => {
    const doc = new PolicyDocument(1);
    const acme: Tenant = {
      id: asTenantId('acme'),
      tier: 'paid',
      apiKeys: [],
      requireSignature: false,
      concurrencyMax: 4,
      weights: defaultTokenWeights,
      limits: [],
      userLimits: [],
      userConcurrencyMax: 4,
      poolStrategy: 'least-loaded',
    };
    expect(doc.upsertTenant(acme).ok).toBe(true);
    expect(strategyFor(doc.poolSettings(), 'us-east', doc.tenant(acme.id))).toBe('least-loaded');
    const withoutOwn: Tenant = { ...acme };
    delete (withoutOwn as { poolStrategy?: string }).poolStrategy;
    expect(doc.upsertTenant(withoutOwn).ok).toBe(true);
    expect(doc.tenant(acme.id)).not.toHaveProperty('poolStrategy');
    expect(strategyFor(doc.poolSettings(), 'us-east', doc.tenant(acme.id))).toBe('round-robin');
  });
});
