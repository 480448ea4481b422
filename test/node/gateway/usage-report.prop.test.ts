// Proves GetUsage's rows are counts the wire encoder accepts for every reachable counter state.
// That is every counter state the CRDT can reach (entries with N above P, totals over many replicas
// near 2^53), for fixed and sliding limits alike.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chargedKey } from '../../../src/admission/quota.js';
import { asReplicaId } from '../../../src/core/ids.js';
import { counterValueMax } from '../../../src/core/limits.js';
import { counterKey } from '../../../src/crdt/counter-key.js';
import { windowAt } from '../../../src/crdt/window.js';
import { WindowedCounter } from '../../../src/crdt/windowed-counter.js';
import type { LimitRule } from '../../../src/mesh/policy/policy-schema.js';
import { encodeGetUsageResponse } from '../../../src/net/grpc/carpool-wire.js';
import { limitUsages } from '../../../src/node/gateway/usage-report.js';
import { checkProperty } from '../../support/property.js';

const nowMs = Date.UTC(2026, 11, 6, 12, 0, 0);
const rules: LimitRule[] = [
  { metric: 'requests', window: 'day', sliding: false, limit: 1_000, mode: 'eventual' },
  { metric: 'weighted_tokens', window: 'minute', sliding: true, limit: 50_000, mode: 'strict' },
];

/** One replica's entry on one of the keys the rows read: a P and an N of any size. */
const arbEntry = fc.record({
  replica: fc.nat(5),
  rule: fc.nat(rules.length - 1),
  // For the sliding rule: which of the minute's 10-second sub-buckets.
  bucket: fc.nat(5),
  p: fc.oneof(fc.nat(1_000), fc.constant(counterValueMax)),
  n: fc.oneof(fc.nat(1_000), fc.constant(1_000_000_000), fc.constant(counterValueMax)),
});

describe('limitUsages over any counter state', () => {
  it('answers rows of counts, within their limits, that encode', () => {
    checkProperty(
      fc.property(fc.array(arbEntry, { maxLength: 24 }), (entries) => {
        const reader = new WindowedCounter(asReplicaId('reader~1'));
        for (const { replica, rule: r, bucket, p, n } of entries) {
          const rule = rules[r] as LimitRule;
          const key = rule.sliding
            ? counterKey('tenant', 'acme', rule.metric, { unit: 'sec10', index: windowAt('sec10', nowMs).index - bucket })
            : chargedKey('tenant', 'acme', rule, nowMs);
          // Each replica's entry is what that replica wrote; the reader joins it as gossip would.
          const writer = new WindowedCounter(asReplicaId(`w${replica}~1`));
          if (p > 0) writer.increment(key, p);
          if (n > 0) writer.decrement(key, n);
          reader.join(writer.takeDelta());
        }
        const rows = limitUsages(reader, [{ scope: 'tenant', subject: 'acme', rules }], nowMs);
        expect(rows).toHaveLength(rules.length);
        for (const row of rows) {
          expect(Number.isSafeInteger(row.used) && row.used >= 0).toBe(true);
          expect(row.remaining).toBe(Math.max(0, row.limit - row.used));
        }
        expect(() =>
          encodeGetUsageResponse({
            tenant: 'acme',
            limits: rows,
            lastMinute: { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 },
          }),
        ).not.toThrow();
      }),
    );
  });
});
