// Proves the counter key cache changes no answer: through any mix of increments, joins, expiries
// (which hand slots to other keys) and evictions, cached reads and keys equal the uncached ones,
// the cache stays within its bound, and invalid parts assert exactly as `counterKey` does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/core/assert.js';
import { asReplicaId } from '../../src/core/ids.js';
import { CounterKeyCache } from '../../src/crdt/counter-key-cache.js';
import { counterKey } from '../../src/crdt/counter-key.js';
import type { WindowUnit } from '../../src/crdt/window.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import { checkProperty } from '../support/property.js';

// Few parts, so that operations keep meeting the same keys.
const scopes = ['tenant', 'user'] as const;
const metrics = ['requests', 'weighted_tokens'] as const;
const units: readonly WindowUnit[] = ['sec10', 'minute', 'day'];
const subjects = ['acme', 'globex'] as const;
const offsetMax = 4;
/** A sec10 index in late 2026, and the times around it the operations use. */
const baseIndex = 176_400_000;
const baseMs = baseIndex * 10_000;

interface Parts {
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly unit: WindowUnit;
  readonly index: number;
}

const arbParts = fc.record({
  scope: fc.constantFrom(...scopes),
  subject: fc.constantFrom(...subjects),
  metric: fc.constantFrom(...metrics),
  unit: fc.constantFrom(...units),
  offset: fc.integer({ min: 0, max: offsetMax }),
});

const arbOp = fc.oneof(
  fc.record({ kind: fc.constant('increment' as const), parts: arbParts, amount: fc.integer({ min: 1, max: 50 }), peer: fc.boolean() }),
  fc.record({ kind: fc.constant('expire' as const), stepMs: fc.integer({ min: 0, max: 30_000 }) }),
);

/** Window indexes of each unit near `baseMs`, so that windows of every unit meet and expire. */
function partsOf(p: { scope: string; subject: string; metric: string; unit: WindowUnit; offset: number }): Parts {
  const index = p.unit === 'sec10' ? baseIndex + p.offset : p.unit === 'minute' ? Math.floor(baseMs / 60_000) + p.offset : Math.floor(baseMs / 86_400_000);
  return { scope: p.scope, subject: p.subject, metric: p.metric, unit: p.unit, index };
}

const keyOf = (p: Parts) => counterKey(p.scope, p.subject, p.metric, { unit: p.unit, index: p.index });

/** Every parts combination the operations can name. */
function allParts(): Parts[] {
  const all: Parts[] = [];
  for (const scope of scopes) {
    for (const subject of subjects) {
      for (const metric of metrics) {
        for (const unit of units) for (let offset = 0; offset <= offsetMax; offset++) all.push(partsOf({ scope, subject, metric, unit, offset }));
      }
    }
  }
  return all;
}

describe('CounterKeyCache', () => {
  it('cached reads and keys of a windowed counter equal uncached ones through increments, joins and expiries', () => {
    const everyParts = allParts();
    checkProperty(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60 }), (ops) => {
        // A short horizon, so that expiries free slots that later keys take.
        const counter = new WindowedCounter(asReplicaId('r1'), { horizonMs: 30_000 });
        const peer = new WindowedCounter(asReplicaId('r2'), { horizonMs: 30_000 });
        let nowMs = baseMs;
        for (const op of ops) {
          if (op.kind === 'increment') {
            const key = keyOf(partsOf(op.parts));
            if (op.peer) {
              peer.increment(key, op.amount);
              counter.join(peer.takeDelta());
            } else {
              counter.increment(counter.keyFor(key.scope, key.subject, key.metric, key.window), op.amount);
            }
          } else {
            nowMs += op.stepMs;
            counter.expire(nowMs);
            peer.expire(nowMs);
          }
          // Every read after every step: hints set by one read are what the next step may stale.
          for (const p of everyParts) {
            const window = { unit: p.unit, index: p.index };
            expect(counter.valueAt(p.scope, p.subject, p.metric, window)).toBe(counter.value(keyOf(p)));
            expect(counter.keyFor(p.scope, p.subject, p.metric, window)).toEqual(keyOf(p));
            if (p.unit !== 'sec10' || p.index !== baseIndex) continue;
            const at = nowMs + 20_000;
            let expected = 0;
            for (let index = Math.floor((at - 60_000 + 1) / 10_000); index <= Math.floor(at / 10_000); index++) {
              expected += counter.value(counterKey(p.scope, p.subject, p.metric, { unit: 'sec10', index }));
            }
            expect(counter.slidingSum(p.scope, p.subject, p.metric, 60_000, at)).toBe(expected);
          }
        }
      }),
    );
  });

  it('keeps within its bound, evicting whole subjects, and still returns the keys counterKey builds', () => {
    checkProperty(
      fc.property(
        fc.array(fc.record({ subject: fc.integer({ min: 0, max: 300 }), metric: fc.integer({ min: 0, max: 150 }), offset: fc.integer({ min: 0, max: 20 }) }), {
          minLength: 1,
          maxLength: 400,
        }),
        (reads) => {
          const keysMax = 1_100;
          const cache = new CounterKeyCache(keysMax);
          for (const read of reads) {
            // Up to 151 metrics for one subject: past the series a subject may keep.
            const p: Parts = { scope: 'tenant', subject: `s-${read.subject}`, metric: `m${read.metric}`, unit: 'sec10', index: baseIndex + read.offset };
            const key = cache.key(cache.entry(cache.series(p.scope, p.subject, p.metric, p.unit, 0), p.index));
            expect(key).toEqual(keyOf(p));
            expect(cache.size).toBeLessThanOrEqual(keysMax);
          }
        },
      ),
      50,
    );
  });

  it('asserts on invalid parts as counterKey does, and reads nothing for an empty span', () => {
    const counter = new WindowedCounter(asReplicaId('r1'));
    expect(() => counterKey('Tenant', 'acme', 'requests', { unit: 'day', index: 1 })).toThrow(AssertionError);
    expect(() => counter.valueAt('Tenant', 'acme', 'requests', { unit: 'day', index: 1 })).toThrow(AssertionError);
    expect(() => counter.keyFor('tenant', 'has space', 'requests', { unit: 'day', index: 1 })).toThrow(AssertionError);
    expect(() => counter.keyFor('tenant', 'acme', 'requests', { unit: 'day', index: -1 })).toThrow(AssertionError);
    expect(() => counter.keyFor('tenant', 'acme', 'requests', { unit: 'day', index: 1.5 })).toThrow(AssertionError);
    expect(() => counter.slidingSum('tenant', '', 'requests', 60_000, baseMs)).toThrow(AssertionError);
    // Before the epoch nothing is read, so nothing is validated either (as before the cache).
    expect(counter.slidingSum('tenant', '', 'requests', 60_000, -100_000)).toBe(0);
  });

  it('serves window indexes beyond what its pool holds, uncached', () => {
    const counter = new WindowedCounter(asReplicaId('r1'));
    const far = { unit: 'sec10' as const, index: 2 ** 40 };
    counter.increment(counterKey('tenant', 'acme', 'requests', far), 3);
    for (let i = 0; i < 3; i++) {
      expect(counter.valueAt('tenant', 'acme', 'requests', far)).toBe(3);
      expect(counter.keyFor('tenant', 'acme', 'requests', far)).toEqual(counterKey('tenant', 'acme', 'requests', far));
    }
  });
});
