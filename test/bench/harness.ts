// A small benchmark harness: repeated timings, medians, and one line per figure with its unit,
// its target, and the baseline measured in the same run.

export interface BenchContext {
  /** Repetitions per figure; the median is reported. */
  readonly runs: number;
  /** Smaller inputs for a fast smoke run (`--quick`). */
  readonly quick: boolean;
}

const results: { name: string; met: boolean }[] = [];

export function timeMs(work: () => unknown): number {
  const start = process.hrtime.bigint();
  work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Collects garbage if the process runs with --expose-gc, so one figure's garbage does not bill the next. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Runs `sample` twice to warm the JIT, collects garbage, then runs it `runs` times and returns
 * the median of what it returns.
 */
export function median(runs: number, sample: () => number): number {
  sample();
  sample();
  collectGarbage();
  const values = Array.from({ length: runs }, sample).sort((a, b) => a - b);
  const mid = Math.floor(values.length / 2);
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

export function report(name: string, value: number, unit: string, target: string, met: boolean, extra: { baseline: string }): void {
  const shown = value >= 1000 ? Math.round(value).toLocaleString('en-US') : value >= 10 ? value.toFixed(1) : value.toFixed(3);
  const verdict = target === 'reported' ? '' : met ? `  [target ${target}: met]` : `  [target ${target}: MISSED]`;
  console.log(`${name}: ${shown} ${unit}${verdict}\n    baseline: ${extra.baseline}`);
  if (target !== 'reported') results.push({ name, met });
}

export function missedTargets(): string[] {
  return results.filter((r) => !r.met).map((r) => r.name);
}
