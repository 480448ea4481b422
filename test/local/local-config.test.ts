// Proves the local mesh's config parser accepts the embedded default (and the sample file that
// copies it), derives ports from basePort, and refuses each kind of bad input naming its field.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- the cases edit an untyped JSON document, as a user would edit the file */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultLocalConfig, defaultLocalConfigJson, type LocalConfigError, parseLocalConfig, parseLocalConfigText } from '../../src/local/local-config.js';

const samplePath = new URL('../../deploy/local/carpool.local.json', import.meta.url);

/** The default with one change made by `edit` on a deep copy. */
function edited(edit: (raw: Record<string, any>) => void): unknown {
  const raw = structuredClone(defaultLocalConfigJson) as unknown as Record<string, any>;
  edit(raw);
  return raw;
}

function errorOf(raw: unknown): LocalConfigError {
  const parsed = parseLocalConfig(raw);
  if (parsed.ok) throw new Error('expected the config to be refused');
  return parsed.error;
}

describe('the embedded default', () => {
  it('is three regions with two accounts homed in each, and tenants in eventual and strict mode', () => {
    const config = defaultLocalConfig();
    expect(config.regions.map((r) => [r.name, r.node, r.meshPort, r.adminPort, r.grpcPort])).toEqual([
      ['us-east', 'us-east-1', 17410, 17411, 17412],
      ['eu-west', 'eu-west-1', 17420, 17421, 17422],
      ['ap-south', 'ap-south-1', 17430, 17431, 17432],
    ]);
    for (const region of config.regions) expect(config.emulator.accounts.filter((a) => a.homeRegion === region.name)).toHaveLength(2);
    expect(config.emulator.accounts).toHaveLength(6);
    const demo = config.tenants.find((t) => t.id === 'demo');
    expect(demo?.tier).toBe('paid');
    expect(demo?.limits.find((l) => l.window === 'day' && l.metric === 'weighted_tokens')?.mode).toBe('eventual');
    expect(config.tenants.some((t) => t.limits.some((l) => l.mode === 'strict'))).toBe(true);
    expect(config.secret).toBeUndefined();
    expect(config.adminToken).toBeUndefined();
    expect(config.stateDir).toBe('.carpool/local');
  });

  it('equals deploy/local/carpool.local.json, whose comments are ignored', () => {
    const sample = parseLocalConfigText(readFileSync(samplePath, 'utf8'), 'carpool.local.json');
    expect(sample.ok && sample.value).toEqual(defaultLocalConfig());
  });
});

describe('parseLocalConfig', () => {
  it('takes explicit ports over the ones basePort derives, and fills the defaults', () => {
    const parsed = parseLocalConfig(
      edited((raw) => {
        raw.regions[1] = { name: 'eu-west', basePort: 20000, grpcPort: 20100 };
        delete raw.host;
        delete raw.emulator.seed;
        delete raw.tenants[0].concurrencyMax;
      }),
    );
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.regions[1]).toEqual({ name: 'eu-west', node: 'eu-west-1', meshPort: 20000, adminPort: 20001, grpcPort: 20100, httpPort: 20003 });
    expect(parsed.value.host).toBe('127.0.0.1');
    expect(parsed.value.emulator.seed).toBe(1);
    expect(parsed.value.tenants[0]?.concurrencyMax).toBe(16);
    expect(parsed.value.tenants[0]?.limits[0]?.sliding).toBe(false);
  });

  const cases: [string, (raw: Record<string, any>) => void, string, RegExp][] = [
    [
      'a port out of range',
      (raw) => (raw.regions[1] = { name: 'eu-west', meshPort: 1, adminPort: 2, grpcPort: 70000 }),
      'regions[1].grpcPort',
      /port number 1-65535/,
    ],
    ['port 0', (raw) => (raw.emulator.port = 0), 'emulator.port', /port number 1-65535/],
    ['a missing port', (raw) => (raw.regions[2] = { name: 'ap-south', meshPort: 30000, adminPort: 30001 }), 'regions[2].grpcPort', /required unless basePort/],
    [
      'a missing HTTP port',
      (raw) => (raw.regions[2] = { name: 'ap-south', meshPort: 30000, adminPort: 30001, grpcPort: 30002 }),
      'regions[2].httpPort',
      /required unless basePort/,
    ],
    [
      'an HTTP port taken',
      (raw) => (raw.regions[1] = { name: 'eu-west', basePort: 20000, httpPort: 17413 }),
      'regions[1].httpPort',
      /17413 is also regions\[0\].httpPort/,
    ],
    ['two endpoints on one port', (raw) => (raw.regions[1].basePort = 17412), 'regions[1].meshPort', /17412 is also regions\[0\].grpcPort/],
    ['the emulator on a region port', (raw) => (raw.emulator.port = 17421), 'regions[1].adminPort', /is also emulator.port/],
    ['an unknown field', (raw) => (raw.regions[0].grpcport = 1), 'regions[0].grpcport', /unknown field/],
    ['an unknown top-level field', (raw) => (raw.region = []), 'region', /unknown field/],
    ['no regions', (raw) => (raw.regions = []), 'regions', /1 to 16 regions/],
    ['a region name twice', (raw) => (raw.regions[2].name = 'us-east'), 'regions[2].name', /also regions\[0\].name/],
    ['a region name with a slash', (raw) => (raw.regions[0].name = 'us/east'), 'regions[0].name', /letters, digits/],
    ['a node id twice', (raw) => (raw.regions[1].node = 'us-east-1'), 'regions[1].node', /also the node of regions\[0\]/],
    ['an unknown home region', (raw) => (raw.emulator.accounts[3].homeRegion = 'mars'), 'emulator.accounts[3].homeRegion', /us-east, eu-west, ap-south/],
    ['an account id twice', (raw) => (raw.emulator.accounts[4].id = 'acct-1'), 'emulator.accounts[4].id', /also emulator.accounts\[0\].id/],
    ['a weight of zero', (raw) => (raw.emulator.accounts[0].weight = 0), 'emulator.accounts[0].weight', /integer from 1 to 1000/],
    ['no accounts', (raw) => (raw.emulator.accounts = []), 'emulator.accounts', /array of 1 to/],
    ['a negative ttft', (raw) => (raw.emulator.ttftMs = -1), 'emulator.ttftMs', /integer from 0/],
    ['an unknown tier', (raw) => (raw.tenants[0].tier = 'gold'), 'tenants[0].tier', /vip, paid, free/],
    ['an unknown mode', (raw) => (raw.tenants[1].limits[0].mode = 'eventually'), 'tenants[1].limits[0].mode', /eventual, strict, escrow/],
    ['a metric the gateway never charges', (raw) => (raw.tenants[0].limits[0].metric = 'cost'), 'tenants[0].limits[0].metric', /requests, input_tokens/],
    ['an unknown window', (raw) => (raw.tenants[0].limits[1].window = 'fortnight'), 'tenants[0].limits[1].window', /must be one of/],
    ['a negative limit', (raw) => (raw.tenants[0].limits[1].limit = -5), 'tenants[0].limits[1].limit', /non-negative/],
    [
      'an escrowed sliding limit',
      (raw) => (raw.tenants[0].limits[1] = { metric: 'requests', window: 'minute', sliding: true, limit: 5, mode: 'escrow' }),
      'tenants[0].limits[1].mode',
      /sliding limit cannot be escrowed/,
    ],
    ['a weight out of range', (raw) => (raw.tenants[0].weights = { output: -1 }), 'tenants[0].weights.output', /integer from 0/],
    ['an unknown weight', (raw) => (raw.tenants[0].weights = { outptu: 5000 }), 'tenants[0].weights.outptu', /unknown field/],
    ['a tenant id twice', (raw) => (raw.tenants[1].id = 'demo'), 'tenants[1].id', /also tenants\[0\].id/],
    ['a short secret', (raw) => (raw.secret = 'short'), 'secret', /at least 16/],
    ['a short admin token', (raw) => (raw.adminToken = 'x'.repeat(15)), 'adminToken', /at least 16/],
    ['a host with a space', (raw) => (raw.host = 'local host'), 'host', /host name or IPv4/],
    ['an empty state dir', (raw) => (raw.stateDir = ''), 'stateDir', /directory path/],
    ['a comment that is not text', (raw) => (raw.emulator.$comment = 5), 'emulator.$comment', /string or an array of strings/],
  ];
  it.each(cases)('refuses %s, naming the field', (_name, edit, field, reason) => {
    const error = errorOf(edited(edit));
    expect(error.field).toBe(field);
    expect(error.reason).toMatch(reason);
  });

  it('refuses what is not an object', () => {
    expect(errorOf([]).field).toBe('(root)');
    expect(errorOf(edited((raw) => (raw.emulator = 'emu'))).field).toBe('emulator');
  });
});

describe('parseLocalConfigText', () => {
  it('says file, field and reason in one line', () => {
    const text = JSON.stringify(edited((raw) => (raw.regions[1] = { name: 'eu-west', meshPort: 1, adminPort: 2, grpcPort: 0 })));
    const parsed = parseLocalConfigText(text, 'carpool.local.json');
    expect(!parsed.ok && parsed.error).toBe('carpool.local.json: field regions[1].grpcPort: must be a port number 1-65535');
  });

  it('names the file when it is not JSON', () => {
    const parsed = parseLocalConfigText('{ "regions": [', 'mine.json');
    expect(!parsed.ok && parsed.error).toMatch(/^mine\.json: not valid JSON: /);
  });
});
