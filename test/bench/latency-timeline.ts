// The p99 of each second of a benchmark window, as a line of text and as an SVG chart: a stall of
// a few hundred milliseconds every few seconds hides in a window's p99 (it is under 1% of the
// requests) but stands out as a spike in the second in which the delayed requests finish. Pure
// functions, so test/support/latency-timeline.test.ts can check them; the benchmarks write the
// files (test/bench/unary-window.ts).
import { percentile, sortedCopy } from './gateway-load.js';

/**
 * Percentile `p` (0 to 100, as `percentile` of gateway-load.ts) of the latencies of the
 * completions that finished in each whole second since the window's start, by the second they
 * finished in (a stall delays the answers, so it shows where they land); NaN for a second in
 * which none finished. `finishedAtMs[i]` is when the completion of latency `latenciesMs[i]` ended.
 */
export function perSecondPercentile(finishedAtMs: readonly number[], latenciesMs: readonly number[], p: number): number[] {
  if (finishedAtMs.length !== latenciesMs.length) throw new Error(`${finishedAtMs.length} finish times for ${latenciesMs.length} latencies`);
  const seconds: number[][] = [];
  for (let i = 0; i < finishedAtMs.length; i++) {
    const second = Math.max(0, Math.floor(finishedAtMs[i]! / 1000));
    (seconds[second] ??= []).push(latenciesMs[i]!);
  }
  // Array.from visits the holes too (seconds in which nothing finished) as undefined.
  return Array.from(seconds, (values: number[] | undefined) => (values === undefined ? Number.NaN : percentile(sortedCopy(values), p)));
}

/** The smallest and largest finite values of every series (NaN, NaN when there is none). */
export function finiteRange(series: readonly (readonly number[])[]): { readonly low: number; readonly high: number } {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (const values of series) {
    for (const value of values) {
      if (!Number.isFinite(value)) continue;
      low = Math.min(low, value);
      high = Math.max(high, value);
    }
  }
  return low > high ? { low: Number.NaN, high: Number.NaN } : { low, high };
}

/** The second with the highest finite value; undefined when there is none. */
export function worstSecond(values: readonly number[]): number | undefined {
  let worst: number | undefined;
  values.forEach((value, second) => {
    if (Number.isFinite(value) && (worst === undefined || value > values[worst]!)) worst = second;
  });
  return worst;
}

const blocks = '▁▂▃▄▅▆▇█';

/** Where `value` sits between `low` and `high` on a log scale, from 0 to 1 (0 when the range is empty). */
function logShare(value: number, low: number, high: number): number {
  if (!(high > low) || !(low > 0)) return 0;
  const share = (Math.log(value) - Math.log(low)) / (Math.log(high) - Math.log(low));
  return Math.min(1, Math.max(0, share));
}

/**
 * One character a second, ▁ at `low` to █ at `high` on a log scale (the series of one run share
 * the scale, so their lines compare), `·` for a second in which nothing finished.
 */
export function sparkline(values: readonly number[], low: number, high: number): string {
  return values.map((value) => (Number.isFinite(value) ? blocks[Math.round(logShare(value, low, high) * (blocks.length - 1))]! : '·')).join('');
}

export interface TimelineSeries {
  readonly name: string;
  /** p99 in ms of second 0, 1, 2… of the window; NaN where nothing finished. */
  readonly valuesMs: readonly number[];
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const chart = { width: 960, height: 440, left: 70, right: 190, top: 44, bottom: 54 };

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Ticks at 1, 2 and 5 of each decade from `low` to `high` (both powers of ten). */
function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  // Bounded: the decades from low to high, and both are finite powers of ten.
  for (let decade = low; decade <= high * 1.0001; decade *= 10) {
    for (const step of [1, 2, 5]) if (decade * step <= high * 1.0001) ticks.push(decade * step);
  }
  return ticks;
}

const tickText = (ms: number): string => (ms >= 1 ? ms.toLocaleString('en-US', { maximumFractionDigits: 0 }) : String(Number(ms.toPrecision(1))));

/** The axes, their ticks and labels of a chart of `seconds` seconds from `low` to `high` ms. */
function axes(seconds: number, low: number, high: number, x: (s: number) => number, y: (ms: number) => number): string[] {
  const { width, height, left, right, top, bottom } = chart;
  const out = [
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#333"/>`,
  ];
  for (const ms of logTicks(low, high)) {
    const at = y(ms).toFixed(1);
    out.push(`<line x1="${left}" y1="${at}" x2="${width - right}" y2="${at}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${at}" text-anchor="end" dominant-baseline="middle">${tickText(ms)}</text>`);
  }
  const step = seconds <= 20 ? 2 : seconds <= 60 ? 5 : 10;
  for (let s = 0; s <= seconds; s += step) {
    out.push(`<text x="${x(s).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${s}</text>`);
  }
  out.push(
    `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">seconds into the window (by the second each request finished)</text>`,
  );
  out.push(`<text transform="translate(18 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">p99 latency per second, ms (log scale)</text>`);
  return out;
}

/**
 * An SVG line chart of p99 per second: one polyline per series (seconds on x, ms on a log
 * scale on y, decades from the lowest to the highest value), axis labels and a legend.
 */
export function timelineSvg(title: string, series: readonly TimelineSeries[]): string {
  const { width, height, left, right, top, bottom } = chart;
  const range = finiteRange(series.map((s) => s.valuesMs));
  const low = Number.isFinite(range.low) && range.low > 0 ? 10 ** Math.floor(Math.log10(range.low)) : 0.1;
  const high = Number.isFinite(range.high) && range.high > low ? 10 ** Math.ceil(Math.log10(range.high)) : low * 10;
  const seconds = Math.max(1, ...series.map((s) => s.valuesMs.length));
  const x = (s: number): number => left + (s / seconds) * (width - left - right);
  const y = (ms: number): number => height - bottom - logShare(ms, low, high) * (height - top - bottom);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="24" font-size="15">${escapeXml(title)}</text>`,
    ...axes(seconds, low, high, x, y),
  ];
  series.forEach((s, i) => {
    const colour = palette[i % palette.length]!;
    // A point in the middle of each second that had completions; a second without any is skipped.
    const points = s.valuesMs.flatMap((ms, second) => (Number.isFinite(ms) ? [`${x(second + 0.5).toFixed(1)},${y(ms).toFixed(1)}`] : []));
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points.join(' ')}"/>`);
    const legendY = top + 10 + i * 20;
    out.push(`<line x1="${width - right + 14}" y1="${legendY}" x2="${width - right + 38}" y2="${legendY}" stroke="${colour}" stroke-width="2"/>`);
    out.push(`<text x="${width - right + 44}" y="${legendY}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
