// NodeCore: completions never inside a call, frames only after a commit, cores converge.
import { describe, expect, it } from 'vitest';
import type { QuotaDecision } from '../../src/admission/quota-gate.js';
import { chargedKey } from '../../src/admission/quota.js';
import type { ClaimOutcome } from '../../src/admission/request-claims.js';
import type { NodeId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { NodeCore, type NodeCoreOptions, storeRetryMs } from '../../src/engine/node-core.js';
import { yjsClientId } from '../../src/engine/replica-identity.js';
import { MemoryStore } from '../../src/ledger/memory-store.js';
import type { StateBatch, StateStore } from '../../src/ledger/node-state.js';
import type { Member } from '../../src/mesh/membership.js';
import type { RoundOutcome } from '../../src/mesh/quorum.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { members, MemoryNetwork, testCrypto, testSecret } from '../support/mesh-network.js';
import { quotaRequest } from '../support/gate-mesh.js';

const startMs = 1_764_000_000_000;

function core(id: NodeId, all: readonly Member[], random: SeededRandom, extra: Partial<NodeCoreOptions> = {}): NodeCore {
  const member = all.find((m) => m.id === id)!;
  return new NodeCore({
    self: id,
    region: member.region,
    members: all,
    secret: testSecret,
    crypto: testCrypto(random),
    incarnation: '1',
    randoms: { gate: random.fork(), claims: random.fork(), pool: random.fork() },
    ...extra,
  });
}

/** A store that refuses every commit while `refusing` is set, as a full disk does. */
class FlakyStore implements StateStore {
  refusing = false;
  readonly inner = new MemoryStore();
  load = () => this.inner.load();
  commit(batch: StateBatch) {
    if (this.refusing) return { ok: false as const, error: { kind: 'full' as const, message: 'disk full (test)' } };
    return this.inner.commit(batch);
  }
  dropExpired = (beforeMs: number) => this.inner.dropExpired(beforeMs);
  compactPolicy = (state: Uint8Array) => this.inner.compactPolicy(state);
}

const eventual: LimitRule = { metric: 'requests', window: 'day', sliding: false, limit: 100, mode: 'eventual' };
const strict = (limit: number): LimitRule => ({ metric: 'requests', window: 'day', sliding: false, limit, mode: 'strict' });

describe('NodeCore', () => {
  it('never answers admit, claim or round from inside the call: the callbacks run from drainCompletions or tick', () => {
    const all = members(1);
    const node = core(all[0]!.id, all, new SeededRandom(1), { recovering: false });
    const decisions: QuotaDecision[] = [];
    node.admit(quotaRequest('r1', [eventual], { requests: 1 }), startMs, (d) => decisions.push(d));
    // An eventual decision is known at once, yet not delivered inside the call.
    expect(decisions).toEqual([]);
    expect(node.nextTickMs(startMs)).toBe(startMs);
    expect(node.drainCompletions()).toBe(1);
    expect(decisions.map((d) => d.ok)).toEqual([true]);
    expect(node.drainCompletions()).toBe(0);

    const claims: ClaimOutcome[] = [];
    const rounds: RoundOutcome[] = [];
    node.claim('subject-1', startMs, (o) => claims.push(o));
    node.round([], [], startMs, (o) => rounds.push(o));
    expect(claims).toEqual([]);
    expect(rounds).toEqual([]);
    // One member: the rounds complete at the next tick, which also delivers them.
    for (let t = startMs; t < startMs + 100 && (claims.length === 0 || rounds.length === 0); t += 5) node.tick(t);
    expect(claims.map((o) => o.kind)).toEqual(['granted']);
    expect(rounds.map((o) => o.ok)).toEqual([true]);
  });

  it('runs a completion that makes another call in the same drain, after the ones before it', () => {
    const all = members(1);
    const node = core(all[0]!.id, all, new SeededRandom(2), { recovering: false });
    const order: string[] = [];
    node.admit(quotaRequest('a', [eventual], { requests: 1 }), startMs, () => {
      order.push('a');
      node.admit(quotaRequest('c', [eventual], { requests: 1 }), startMs, () => order.push('c'));
      // A drain from inside a completion returns at once; the outer one runs `c`.
      expect(node.drainCompletions()).toBe(0);
    });
    node.admit(quotaRequest('b', [eventual], { requests: 1 }), startMs, () => order.push('b'));
    expect(node.drainCompletions()).toBe(3);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('hands out no frame before a commit holds it, and retries a refused commit storeRetryMs later', () => {
    const all = members(2);
    const store = new FlakyStore();
    const node = core(all[0]!.id, all, new SeededRandom(3), { store: { store, snapshot: store.load(), nowMs: startMs } });
    node.onLinkOpen(1, { direction: 'outbound', dialedPeer: all[1]!.id }, startMs);
    // The hello waits for the commit.
    expect(node.drainOutbox()).toEqual([]);
    store.refusing = true;
    node.tick(startMs);
    expect(node.journal?.failing?.kind).toBe('full');
    expect(node.drainOutbox()).toEqual([]);
    // Nothing else is due before the retry: it is the next tick.
    expect(node.nextTickMs(startMs)).toBeLessThanOrEqual(startMs + storeRetryMs);
    node.tick(startMs + 10);
    expect(node.drainOutbox()).toEqual([]);
    store.refusing = false;
    node.tick(startMs + 20);
    const out = node.drainOutbox();
    expect(out.length).toBeGreaterThan(0);
    expect(out.every((o) => o.kind === 'send' && o.link === 1)).toBe(true);
    // What the commit wrote names this replica, so a restart resumes it.
    expect(store.load().meta.get('replica')).toBe(node.replica);
  });

  it('resumes the replica its store names, with a new Yjs client id per start, and refuses another member’s store', () => {
    const all = members(2);
    const store = new MemoryStore();
    const first = core(all[0]!.id, all, new SeededRandom(4), { store: { store, snapshot: store.load(), nowMs: startMs }, incarnation: 'a' });
    first.tick(startMs);
    expect(first.restart).toMatchObject({ ok: true, value: { starts: 1, resumed: false } });
    const second = core(all[0]!.id, all, new SeededRandom(5), { store: { store, snapshot: store.load(), nowMs: startMs + 1 }, incarnation: 'b' });
    expect(second.replica).toBe(first.replica);
    expect(second.restart).toMatchObject({ ok: true, value: { starts: 2, resumed: true } });
    expect(yjsClientId(first.replica)).not.toBe(yjsClientId(`${first.replica}#2` as typeof first.replica));
    expect(() => core(all[1]!.id, all, new SeededRandom(6), { store: { store, snapshot: store.load(), nowMs: startMs } })).toThrow(
      /give each node its own dataDir/,
    );
  });

  it('says when its timers are due, and tick does nothing early', () => {
    const all = members(2);
    const node = core(all[0]!.id, all, new SeededRandom(7));
    const due = node.nextTickMs(startMs);
    expect(due).toBeGreaterThanOrEqual(startMs);
    expect(due).toBeLessThan(Number.POSITIVE_INFINITY);
    node.onLinkOpen(1, { direction: 'outbound', dialedPeer: all[1]!.id }, startMs);
    node.drainOutbox();
    const early = Math.max(startMs, due - 1);
    const before = node.mesh.stats.framesSent;
    if (early < due) {
      node.tick(early);
      expect(node.mesh.stats.framesSent).toBe(before);
    }
    expect(node.nextTickMs(due)).toBe(due);
  });

  it('three cores over the in-memory network converge and admit a strict limit exactly, without a store and with one', () => {
    for (const withStore of [false, true]) {
      const random = new SeededRandom(withStore ? 11 : 10);
      const all = members(3);
      const cores = all.map((m) => {
        const store = new MemoryStore();
        return core(m.id, all, random, withStore ? { store: { store, snapshot: store.load(), nowMs: startMs } } : {});
      });
      const network = new MemoryNetwork(cores, random, { loss: 0.05, duplicate: 0.05, latencyMsMax: 20 });
      // A store-backed core hands frames out at its commits: tick each at every step.
      const step = (): void => {
        network.step(5);
        for (const c of cores) c.tick(network.nowMs);
      };
      for (let i = 0; i < 200; i++) step();
      const limit = strict(7);
      const decided = new Map<string, boolean>();
      // One after another, round robin over the nodes: each sees every earlier admission.
      for (let r = 0; r < 12; r++) {
        const at = cores[r % 3]!;
        at.admit(quotaRequest(`q${r}`, [limit], { requests: 1 }), network.nowMs, (d) => decided.set(`q${r}`, d.ok));
        at.drainCompletions();
        for (let i = 0; i < 1_000 && !decided.has(`q${r}`); i++) step();
      }
      expect(decided.size).toBe(12);
      expect([...decided.values()]).toEqual([...Array<boolean>(7).fill(true), ...Array<boolean>(5).fill(false)]);
      for (let i = 0; i < 400; i++) step();
      const key = chargedKey('tenant', 'acme', limit, network.nowMs);
      expect(cores.map((c) => c.counter.value(key))).toEqual([7, 7, 7]);
    }
  });
});
