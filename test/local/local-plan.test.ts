// Proves the node configs the launcher writes pass the node's own parser, list every member with
// its gRPC address, and hand each node the credentials of its home accounts only; and that the
// policy entries pass the policy schema.
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { defaultLocalConfig } from '../../src/local/local-config.js';
import { accountPolicyOf, nodeConfigOf, tenantPolicyOf } from '../../src/local/local-plan.js';
import { validateAccount, validateTenant } from '../../src/mesh/policy/policy-schema.js';
import { parseNodeConfig } from '../../src/node/node-config.js';

const config = defaultLocalConfig();
const accountKeys = new Map(config.emulator.accounts.map((a, i) => [a.id, `sk-ant-emu-${i}-0123456789abcdef`] as [AccountId, string]));

describe('nodeConfigOf', () => {
  it('writes a config the node accepts, with only the home accounts of its region', () => {
    for (const region of config.regions) {
      const raw = nodeConfigOf(config, region, { emulatorUrl: 'http://127.0.0.1:17400', accountKeys });
      const parsed = parseNodeConfig(raw);
      expect(parsed.ok, JSON.stringify(!parsed.ok && parsed.error)).toBe(true);
      if (!parsed.ok) continue;
      expect(parsed.value.node).toBe(region.node);
      expect(parsed.value.members.map((m) => m.url)).toEqual(config.regions.map((r) => `ws://127.0.0.1:${r.meshPort}`));
      expect(parsed.value.grpc).toEqual({ host: '127.0.0.1', port: region.grpcPort });
      // Every region serves the HTTP front door on basePort + 3.
      expect(parsed.value.http).toMatchObject({ host: '127.0.0.1', port: region.grpcPort + 1 });
      const homed = config.emulator.accounts.filter((a) => a.homeRegion === region.name).map((a) => a.id);
      expect([...(parsed.value.upstream?.accounts.keys() ?? [])].sort()).toEqual([...homed].sort());
    }
  });

  it('gives every member its gRPC address for forwarding', () => {
    const raw = nodeConfigOf(config, config.regions[0]!, { emulatorUrl: 'http://127.0.0.1:17400', accountKeys });
    expect((raw.members as { grpc: string }[]).map((m) => m.grpc)).toEqual(['127.0.0.1:17412', '127.0.0.1:17422', '127.0.0.1:17432']);
  });

  it('places a node where a placement says: its own host, a route to each other member, its upstream', () => {
    const index = (name: string): number => config.regions.findIndex((r) => r.name === name);
    const placement = {
      commandPrefix: () => [],
      hostOf: (region: { name: string }) => `10.9.${index(region.name)}.2`,
      routeOf: (from: { name: string }, to: { name: string }) => ({
        url: `ws://10.9.${index(from.name)}.1:${5000 + index(to.name)}`,
        grpc: `10.9.${index(from.name)}.1:${6000 + index(to.name)}`,
      }),
      emulatorUrlFor: () => 'http://10.9.250.1:17400',
    };
    const region = config.regions[1]!;
    const parsed = parseNodeConfig(nodeConfigOf(config, region, { emulatorUrl: 'http://127.0.0.1:17400', accountKeys, placement }));
    expect(parsed.ok, JSON.stringify(!parsed.ok && parsed.error)).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.listen).toEqual({ host: '10.9.1.2', port: region.meshPort });
    expect(parsed.value.grpc).toEqual({ host: '10.9.1.2', port: region.grpcPort });
    expect(parsed.value.members.map((m) => [m.url, parsed.value.memberGrpc?.get(m.id)])).toEqual([
      ['ws://10.9.1.1:5000', '10.9.1.1:6000'],
      [`ws://10.9.1.2:${region.meshPort}`, `10.9.1.2:${region.grpcPort}`],
      ['ws://10.9.1.1:5002', '10.9.1.1:6002'],
    ]);
    expect(parsed.value.upstream?.baseUrl).toBe('http://10.9.250.1:17400');
  });
});

describe('policy entries', () => {
  it('pass the policy schema', () => {
    for (const account of config.emulator.accounts) expect(validateAccount({ ...accountPolicyOf(account), id: account.id }).ok).toBe(true);
    for (const tenant of config.tenants) expect(validateTenant({ ...tenantPolicyOf(tenant), id: tenant.id }).ok).toBe(true);
  });

  it("leave a tenant's keys out: the admin endpoint refuses key fields in a tenant, keys have their own route", () => {
    for (const tenant of config.tenants) expect(Object.keys(tenantPolicyOf(tenant)).filter((field) => /key/i.test(field))).toEqual([]);
  });
});
