// Proves the recovery rules of a durable node on its real cores, through the group commit and an
// in-memory store with the commit as its only sync point: whatever a peer was sent is never more
// than the disk holds, and after a crash at any point the restored counter holds exactly what the
// committed requests were charged (settled ones their usage; admitted unsettled ones, each with one
// interrupted usage row, nothing on their eventual keys and their estimate on their strict ones),
// with nothing left open.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EscrowBook } from '../../src/admission/escrow.js';
import { QuotaGate, type QuotaDecision } from '../../src/admission/quota-gate.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, type RequestId } from '../../src/core/ids.js';
import { ok } from '../../src/core/result.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { DurableJournal, type JournalParts } from '../../src/ledger/durable-journal.js';
import { MemoryStore } from '../../src/ledger/memory-store.js';
import { interruptedRow } from '../../src/ledger/request-context.js';
import { restoreNode } from '../../src/ledger/restore-node.js';
import type { RoundStarter } from '../../src/admission/quota-gate.js';
import type { LimitRule } from '../../src/mesh/policy/policy-schema.js';
import { PolicyDocument } from '../../src/mesh/policy/policy-document.js';
import { quotaRequest } from '../support/gate-mesh.js';
import { checkProperty } from '../support/property.js';

const replica = asReplicaId('eu-1~r1');
const nowMs = Date.UTC(2026, 11, 6, 12);
const rules: readonly LimitRule[] = [
  { metric: 'weighted_tokens', window: 'day', sliding: false, limit: 1_000_000_000, mode: 'eventual' },
  { metric: 'requests', window: 'day', sliding: false, limit: 1_000_000, mode: 'strict' },
];
/** A one-member mesh: a strict round is its own quorum and completes at once. */
const soloRounds: RoundStarter = { startRound: (_request, at, done) => done({ ok: true }, at) };

interface Node {
  readonly parts: JournalParts;
  readonly reservations: ReservationTable;
  readonly journal: DurableJournal;
}

function nodeOn(store: MemoryStore, start: number): Node {
  const counter = new WindowedCounter(replica);
  const reservations = new ReservationTable(counter);
  const escrow = new EscrowBook(replica, counter);
  const gate = new QuotaGate(counter, reservations, escrow, soloRounds, 1);
  const parts = { counter, escrow, gate, policy: new PolicyDocument(start) };
  return { parts, reservations, journal: new DurableJournal(store, parts) };
}

type Op =
  | { readonly kind: 'admit'; readonly amount: number }
  | { readonly kind: 'settle'; readonly pick: number; readonly usedPercent: number }
  | { readonly kind: 'withdraw'; readonly pick: number }
  | { readonly kind: 'commit' }
  | { readonly kind: 'crash' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('admit' as const), amount: fc.integer({ min: 1, max: 500 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), usedPercent: fc.integer({ min: 0, max: 150 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'commit' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'crash' as const }) },
);

/** What the model says each request was charged, per state. */
type RequestState =
  { readonly kind: 'admitted'; readonly amount: number } | { readonly kind: 'settled'; readonly used: number } | { readonly kind: 'withdrawn' };

describe('a durable node restarted at any point (real cores, in-memory store)', () => {
  it('never sent more than its disk holds, and restores exactly what committed requests were charged', () => {
    checkProperty(
      fc.property(fc.array(op, { minLength: 1, maxLength: 120 }), (ops) => {
        const store = new MemoryStore();
        let start = 1;
        let node = nodeOn(store, start);
        node.journal.setMeta('replica', replica);
        /** Request states as of now, and as of the last commit. */
        let live = new Map<string, RequestState>();
        let committed = new Map<string, RequestState>();
        /** Per counter key id, the largest own (p, n) any frame carried. */
        const sent = new Map<string, { p: number; n: number }>();
        let next = 0;
        for (const step of ops) {
          const open = [...live].filter(([, state]) => state.kind === 'admitted').map(([id]) => id);
          if (step.kind === 'admit') {
            const id = `q${next++}`;
            let decision: QuotaDecision | undefined;
            node.parts.gate.admit(
              { ...quotaRequest(id, rules, { weighted_tokens: step.amount, requests: 1 }), context: JSON.stringify([null, null, 'm', false, nowMs]) },
              nowMs,
              (d) => (decision = d),
            );
            expect(decision).toEqual(ok(undefined));
            live.set(id, { kind: 'admitted', amount: step.amount });
          } else if (step.kind === 'settle' && open.length > 0) {
            const id = open[step.pick % open.length] as string;
            const amount = (live.get(id) as { amount: number }).amount;
            const used = Math.floor((amount * step.usedPercent) / 100);
            node.parts.gate.settle(
              id as RequestId,
              new Map([
                ['weighted_tokens', used],
                ['requests', 1],
              ]),
            );
            live.set(id, { kind: 'settled', used });
          } else if (step.kind === 'withdraw' && open.length > 0) {
            const id = open[step.pick % open.length] as string;
            node.parts.gate.withdraw(id as RequestId);
            live.set(id, { kind: 'withdrawn' });
          } else if (step.kind === 'commit') {
            expect(node.journal.commit()).toBe(true);
            committed = new Map(live);
            // The flush after the commit: what peers may now hold.
            for (const entry of node.parts.counter.takeDelta().entries) {
              const before = sent.get(entry.key.id) ?? { p: 0, n: 0 };
              sent.set(entry.key.id, { p: Math.max(before.p, entry.p), n: Math.max(before.n, entry.n) });
            }
          } else if (step.kind === 'crash') {
            start++;
            node = nodeOn(store, start);
            const restored = restoreNode(store.load(), node.parts, nowMs);
            expect(restored.ok).toBe(true);
            if (!restored.ok) return;
            // The disk holds at least what any peer was sent.
            for (const [keyId, max] of sent) {
              const key = [...node.parts.counter.keys()].find((k) => k.id === keyId);
              const own = key === undefined ? { p: 0, n: 0 } : (node.parts.counter.contributions(key).get(replica) ?? { p: 0, n: 0 });
              expect(own.p).toBeGreaterThanOrEqual(max.p);
              expect(own.n).toBeGreaterThanOrEqual(max.n);
            }
            // Nothing stays open; admitted unsettled requests are charged their estimate, each with one row.
            expect(node.reservations.openCount).toBe(0);
            const interrupted = restored.value.interrupted.map((ended) => interruptedRow(ended, 'eu-1', 'eu', nowMs)).filter((row) => row !== undefined);
            const expectedInterrupted = [...committed].filter(([, state]) => state.kind === 'admitted');
            expect(interrupted.map((row) => row.requestId).sort()).toEqual(expectedInterrupted.map(([id]) => id).sort());
            // Weighted tokens are limited by an eventual rule only: released, the row shows none.
            for (const row of interrupted) expect(row.weightedTokens).toBe(0);
            const day = { unit: 'day' as const, index: Math.floor(nowMs / 86_400_000) };
            let weighted = 0;
            let requests = 0;
            for (const state of committed.values()) {
              weighted += state.kind === 'settled' ? state.used : 0;
              requests += state.kind === 'withdrawn' ? 0 : 1;
            }
            expect(node.parts.counter.value(node.parts.counter.keyFor('tenant', 'acme', 'weighted_tokens', day))).toBe(weighted);
            // Requests are limited by a strict rule: an interrupted one stays charged.
            expect(node.parts.counter.value(node.parts.counter.keyFor('tenant', 'acme', 'requests', day))).toBe(requests);
            live = new Map(
              [...committed].map(([id, state]) => [id, state.kind === 'admitted' ? { kind: 'settled', used: 0 } : state] as [string, RequestState]),
            );
            expect(node.journal.commit()).toBe(true);
            committed = new Map(live);
          }
        }
      }),
      150,
    );
  });
});
