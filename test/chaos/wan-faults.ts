// Plays a WAN fault schedule (wan-schedule.ts) on a running mesh: each fault changes the links'
// conditions (wan-links.ts) when it is due and heals them when it ends; a kill sends SIGKILL to the
// node's process, which the launcher restarts. It keeps how late each fault could make a charge
// between regions, which is the propagation delay in the eventual mode's bound (wan-books.ts).
import type { LocalMesh } from '../../src/local/local-mesh.js';
import { sleep } from '../support/wait.js';
import { type LateSpan, propagationDelayMs } from './wan-books.js';
import { retransmitMinMs, type WanLinks } from './wan-links.js';
import { cutLinks, describeFault, type WanFault } from './wan-schedule.js';

export interface FaultDriverOptions {
  readonly links: WanLinks;
  readonly mesh: LocalMesh;
  readonly names: readonly string[];
  readonly rttMs: (from: number, to: number) => number;
  readonly log: (line: string) => void;
}

/** The mesh's gossip interval (the policy's default, src/mesh/policy/policy-schema.ts). */
const gossipIntervalMs = 50;
/** A link back after a cut: the mesh transport's longest reconnect backoff (src/node/mesh-runtime.ts). */
const reconnectBackoffMaxMs = 500;
/** Round trips to connect again: TCP, the WebSocket upgrade, the mutual challenge, the first digest. */
const reconnectRoundTrips = 4;

export class FaultDriver {
  /** Each fault as it was applied, with its time from the start of the schedule. */
  readonly applied: string[] = [];
  readonly problems: string[] = [];
  kills = 0;
  private readonly spans: (LateSpan & { kind: WanFault['kind'] })[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly slowestRttMs: number;

  constructor(private readonly options: FaultDriverOptions) {
    let slowest = 0;
    for (let i = 0; i < options.names.length; i++) for (let j = 0; j < options.names.length; j++) if (i !== j) slowest = Math.max(slowest, options.rttMs(i, j));
    this.slowestRttMs = slowest;
  }

  /** Applies each fault when due, then heals everything at `totalMs`; bounded by the schedule. */
  async run(faults: readonly WanFault[], totalMs: number): Promise<void> {
    const startMs = Date.now();
    for (const fault of faults) {
      await sleep(Math.max(0, startMs + fault.atMs - Date.now()));
      if (this.stopped) return;
      const line = `${((Date.now() - startMs) / 1000).toFixed(1).padStart(5)} s  ${describeFault(fault, this.options.names)}`;
      this.applied.push(line);
      this.options.log(`fault: ${line}`);
      this.apply(fault);
    }
    await sleep(Math.max(0, startMs + totalMs - Date.now()));
    this.stop();
  }

  /** Heals every link and cancels what is pending. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const { links, names, rttMs } = this.options;
    for (let i = 0; i < names.length; i++) {
      for (let j = 0; j < names.length; j++) if (i !== j) links.set(i, j, { cut: 'none', lossRate: 0, delayMs: Math.round(rttMs(i, j) / 2) });
    }
  }

  /**
   * The longest a charge made in [startMs, endMs] could take to reach every region: the gossip
   * interval and the slowest link, plus the worst partition, the worst loss and the worst
   * slowdown that overlap the span.
   */
  propagationDelayMs(startMs: number, endMs: number): number {
    const base = gossipIntervalMs + this.slowestRttMs / 2;
    const kinds = ['partition', 'loss', 'slow'] as const;
    return kinds.reduce(
      (sum, kind) =>
        sum +
        propagationDelayMs(
          0,
          this.spans.filter((span) => span.kind === kind),
          startMs,
          endMs,
        ),
      base,
    );
  }

  private apply(fault: WanFault): void {
    const { links, names } = this.options;
    const nowMs = Date.now();
    const later = (ms: number, heal: () => void): void => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.stopped) heal();
      }, ms);
      this.timers.add(timer);
    };
    const around = (node: number): [number, number][] =>
      names.flatMap((_, other) =>
        other === node
          ? []
          : ([
              [node, other],
              [other, node],
            ] as [number, number][]),
      );
    switch (fault.kind) {
      case 'partition': {
        const pairs = cutLinks(fault, names.length);
        for (const [from, to] of pairs) links.set(from, to, { cut: fault.cut });
        later(fault.durationMs, () => pairs.forEach(([from, to]) => links.set(from, to, { cut: 'none' })));
        const lateMs = fault.durationMs + reconnectBackoffMaxMs + reconnectRoundTrips * this.slowestRttMs;
        this.spans.push({ kind: 'partition', startMs: nowMs, endMs: nowMs + lateMs, lateMs });
        return;
      }
      case 'loss': {
        for (const [from, to] of around(fault.node)) links.set(from, to, { lossRate: fault.rate });
        later(fault.durationMs, () => around(fault.node).forEach(([from, to]) => links.set(from, to, { lossRate: 0 })));
        const lateMs = Math.max(retransmitMinMs, 2 * this.slowestRttMs);
        this.spans.push({ kind: 'loss', startMs: nowMs, endMs: nowMs + fault.durationMs + lateMs, lateMs });
        return;
      }
      case 'slow': {
        for (const [from, to] of around(fault.node)) links.set(from, to, { delayMs: Math.round(this.options.rttMs(from, to) / 2) + fault.extraMs });
        later(fault.durationMs, () =>
          around(fault.node).forEach(([from, to]) => links.set(from, to, { delayMs: Math.round(this.options.rttMs(from, to) / 2) })),
        );
        this.spans.push({ kind: 'slow', startMs: nowMs, endMs: nowMs + fault.durationMs + fault.extraMs, lateMs: fault.extraMs });
        return;
      }
      case 'kill':
        this.kill(fault.node);
    }
  }

  private kill(node: number): void {
    const name = this.options.names[node] as string;
    const pid = this.options.mesh.pidOf(name);
    if (pid === undefined) {
      this.options.log(`fault: ${name} had no process to kill (it was restarting)`);
      return;
    }
    process.kill(pid, 'SIGKILL');
    this.kills++;
  }
}
