/**
 * The simulator's agenda: a binary min-heap of events ordered by (time, sequence). The sequence
 * number breaks ties in insertion order, so two events at the same millisecond always run in
 * the same order and a run stays a pure function of its seed.
 */
export interface Scheduled<T> {
  readonly atMs: number;
  readonly seq: number;
  readonly event: T;
}

export class EventQueue<T> {
  private heap: Scheduled<T>[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, event: T): void {
    const item = { atMs, seq: this.nextSeq++, event };
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, heap[parent] as Scheduled<T>)) break;
      heap[i] = heap[parent] as Scheduled<T>;
      i = parent;
    }
    heap[i] = item;
  }

  peekTime(): number {
    return this.heap.length === 0 ? Infinity : (this.heap[0] as Scheduled<T>).atMs;
  }

  pop(): Scheduled<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as Scheduled<T>;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && before(heap[right] as Scheduled<T>, heap[left] as Scheduled<T>) ? right : left;
        if (!before(heap[child] as Scheduled<T>, last)) break;
        heap[i] = heap[child] as Scheduled<T>;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
