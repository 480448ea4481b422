// Proves a node restarted from its store keeps what it held of other replicas, not only its own.
// A dead incarnation's counts survive restarts of every node that holds them.
import { describe, expect, it } from 'vitest';
import { EscrowBook } from '../../src/admission/escrow.js';
import { QuotaGate, type RoundStarter } from '../../src/admission/quota-gate.js';
import { ReservationTable } from '../../src/admission/reservations.js';
import { asReplicaId, type ReplicaId } from '../../src/core/ids.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { windowAt } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { DurableJournal, type JournalParts } from '../../src/ledger/durable-journal.js';
import { MemoryStore } from '../../src/ledger/memory-store.js';
import { restoreNode } from '../../src/ledger/restore-node.js';
import { PolicyDocument } from '../../src/mesh/policy/policy-document.js';

const nowMs = Date.UTC(2026, 11, 6, 12);
const key = counterKey('tenant', 'acme', 'weighted_tokens', windowAt('day', nowMs));
const self = asReplicaId('eu-1~r1');
/** An incarnation of another member that lost its disk: nobody will ever send its entries again. */
const dead = asReplicaId('us-1~r0');
const live = asReplicaId('us-1~r1');
const noRounds: RoundStarter = { startRound: (_request, at, done) => done({ ok: true }, at) };

function partsOn(replica: ReplicaId, start: number): JournalParts {
  const counter = new WindowedCounter(replica);
  const escrow = new EscrowBook(replica, counter);
  return { counter, escrow, gate: new QuotaGate(counter, new ReservationTable(counter), escrow, noRounds, 2), policy: new PolicyDocument(start) };
}

describe('a node restarted from its store', () => {
  it('holds again every replica entry it had committed, a dead incarnation’s included, with its own', () => {
    const store = new MemoryStore();
    const before = partsOn(self, 1);
    const journal = new DurableJournal(store, before);
    before.counter.increment(key, 7);
    // Entries of two other replicas arrive (a gossip delta, or a strict round's write this node
    // acknowledges once the commit below is done).
    before.counter.join({
      entries: [
        { key, replica: dead, p: 100, n: 10, version: 3 },
        { key, replica: live, p: 40, n: 0, version: 5 },
      ],
      ranges: [],
    });
    expect(journal.commit()).toBe(true);

    const after = partsOn(self, 2);
    const restored = restoreNode(store.load(), after, nowMs);
    expect(restored.ok).toBe(true);
    const held = after.counter.contributions(key);
    expect(held.get(self)).toEqual({ p: 7, n: 0 });
    // The dead incarnation's counts are nowhere else once every node that held them restarted.
    expect(held.get(dead)).toEqual({ p: 100, n: 10 });
    expect(held.get(live)).toEqual({ p: 40, n: 0 });
    expect(after.counter.value(key)).toBe(137);
  });

  it('writes a peer entry again only when a join raised it, and numbers its own batches as before', () => {
    const store = new MemoryStore();
    const parts = partsOn(self, 1);
    const journal = new DurableJournal(store, parts);
    parts.counter.join({ entries: [{ key, replica: dead, p: 100, n: 0, version: 3 }], ranges: [] });
    expect(journal.commit()).toBe(true);
    // The same entry again (a duplicate delta) changes nothing, so nothing is written.
    const commits = store.commits;
    parts.counter.join({ entries: [{ key, replica: dead, p: 100, n: 0, version: 3 }], ranges: [] });
    expect(journal.commit()).toBe(true);
    expect(store.commits).toBe(commits);
    parts.counter.increment(key, 1);
    const ownVersion = parts.counter.takeDelta().ranges[0]?.to ?? 0;
    expect(journal.commit()).toBe(true);

    const after = partsOn(self, 2);
    expect(restoreNode(store.load(), after, nowMs).ok).toBe(true);
    // A peer's entries do not move this replica's own version numbering.
    expect(after.counter.version).toBe(ownVersion);
    // Nor do they claim a contiguous history of the peer: its digest still asks for everything.
    expect(after.counter.digest().get(dead)).toBeUndefined();
  });
});

describe('a node restarted after its newest entries expired', () => {
  it('numbers its next batches above every version its peers saw', () => {
    const store = new MemoryStore();
    const parts = partsOn(self, 1);
    const journal = new DurableJournal(store, parts);
    parts.counter.increment(key, 1);
    expect(journal.commit()).toBe(true);
    parts.counter.takeDelta();
    // The newest change is in a minute window, which expires long before the day's.
    const minute = counterKey('tenant', 'acme', 'requests', windowAt('minute', nowMs));
    parts.counter.increment(minute, 1);
    expect(journal.commit()).toBe(true);
    const seen = parts.counter.takeDelta().ranges[0]?.to ?? 0;
    expect(seen).toBeGreaterThan(0);
    // The node is down past the expiry horizon; its store drops the minute window, as a running
    // node's does every minute.
    const laterMs = nowMs + 60 * 60_000;
    expect(store.dropExpired(laterMs - parts.counter.horizonMs)).toBe(1);

    const after = partsOn(self, 2);
    expect(restoreNode(store.load(), after, laterMs).ok).toBe(true);
    // Peers know this replica up to `seen`: a batch numbered at or below it would claim changes
    // they think they hold, and a lost one would never be repaired.
    expect(after.counter.version).toBeGreaterThanOrEqual(seen);
    after.counter.increment(key, 1);
    expect(after.counter.takeDelta().ranges[0]?.from).toBeGreaterThanOrEqual(seen);
  });
});
