// Proves every shipped scenario file parses and parseScenario names the field of each mistake.
// Overrides clip and drop faults as documented.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Scenario } from '../../sim/scenario.js';
import { listScenarios, loadScenario, parseScenario, withOverrides } from '../../sim/scenario-file.js';

const valid: Scenario = {
  name: 'test',
  description: 'A scenario for tests.',
  regions: 5,
  durationMs: 60_000,
  convergenceBudgetMs: 10_000,
  gossipIntervalMs: 50,
  workload: { tenants: 20, requestsPerSecond: 200, arrivals: 'poisson', burstSize: 1, maxTokens: 4096 },
  network: { jitterMs: 5, loss: 0.01, duplicate: 0, bytesPerMs: 0 },
  faults: [
    { kind: 'partition', atMs: 10_000, durationMs: 20_000, partition: 'majority' },
    { kind: 'crash', atMs: 20_000, durationMs: 5_000, node: 4, durable: false },
    { kind: 'strobe', atMs: 30_000, durationMs: 30_000, node: 1, skewMs: -5_000, periodMs: 1_000 },
  ],
};

/** `valid` with the top-level fields replaced. */
function withFields(fields: Record<string, unknown>): unknown {
  return { ...valid, ...fields };
}

/** `valid` with fault `index` replaced by `valid.faults[index]` merged with `fields`. */
function withFault(index: number, fields: Record<string, unknown>): unknown {
  return { ...valid, faults: valid.faults.map((fault, i) => (i === index ? { ...fault, ...fields } : fault)) };
}

function fieldOf(raw: unknown): string | undefined {
  const parsed = parseScenario(raw);
  return parsed.ok ? undefined : parsed.error.field;
}

const expectedScenarios = [
  'bridge',
  'bridge-cold-strict',
  'clock-skew',
  'crash-durable',
  'crash-restart',
  'isolate',
  'majority',
  'mixed',
  'one-way',
  'partition-heal',
  'pause',
  'quota-escrow',
  'quota-eventual',
  'quota-eventual-steady',
  'quota-strict',
  'requests',
  'ring',
  'sched-fair',
  'sched-overload',
  'steady',
  'strobe',
  'swarm-claims',
  'swarm-durable',
  'swarm-escrow',
  'swarm-hot-durable',
  'swarm-hot-escrow',
  'swarm-hot-mesh',
  'swarm-hot-strict',
  'swarm-mesh',
  'swarm-sched',
  'swarm-strict',
];

describe('shipped scenarios', () => {
  it('lists every expected scenario', async () => {
    expect(await listScenarios()).toEqual(expectedScenarios);
  });

  it('loads every scenario file, named after its file', async () => {
    for (const name of await listScenarios()) {
      const loaded = await loadScenario(name);
      expect(loaded.ok ? loaded.value.name : loaded.error, name).toBe(name);
    }
  });

  it('has faults where the name says and none in the baseline', async () => {
    const faultsOf = async (name: string): Promise<Scenario['faults']> => {
      const loaded = await loadScenario(name);
      if (!loaded.ok) throw new Error(`${name} does not load`);
      return loaded.value.faults;
    };
    expect(await faultsOf('steady')).toEqual([]);
    expect((await faultsOf('crash-restart')).map((f) => f.kind === 'crash' && f.durable)).toEqual([false]);
    expect((await faultsOf('crash-durable')).map((f) => f.kind === 'crash' && f.durable)).toEqual([true]);
    for (const kind of ['isolate', 'majority', 'ring', 'bridge', 'one-way'] as const) {
      const faults = await faultsOf(kind);
      expect(faults.length, kind).toBeGreaterThan(0);
      expect(
        faults.every((f) => f.kind === 'partition' && f.partition === kind),
        kind,
      ).toBe(true);
    }
    // "Several faults overlapping": some pair of mixed's faults is active at the same moment.
    const mixed = await faultsOf('mixed');
    const overlapping = mixed.some((a, i) => mixed.some((b, j) => i !== j && a.atMs < b.atMs + b.durationMs && b.atMs < a.atMs + a.durationMs));
    expect(overlapping).toBe(true);
  });
});

describe('loadScenario', () => {
  it('reads a path ending in .json and reports a missing or malformed file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scenario-file-'));
    try {
      const good = join(dir, 'good.json');
      await writeFile(good, JSON.stringify(valid));
      const loaded = await loadScenario(good);
      expect(loaded.ok && loaded.value).toEqual(valid);

      const broken = join(dir, 'broken.json');
      await writeFile(broken, '{ "name": ');
      const notJson = await loadScenario(broken);
      expect(!notJson.ok && notJson.error.kind).toBe('unreadable-scenario');

      const missing = await loadScenario(join(dir, 'missing.json'));
      expect(!missing.ok && missing.error.kind).toBe('unreadable-scenario');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('refuses unknown names and names that would leave the scenario folder', async () => {
    const unknown = await loadScenario('no-such-scenario');
    expect(!unknown.ok && unknown.error.kind).toBe('unreadable-scenario');
    const escape = await loadScenario('../scenario');
    expect(!escape.ok && escape.error.kind).toBe('unreadable-scenario');
  });
});

describe('parseScenario', () => {
  it('accepts a valid scenario unchanged', () => {
    const parsed = parseScenario(valid);
    expect(parsed.ok && parsed.value).toEqual(valid);
  });

  it('names the field of each mistake', () => {
    expect(fieldOf(null)).toBe('(root)');
    expect(fieldOf(withFields({ seed: 1 }))).toBe('seed');
    expect(fieldOf(withFields({ name: 'Has Spaces' }))).toBe('name');
    expect(fieldOf(withFields({ description: '' }))).toBe('description');
    expect(fieldOf(withFields({ regions: 1 }))).toBe('regions');
    expect(fieldOf(withFields({ regions: 6 }))).toBe('regions');
    expect(fieldOf(withFields({ durationMs: 999 }))).toBe('durationMs');
    expect(fieldOf(withFields({ durationMs: 86_400_001 }))).toBe('durationMs');
    expect(fieldOf(withFields({ convergenceBudgetMs: 600_001 }))).toBe('convergenceBudgetMs');
    expect(fieldOf(withFields({ gossipIntervalMs: 9 }))).toBe('gossipIntervalMs');
    expect(fieldOf(withFields({ gossipIntervalMs: 50.5 }))).toBe('gossipIntervalMs');
    expect(fieldOf(withFields({ workload: { ...valid.workload, tenants: 0 } }))).toBe('workload.tenants');
    expect(fieldOf(withFields({ workload: { ...valid.workload, requestsPerSecond: -1 } }))).toBe('workload.requestsPerSecond');
    expect(fieldOf(withFields({ workload: { ...valid.workload, requestsPerSecond: 100_001 } }))).toBe('workload.requestsPerSecond');
    expect(fieldOf(withFields({ workload: { ...valid.workload, arrivals: 'uniform' } }))).toBe('workload.arrivals');
    expect(fieldOf(withFields({ workload: { ...valid.workload, burstSize: 10_001 } }))).toBe('workload.burstSize');
    expect(fieldOf(withFields({ workload: { ...valid.workload, quota: { mode: 'exact', tokensPerDay: 10 } } }))).toBe('workload.quota.mode');
    expect(fieldOf(withFields({ workload: { ...valid.workload, quota: { mode: 'eventual', tokensPerDay: 0 } } }))).toBe('workload.quota.tokensPerDay');
    expect(fieldOf(withFields({ workload: { ...valid.workload, quota: { mode: 'eventual', tokensPerDay: 10, extra: 1 } } }))).toBe('workload.quota.extra');
    expect(parseScenario({ ...valid, workload: { ...valid.workload, quota: { mode: 'eventual', tokensPerDay: 10 } } }).ok).toBe(true);
    expect(fieldOf(withFields({ workload: { ...valid.workload, claims: { retryShare: 1.5, dispatchShare: 1 } } }))).toBe('workload.claims.retryShare');
    expect(fieldOf(withFields({ workload: { ...valid.workload, claims: { retryShare: 0.5 } } }))).toBe('workload.claims.dispatchShare');
    expect(fieldOf(withFields({ workload: { ...valid.workload, claims: { retryShare: 0.5, dispatchShare: 1, retries: 2 } } }))).toBe('workload.claims.retries');
    expect(parseScenario({ ...valid, workload: { ...valid.workload, claims: { retryShare: 0.5, dispatchShare: 0.9 } } }).ok).toBe(true);
    const requestPath = { accountsPerRegion: 3, concurrencyMax: 8, inputTokensMax: 2_000, accountWaitMs: 2_000 };
    const pathScenario = (extra: object): unknown => ({
      ...valid,
      faults: [],
      swarmFaults: ['partition'],
      workload: { ...valid.workload, requestPath: { ...requestPath, ...extra } },
    });
    expect(fieldOf(pathScenario({ slotsPerRegion: 0 }))).toBe('workload.requestPath.slotsPerRegion');
    expect(fieldOf(pathScenario({ slotsPerRegion: 8_193 }))).toBe('workload.requestPath.slotsPerRegion');
    const slotted = parseScenario(pathScenario({ slotsPerRegion: 256 }));
    expect(slotted.ok && slotted.value.workload.requestPath?.slotsPerRegion).toBe(256);
    const unslotted = parseScenario(pathScenario({}));
    expect(unslotted.ok && unslotted.value.workload.requestPath).toEqual(requestPath);
    // The schedule's knobs are the policy's settings, checked by the policy's own validation; the rest default.
    const scheduled = parseScenario(pathScenario({ schedule: { mode: 'fifo', levels: 2 } }));
    expect(scheduled.ok && scheduled.value.workload.requestPath?.schedule).toEqual({
      mode: 'fifo',
      levels: 2,
      escapeEvery: 10,
      escapeAfterMs: 5_000,
      agingMs: 2_000,
      levelTokensPerMinute: 50_000,
      quantumTokens: 16_384,
      countersBy: 'used',
    });
    const schedule = (knobs: object): unknown => pathScenario({ schedule: knobs });
    expect(fieldOf(schedule({ mode: 'strict' }))).toBe('workload.requestPath.schedule.mode');
    expect(fieldOf(schedule({ levels: 9 }))).toBe('workload.requestPath.schedule.levels');
    expect(fieldOf(schedule({ escapeEvery: 1 }))).toBe('workload.requestPath.schedule.escapeEvery');
    expect(fieldOf(schedule({ agingMs: 10 }))).toBe('workload.requestPath.schedule.agingMs');
    expect(fieldOf(schedule({ quantumTokens: 0 }))).toBe('workload.requestPath.schedule.quantumTokens');
    expect(fieldOf(schedule({ countersBy: 'tokens' }))).toBe('workload.requestPath.schedule.countersBy');
    expect(fieldOf(schedule({ tierWeights: { vip: 1, paid: 1, free: 1 } }))).toBe('workload.requestPath.schedule.tierWeights');
    // Tenants by tier must add up to the workload's tenants (20 in `valid`).
    const mix = (fields: object): unknown => pathScenario({ tenantMix: { vip: 2, paid: 6, free: 12, heavyPerTier: 1, heavyFactor: 5, ...fields } });
    expect(parseScenario(mix({})).ok).toBe(true);
    const mismatch = parseScenario(mix({ free: 11 }));
    expect(mismatch.ok ? undefined : mismatch.error).toEqual({
      kind: 'bad-scenario',
      field: 'workload.requestPath.tenantMix',
      reason: 'vip + paid + free must equal workload.tenants (20), not 19',
    });
    expect(fieldOf(mix({ heavyFactor: 0 }))).toBe('workload.requestPath.tenantMix.heavyFactor');
    expect(fieldOf(mix({ vip: -1 }))).toBe('workload.requestPath.tenantMix.vip');
    expect(fieldOf(mix({ light: 1 }))).toBe('workload.requestPath.tenantMix.light');
    expect(fieldOf(mix({ homed: 'yes' }))).toBe('workload.requestPath.tenantMix.homed');
    const few = parseScenario({
      ...(pathScenario({ tenantMix: { vip: 1, paid: 1, free: 2, heavyPerTier: 0, heavyFactor: 1, homed: true } }) as object),
      workload: {
        ...valid.workload,
        tenants: 4,
        requestPath: { ...requestPath, tenantMix: { vip: 1, paid: 1, free: 2, heavyPerTier: 0, heavyFactor: 1, homed: true } },
      },
    });
    expect(few.ok ? undefined : few.error.reason).toBe('needs a tenant homed in each of the 5 regions; the workload has 4');
    expect(fieldOf(pathScenario({ strategy: 'random' }))).toBe('workload.requestPath.strategy');
    expect(parseScenario(pathScenario({ strategy: 'least-loaded', accountsTotal: 15 })).ok).toBe(true);
    // `valid` has 5 regions of 3 accounts.
    expect(fieldOf(pathScenario({ accountsTotal: 16 }))).toBe('workload.requestPath.accountsTotal');
    expect(fieldOf(pathScenario({ accountsTotal: 0 }))).toBe('workload.requestPath.accountsTotal');
    expect(fieldOf(withFields({ workload: { ...valid.workload, maxTokens: 1_000_001 } }))).toBe('workload.maxTokens');
    expect(fieldOf(withFields({ workload: { ...valid.workload, tokens: 1 } }))).toBe('workload.tokens');
    expect(fieldOf(withFields({ network: { ...valid.network, jitterMs: 10_001 } }))).toBe('network.jitterMs');
    expect(fieldOf(withFields({ network: { ...valid.network, loss: 0.91 } }))).toBe('network.loss');
    expect(fieldOf(withFields({ network: { ...valid.network, duplicate: -0.1 } }))).toBe('network.duplicate');
    expect(fieldOf(withFields({ network: { ...valid.network, bytesPerMs: -1 } }))).toBe('network.bytesPerMs');
    expect(fieldOf(withFields({ network: { jitterMs: 5, loss: 0, duplicate: 0 } }))).toBe('network.bytesPerMs');
    expect(fieldOf(withFields({ faults: {} }))).toBe('faults');
    expect(fieldOf(withFields({ faults: new Array(1_001).fill(valid.faults[0]) }))).toBe('faults');
    expect(fieldOf(withFields({ swarmFaults: [] }))).toBe('swarmFaults');
    expect(fieldOf(withFields({ swarmFaults: 'crash' }))).toBe('swarmFaults');
    expect(fieldOf(withFields({ swarmFaults: ['crash', 'reboot'] }))).toBe('swarmFaults[1]');
    expect(fieldOf(withFields({ swarmFaults: ['crash', 'pause', 'crash'] }))).toBe('swarmFaults[2]');
    const chosen = parseScenario({ ...valid, swarmFaults: ['crash', 'pause'] });
    expect(chosen.ok && chosen.value.swarmFaults).toEqual(['crash', 'pause']);
    // Left out, it stays out: a swarm on the scenario draws every kind.
    const plain = parseScenario(valid);
    expect(plain.ok && plain.value.swarmFaults).toBeUndefined();
  });

  it('names the fault and the field of each mistake in a fault', () => {
    expect(fieldOf(withFault(1, { kind: 'reboot' }))).toBe('faults[1].kind');
    expect(fieldOf(withFault(0, { atMs: -1 }))).toBe('faults[0].atMs');
    // atMs + durationMs must not pass the end of the safety phase (60 s).
    expect(fieldOf(withFault(2, { durationMs: 30_001 }))).toBe('faults[2].durationMs');
    expect(fieldOf(withFault(2, { atMs: 60_000 }))).toBe('faults[2].atMs');
    expect(fieldOf(withFault(1, { durationMs: 0 }))).toBe('faults[1].durationMs');
    expect(fieldOf(withFault(1, { node: 5 }))).toBe('faults[1].node');
    expect(fieldOf(withFault(1, { durable: 'yes' }))).toBe('faults[1].durable');
    expect(fieldOf(withFault(1, { skewMs: 5 }))).toBe('faults[1].skewMs');
    expect(fieldOf(withFault(0, { partition: 'split' }))).toBe('faults[0].partition');
    expect(fieldOf(withFault(0, { partition: 'isolate' }))).toBe('faults[0].node');
    expect(fieldOf(withFault(0, { partition: 'one-way' }))).toBe('faults[0].node');
    expect(fieldOf(withFault(0, { node: -1 }))).toBe('faults[0].node');
    expect(fieldOf(withFault(2, { skewMs: 3_600_001 }))).toBe('faults[2].skewMs');
    expect(fieldOf(withFault(2, { skewMs: -3_600_001 }))).toBe('faults[2].skewMs');
    expect(fieldOf(withFault(2, { periodMs: 9 }))).toBe('faults[2].periodMs');
    expect(fieldOf({ ...valid, regions: 3, faults: [{ kind: 'partition', atMs: 0, durationMs: 1_000, partition: 'ring' }] })).toBe('faults[0].partition');
    expect(fieldOf({ ...valid, faults: [...valid.faults, 'crash'] })).toBe('faults[3]');
  });

  it('accepts the boundary values themselves', () => {
    const edge = {
      ...valid,
      regions: 2,
      durationMs: 1_000,
      convergenceBudgetMs: 600_000,
      gossipIntervalMs: 10_000,
      workload: { tenants: 100_000, requestsPerSecond: 0, arrivals: 'bursty', burstSize: 10_000, maxTokens: 1 },
      network: { jitterMs: 0, loss: 0.9, duplicate: 0.9, bytesPerMs: 0 },
      faults: [
        { kind: 'skew', atMs: 0, durationMs: 1_000, node: 1, skewMs: -3_600_000 },
        { kind: 'strobe', atMs: 999, durationMs: 1, node: 0, skewMs: 3_600_000, periodMs: 10 },
        { kind: 'partition', atMs: 0, durationMs: 1_000, partition: 'majority' },
      ],
    };
    expect(parseScenario(edge).ok).toBe(true);
  });
});

describe('withOverrides', () => {
  it('drops faults on removed nodes and partitions that no longer cut anything', () => {
    const ring = { ...valid, faults: [...valid.faults, { kind: 'partition', atMs: 0, durationMs: 1_000, partition: 'ring' } as const] };
    const smaller = withOverrides(ring, { regions: 3 });
    expect(smaller.ok && smaller.value.regions).toBe(3);
    // The crash on node 4 and the ring (which needs 4 regions) go; the majority and the strobe on node 1 stay.
    expect(smaller.ok && smaller.value.faults.map((f) => f.kind)).toEqual(['partition', 'strobe']);
  });

  it('clips faults that run past a shorter duration and drops those that start after it', () => {
    const shorter = withOverrides(valid, { durationMs: 25_000 });
    expect(shorter.ok && shorter.value.faults).toEqual([
      { kind: 'partition', atMs: 10_000, durationMs: 15_000, partition: 'majority' },
      { kind: 'crash', atMs: 20_000, durationMs: 5_000, node: 4, durable: false },
    ]);
  });

  it('leaves faults alone when the scenario grows, and re-validates the overrides', () => {
    const longer = withOverrides(valid, { durationMs: 120_000 });
    expect(longer.ok && longer.value.faults).toEqual(valid.faults);
    const tooMany = withOverrides(valid, { regions: 6 });
    expect(!tooMany.ok && tooMany.error.field).toBe('regions');
    const tooShort = withOverrides(valid, { durationMs: 10 });
    expect(!tooShort.ok && tooShort.error.field).toBe('durationMs');
  });
});
