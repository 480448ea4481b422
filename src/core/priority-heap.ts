import { assert } from './assert.js';

/**
 * A binary min-heap of values keyed by a number, kept in two parallel arrays so that an entry
 * costs no object of its own (limiters and nonce windows hold hundreds of thousands). Equal
 * priorities come out in no particular order; callers that need a tie-break fold it into the
 * priority or keep their own sequence (sim/event-queue.ts does).
 */
export class PriorityHeap<V> {
  private priorities: number[] = [];
  private values: V[] = [];

  get size(): number {
    return this.values.length;
  }

  /** The smallest priority, or undefined when empty. */
  peekPriority(): number | undefined {
    return this.priorities[0];
  }

  /** The value with the smallest priority, or undefined when empty. */
  peekValue(): V | undefined {
    return this.values[0];
  }

  push(priority: number, value: V): void {
    const priorities = this.priorities;
    const values = this.values;
    let at = priorities.length;
    priorities.push(priority);
    values.push(value);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if ((priorities[parent] as number) <= priority) break;
      priorities[at] = priorities[parent] as number;
      values[at] = values[parent] as V;
      at = parent;
    }
    priorities[at] = priority;
    values[at] = value;
  }

  /** Removes and returns the value with the smallest priority. */
  pop(): V {
    const values = this.values;
    assert(values.length > 0, 'pop is called on a non-empty heap');
    const top = values[0];
    const lastPriority = this.priorities.pop() as number;
    const lastValue = values.pop() as V;
    if (values.length > 0) this.siftDown(0, lastPriority, lastValue);
    return top as V;
  }

  /** Replaces the contents with `entries`, heapified bottom-up in O(n). */
  rebuild(priorities: number[], values: V[]): void {
    assert(priorities.length === values.length, 'one priority per value');
    this.priorities = priorities;
    this.values = values;
    for (let i = (values.length >> 1) - 1; i >= 0; i--) this.siftDown(i, priorities[i] as number, values[i] as V);
  }

  /** Keeps only the entries `keep` accepts, heapified again in O(n) (for lazily deleted entries). */
  retain(keep: (priority: number, value: V) => boolean): void {
    const priorities: number[] = [];
    const values: V[] = [];
    for (let i = 0; i < this.values.length; i++) {
      if (!keep(this.priorities[i] as number, this.values[i] as V)) continue;
      priorities.push(this.priorities[i] as number);
      values.push(this.values[i] as V);
    }
    this.rebuild(priorities, values);
  }

  /** Places (priority, value) at `from` or below, moving smaller children up. */
  private siftDown(from: number, priority: number, value: V): void {
    const priorities = this.priorities;
    const values = this.values;
    const size = values.length;
    let at = from;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && (priorities[right] as number) < (priorities[left] as number) ? right : left;
      if ((priorities[child] as number) >= priority) break;
      priorities[at] = priorities[child] as number;
      values[at] = values[child] as V;
      at = child;
    }
    priorities[at] = priority;
    values[at] = value;
  }
}
