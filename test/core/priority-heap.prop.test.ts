// Proves the heap pops in priority order after any mix of pushes, pops, rebuilds and retains.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PriorityHeap } from '../../src/core/priority-heap.js';
import { checkProperty } from '../support/property.js';

describe('PriorityHeap', () => {
  it('always pops the smallest priority, like a sorted list', () => {
    const op = fc.oneof(
      fc.record({ push: fc.integer({ min: -1000, max: 1000 }) }),
      fc.constant({ pop: true as const }),
      fc.constant({ rebuild: true as const }),
      fc.record({ retainAbove: fc.integer({ min: -1000, max: 1000 }) }),
    );
    checkProperty(
      fc.property(fc.array(op, { maxLength: 200, size: 'max' }), (ops) => {
        const heap = new PriorityHeap<string>();
        let model: number[] = [];
        for (const o of ops) {
          if ('push' in o) {
            heap.push(o.push, `v${o.push}`);
            model.push(o.push);
          } else if ('pop' in o) {
            if (model.length === 0) continue;
            model.sort((a, b) => a - b);
            const smallest = model.shift()!;
            expect(heap.peekPriority()).toBe(smallest);
            expect(heap.pop()).toBe(`v${smallest}`);
          } else if ('retainAbove' in o) {
            heap.retain((p, v) => p > o.retainAbove && v === `v${p}`);
            model = model.filter((p) => p > o.retainAbove);
          } else {
            heap.rebuild(
              [...model],
              model.map((p) => `v${p}`),
            );
          }
          expect(heap.size).toBe(model.length);
        }
        model = model.sort((a, b) => a - b);
        for (const p of model) expect(heap.pop()).toBe(`v${p}`);
      }),
    );
  });
});
