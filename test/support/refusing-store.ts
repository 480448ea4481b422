// A disk that refuses commits while the test says it is full, as a full or read-only disk does, to prove a node that cannot write sends nothing and admits nothing until it can.
import type { NodeSnapshot, StateBatch, StateStore, StoreError } from '../../src/ledger/node-state.js';

/** Refuses every commit while `full()` says so; reads and expiry go on. */
export class RefusingStore implements StateStore {
  refused = 0;

  constructor(
    private readonly disk: StateStore,
    private readonly full: () => boolean,
  ) {}

  load(): NodeSnapshot {
    return this.disk.load();
  }

  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError } {
    if (this.full()) {
      this.refused++;
      return { ok: false, error: { kind: 'full', message: 'the simulated disk is full' } };
    }
    return this.disk.commit(batch);
  }

  dropExpired(beforeMs: number): number {
    return this.disk.dropExpired(beforeMs);
  }

  compactPolicy(state: Uint8Array): void {
    this.disk.compactPolicy(state);
  }
}
