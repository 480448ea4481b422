// Proves the benchmarks' latency timeline (test/bench/latency-timeline.ts): the p99 of each second
// is taken over the completions that finished in that second, a second with none is a gap, the
// sparkline and the worst second follow the values, and the SVG chart is well-formed XML with one
// polyline per path carrying a point for each second that had completions.
import { describe, expect, it } from 'vitest';
import { finiteRange, perSecondPercentile, sparkline, timelineSvg, worstSecond } from '../bench/latency-timeline.js';

describe('perSecondPercentile', () => {
  it('takes each percentile over the completions that finished in that second', () => {
    // Second 0: latencies 1..100 ms (p99 of 100 values by nearest rank: the 100th, 100 ms).
    // Second 1: 198 completions of 2 ms and two stalled ones of 150 and 180 ms (p99 of 200 values:
    // the 199th, 150 ms).
    // Second 3: one of 7 ms. Second 2: nothing finished.
    const finished: number[] = [];
    const latencies: number[] = [];
    for (let i = 1; i <= 100; i++) {
      finished.push(i * 9.9);
      latencies.push(i);
    }
    for (let i = 0; i < 198; i++) {
      finished.push(1_000 + i * 4);
      latencies.push(2);
    }
    finished.push(1_850, 1_999.9, 3_500);
    latencies.push(150, 180, 7);
    const p99 = perSecondPercentile(finished, latencies, 99);
    expect(p99).toHaveLength(4);
    expect(p99[0]).toBe(100);
    expect(p99[1]).toBe(150);
    expect(p99[2]).toBeNaN();
    expect(p99[3]).toBe(7);
    const p50 = perSecondPercentile(finished, latencies, 50);
    expect(p50[0]).toBe(51);
    expect(p50[1]).toBe(2);
  });

  it('reads the p99 of a second from its own completions, not from the window', () => {
    // 1,000 fast completions a second for 5 s, and in second 3 a stall delays 20 of them to
    // 200 ms: the window's p99 is under 2 ms, second 3's is the stall.
    const finished: number[] = [];
    const latencies: number[] = [];
    for (let second = 0; second < 5; second++) {
      for (let i = 0; i < 1_000; i++) {
        finished.push(second * 1_000 + i);
        latencies.push(second === 3 && i >= 980 ? 200 : 1 + (i % 10) / 10);
      }
    }
    const p99 = perSecondPercentile(finished, latencies, 99);
    expect(p99).toEqual([1.9, 1.9, 1.9, 200, 1.9]);
    expect(worstSecond(p99)).toBe(3);
  });

  it('refuses finish times and latencies of different lengths', () => {
    expect(() => perSecondPercentile([1, 2], [1], 99)).toThrow(/2 finish times for 1 latencies/);
  });
});

describe('sparkline and the worst second', () => {
  it('draws the lowest value as the lowest block, the highest as the highest, a gap as a dot', () => {
    expect(sparkline([1, 10, Number.NaN, 100, 0.5, 1_000], 1, 100)).toBe('▁▅·█▁█');
    expect(finiteRange([[3, Number.NaN, 1], [7]])).toEqual({ low: 1, high: 7 });
    expect(worstSecond([Number.NaN, 4, 9, 9, 2])).toBe(2);
    expect(worstSecond([Number.NaN])).toBeUndefined();
  });
});

/** The element names of a document, checking as it goes that every tag closes in order and every attribute is quoted. */
function wellFormedElements(xml: string): string[] {
  const names: string[] = [];
  const open: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let at = 0;
  for (let match = tag.exec(xml); match !== null; match = tag.exec(xml)) {
    const between = xml.slice(at, match.index);
    if (between.includes('<') || between.includes('>')) throw new Error(`stray markup before offset ${match.index}: ${between}`);
    if (/&(?!amp;|lt;|gt;|quot;)/.test(between)) throw new Error(`unescaped & before offset ${match.index}`);
    const [, closing, name, , selfClosing] = match;
    if (closing === '/') {
      if (open.pop() !== name) throw new Error(`</${name}> closes nothing open`);
    } else {
      names.push(name!);
      if (selfClosing !== '/') open.push(name!);
    }
    at = tag.lastIndex;
  }
  if (xml.slice(at).trim() !== '') throw new Error(`text after the root: ${xml.slice(at)}`);
  if (open.length > 0) throw new Error(`unclosed: ${open.join(', ')}`);
  return names;
}

describe('timelineSvg', () => {
  const series = [
    { name: 'direct to the emulator', valuesMs: [0.8, 0.9, 0.85, Number.NaN, 0.9] },
    { name: 'bare passthrough proxy', valuesMs: [1.2, 1.3, 1.1, 1.2, 1.4] },
    { name: 'node over gRPC <"stall" & all>', valuesMs: [2, 2.2, 180, 2.1, 2] },
  ];

  it('is well-formed, with one polyline per path and a point per second that had completions', () => {
    const svg = timelineSvg('p99 per second at 500/s', series);
    const elements = wellFormedElements(svg);
    expect(elements[0]).toBe('svg');
    expect(elements.filter((name) => name === 'polyline')).toHaveLength(3);
    const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(' '));
    expect(polylines.map((points) => points.length)).toEqual([4, 5, 5]);
    // The stall is the highest point (smallest y) of the third line, and of the chart.
    const ys = polylines.map((points) => points.map((point) => Number(point.split(',')[1])));
    expect(Math.min(...ys[2]!)).toBe(ys[2]![2]);
    expect(ys[2]![2]).toBeLessThan(Math.min(...ys[0]!, ...ys[1]!));
    // The legend names every path, escaped.
    expect(svg).toContain('direct to the emulator');
    expect(svg).toContain('node over gRPC &lt;&quot;stall&quot; &amp; all&gt;');
    expect(svg).toContain('seconds into the window');
    expect(svg).toContain('p99 latency per second, ms (log scale)');
  });

  it('stays well-formed for a path without a single completion', () => {
    const svg = timelineSvg('empty', [{ name: 'nothing answered', valuesMs: [Number.NaN, Number.NaN] }]);
    expect(wellFormedElements(svg).filter((name) => name === 'polyline')).toHaveLength(1);
  });
});
