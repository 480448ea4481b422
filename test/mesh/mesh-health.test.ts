// The accounts' shared health register over the mesh: a record reaches every open peer within a
// gossip interval, crosses a partition through a bridge node, reaches a peer that joins late
// with the whole register, and a node cut off keeps the last record it heard.
import { describe, expect, it } from 'vitest';
import type { AccountId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { HealthRegister } from '../../src/pool/health-register.js';
import { makeNode, members, MemoryNetwork } from '../support/mesh-network.js';

const account = 'acct-1' as AccountId;

function meshOf(count: number) {
  const random = new SeededRandom(7);
  const all = members(count);
  const registers = all.map((m) => new HealthRegister(m.id, m.region));
  const nodes = all.map((m, i) => makeNode(m.id, all, random, undefined, undefined, { health: registers[i]! }));
  const network = new MemoryNetwork(nodes, random, { loss: 0, duplicate: 0, latencyMsMax: 5 });
  network.run(200);
  return { registers, network, nodes };
}

describe('shared account health over the mesh', () => {
  it('reaches every peer within about one gossip interval (50 ms here)', () => {
    const { registers, network } = meshOf(3);
    registers[0]!.write(account, { kind: 'paused', cause: 'exhausted', untilMs: network.nowMs + 60_000 }, network.nowMs);
    network.run(70);
    for (const register of registers)
      expect(register.get(account)?.health).toEqual({ kind: 'paused', cause: 'exhausted', untilMs: network.nowMs - 70 + 60_000 });
  });

  it('crosses a partition through a node that sees both sides', () => {
    const { registers, network } = meshOf(3);
    network.cut(0, 2);
    network.run(50);
    registers[0]!.write(account, { kind: 'disabled', reason: { kind: 'auth-failed', status: 401 } }, network.nowMs);
    network.run(200);
    expect(registers[2]!.get(account)?.health.kind).toBe('disabled');
  });

  it('gives a peer whose link opens the whole register, and a cut-off node keeps what it heard', () => {
    const { registers, network } = meshOf(3);
    registers[0]!.write(account, { kind: 'paused', cause: 'throttled', untilMs: network.nowMs + 5_000 }, network.nowMs);
    network.run(100);
    network.cut(0, 2);
    network.cut(1, 2);
    network.run(50);
    registers[1]!.write(account, { kind: 'available' }, network.nowMs);
    registers[0]!.write('acct-2' as AccountId, { kind: 'available' }, network.nowMs);
    network.run(200);
    // Cut off: the last word it heard.
    expect(registers[2]!.get(account)?.health.kind).toBe('paused');
    expect(registers[2]!.get('acct-2' as AccountId)).toBeUndefined();
    network.healAll();
    network.run(300);
    for (const register of registers) {
      expect(register.get(account)?.health.kind).toBe('available');
      expect(register.get('acct-2' as AccountId)?.health.kind).toBe('available');
    }
  });
});
