// A disk that acknowledges each commit before it is durable (a write cache that lies about its sync), to prove the simulator's durability checkers catch a node that sent what its disk then lost.
import type { NodeSnapshot, StateBatch, StateStore, StoreError } from '../../src/ledger/node-state.js';

/**
 * Each commit is held back and written only when the next one comes, so the last acknowledged
 * commit is lost when the process dies (the next `load`, at a restart). The node's frames,
 * though, left after the acknowledgement: its peers may hold own entries, rights rows and
 * settlements that its disk never got, which is what a pump that flushed before it committed
 * would do too.
 */
export class LaggingStore implements StateStore {
  private held: StateBatch | undefined;

  constructor(private readonly disk: StateStore) {}

  load(): NodeSnapshot {
    // A load is a start: the process that held the last commit is gone, and the commit with it.
    this.held = undefined;
    return this.disk.load();
  }

  commit(batch: StateBatch): { readonly ok: true } | { readonly ok: false; readonly error: StoreError } {
    if (this.held !== undefined) {
      const written = this.disk.commit(this.held);
      if (!written.ok) return written;
    }
    this.held = batch;
    return { ok: true };
  }

  dropExpired(beforeMs: number): number {
    return this.disk.dropExpired(beforeMs);
  }

  compactPolicy(state: Uint8Array): void {
    this.disk.compactPolicy(state);
  }
}
