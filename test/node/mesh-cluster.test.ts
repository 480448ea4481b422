// Proves the mesh works between real node processes on loopback: increments reach every node, a
// crashed node catches up after restart, a healed partition converges, policy edits spread, and
// peers that cannot authenticate are cut off without touching a counter.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { asNodeId } from '../../src/core/ids.js';
import { frameBytesMax } from '../../src/core/limits.js';
import { meshProtocolVersion } from '../../src/mesh/handshake.js';
import { decodeFrame, encodeFrame, type Frame } from '../../src/mesh/wire/frame.js';
import { Cluster, clusterAdminToken, type CounterRef, sleep } from '../support/cluster.js';

const day = Math.floor(Date.now() / 86_400_000);
const ref = (subject: string): CounterRef => ({ scope: 'tenant', subject, metric: 'requests', unit: 'day', index: day });

describe('a 3-node mesh', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await Cluster.start(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('makes increments at every node visible at every node', async () => {
    const key = ref('visible');
    await Promise.all([0, 1, 2].map((i) => cluster.increment(i, key, 10 * (i + 1))));
    const values = await Promise.all([0, 1, 2].map((i) => cluster.value(i, key, 60)));
    expect(values).toEqual([60, 60, 60]);
  });

  it('spreads a policy edit made at one node to all others', async () => {
    const tenant = {
      tier: 'paid',
      requireSignature: false,
      concurrencyMax: 8,
      weights: { input: 1000, output: 5000, cacheWrite: 1250, cacheRead: 100 },
      limits: [{ metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000_000, mode: 'escrow' }],
    };
    await cluster.request(1, 'PUT', '/policy/tenants/globex', tenant);
    const created = (await cluster.request(1, 'POST', '/policy/tenants/globex/keys', { name: 'ci' })) as { apiKey: string; key: { keyId: string } };
    for (const i of [0, 2]) {
      let seen: unknown;
      for (let attempt = 0; attempt < 50 && seen === undefined; attempt++) {
        const policy = (await cluster.request(i, 'GET', '/policy')) as { tenants: { id: string; keys: unknown[] }[] };
        seen = policy.tenants.find((t) => t.id === 'globex' && t.keys.length === 1);
        if (seen === undefined) await sleep(100);
      }
      expect(seen).toMatchObject({ id: 'globex', tier: 'paid', limits: tenant.limits, keys: [{ keyId: created.key.keyId, name: 'ci', state: 'active' }] });
      // Key digests are signing secrets: the admin view shows the key id only.
      expect(JSON.stringify(seen)).not.toMatch(/[0-9a-f]{64}/);
    }
  });

  it('converges after a partition heals, with traffic on both sides', async () => {
    const key = ref('partition');
    cluster.isolate(2);
    await sleep(300);
    await cluster.increment(0, key, 5);
    await cluster.increment(2, key, 7);
    // While cut off, node 2 cannot see node 0's increment, nor node 0 node 2's.
    expect(await cluster.value(2, key, 12, 800)).toBe(7);
    expect(await cluster.value(1, key, 5)).toBe(5);
    cluster.healAll();
    const values = await Promise.all([0, 1, 2].map((i) => cluster.value(i, key, 12, 15_000)));
    expect(values).toEqual([12, 12, 12]);
  });

  it('lets a killed node catch up after it restarts', async () => {
    const key = ref('restart');
    await cluster.increment(1, key, 3);
    expect(await cluster.value(1, key, 3)).toBe(3);
    expect(await cluster.value(0, key, 3)).toBe(3);
    const before = (await cluster.status(1)).replica;
    await cluster.kill(1);
    await cluster.increment(0, key, 4);
    await cluster.spawn(1);
    const after = (await cluster.status(1)).replica;
    // A restart without state is a new incarnation; the old one's counts stay in the mesh.
    expect(after).not.toBe(before);
    expect(await cluster.value(1, key, 7, 15_000)).toBe(7);
    await cluster.increment(1, key, 1);
    expect(await Promise.all([0, 1, 2].map((i) => cluster.value(i, key, 8)))).toEqual([8, 8, 8]);
  });

  it('answers bad admin requests with 4xx and a message naming the problem', async () => {
    const base = `http://127.0.0.1:${cluster.nodes[0]!.adminPort}`;
    const headers = { authorization: `Bearer ${clusterAdminToken}`, 'content-type': 'application/json' };
    const badJson = await fetch(`${base}/usage/adjustments`, { method: 'POST', headers, body: '{not json' });
    expect(badJson.status).toBe(400);
    const badTenant = await fetch(`${base}/policy/tenants/acme`, { method: 'PUT', headers, body: JSON.stringify({ tier: 'gold' }) });
    expect(badTenant.status).toBe(400);
    expect(((await badTenant.json()) as { field: string }).field).toContain('tier');
    expect((await fetch(`${base}/nowhere`, { headers })).status).toBe(404);
    expect((await fetch(`${base}/status`, { method: 'DELETE', headers })).status).toBe(405);
    // No route writes counters any more: the old one is gone, and the test-only route lives apart.
    expect((await fetch(`${base}/counters`, { method: 'POST', headers, body: JSON.stringify({ updates: [] }) })).status).toBe(405);
    expect((await fetch(`${base}/admission/admit`, { method: 'POST', headers, body: '{}' })).status).toBe(404);
    const badUnit = await cluster.testFetch(0, '/counters', { updates: [{ ...ref('x'), unit: 'fortnight', amount: 1 }] });
    expect(badUnit.status).toBe(400);
    expect(((await badUnit.json()) as { error: string }).error).toContain('unit must be one of');
  });

  describe('security', () => {
    const secret = new TextEncoder().encode('not the mesh secret at all');
    const probe = ref('security');

    /** Connects a raw WebSocket to node 0's mesh port; resolves with frames seen and the close. */
    function attack(send: (socket: WebSocket, frames: Frame[]) => void): Promise<{ code: number; reason: string; frames: Frame[] }> {
      return new Promise((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${cluster.nodes[0]!.meshPort}`, { perMessageDeflate: false });
        const frames: Frame[] = [];
        socket.on('open', () => send(socket, frames));
        socket.on('message', (data: Buffer) => {
          const decoded = decodeFrame(new Uint8Array(data));
          if (decoded.ok) frames.push(decoded.value);
          send(socket, frames);
        });
        socket.on('close', (code, reason) => resolve({ code, reason: reason.toString(), frames }));
        socket.on('error', reject);
        setTimeout(() => reject(new Error('the node did not close the connection')), 10_000);
      });
    }

    const bytes = (frame: Frame): Buffer => {
      const encoded = encodeFrame(frame);
      if (!encoded.ok) throw new Error('frame too large');
      return Buffer.from(encoded.value);
    };

    it('disconnects garbage, wrong proofs, replays and oversized frames, and changes no counter', async () => {
      const before = await cluster.value(0, probe);
      const authBefore = (await cluster.status(0)).mesh.authFailures;

      // Garbage before any handshake.
      const garbage = await attack((socket, frames) => {
        if (frames.length === 0) socket.send(Buffer.from('definitely not a frame'));
      });
      expect(garbage.code).toBe(4401);

      // A counter delta sent without a handshake.
      const unauthenticated = await attack((socket) => {
        socket.send(
          bytes({
            kind: 'counter-delta',
            delta: { entries: [], ranges: [] },
          }),
        );
      });
      expect(unauthenticated.code).toBe(4401);

      // A known member id, but a proof made without the mesh secret.
      const nonce = new Uint8Array(16).fill(7);
      const wrongProof = await attack((socket, frames) => {
        const challenge = frames[0];
        if (challenge === undefined) {
          socket.send(bytes({ kind: 'hello', protocolVersion: meshProtocolVersion, member: asNodeId('n1'), nonce }));
        } else if (challenge.kind === 'challenge') {
          const proof = new Uint8Array(createHmac('sha256', secret).update(challenge.nonce).digest());
          socket.send(bytes({ kind: 'proof', proof }));
        }
      });
      expect(wrongProof).toMatchObject({ code: 4401, reason: 'bad-proof' });

      // The same Hello replayed on a new connection.
      const replay = await attack((socket, frames) => {
        if (frames.length === 0) socket.send(bytes({ kind: 'hello', protocolVersion: meshProtocolVersion, member: asNodeId('n1'), nonce }));
      });
      expect(replay).toMatchObject({ code: 4401, reason: 'replayed-handshake' });

      // A frame over the size bound is refused by the transport.
      const oversized = await attack((socket, frames) => {
        if (frames.length === 0) socket.send(Buffer.alloc(frameBytesMax + 1));
      });
      expect(oversized.code).toBe(1009);

      const status = await cluster.status(0);
      expect(status.mesh.authFailures['unauthenticated-frame']! - (authBefore['unauthenticated-frame'] ?? 0)).toBe(2);
      expect(status.mesh.authFailures['bad-proof']! - (authBefore['bad-proof'] ?? 0)).toBe(1);
      expect(status.mesh.authFailures['replayed-handshake']! - (authBefore['replayed-handshake'] ?? 0)).toBe(1);
      expect(await cluster.value(0, probe)).toBe(before);
      // The real peers are still (or again, after the restart test) connected.
      await cluster.waitConnected();
    });
  });
});

describe('a 5-node mesh', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await Cluster.start(5);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('makes increments at every node visible at every node', async () => {
    const key = ref('five');
    await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.increment(i, key, i + 1)));
    expect(await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.value(i, key, 15)))).toEqual([15, 15, 15, 15, 15]);
  });

  it('repairs through a third node when two nodes cannot see each other', async () => {
    const key = ref('bridge');
    cluster.cut(0, 4);
    await sleep(300);
    await cluster.increment(0, key, 9);
    expect(await cluster.value(4, key, 9, 5_000)).toBe(9);
    cluster.heal(0, 4);
  });
});
