// An open-loop load generator for the gateway benchmark: requests start on a fixed schedule
// (request i at i/rate seconds) whether or not earlier ones have answered, as independent
// clients would send them, so a slow server meets a growing backlog instead of a politely
// slower client. Every run is bounded in count, in time and in requests outstanding.

/** Requests one run keeps outstanding; past it a due request is skipped and counted. */
const outstandingMaxDefault = 4_096;
/** How long a run waits for its last answers after its schedule ended. */
const drainMsMaxDefault = 10_000;

/** A run's bounds, when a benchmark's answers may take longer than the defaults allow (the scheduling one's queue). */
export interface OpenLoopBounds {
  readonly outstandingMax?: number;
  readonly drainMsMax?: number;
}

export interface OpenLoopRun {
  /** Latency of every request that answered with a success, from the moment it was sent, in ms. */
  readonly latenciesMs: number[];
  /** When each of `latenciesMs` ended, in ms since the run's start (same order): its place in a timeline. */
  readonly finishedAtMs: number[];
  /** How late each request was sent against its schedule, in ms: the generator's own lag. */
  readonly lagsMs: number[];
  /** Requests that answered with a failure or threw. */
  readonly failed: number;
  /** Requests not sent: due while `outstandingMax` were outstanding, or left when the time bound ran out. */
  readonly skipped: number;
  /** Requests still outstanding when the drain gave up. */
  readonly abandoned: number;
  readonly elapsedMs: number;
}

/**
 * Sends `count` requests at `ratePerSecond` through `send` (true when the answer was a success),
 * for at most `count / rate` seconds of schedule plus the drain. The schedule is kept with a
 * 1 ms timer: a request goes out at the first tick at or after its time (at 2,000/s, two per
 * tick), and its latency counts from when it went out; `lagsMs` says how far behind that was.
 */
export async function openLoop(ratePerSecond: number, count: number, send: (i: number) => Promise<boolean>, bounds: OpenLoopBounds = {}): Promise<OpenLoopRun> {
  const outstandingMax = bounds.outstandingMax ?? outstandingMaxDefault;
  const drainMsMax = bounds.drainMsMax ?? drainMsMaxDefault;
  const latenciesMs: number[] = [];
  const finishedAtMs: number[] = [];
  const lagsMs: number[] = [];
  let failed = 0;
  let skipped = 0;
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const intervalMs = 1000 / ratePerSecond;
  const start = performance.now();
  const scheduleMs = count * intervalMs;
  let next = 0;
  // Bounded: every pass either sends or skips every request due by now, and the schedule is finite.
  while (next < count && performance.now() - start < scheduleMs + drainMsMax) {
    const now = performance.now();
    const due = Math.min(count, Math.floor((now - start) / intervalMs) + 1);
    while (next < due) {
      const i = next++;
      if (outstanding >= outstandingMax) {
        skipped++;
        continue;
      }
      outstanding++;
      const sentAt = performance.now();
      lagsMs.push(sentAt - (start + i * intervalMs));
      send(i)
        .then(
          (ok) => {
            if (!ok) {
              failed++;
              return;
            }
            const now = performance.now();
            latenciesMs.push(now - sentAt);
            finishedAtMs.push(now - start);
          },
          () => failed++,
        )
        .finally(() => {
          outstanding--;
          if (outstanding === 0) wake?.();
        });
    }
    if (next < count) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  skipped += count - next;
  if (outstanding > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((resolve) => (wake = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMsMax)))]);
    clearTimeout(timer);
  }
  return { latenciesMs, finishedAtMs, lagsMs, failed, skipped, abandoned: outstanding, elapsedMs: performance.now() - start };
}

/** The p-th percentile (0 to 100) of values sorted ascending; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}
