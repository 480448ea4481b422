// Proves the node configuration parser accepts a valid file and names the field of every mistake.
import { describe, expect, it } from 'vitest';
import { parseNodeConfig } from '../../src/node/node-config.js';

const valid = {
  node: 'n1',
  region: 'r1',
  listen: { host: '127.0.0.1', port: 7401 },
  admin: { host: '127.0.0.1', port: 8401 },
  members: [
    { id: 'n1', region: 'r1', url: 'ws://127.0.0.1:7401' },
    { id: 'n2', region: 'r2', url: 'wss://10.0.0.2:7401' },
  ],
  secret: 'sixteen-chars-at-least',
};

function fieldOf(raw: unknown): string | undefined {
  const parsed = parseNodeConfig(raw);
  return parsed.ok ? undefined : parsed.error.field;
}

describe('parseNodeConfig', () => {
  it('accepts a valid configuration', () => {
    const parsed = parseNodeConfig(valid);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.value.members).toHaveLength(2);
      expect(parsed.value.secret).toEqual({ kind: 'inline', value: valid.secret });
    }
    const fromEnv = parseNodeConfig({ ...valid, secret: undefined });
    expect(fromEnv.ok && fromEnv.value.secret.kind).toBe('env');
  });

  it('names the field of each mistake', () => {
    expect(fieldOf([])).toBe('(root)');
    expect(fieldOf({ ...valid, nodes: 1 })).toBe('nodes');
    expect(fieldOf({ ...valid, node: 'has space' })).toBe('node');
    expect(fieldOf({ ...valid, node: 'x'.repeat(49) })).toBe('node');
    expect(fieldOf({ ...valid, listen: { host: '127.0.0.1', port: 70_000 } })).toBe('listen.port');
    expect(fieldOf({ ...valid, admin: { port: 1 } })).toBe('admin.host');
    expect(fieldOf({ ...valid, members: [] })).toBe('members');
    expect(fieldOf({ ...valid, members: [valid.members[0], { id: 'n2', region: 'r2', url: 'http://x' }] })).toBe('members[1].url');
    expect(fieldOf({ ...valid, members: [valid.members[0], valid.members[0]] })).toBe('members[1].id');
    expect(fieldOf({ ...valid, members: [valid.members[1]] })).toBe('members');
    expect(fieldOf({ ...valid, region: 'elsewhere' })).toBe('region');
    expect(fieldOf({ ...valid, secret: 'short' })).toBe('secret');
    expect(fieldOf({ ...valid, secretFile: 'x' })).toBe('secret');
    expect(fieldOf({ ...valid, tls: { certFile: 'c' } })).toBe('tls.keyFile');
  });
});
