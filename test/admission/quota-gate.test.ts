// Proves the quota gate's three modes, on one node and on three over the in-memory mesh.
// Eventual and strict admit up to the limit, strict batches per tenant, escrow claims rights,
// settle refunds once.
import { describe, expect, it } from 'vitest';
import { claimKey, EscrowBook } from '../../src/admission/escrow.js';
import { chargedKey } from '../../src/admission/quota.js';
import { type QuotaDecision, QuotaGate } from '../../src/admission/quota-gate.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, type RequestId } from '../../src/core/ids.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { windowAt, windowEndMs } from '../../src/crdt/window.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { GateMesh, quotaRequest } from '../support/gate-mesh.js';

const rule = (mode: LimitRule['mode'], metric: string, limit: number): LimitRule => ({ metric, window: 'day', sliding: false, limit, mode });
const keyOf = (r: LimitRule, nowMs: number) => chargedKey('tenant', 'acme', r, nowMs);

/** The quota rejection of `r` for request `id`, its retry hint counted from the request's arrival. */
function quotaRefusal(mesh: GateMesh, id: string, r: LimitRule): unknown {
  const nowMs = mesh.decisions.arrivedAtMs.get(id)!;
  return { ok: false, error: { kind: 'quota', metric: r.metric, limit: r.limit, window: r.window, retryAfterMs: windowEndMs(windowAt('day', nowMs)) - nowMs } };
}

/** Admits `ids` at node `index` one after another, each once the previous one is decided. */
function admitInTurn(mesh: GateMesh, index: number, ids: readonly string[], rules: readonly LimitRule[], amounts: Record<string, number>): void {
  for (const id of ids) {
    mesh.admit(index, quotaRequest(id, rules, amounts));
    expect(mesh.runUntil(() => mesh.decisions.of(id) !== undefined, 3_000)).toBe(true);
  }
}

const admittedOf = (mesh: GateMesh, ids: readonly string[]): string[] => ids.filter((id) => mesh.decisions.of(id)?.ok === true);
const ids = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

describe('QuotaGate on one node (N = 1: strict rounds complete on the next tick)', () => {
  it('eventual: admits at once up to the limit and refuses beyond with a quota rejection', () => {
    const mesh = new GateMesh(1, 1);
    const limit = rule('eventual', 'requests', 3);
    for (const id of ids('r', 4)) {
      mesh.admit(0, quotaRequest(id, [limit], { requests: 1 }));
      expect(mesh.decisions.lastSynchronous).toBe(true);
    }
    expect(admittedOf(mesh, ids('r', 4))).toEqual(['r0', 'r1', 'r2']);
    expect(mesh.decisions.of('r3')).toEqual(quotaRefusal(mesh, 'r3', limit));
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(3);
    expect(mesh.nodes[0]!.gate.stats).toMatchObject({ admitted: 3, rejected: 1, strictRounds: 0 });
  });

  it('strict: batches requests that arrive during a round into the next one, and admits exactly up to the limit', () => {
    const mesh = new GateMesh(1, 2);
    const limit = rule('strict', 'requests', 3);
    const gate = mesh.nodes[0]!.gate;
    for (const id of ids('r', 5)) {
      mesh.admit(0, quotaRequest(id, [limit], { requests: 1 }));
      expect(mesh.decisions.lastSynchronous).toBe(false);
    }
    // The first request started a round; the other four wait for the next.
    expect(gate.stats).toMatchObject({ strictRounds: 1, strictBatched: 1 });
    expect(gate.waiting).toBe(4);
    expect(mesh.runUntil(() => ids('r', 5).every((id) => mesh.decisions.of(id) !== undefined), 100)).toBe(true);
    expect(gate.stats).toMatchObject({ strictRounds: 2, strictBatched: 5, admitted: 3, rejected: 2 });
    expect(gate.waiting).toBe(0);
    expect(admittedOf(mesh, ids('r', 5))).toEqual(['r0', 'r1', 'r2']);
    expect(mesh.decisions.of('r4')).toEqual(quotaRefusal(mesh, 'r4', limit));
    // The refused requests' reservations are withdrawn.
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(3);
    expect(mesh.nodes[0]!.reservations.openCount).toBe(3);
  });

  it('strict: refunds a refused request whole, so the counter holds only what was admitted', () => {
    const mesh = new GateMesh(1, 3);
    const limit = rule('strict', 'weighted_tokens', 1_000);
    for (const id of ids('r', 3)) mesh.admit(0, quotaRequest(id, [limit], { weighted_tokens: 400 }));
    mesh.run(50);
    expect(admittedOf(mesh, ids('r', 3))).toEqual(['r0', 'r1']);
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(800);
    // A smaller request still fits the rest.
    admitInTurn(mesh, 0, ['small'], [limit], { weighted_tokens: 200 });
    expect(mesh.decisions.of('small')?.ok).toBe(true);
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(1_000);
  });

  it('settle refunds the difference once: a repeated settle changes nothing and returns the same outcome', () => {
    const mesh = new GateMesh(1, 4);
    const limit = rule('eventual', 'weighted_tokens', 1_000);
    const node = mesh.nodes[0]!;
    const key = keyOf(limit, mesh.nowMs);
    mesh.admit(0, quotaRequest('big', [limit], { weighted_tokens: 600 }));
    mesh.admit(0, quotaRequest('refused', [limit], { weighted_tokens: 600 }));
    expect(mesh.decisions.of('refused')?.ok).toBe(false);
    const used = new Map([['weighted_tokens', 200]]);
    const first = node.gate.settle('big' as RequestId, used);
    expect(first).toEqual([{ requestId: 'big#weighted_tokens', reserved: 600, charged: 200, by: 'usage' }]);
    expect(node.counter.value(key)).toBe(200);
    expect(node.gate.settle('big' as RequestId, used)).toEqual(first);
    expect(node.gate.settle('big' as RequestId, new Map([['weighted_tokens', 0]]))).toEqual(first);
    expect(node.counter.value(key)).toBe(200);
    // The refund made room: 800 more fit, 801 would not have.
    mesh.admit(0, quotaRequest('after', [limit], { weighted_tokens: 800 }));
    expect(mesh.decisions.of('after')?.ok).toBe(true);
    expect(node.gate.settle('never-admitted' as RequestId, used)).toEqual([]);
  });

  it('escrow: claims a share of the limit, admits locally while rights last, claims again, and refuses once the limit is claimed', () => {
    const mesh = new GateMesh(1, 5);
    const limit = rule('escrow', 'requests', 100);
    const node = mesh.nodes[0]!;
    const key = keyOf(limit, mesh.nowMs);
    mesh.admit(0, quotaRequest('first', [limit], { requests: 1 }));
    expect(mesh.decisions.lastSynchronous).toBe(false);
    mesh.run(20);
    expect(mesh.decisions.of('first')?.ok).toBe(true);
    // One member: a claim takes at least a quarter of the limit.
    expect(node.gate.stats).toMatchObject({ claimRounds: 1, rightsClaimed: 25 });
    expect(node.escrow.rights(key)).toBe(24);
    for (const id of ids('local', 24)) {
      mesh.admit(0, quotaRequest(id, [limit], { requests: 1 }));
      expect(mesh.decisions.lastSynchronous).toBe(true);
    }
    expect(admittedOf(mesh, ids('local', 24)).length).toBe(24);
    expect(node.gate.stats.claimRounds).toBe(1);
    mesh.admit(0, quotaRequest('again', [limit], { requests: 1 }));
    expect(mesh.decisions.lastSynchronous).toBe(false);
    mesh.run(20);
    expect(mesh.decisions.of('again')?.ok).toBe(true);
    expect(node.gate.stats.claimRounds).toBe(2);
    admitInTurn(mesh, 0, ids('rest', 80), [limit], { requests: 1 });
    expect(admittedOf(mesh, ids('rest', 80)).length).toBe(74);
    expect(mesh.decisions.of('rest79')).toEqual(quotaRefusal(mesh, 'rest79', limit));
    expect(node.counter.value(claimKey(key))).toBe(100);
    expect(node.gate.stats.rightsClaimed).toBe(100);
    expect(node.gate.stats.admitted).toBe(100);
  });

  it('escrow: settle returns the unused rights to the node once', () => {
    const mesh = new GateMesh(1, 6);
    const limit = rule('escrow', 'weighted_tokens', 1_000);
    const node = mesh.nodes[0]!;
    const key = keyOf(limit, mesh.nowMs);
    admitInTurn(mesh, 0, ['r'], [limit], { weighted_tokens: 100 });
    expect(mesh.decisions.of('r')?.ok).toBe(true);
    expect(node.escrow.rights(key)).toBe(250 - 100);
    node.gate.settle('r' as RequestId, new Map([['weighted_tokens', 40]]));
    expect(node.escrow.rights(key)).toBe(210);
    node.gate.settle('r' as RequestId, new Map([['weighted_tokens', 40]]));
    expect(node.escrow.rights(key)).toBe(210);
    expect(node.counter.value(key)).toBe(40);
  });

  it('settle charges a metric left out of the usage its estimate', () => {
    const mesh = new GateMesh(1, 7);
    const rules = [rule('eventual', 'requests', 100), rule('eventual', 'weighted_tokens', 10_000)];
    const node = mesh.nodes[0]!;
    mesh.admit(0, quotaRequest('a', rules, { requests: 1, weighted_tokens: 500 }));
    mesh.admit(0, quotaRequest('b', rules, { requests: 1, weighted_tokens: 500 }));
    const settled = node.gate.settle('a' as RequestId, new Map([['weighted_tokens', 200]]));
    expect(settled.find((s) => s.requestId === 'a#requests')).toMatchObject({ reserved: 1, charged: 1 });
    expect(node.counter.value(keyOf(rules[0]!, mesh.nowMs))).toBe(2);
  });

  it('refuses a request whose estimate alone is over a limit as one that can never fit, in every mode, before any round', () => {
    for (const mode of ['eventual', 'strict', 'escrow'] as const) {
      const mesh = new GateMesh(1, 9);
      const rules = [rule(mode, 'weighted_tokens', 1_000)];
      mesh.admit(0, quotaRequest('big', rules, { weighted_tokens: 1_001 }));
      expect(mesh.decisions.lastSynchronous).toBe(true);
      expect(mesh.decisions.of('big')).toEqual({
        ok: false,
        error: { kind: 'exceeds-limit', scope: 'tenant', metric: 'weighted_tokens', limit: 1_000, window: 'day', amount: 1_001 },
      });
      expect(mesh.nodes[0]!.gate.stats).toMatchObject({ strictRounds: 0, claimRounds: 0 });
      // At the limit it fits an empty window.
      mesh.admit(0, quotaRequest('fits', rules, { weighted_tokens: 1_000 }));
      expect(mesh.runUntil(() => mesh.decisions.of('fits') !== undefined, 3_000)).toBe(true);
      expect(mesh.decisions.of('fits')?.ok).toBe(true);
    }
  });

  it('withdraws a request that reached no model: refunded whole, and its id may be admitted again', () => {
    const mesh = new GateMesh(1, 10);
    const rules = [rule('eventual', 'requests', 100), rule('escrow', 'weighted_tokens', 10_000)];
    const node = mesh.nodes[0]!;
    mesh.admit(0, quotaRequest('w', rules, { requests: 1, weighted_tokens: 500 }));
    expect(mesh.runUntil(() => mesh.decisions.of('w') !== undefined, 3_000)).toBe(true);
    const rights = node.escrow.rights(keyOf(rules[1]!, mesh.nowMs));
    expect(node.gate.withdraw('w' as RequestId)).toBe(true);
    expect(node.gate.withdraw('w' as RequestId)).toBe(false);
    expect(node.counter.value(keyOf(rules[0]!, mesh.nowMs))).toBe(0);
    expect(node.counter.value(keyOf(rules[1]!, mesh.nowMs))).toBe(0);
    expect(node.escrow.rights(keyOf(rules[1]!, mesh.nowMs))).toBe(rights + 500);
    const decisions: QuotaDecision[] = [];
    node.gate.admit(quotaRequest('w', rules, { requests: 1, weighted_tokens: 500 }), mesh.nowMs, (decision) => decisions.push(decision));
    mesh.run(100);
    expect(decisions).toEqual([{ ok: true, value: undefined }]);
  });

  it('refuses a settled request id for good, saying so, and charges it nothing more', () => {
    const mesh = new GateMesh(1, 8);
    const rules = [rule('eventual', 'requests', 100)];
    const node = mesh.nodes[0]!;
    mesh.admit(0, quotaRequest('a', rules, { requests: 1 }));
    expect(mesh.decisions.of('a')?.ok).toBe(true);
    node.gate.settle('a' as RequestId, new Map([['requests', 1]]));
    // The same id again; the harness records decisions per request, so under a second label.
    const decisions: QuotaDecision[] = [];
    node.gate.admit(quotaRequest('a', rules, { requests: 1 }), mesh.nowMs, (decision) => decisions.push(decision));
    mesh.run(100);
    expect(decisions).toHaveLength(1);
    const again = decisions[0];
    expect(again?.ok).toBe(false);
    expect(again?.ok === false && again.error).toEqual({
      kind: 'request-done',
      reason: 'this request id already completed; the answer is no longer kept, and a new request needs a new id',
    });
    expect(node.counter.value(keyOf(rules[0]!, mesh.nowMs))).toBe(1);
  });
});

describe('QuotaGate on three nodes over the mesh', () => {
  it('eventual: a node refuses once gossip shows it the others used the limit', () => {
    const mesh = new GateMesh(3, 11);
    mesh.run(100);
    const limit = rule('eventual', 'requests', 3);
    for (const id of ids('a', 3)) mesh.admit(0, quotaRequest(id, [limit], { requests: 1 }));
    mesh.run(200);
    expect(mesh.nodes[1]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(3);
    mesh.admit(1, quotaRequest('b', [limit], { requests: 1 }));
    expect(mesh.decisions.lastSynchronous).toBe(true);
    expect(mesh.decisions.of('b')).toEqual(quotaRefusal(mesh, 'b', limit));
    expect(admittedOf(mesh, ids('a', 3))).toEqual(['a0', 'a1', 'a2']);
  });

  it('strict: one round per batch at each node, and exactly the limit admitted across nodes', () => {
    const mesh = new GateMesh(3, 12);
    mesh.run(100);
    const limit = rule('strict', 'requests', 5);
    for (const id of ids('a', 3)) mesh.admit(0, quotaRequest(id, [limit], { requests: 1 }));
    expect(mesh.runUntil(() => ids('a', 3).every((id) => mesh.decisions.of(id) !== undefined), 1_000)).toBe(true);
    expect(admittedOf(mesh, ids('a', 3))).toEqual(['a0', 'a1', 'a2']);
    expect(mesh.nodes[0]!.gate.stats).toMatchObject({ strictRounds: 2, strictBatched: 3 });
    for (const id of ids('b', 4)) mesh.admit(1, quotaRequest(id, [limit], { requests: 1 }));
    expect(mesh.runUntil(() => ids('b', 4).every((id) => mesh.decisions.of(id) !== undefined), 1_000)).toBe(true);
    expect(admittedOf(mesh, ids('b', 4))).toEqual(['b0', 'b1']);
    expect(mesh.decisions.of('b3')).toEqual(quotaRefusal(mesh, 'b3', limit));
    expect(mesh.nodes[1]!.gate.stats).toMatchObject({ strictRounds: 2, strictBatched: 4, admitted: 2, rejected: 2 });
    mesh.run(300);
    for (const node of mesh.nodes) expect(node.counter.value(keyOf(limit, mesh.nowMs))).toBe(5);
  });

  it('strict: a node cut off from the majority refuses with no-quorum and withdraws its reservation', () => {
    const mesh = new GateMesh(3, 13, undefined, { quorumTimeoutMs: 500 });
    mesh.run(100);
    const limit = rule('strict', 'requests', 5);
    mesh.network.cut(0, 1);
    mesh.network.cut(0, 2);
    mesh.admit(0, quotaRequest('minority', [limit], { requests: 1 }));
    mesh.admit(1, quotaRequest('majority', [limit], { requests: 1 }));
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(1);
    expect(mesh.runUntil(() => mesh.decisions.of('majority') !== undefined, 400)).toBe(true);
    expect(mesh.decisions.of('majority')).toEqual({ ok: true, value: undefined });
    expect(mesh.decisions.of('minority')).toBeUndefined();
    expect(mesh.runUntil(() => mesh.decisions.of('minority') !== undefined, 500)).toBe(true);
    expect(mesh.decisions.of('minority')).toEqual({ ok: false, error: { kind: 'no-quorum', operation: 'admission', retryAfterMs: 1_000 } });
    expect(mesh.nodes[0]!.counter.value(keyOf(limit, mesh.nowMs))).toBe(0);
    expect(mesh.nodes[0]!.reservations.openCount).toBe(0);
  });

  it('escrow: claims through strict rounds, admits locally in between, and stops at the limit across nodes', () => {
    const mesh = new GateMesh(3, 14);
    mesh.run(100);
    // Three members: a claim takes at least ceil(20 / 12) = 2 rights.
    const limit = rule('escrow', 'requests', 20);
    const key = keyOf(limit, mesh.nowMs);
    admitInTurn(mesh, 0, ['first'], [limit], { requests: 1 });
    mesh.admit(0, quotaRequest('local', [limit], { requests: 1 }));
    expect(mesh.decisions.lastSynchronous).toBe(true);
    expect(mesh.decisions.of('local')?.ok).toBe(true);
    expect(mesh.nodes[0]!.gate.stats).toMatchObject({ claimRounds: 1, rightsClaimed: 2 });
    admitInTurn(mesh, 1, ids('b', 10), [limit], { requests: 1 });
    admitInTurn(mesh, 0, ids('a', 15), [limit], { requests: 1 });
    admitInTurn(mesh, 2, ['c'], [limit], { requests: 1 });
    const all = ['first', 'local', ...ids('b', 10), ...ids('a', 15), 'c'];
    expect(admittedOf(mesh, all).length).toBe(20);
    expect(mesh.decisions.of('c')).toEqual(quotaRefusal(mesh, 'c', limit));
    expect(mesh.decisions.of('a14')).toEqual(quotaRefusal(mesh, 'a14', limit));
    mesh.run(300);
    for (const node of mesh.nodes) expect(node.counter.value(claimKey(key))).toBe(20);
    expect(mesh.nodes.reduce((sum, node) => sum + node.gate.stats.rightsClaimed, 0)).toBe(20);
  });

  it('strict: the next batch gets a full round timeout after the previous round ends', () => {
    const mesh = new GateMesh(3, 15, undefined, { quorumTimeoutMs: 1_000 });
    mesh.run(100);
    const limit = rule('strict', 'requests', 100);
    mesh.network.cut(0, 1);
    mesh.network.cut(0, 2);
    mesh.admit(0, quotaRequest('a', [limit], { requests: 1 }));
    mesh.run(900);
    mesh.admit(0, quotaRequest('b', [limit], { requests: 1 }));
    expect(mesh.runUntil(() => mesh.decisions.of('a') !== undefined, 200, 1)).toBe(true);
    expect(mesh.decisions.of('a')?.ok).toBe(false);
    mesh.network.healAll();
    expect(mesh.runUntil(() => mesh.decisions.of('b') !== undefined, 1_000, 1)).toBe(true);
    expect(mesh.decisions.of('b')).toEqual({ ok: true, value: undefined });
  });
});

describe('QuotaGate batches stay bounded', () => {
  it('drops a strict or claim batch once it has nothing in flight and nothing waiting, over many windows and keys', () => {
    const mesh = new GateMesh(3, 21);
    mesh.run(100);
    const gate = mesh.nodes[0]!.gate;
    // Each round a fresh escrow key (a new minute window) and a strict one: before, every key
    // left a batch behind for the life of the process.
    for (let round = 0; round < 30; round++) {
      const escrow: LimitRule = { metric: 'requests', window: 'minute', sliding: false, limit: 50 + round, mode: 'escrow' };
      const strict: LimitRule = { metric: 'input_tokens', window: 'minute', sliding: false, limit: 1_000 + round, mode: 'strict' };
      admitInTurn(mesh, 0, [`e${round}`], [escrow], { requests: 1 });
      admitInTurn(mesh, 0, [`s${round}`], [strict], { input_tokens: 1 });
      expect(mesh.decisions.of(`e${round}`)?.ok).toBe(true);
      expect(mesh.decisions.of(`s${round}`)?.ok).toBe(true);
      mesh.run(61_000, 500);
    }
    expect(gate.stats.claimRounds).toBeGreaterThanOrEqual(30);
    expect(gate.stats.strictRounds).toBeGreaterThanOrEqual(30);
    expect(gate.batchCounts).toEqual({ strict: 0, claims: 0 });
  });
});

describe('QuotaGate bounds', () => {
  it('refuses a request as shed once its open requests fill the reservation table, even one no rule charges', () => {
    // Found by the bounds audit (issue 17): a request no rule charges opened no reservation, so
    // its open record was bounded only by the caller settling it.
    const counter = new WindowedCounter(asReplicaId('n1~1'));
    const reservations = new ReservationTable(counter, { openMax: 2 });
    const gate = new QuotaGate(
      counter,
      reservations,
      new EscrowBook(counter.self, counter),
      { startRound: () => expect.unreachable('no round without strict rules') },
      1,
    );
    const decisions = new Map<string, QuotaDecision>();
    const admit = (id: string): void => gate.admit(quotaRequest(id, [], { requests: 1 }), 1_764_000_000_000, (d) => decisions.set(id, d));
    for (const id of ['a', 'b', 'c']) admit(id);
    expect(decisions.get('a')?.ok).toBe(true);
    expect(decisions.get('b')?.ok).toBe(true);
    expect(decisions.get('c')).toEqual({ ok: false, error: { kind: 'shed', retryAfterMs: expect.any(Number) as number } });
    expect(gate.tableSizes().open).toBe(2);
    gate.settle('a' as RequestId, new Map());
    admit('d');
    expect(decisions.get('d')?.ok).toBe(true);
    expect(gate.tableSizes().open).toBe(2);
  });

  it('stops on a round that completes twice instead of deciding its batch again', () => {
    // An impossible transition (a round runner calling back twice) used to decide the batch
    // twice, admitting its requests a second time; it is asserted now.
    const counter = new WindowedCounter(asReplicaId('n1~1'));
    let done: ((outcome: { ok: true }, nowMs: number) => void) | undefined;
    const gate = new QuotaGate(
      counter,
      new ReservationTable(counter),
      new EscrowBook(counter.self, counter),
      { startRound: (_request, _nowMs, callback) => (done = callback) },
      1,
    );
    gate.admit(quotaRequest('s1', [rule('strict', 'requests', 5)], { requests: 1 }), 1_764_000_000_000, () => {});
    expect(done).toBeDefined();
    done!({ ok: true }, 1_764_000_000_010);
    expect(() => done!({ ok: true }, 1_764_000_000_020)).toThrow(/completes once/);
  });
});
