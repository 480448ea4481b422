// The eventual mode's figure of a WAN chaos run, without I/O: how far an eventual limit was
// overrun in each window, beside the design's bound for it (DESIGN.md §4): overshoot ≤ Σ regional
// admit rate × propagation delay. Rates come from the ledger; the delay from the run's own faults.
import { formatWindow, windowAt, type WindowUnit } from '../../src/crdt/window.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';

export interface EventualLimit {
  readonly tenant: string;
  readonly window: WindowUnit;
  readonly limit: number;
}

export interface OvershootFigure {
  readonly tenant: string;
  readonly window: string;
  readonly limit: number;
  readonly admitted: number;
  /** Admitted beyond the limit (0 when within it). */
  readonly overshoot: number;
  /** Requests per second each region admitted while the window was busy, by region. */
  readonly ratePerSecond: Readonly<Record<string, number>>;
  /** The longest a charge could take to reach another region during the window. */
  readonly delayMs: number;
  /** Σ rate × delay. */
  readonly bound: number;
}

/**
 * Per window of the limit that admitted anything: the overshoot and its bound. A region's rate
 * is its admissions over the span from the window's first admission to the moment the limit was
 * reached mesh-wide (its last admission when it never was), so a region that admitted a burst
 * and then was refused for the rest of the window is not averaged down. `delayMs(startMs,
 * endMs)` is the propagation delay the run's faults allowed in that span.
 */
export function eventualOvershoot(rows: readonly LedgerRow[], limit: EventualLimit, delayMs: (startMs: number, endMs: number) => number): OvershootFigure[] {
  const byWindow = new Map<string, LedgerRow[]>();
  for (const row of rows) {
    if ((row.role !== 'local' && row.role !== 'origin') || row.tenant !== limit.tenant) continue;
    const window = formatWindow(windowAt(limit.window, row.chargedAtMs));
    const list = byWindow.get(window);
    if (list === undefined) byWindow.set(window, [row]);
    else list.push(row);
  }
  const figures: OvershootFigure[] = [];
  for (const [window, list] of [...byWindow].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const sorted = [...list].sort((a, b) => a.chargedAtMs - b.chargedAtMs);
    const firstMs = (sorted[0] as LedgerRow).chargedAtMs;
    const reachedMs = (sorted[Math.min(limit.limit, sorted.length) - 1] as LedgerRow).chargedAtMs;
    const spanS = Math.max(1, reachedMs - firstMs) / 1000;
    const counts: Record<string, number> = {};
    for (const row of sorted) if (row.chargedAtMs <= reachedMs) counts[row.originRegion] = (counts[row.originRegion] ?? 0) + 1;
    const ratePerSecond = Object.fromEntries(Object.entries(counts).map(([region, n]) => [region, n / spanS]));
    const delay = delayMs(firstMs, Math.max(reachedMs, (sorted[sorted.length - 1] as LedgerRow).chargedAtMs));
    const bound = Object.values(ratePerSecond).reduce((sum, rate) => sum + (rate * delay) / 1000, 0);
    figures.push({
      tenant: limit.tenant,
      window,
      limit: limit.limit,
      admitted: sorted.length,
      overshoot: Math.max(0, sorted.length - limit.limit),
      ratePerSecond,
      delayMs: delay,
      bound,
    });
  }
  return figures;
}

/** A span of time during which charges between some regions were late by up to `lateMs`. */
export interface LateSpan {
  readonly startMs: number;
  readonly endMs: number;
  readonly lateMs: number;
}

/**
 * The propagation delay over [startMs, endMs]: the gossip interval, the slowest one-way delay of
 * any link, and the worst lateness of any fault span that overlaps (a partition's own length plus
 * the reconnection after it; a lossy link's retransmission; a slow link's extra).
 */
export function propagationDelayMs(baseMs: number, spans: readonly LateSpan[], startMs: number, endMs: number): number {
  let worst = 0;
  for (const span of spans) if (span.startMs <= endMs && span.endMs >= startMs) worst = Math.max(worst, span.lateMs);
  return baseMs + worst;
}
