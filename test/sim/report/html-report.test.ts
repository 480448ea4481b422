// Proves the simulator report is one self-contained, escaped, deterministic HTML page.
// Its charts show faults, the heal and spikes.
import { describe, expect, it } from 'vitest';
import { downsampleMinMax, escapeHtml, formatCompact, formatDuration, renderReport, samplesPlottedMax } from '../../../sim/report/html-report.js';
import type { Fault, Scenario } from '../../../sim/scenario.js';
import type { CheckFailure, Sample, SimResult } from '../../../sim/sim-result.js';

const hostileMessage = `final read 1200 != truth 1250 <script>alert("pwned")&'</script>`;

interface Build {
  readonly name?: string;
  readonly seed?: number;
  readonly samples?: number;
  readonly failures?: readonly CheckFailure[];
  readonly spike?: { readonly index: number; readonly value: number };
}

/** A run of three regions sampled every 100 ms, with one majority partition from 5 s to 15 s and the heal at 20 s. */
function syntheticResult(build: Build = {}): SimResult {
  const regions = ['us-east', 'us-west', 'eu-west'];
  const sampleCount = build.samples ?? 300;
  const faults: Fault[] = [{ kind: 'partition', atMs: 5_000, durationMs: 10_000, partition: 'majority' }];
  const samples: Sample[] = [];
  for (let i = 0; i < sampleCount; i++) {
    const atMs = i * 100;
    const truth = i * 10;
    // Regions lag the truth by a deterministic, region-specific amount while partitioned.
    const partitioned = atMs >= 5_000 && atMs < 15_000;
    const values = regions.map((_, r) => (partitioned ? truth - (r + 1) * 40 : truth));
    if (build.spike !== undefined && build.spike.index === i) values[1] = build.spike.value;
    const divergence = Math.max(...values) - Math.min(...values);
    samples.push({ atMs, values, truth, divergence });
  }
  const failures = build.failures ?? [];
  const scenario: Scenario = {
    name: build.name ?? 'majority-partition',
    description: 'A majority partition <during> peak traffic & a heal.',
    regions: regions.length,
    durationMs: 20_000,
    convergenceBudgetMs: 10_000,
    gossipIntervalMs: 50,
    workload: { tenants: 4, requestsPerSecond: 200, arrivals: 'poisson', burstSize: 1, maxTokens: 1_000 },
    network: { jitterMs: 10, loss: 0.01, duplicate: 0.001, bytesPerMs: 0 },
    faults,
  };
  const seed = build.seed ?? 42;
  return {
    scenario,
    seed,
    ok: failures.length === 0,
    failures,
    traceHash: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    convergence: [{ fault: 'majority', convergedAfterMs: 1_250 }],
    simulatedMs: sampleCount * 100,
    wallMs: 150,
    stats: { requests: 12_000, framesDelivered: 48_000, framesDropped: 480, bytesDelivered: 3_500_000, events: 90_000 },
    durability: { commits: 9_000, commitsRefused: 0, restarts: 0, interrupted: 0, settlementsLost: 0, undispatched: 0, refusedDiskFailing: 0 },
    record: { regions, sampleEveryMs: 100, samples, faults, healedAtMs: 20_000 },
    replay: `npx tsx sim/cli.ts run sim/scenarios/${build.name ?? 'majority-partition'}.json --seed ${seed}`,
  };
}

const failing = (): SimResult => syntheticResult({ name: 'lossy', seed: 7, failures: [{ checker: 'final-read', atMs: 29_000, message: hostileMessage }] });

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

/** The `points` attribute of each polyline in the page, as lists of [x, y] pixels. */
function polylines(html: string): { series: string; points: [number, number][] }[] {
  return [...html.matchAll(/<polyline data-series="([^"]*)"[^>]* points="([^"]*)"/g)].map((m) => ({
    series: m[1] ?? '',
    points: (m[2] ?? '').split(' ').map((pair) => {
      const [x, y] = pair.split(',').map(Number);
      return [x ?? Number.NaN, y ?? Number.NaN];
    }),
  }));
}

describe('escapeHtml', () => {
  it('escapes the five characters that can break out of text or a quoted attribute', () => {
    expect(escapeHtml(`<a href="x">Tom & Jerry's</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;');
    expect(escapeHtml('plain text 123')).toBe('plain text 123');
    // Already-escaped text is escaped again: the function never guesses at its input.
    expect(escapeHtml('&amp;')).toBe('&amp;amp;');
  });
});

describe('renderReport', () => {
  it('renders one complete document with two charts per run and nothing to fetch', () => {
    const html = renderReport([syntheticResult(), failing()], { title: 'Nightly', generatedAt: '2026-01-02T03:04:05Z' });
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(count(html, '<head>')).toBe(1);
    expect(count(html, '<body>')).toBe(1);
    expect(count(html, '<svg')).toBe(4);
    expect(count(html, '</svg>')).toBe(4);
    expect(html).toContain('<title>Nightly</title>');
    expect(html).toContain('Generated 2026-01-02T03:04:05Z');
    // Self-contained: no scripts, stylesheets, images or fonts from elsewhere.
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(|src=/i);
    // One line per region plus the dashed truth in the value chart, one line in the divergence chart.
    const lines = polylines(html).slice(0, 5);
    expect(lines.map((l) => l.series)).toEqual(['us-east', 'us-west', 'eu-west', 'truth', 'divergence']);
    expect(lines[0]?.points).toHaveLength(300);
  });

  it('shades the partition as a labelled band and marks the heal where it happened', () => {
    const html = renderReport([syntheticResult()]);
    const svg = html.slice(html.indexOf('<svg'), html.indexOf('</svg>'));
    const band = /<g class="fault">.*?<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*fill-opacity="0\.1"\/>.*?>majority<\/text><\/g>/.exec(svg);
    expect(band).not.toBeNull();
    const healed = /<g class="healed"><line x1="([\d.]+)"[^>]*\/><text[^>]*>healed<\/text><\/g>/.exec(svg);
    expect(healed).not.toBeNull();
    const bandX = Number(band?.[1]);
    const bandWidth = Number(band?.[2]);
    const healedX = Number(healed?.[1]);
    // The band spans 5 s .. 15 s and the heal is at 20 s, so the band is twice as wide as the gap after it.
    expect(bandWidth / (healedX - bandX - bandWidth)).toBeCloseTo(2, 1);
  });

  it('escapes data everywhere it appears, so a failure message cannot inject markup', () => {
    const html = renderReport([failing(), syntheticResult({ name: '<img src=x onerror=alert(1)>' })]);
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(&quot;pwned&quot;)&amp;&#39;&lt;/script&gt;');
    expect(html).toContain('A majority partition &lt;during&gt; peak traffic &amp; a heal.');
    expect(html).toContain('<td>final-read</td>');
  });

  it('counts passed and failed runs in the header', () => {
    const header = (html: string): string => html.slice(html.indexOf('<header>'), html.indexOf('</header>'));
    const mixed = header(renderReport([syntheticResult(), failing(), syntheticResult({ seed: 3 })]));
    expect(mixed).toContain('3 runs');
    expect(mixed).toContain('<span class="passed">2 passed</span>');
    expect(mixed).toContain('<span class="failed">1 failed</span>');
    const allGood = header(renderReport([syntheticResult()]));
    expect(allGood).toContain('1 run<');
    expect(allGood).toContain('<span class="passed">1 passed</span>');
    expect(allGood).toContain('<span class="failed none">0 failed</span>');
  });

  it('lists each run in the summary table with its verdict, convergence, short hash and replay command', () => {
    const html = renderReport([syntheticResult(), failing()]);
    const table = html.slice(html.indexOf('<table class="summary">'), html.indexOf('</table>'));
    expect(count(table, '<tr class="figures">')).toBe(2);
    expect(count(table, 'badge pass')).toBe(1);
    expect(count(table, 'badge fail">FAIL')).toBe(1);
    expect(table).toContain('majority 1.25 s');
    expect(table).toContain('>9f86d081884c</code>');
    expect(table).toContain('replay</span> <code>npx tsx sim/cli.ts run sim/scenarios/lossy.json --seed 7</code>');
    // 30 s simulated in 150 ms of wall time.
    expect(table).toContain('200×');
  });

  it('labels the axes with round numbers, time units and k/M suffixes', () => {
    const html = renderReport([syntheticResult()]);
    const svg = html.slice(html.indexOf('<svg'), html.indexOf('</svg>'));
    const labels = [...svg.matchAll(/<text [^>]*fill="#555">([^<]*)<\/text>/g)].map((m) => m[1]);
    // 29.9 s of samples reaching 2,990: value ticks every 500, time ticks every 5 s.
    expect(labels).toEqual(['0', '500', '1k', '1.5k', '2k', '2.5k', '3k', '0', '5 s', '10 s', '15 s', '20 s', '25 s']);
    expect([formatCompact(0), formatCompact(950), formatCompact(12_500), formatCompact(3_000_000), formatCompact(-2_000)]).toEqual([
      '0',
      '950',
      '12.5k',
      '3M',
      '-2k',
    ]);
    expect([formatDuration(850), formatDuration(1_250), formatDuration(245_000), formatDuration(7_380_000)]).toEqual([
      '850 ms',
      '1.25 s',
      '4 min 05 s',
      '2 h 03 min',
    ]);
  });

  it('bounds the points drawn for 100,000 samples and keeps a one-sample spike', () => {
    const spike = { index: 54_321, value: 5_000_000 };
    const html = renderReport([syntheticResult({ samples: 100_000, spike })]);
    const lines = polylines(html);
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(line.points.length).toBeLessThanOrEqual(samplesPlottedMax);
    // The spike sets the top of the value axis, and us-west reaches that top: the spike was drawn.
    const top = Math.min(...(lines[0]?.points ?? []).map(([, y]) => y), ...(lines[2]?.points ?? []).map(([, y]) => y));
    const usWestTop = Math.min(...(lines[1]?.points ?? []).map(([, y]) => y));
    expect(usWestTop).toBeLessThan(top);
    expect(html).toMatch(/>5M<\/text>/);
  });

  it('downsamples to at most two points per bucket, in order, keeping each bucket minimum and maximum', () => {
    // A scrambled sawtooth, so a bucket's minimum comes before its maximum in some buckets and after it in others.
    const points = Array.from({ length: 100_000 }, (_, i) => ({ x: i, y: (i * 7_919) % 1_009 }));
    points[70_001] = { x: 70_001, y: 1e9 };
    points[30_003] = { x: 30_003, y: -1e9 };
    const buckets = 800;
    const out = downsampleMinMax(points, buckets, 0, 100_000);
    expect(out.length).toBeLessThanOrEqual(2 * buckets);
    expect(out).toContainEqual({ x: 70_001, y: 1e9 });
    expect(out).toContainEqual({ x: 30_003, y: -1e9 });
    for (let i = 1; i < out.length; i++) expect(out[i]?.x).toBeGreaterThan(out[i - 1]?.x ?? Number.POSITIVE_INFINITY);
    const bucketOf = (x: number): number => Math.floor((x / 100_000) * buckets);
    for (let b = 0; b < buckets; b++) {
      const inputYs = points.filter((p) => bucketOf(p.x) === b).map((p) => p.y);
      const keptYs = out.filter((p) => bucketOf(p.x) === b).map((p) => p.y);
      expect([Math.min(...keptYs), Math.max(...keptYs)]).toEqual([Math.min(...inputYs), Math.max(...inputYs)]);
    }
  });

  it('draws charts only for failed runs and the first five when there are more than twenty runs', () => {
    const runs = Array.from({ length: 25 }, (_, i) => (i === 12 || i === 3 ? failing() : syntheticResult({ seed: i })));
    const html = renderReport(runs);
    // Runs 1-5 (one of them failed) plus the failed run 13: six runs, two charts each.
    expect(count(html, '<svg')).toBe(12);
    expect(html).toContain('charts are drawn only for the 2 failed runs and the first 5 runs');
    expect(count(html, '<section id="run-')).toBe(25);
    const run13 = html.slice(html.indexOf('<section id="run-13"'), html.indexOf('<section id="run-14"'));
    expect(count(run13, '<svg')).toBe(2);
  });

  it('renders equal input to byte-identical output', () => {
    const first = renderReport([syntheticResult(), failing()], { generatedAt: 'seed run' });
    const again = renderReport([syntheticResult(), failing()], { generatedAt: 'seed run' });
    expect(again).toBe(first);
    expect(renderReport([syntheticResult()])).not.toBe(renderReport([syntheticResult({ seed: 43 })]));
  });
});
