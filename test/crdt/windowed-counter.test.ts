// Proves the windowed counter's bookkeeping.
// Values, batches and versions, digest repair, expiry, and its bounds.
import { describe, expect, it } from 'vitest';
import { asReplicaId } from '../../src/core/ids.js';
import { replicasMax } from '../../src/core/limits.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import { windowAt, windowEndMs } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';

const a = asReplicaId('a');
const b = asReplicaId('b');
const t0 = Date.UTC(2026, 10, 26, 10, 0, 0);
const day = windowAt('day', t0);
const tokens = counterKey('tenant', 'acme', 'weighted_tokens', day);
const requests = counterKey('tenant', 'acme', 'requests', day);

describe('WindowedCounter', () => {
  it('reads Σp − Σn per key and zero for unknown keys', () => {
    const counter = new WindowedCounter(a);
    expect(counter.increment(tokens, 100).ok).toBe(true);
    expect(counter.decrement(tokens, 30).ok).toBe(true);
    expect(counter.value(tokens)).toBe(70);
    expect(counter.value(requests)).toBe(0);
    expect(counter.contributions(tokens).get(a)).toEqual({ p: 100, n: 30 });
  });

  it('batches own changes into versioned deltas and returns nothing when idle', () => {
    const counter = new WindowedCounter(a);
    counter.increment(tokens, 5);
    counter.increment(tokens, 5);
    counter.increment(requests, 1);
    const first = counter.takeDelta();
    expect(first.entries).toHaveLength(2);
    expect(first.ranges).toEqual([{ replica: a, from: 0, to: 1 }]);
    expect(first.entries.find((e) => e.key.id === tokens.id)).toMatchObject({ p: 10, n: 0, version: 1 });
    expect(counter.takeDelta()).toEqual({ entries: [], ranges: [] });
    counter.decrement(tokens, 2);
    expect(counter.takeDelta().ranges).toEqual([{ replica: a, from: 1, to: 2 }]);
  });

  it('stamps own changes before they leave in a quorum read or write, so one version never holds two values', () => {
    const counter = new WindowedCounter(a);
    counter.increment(tokens, 10);
    expect(counter.takeDelta().entries[0]).toMatchObject({ p: 10, version: 1 });
    counter.decrement(tokens, 4);
    const read = counter.entriesFor([tokens]);
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ replica: a, p: 10, n: 4, version: 2 });
    counter.increment(tokens, 1);
    expect(counter.ownEntries([tokens])[0]).toMatchObject({ p: 11, n: 4, version: 3 });
    // Both changes still go out in the next gossip batch.
    expect(counter.takeDelta()).toMatchObject({ ranges: [{ replica: a, from: 1, to: 3 }] });
  });

  it('does not advance the digest over a lost batch, and a digest exchange repairs it', () => {
    const owner = new WindowedCounter(a);
    const peer = new WindowedCounter(b);
    owner.increment(tokens, 1);
    const batch1 = owner.takeDelta();
    owner.increment(requests, 1);
    owner.takeDelta(); // lost on the way
    owner.increment(tokens, 1);
    const batch3 = owner.takeDelta();
    peer.join(batch1);
    peer.join(batch3);
    expect(peer.digest().get(a)).toBe(1);
    expect(peer.value(requests)).toBe(0);
    const repair = owner.deltaSince(peer.digest());
    expect(repair.entries.map((e) => e.key.id).sort()).toEqual([requests.id, tokens.id].sort());
    peer.join(repair);
    expect(peer.digest().get(a)).toBe(3);
    expect(peer.value(requests)).toBe(1);
    expect(peer.value(tokens)).toBe(2);
    expect(owner.deltaSince(peer.digest()).entries).toHaveLength(0);
  });

  it('includes unsent changes in a repair without losing them from the next batch', () => {
    const owner = new WindowedCounter(a);
    const peer = new WindowedCounter(b);
    const other = new WindowedCounter(asReplicaId('c'));
    owner.increment(tokens, 4);
    peer.join(owner.deltaSince(peer.digest()));
    expect(peer.value(tokens)).toBe(4);
    other.join(owner.takeDelta());
    expect(other.value(tokens)).toBe(4);
  });

  it('refuses new keys past keysMax with a typed error and keeps existing keys writable', () => {
    const counter = new WindowedCounter(a, { keysMax: 2 });
    expect(counter.increment(tokens, 1).ok).toBe(true);
    expect(counter.increment(requests, 1).ok).toBe(true);
    const third = counter.increment(counterKey('tenant', 'globex', 'requests', day), 1);
    expect(third).toEqual({ ok: false, error: { kind: 'keys-full', keysMax: 2 } });
    expect(counter.increment(tokens, 1).ok).toBe(true);
    expect(counter.size).toBe(2);
  });

  it('reports entries it could not hold and does not claim their versions', () => {
    const full = new WindowedCounter(b, { keysMax: 1 });
    const owner = new WindowedCounter(a);
    owner.increment(tokens, 1);
    owner.increment(requests, 1);
    const report = full.join(owner.takeDelta());
    expect(report).toEqual({ entriesApplied: 1, entriesExpired: 0, entriesOverflowed: 1 });
    expect(full.digest().get(a)).toBeUndefined();
  });

  it('expires windows past the horizon and refuses late deltas and increments for them', () => {
    const minute = counterKey('tenant', 'acme', 'requests', windowAt('minute', t0));
    const owner = new WindowedCounter(a, { horizonMs: 60_000 });
    const peer = new WindowedCounter(b, { horizonMs: 60_000 });
    owner.increment(minute, 3);
    owner.increment(tokens, 3);
    const late = owner.takeDelta();
    const end = windowEndMs(minute.window);
    expect(peer.expire(end + 59_999)).toBe(0);
    expect(peer.expire(end + 60_000)).toBe(0); // nothing held yet, but the watermark rises
    const report = peer.join(late);
    expect(report.entriesExpired).toBe(1);
    expect(peer.value(minute)).toBe(0);
    expect(peer.value(tokens)).toBe(3);
    expect(owner.expire(end + 60_000)).toBe(1);
    expect(owner.size).toBe(1);
    expect(owner.increment(minute, 1)).toEqual({ ok: false, error: { kind: 'window-expired', key: minute } });
  });

  it('reuses expired slots without leaking old entries into new keys', () => {
    const counter = new WindowedCounter(a, { horizonMs: 60_000 });
    const old = counterKey('tenant', 'acme', 'requests', windowAt('minute', t0));
    counter.increment(old, 9);
    counter.expire(windowEndMs(old.window) + 60_000);
    const fresh = counterKey('tenant', 'acme', 'requests', windowAt('minute', t0 + 3 * 60_000));
    counter.increment(fresh, 1);
    expect(counter.value(fresh)).toBe(1);
    const delta = counter.takeDelta();
    expect(delta.entries.map((e) => [e.key.id, e.p])).toEqual([[fresh.id, 1]]);
  });

  it('sums a sliding minute from 10-second buckets, erring high by at most one bucket', () => {
    const counter = new WindowedCounter(a);
    const at = (ms: number) => counterKey('tenant', 'acme', 'requests', windowAt('sec10', ms));
    counter.increment(at(t0 - 65_000), 100); // outside the last minute
    counter.increment(at(t0 - 55_000), 10); // bucket [t0-60s, t0-50s): overlaps, counts in full
    counter.increment(at(t0 - 1), 1);
    counter.increment(at(t0), 1000); // bucket starting at t0 contains t0
    expect(counter.slidingSum('tenant', 'acme', 'requests', 60_000, t0)).toBe(1011);
    expect(counter.slidingSum('tenant', 'acme', 'requests', 60_000, t0 - 1)).toBe(11);
    // Five seconds earlier the span starts inside the bucket that holds the 100: it counts in full.
    expect(counter.slidingSum('tenant', 'acme', 'requests', 60_000, t0 - 5_001)).toBe(111);
  });

  it('keeps every value as the key table grows, for increments and joins alike', () => {
    const counter = new WindowedCounter(a);
    const keys = Array.from({ length: 5000 }, (_, i) => counterKey('tenant', `t${i}`, 'requests', day));
    keys.forEach((key, i) => counter.increment(key, i + 1));
    const copy = new WindowedCounter(b);
    copy.join(counter.takeDelta());
    keys.forEach((key, i) => {
      expect(counter.value(key)).toBe(i + 1);
      expect(copy.value(key)).toBe(i + 1);
    });
  });

  it('grows past its initial replica stride without losing entries', () => {
    const counter = new WindowedCounter(a);
    counter.increment(tokens, 1);
    for (let i = 0; i < 40; i++) {
      const other = new WindowedCounter(asReplicaId(`r${i}`));
      other.increment(tokens, i + 1);
      other.increment(counterKey('tenant', `t${i}`, 'requests', day), 1);
      counter.join(other.takeDelta());
    }
    expect(counter.replicaCount).toBe(41);
    expect(counter.value(tokens)).toBe(1 + (40 * 41) / 2);
    expect(counter.size).toBe(41);
  });

  it('drops entries of replicas past replicasMax and reports them', () => {
    const counter = new WindowedCounter(a);
    let overflowed = 0;
    for (let i = 0; i < replicasMax + 2; i++) {
      const other = new WindowedCounter(asReplicaId(`r${i}`));
      other.increment(tokens, 1);
      overflowed += counter.join(other.takeDelta()).entriesOverflowed;
    }
    expect(counter.replicaCount).toBe(replicasMax);
    expect(overflowed).toBe(3);
    expect(counter.value(tokens)).toBe(replicasMax - 1);
  });

  it('numbers batches above its own entries found at a peer (state lost on restart)', () => {
    const before = new WindowedCounter(a);
    for (let i = 0; i < 5; i++) {
      before.increment(tokens, 1);
      before.takeDelta();
    }
    const restarted = new WindowedCounter(a);
    restarted.join(before.state());
    restarted.increment(tokens, 1);
    const delta = restarted.takeDelta();
    expect(delta.ranges[0]!.to).toBeGreaterThan(5);
    expect(restarted.value(tokens)).toBe(6);
  });
});
