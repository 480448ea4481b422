import { assert } from '../../src/core/assert.js';
import type { Fault } from '../scenario.js';
import type { SimRecord, SimResult } from '../sim-result.js';

/**
 * The simulator's report: one self-contained HTML document (inline CSS and SVG, no scripts, fonts
 * or images to fetch) so that a CI artefact or an attachment to a bug opens anywhere and still
 * reads the same in a year. The simulator is deterministic, so the report is too: equal results
 * render byte-identical pages. Nothing here reads the clock, the locale or the environment; the
 * generation time is passed in, and numbers are formatted by hand rather than with
 * `toLocaleString`, whose output depends on the machine.
 *
 * Every string that comes from data (scenario names, descriptions, failure messages, the replay
 * command) goes through `escapeHtml`, because a failure message may quote whatever bytes broke
 * the run.
 */

export interface ReportOptions {
  readonly title?: string;
  /** Shown as given; the report never reads the clock itself. */
  readonly generatedAt?: string;
}

/** Above this many runs a page of charts becomes too heavy to scroll, so only some get charts. */
export const runsChartedAllMax = 20;
/** With many runs, the first few still get charts alongside every failed run. */
export const runsChartedFirst = 5;
/** Above this many samples a series is downsampled to min and max per pixel column. */
export const samplesPlottedMax = 2_000;

const chartWidthPx = 960;
const chartHeightPx = 280;
const margin = { top: 30, right: 20, bottom: 36, left: 60 } as const;
const plotWidthPx = chartWidthPx - margin.left - margin.right;
const plotHeightPx = chartHeightPx - margin.top - margin.bottom;
// Downsampling keeps at most two points per pixel column; that must stay under the cap, or the
// cap would not bound what a chart draws.
assert(2 * plotWidthPx <= samplesPlottedMax, 'two points per pixel column must fit under samplesPlottedMax');

/** How close to the right edge of the plot a label must switch to ending at its anchor. */
const edgeLabelPx = 24;

const shortHashLength = 12;
/** Fault labels inside a chart are staggered over this many rows so overlapping faults stay legible. */
const faultLabelRows = 3;

/** Colour-blind-safe (Okabe–Ito) colours, one per region; five regions is the scenario maximum. */
const regionColours = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442'] as const;
const truthColour = '#222222';
const divergenceColour = '#d55e00';

const faultColours: Readonly<Record<Fault['kind'], string>> = {
  partition: '#d62728',
  crash: '#555555',
  pause: '#b8860b',
  skew: '#7b3fb5',
  strobe: '#1f9bb4',
};

export interface ChartPoint {
  readonly x: number;
  readonly y: number;
}

interface Series {
  readonly label: string;
  readonly colour: string;
  readonly dashed: boolean;
  readonly points: readonly ChartPoint[];
}

/** Escapes text for use in HTML element content and in quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

export function renderReport(results: readonly SimResult[], options: ReportOptions = {}): string {
  const title = options.title ?? 'Carpool mesh simulator report';
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  const chartsForAll = results.length <= runsChartedAllMax;
  const chartNote = chartsForAll
    ? ''
    : `<p class="note">${results.length} runs: charts are drawn only for the ${failed} failed run${failed === 1 ? '' : 's'} and the first ${runsChartedFirst} runs, to keep the page light.</p>`;

  const meta = [
    options.generatedAt === undefined ? '' : `<span>Generated ${escapeHtml(options.generatedAt)}</span>`,
    `<span class="runs">${results.length} run${results.length === 1 ? '' : 's'}</span>`,
    `<span class="passed">${passed} passed</span>`,
    `<span class="${failed > 0 ? 'failed' : 'failed none'}">${failed} failed</span>`,
  ].filter((part) => part !== '');

  const sections = results.map((result, index) => renderRun(result, index, chartsForAll || index < runsChartedFirst || !result.ok));

  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${stylesheet}</style>`,
    '</head>',
    '<body>',
    '<main>',
    '<header>',
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="meta">${meta.join('<span class="sep"> · </span>')}</p>`,
    '</header>',
    renderSummaryTable(results),
    chartNote,
    ...sections,
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

function renderSummaryTable(results: readonly SimResult[]): string {
  if (results.length === 0) return '<p class="note">No runs.</p>';
  const rows = results.map((r, index) => {
    const speedUp = r.wallMs > 0 ? `${formatSpeedUp(r.simulatedMs / r.wallMs)}×` : '—';
    // The replay command is long and must be copied whole, so it gets its own row under the figures.
    return [
      '<tr class="figures">',
      `<td class="num" rowspan="2">${index + 1}</td>`,
      `<td class="name"><a href="#run-${index + 1}">${escapeHtml(r.scenario.name)}</a></td>`,
      `<td class="num">${r.seed}</td>`,
      `<td class="num">${r.record.regions.length}</td>`,
      `<td class="num">${formatDuration(r.simulatedMs)}</td>`,
      `<td class="num">${formatDuration(r.wallMs)}</td>`,
      `<td class="num">${speedUp}</td>`,
      `<td>${verdictBadge(r.ok)}</td>`,
      `<td>${renderConvergenceInline(r)}</td>`,
      `<td><code title="${escapeHtml(r.traceHash)}">${escapeHtml(r.traceHash.slice(0, shortHashLength))}</code></td>`,
      '</tr>',
      `<tr class="replay"><td colspan="9"><span class="muted">replay</span> <code>${escapeHtml(r.replay)}</code></td></tr>`,
    ].join('');
  });
  return [
    '<div class="scroll">',
    '<table class="summary">',
    '<thead><tr><th>#</th><th>Scenario</th><th>Seed</th><th>Regions</th><th>Simulated</th><th>Wall</th><th>Speed-up</th><th>Verdict</th><th>Converged after heal</th><th>Trace</th></tr></thead>',
    '<tbody>',
    ...rows,
    '</tbody>',
    '</table>',
    '</div>',
  ].join('\n');
}

function renderConvergenceInline(r: SimResult): string {
  if (r.convergence.length === 0) return '<span class="muted">—</span>';
  return r.convergence
    .map(
      (c) => `<span class="conv${c.convergedAfterMs === undefined ? ' never' : ''}">${escapeHtml(c.fault)} ${formatConvergedAfter(c.convergedAfterMs)}</span>`,
    )
    .join('<br>');
}

function renderRun(r: SimResult, index: number, withCharts: boolean): string {
  const { record, scenario } = r;
  const facts: readonly (readonly [string, string])[] = [
    ['Seed', String(r.seed)],
    ['Regions', record.regions.map((name) => `<span class="nowrap">${escapeHtml(name)}</span>`).join(', ')],
    ['Simulated', formatDuration(r.simulatedMs)],
    ['Wall', formatDuration(r.wallMs)],
    ['Requests', formatInteger(r.stats.requests)],
    ['Frames delivered', formatInteger(r.stats.framesDelivered)],
    ['Frames dropped', formatInteger(r.stats.framesDropped)],
    ['Bytes delivered', formatBytes(r.stats.bytesDelivered)],
    ['Events', formatInteger(r.stats.events)],
    ['Healed at', formatDuration(record.healedAtMs)],
  ];
  // The hash and the command are long and must be copied whole, so each gets a full-width line.
  const wideFacts: readonly (readonly [string, string])[] = [
    ['Trace hash', `<code>${escapeHtml(r.traceHash)}</code>`],
    ['Replay', `<code>${escapeHtml(r.replay)}</code>`],
  ];

  const charts = withCharts
    ? [
        '<h3>Counter value over time</h3>',
        renderValueChart(record),
        '<h3>Divergence over time <span class="muted">(max − min across live regions)</span></h3>',
        renderDivergenceChart(record),
      ]
    : [`<p class="note">Charts omitted: with more than ${runsChartedAllMax} runs only failed runs and the first ${runsChartedFirst} get charts.</p>`];

  return [
    `<section id="run-${index + 1}" class="run ${r.ok ? 'ok' : 'fail'}">`,
    `<h2>Run ${index + 1}: ${escapeHtml(scenario.name)} ${verdictBadge(r.ok)}</h2>`,
    scenario.description === '' ? '' : `<p class="description">${escapeHtml(scenario.description)}</p>`,
    `<dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join('')}${wideFacts.map(([k, v]) => `<div class="wide"><dt>${k}</dt><dd>${v}</dd></div>`).join('')}</dl>`,
    renderFaultList(record),
    ...charts,
    '<h3>Convergence after heal</h3>',
    renderConvergenceTable(r),
    renderFailures(r),
    '</section>',
  ]
    .filter((part) => part !== '')
    .join('\n');
}

function renderFaultList(record: SimRecord): string {
  if (record.faults.length === 0) return '<p class="muted">No faults injected.</p>';
  const items = record.faults.map((f) => {
    // The label already names the kind, except for partitions, where it names the partition shape.
    const words = [f.kind === 'partition' ? 'partition' : '', faultDetail(f), `from ${formatDuration(f.atMs)} for ${formatDuration(f.durationMs)}`];
    const swatch = `<span class="swatch" style="background:${faultColours[f.kind]}"></span>`;
    return `<li>${swatch}${escapeHtml(faultLabel(f, record.regions))} <span class="muted">${escapeHtml(words.filter((w) => w !== '').join(' '))}</span></li>`;
  });
  return `<ul class="faults">${items.join('')}</ul>`;
}

function faultDetail(f: Fault): string {
  switch (f.kind) {
    case 'crash':
      return f.durable ? '(durable storage)' : '(state lost)';
    case 'skew':
      return `(clock off by ${formatSignedMs(f.skewMs)})`;
    case 'strobe':
      return `(clock ±${formatDuration(f.skewMs)} every ${formatDuration(f.periodMs)})`;
    case 'partition':
    case 'pause':
      return '';
  }
}

function renderConvergenceTable(r: SimResult): string {
  if (r.convergence.length === 0) return '<p class="muted">No convergence figures.</p>';
  const rows = r.convergence.map(
    (c) =>
      `<tr><td>${escapeHtml(c.fault)}</td><td class="num${c.convergedAfterMs === undefined ? ' never' : ''}">${formatConvergedAfter(c.convergedAfterMs)}</td></tr>`,
  );
  return `<table class="small"><thead><tr><th>Fault</th><th>Converged after</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderFailures(r: SimResult): string {
  if (r.failures.length === 0) return '';
  const rows = r.failures.map(
    (f) => `<tr><td>${escapeHtml(f.checker)}</td><td class="num">${formatDuration(f.atMs)}</td><td class="message">${escapeHtml(f.message)}</td></tr>`,
  );
  return [
    `<h3>Failures (${r.failures.length})</h3>`,
    `<table class="failures"><thead><tr><th>Checker</th><th>At</th><th>Message</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
  ].join('\n');
}

function verdictBadge(ok: boolean): string {
  return ok ? '<span class="badge pass">pass</span>' : '<span class="badge fail">FAIL</span>';
}

// ---------------------------------------------------------------------------------------------
// Charts

function recordEndMs(record: SimRecord): number {
  const lastSample = record.samples[record.samples.length - 1];
  // Both ends matter: sampling may stop before the heal, and the heal line must stay in view.
  return Math.max(lastSample?.atMs ?? 0, record.healedAtMs, 1);
}

function renderValueChart(record: SimRecord): string {
  if (record.samples.length === 0) return '<p class="muted">No samples recorded.</p>';
  const series: Series[] = record.regions.map((region, r) => ({
    label: region,
    colour: regionColours[r % regionColours.length] ?? truthColour,
    dashed: false,
    points: record.samples.map((s) => ({ x: s.atMs, y: s.values[r] ?? Number.NaN })),
  }));
  series.push({ label: 'truth', colour: truthColour, dashed: true, points: record.samples.map((s) => ({ x: s.atMs, y: s.truth })) });
  return renderChart('Counter value over time', series, record);
}

function renderDivergenceChart(record: SimRecord): string {
  if (record.samples.length === 0) return '<p class="muted">No samples recorded.</p>';
  const series: Series[] = [
    { label: 'divergence', colour: divergenceColour, dashed: false, points: record.samples.map((s) => ({ x: s.atMs, y: s.divergence })) },
  ];
  return renderChart('Divergence over time', series, record);
}

/**
 * Keeps the first minimum and the first maximum of each of `bucketCount` equal slices of
 * [xMin, xMax], in their original order, so a one-sample spike survives however many samples
 * share its pixel column. Returns at most 2 × bucketCount points. Points must be sorted by x.
 */
export function downsampleMinMax(points: readonly ChartPoint[], bucketCount: number, xMin: number, xMax: number): ChartPoint[] {
  assert(Number.isSafeInteger(bucketCount) && bucketCount > 0, 'bucketCount must be a positive integer');
  const span = xMax - xMin;
  const out: ChartPoint[] = [];
  let bucket = -1;
  let low: ChartPoint | undefined;
  let high: ChartPoint | undefined;
  let lowIndex = 0;
  let highIndex = 0;
  const flush = (): void => {
    if (low === undefined || high === undefined) return;
    if (lowIndex === highIndex) out.push(low);
    else if (lowIndex < highIndex) out.push(low, high);
    else out.push(high, low);
  };
  points.forEach((p, i) => {
    const b = span > 0 ? Math.min(bucketCount - 1, Math.max(0, Math.floor(((p.x - xMin) / span) * bucketCount))) : 0;
    if (b !== bucket) {
      flush();
      bucket = b;
      low = p;
      high = p;
      lowIndex = i;
      highIndex = i;
      return;
    }
    if (low !== undefined && p.y < low.y) {
      low = p;
      lowIndex = i;
    }
    if (high !== undefined && p.y > high.y) {
      high = p;
      highIndex = i;
    }
  });
  flush();
  return out;
}

function renderChart(title: string, series: readonly Series[], record: SimRecord): string {
  const xMaxMs = recordEndMs(record);
  // Non-finite values (a region with no reading) are not drawn: the line bridges them, and the
  // fault band over the same interval says why the region was silent.
  const plotted = series.map((s) => {
    const finite = s.points.filter((p) => Number.isFinite(p.y));
    const points = finite.length > samplesPlottedMax ? downsampleMinMax(finite, plotWidthPx, 0, xMaxMs) : finite;
    return { ...s, points };
  });

  let yLow = 0;
  let yHigh = 0;
  for (const s of plotted) {
    for (const p of s.points) {
      if (p.y < yLow) yLow = p.y;
      if (p.y > yHigh) yHigh = p.y;
    }
  }
  const yAxis = niceAxis(yLow, yHigh, 5);
  const xAxis = timeAxis(xMaxMs);

  const px = (ms: number): number => margin.left + (ms / xMaxMs) * plotWidthPx;
  const py = (v: number): number => margin.top + plotHeightPx - ((v - yAxis.min) / (yAxis.max - yAxis.min)) * plotHeightPx;
  const plotTop = margin.top;
  const plotBottom = margin.top + plotHeightPx;
  const plotRight = margin.left + plotWidthPx;

  const parts: string[] = [];
  parts.push(
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${chartWidthPx} ${chartHeightPx}" width="${chartWidthPx}" height="${chartHeightPx}" role="img" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="11">`,
    `<title>${escapeHtml(title)}</title>`,
    `<rect x="${margin.left}" y="${plotTop}" width="${plotWidthPx}" height="${plotHeightPx}" fill="#ffffff" stroke="#c8c8c8"/>`,
  );

  // Grid and axes first, so bands and lines draw over them.
  for (const v of yAxis.ticks) {
    const y = coord(py(v));
    parts.push(`<line x1="${margin.left}" x2="${plotRight}" y1="${y}" y2="${y}" stroke="#ececec"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${formatCompact(v)}</text>`);
  }
  for (const tick of xAxis) {
    const x = coord(px(tick.ms));
    parts.push(`<line x1="${x}" x2="${x}" y1="${plotBottom}" y2="${plotBottom + 4}" stroke="#888"/>`);
    // A label centred on the last tick would spill past the edge of the picture.
    const anchor = px(tick.ms) > plotRight - edgeLabelPx ? 'end' : 'middle';
    parts.push(`<text x="${x}" y="${plotBottom + 16}" text-anchor="${anchor}" fill="#555">${tick.label}</text>`);
  }
  parts.push(`<text x="${plotRight}" y="${chartHeightPx - 4}" text-anchor="end" fill="#777">simulated time</text>`);

  record.faults.forEach((f, i) => {
    const startMs = Math.max(0, Math.min(f.atMs, xMaxMs));
    const endMs = Math.max(startMs, Math.min(f.atMs + f.durationMs, xMaxMs));
    const x = px(startMs);
    const width = Math.max(1, px(endMs) - x);
    const label = faultLabel(f, record.regions);
    const colour = faultColours[f.kind];
    const labelY = plotTop + 12 + (i % faultLabelRows) * 13;
    parts.push(
      `<g class="fault"><title>${escapeHtml(`${label}: ${formatDuration(f.atMs)} – ${formatDuration(f.atMs + f.durationMs)}`)}</title>` +
        `<rect x="${coord(x)}" y="${plotTop}" width="${coord(width)}" height="${plotHeightPx}" fill="${colour}" fill-opacity="0.1"/>` +
        `<line x1="${coord(x)}" x2="${coord(x)}" y1="${plotTop}" y2="${plotBottom}" stroke="${colour}" stroke-opacity="0.45"/>` +
        `<text x="${coord(x + 4)}" y="${labelY}" fill="${colour}" font-weight="600" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeHtml(label)}</text></g>`,
    );
  });

  for (const s of plotted) {
    if (s.points.length === 0) continue;
    const points = s.points.map((p) => `${coord(px(p.x))},${coord(py(p.y))}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(
      `<polyline data-series="${escapeHtml(s.label)}" fill="none" stroke="${s.colour}" stroke-width="${s.dashed ? 1.5 : 1.6}" stroke-linejoin="round"${dash} points="${points}"><title>${escapeHtml(s.label)}</title></polyline>`,
    );
  }

  const healedPx = px(Math.min(record.healedAtMs, xMaxMs));
  const healedX = coord(healedPx);
  // The label goes right of the line unless that would run off the plot.
  const healedLabel = healedPx > plotRight - 3 * edgeLabelPx ? `x="${coord(healedPx - 4)}" text-anchor="end"` : `x="${coord(healedPx + 4)}"`;
  parts.push(
    `<g class="healed"><line x1="${healedX}" x2="${healedX}" y1="${plotTop}" y2="${plotBottom}" stroke="#111" stroke-width="1.2" stroke-dasharray="3 3"/>` +
      `<text ${healedLabel} y="${plotBottom - 6}" fill="#111" font-weight="600" stroke="#fff" stroke-width="3" paint-order="stroke">healed</text></g>`,
  );

  parts.push(renderLegend(plotted));
  parts.push('</svg>');
  return parts.join('\n');
}

function renderLegend(series: readonly Series[]): string {
  // SVG cannot measure text, so the advance is estimated from the label length; the legend sits
  // above the plot where a slightly wide gap harms nothing.
  let x = margin.left;
  const items = series.map((s) => {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const item =
      `<line x1="${x}" x2="${x + 20}" y1="14" y2="14" stroke="${s.colour}" stroke-width="2.5"${dash}/>` +
      `<text x="${x + 25}" y="14" dominant-baseline="middle" fill="#333">${escapeHtml(s.label)}</text>`;
    x += 40 + s.label.length * 6.5;
    return item;
  });
  return `<g class="legend">${items.join('')}</g>`;
}

function faultLabel(f: Fault, regions: readonly string[]): string {
  const name = (node: number): string => regions[node] ?? `node ${node}`;
  switch (f.kind) {
    case 'partition':
      return f.node === undefined ? f.partition : `${f.partition} ${name(f.node)}`;
    case 'crash':
    case 'pause':
    case 'skew':
    case 'strobe':
      return `${f.kind} ${name(f.node)}`;
  }
}

interface Axis {
  readonly min: number;
  readonly max: number;
  readonly ticks: readonly number[];
}

/**
 * A step of 1, 2 or 5 × 10^k that cuts `span` into about `count` pieces. The raw step rounds to
 * the nearest candidate (on a log scale) rather than up, so a 120k axis gets steps of 20k, not
 * 50k with the top fifth of the chart left empty.
 */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  const factor = norm >= Math.sqrt(50) ? 10 : norm >= Math.sqrt(10) ? 5 : norm >= Math.sqrt(2) ? 2 : 1;
  return factor * magnitude;
}

/** A value axis widened to whole steps, so the top and bottom gridlines carry labels. */
function niceAxis(low: number, high: number, count: number): Axis {
  const top = high > low ? high : low + Math.max(1, Math.abs(low));
  const step = niceStep(top - low, count);
  const first = Math.floor(low / step);
  const last = Math.ceil(top / step);
  const ticks: number[] = [];
  // Ticks are index × step rather than a running sum, so float error does not accumulate.
  for (let i = first; i <= last; i++) ticks.push(roundTo(i * step, step));
  return { min: first * step, max: last * step, ticks };
}

/**
 * Seconds and minutes tick at clock-friendly steps (15, 30, 60) rather than decimal ones (20, 50),
 * so a three-hour run reads 0, 30 min, 60 min and not 0, 50 min, 100 min.
 */
const sexagesimalSteps = [1, 2, 5, 10, 15, 20, 30, 60, 120] as const;
const timeUnits = [
  { unit: 'ms', ms: 1, spanMax: 2_000, steps: undefined },
  { unit: 's', ms: 1_000, spanMax: 5 * 60_000, steps: sexagesimalSteps },
  { unit: 'min', ms: 60_000, spanMax: 5 * 3_600_000, steps: sexagesimalSteps },
  { unit: 'h', ms: 3_600_000, spanMax: Number.POSITIVE_INFINITY, steps: undefined },
] as const;
const timeTicksMax = 10;

/** Time ticks from 0 to `endMs` in the largest unit that still gives several ticks: "0, 10 s, 20 s". */
function timeAxis(endMs: number): { ms: number; label: string }[] {
  const unit = timeUnits.find((u) => endMs <= u.spanMax) ?? timeUnits[timeUnits.length - 1];
  assert(unit !== undefined, 'timeUnits is not empty');
  const end = endMs / unit.ms;
  const step = unit.steps?.find((s) => end / s <= timeTicksMax) ?? niceStep(end, 8);
  const ticks: { ms: number; label: string }[] = [];
  for (let i = 0; i * step <= end * (1 + 1e-9); i++) {
    const v = roundTo(i * step, step);
    ticks.push({ ms: v * unit.ms, label: v === 0 ? '0' : `${formatPlain(v)} ${unit.unit}` });
  }
  return ticks;
}

// ---------------------------------------------------------------------------------------------
// Number formatting, by hand so the output does not depend on the machine's locale.

function roundTo(value: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(value.toFixed(Math.min(decimals, 12)));
}

/** Up to two decimals, trailing zeros dropped: 1.5, 12, 0.25. */
function formatPlain(value: number): string {
  const rounded = Number(value.toFixed(2));
  return String(Object.is(rounded, -0) ? 0 : rounded);
}

/** Axis values with k/M/G suffixes: 0, 500, 1.5k, 20k, 3M. */
export function formatCompact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${formatPlain(value / 1e9)}G`;
  if (abs >= 1e6) return `${formatPlain(value / 1e6)}M`;
  if (abs >= 1e3) return `${formatPlain(value / 1e3)}k`;
  return formatPlain(value);
}

function formatInteger(value: number): string {
  const sign = value < 0 ? '-' : '';
  return sign + String(Math.round(Math.abs(value))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${formatInteger(bytes)} B`;
}

function formatSpeedUp(ratio: number): string {
  return ratio < 10 ? ratio.toFixed(1) : formatInteger(ratio);
}

/** Durations for tables: 850 ms, 1.25 s, 12.3 s, 4 min 05 s, 2 h 03 min. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1_000) return `${formatPlain(ms)} ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(ms < 10_000 ? 2 : 1))} s`;
  const totalSeconds = Math.round(ms / 1_000);
  if (totalSeconds < 3_600) return `${Math.floor(totalSeconds / 60)} min ${pad2(totalSeconds % 60)} s`;
  const totalMinutes = Math.round(ms / 60_000);
  return `${Math.floor(totalMinutes / 60)} h ${pad2(totalMinutes % 60)} min`;
}

function formatSignedMs(ms: number): string {
  return ms >= 0 ? `+${formatDuration(ms)}` : formatDuration(ms);
}

function formatConvergedAfter(ms: number | undefined): string {
  return ms === undefined ? 'never' : formatDuration(ms);
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** SVG coordinates to a tenth of a pixel: finer is invisible and only bloats the page. */
function coord(v: number): string {
  const rounded = Math.round(v * 10) / 10;
  return String(Object.is(rounded, -0) ? 0 : rounded);
}

// ---------------------------------------------------------------------------------------------
// Styles

const stylesheet = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d1f23; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 8px; display: flex; align-items: center; gap: 10px; }
h3 { font-size: 14px; margin: 18px 0 6px; color: #333; }
header { margin-bottom: 16px; }
.meta { margin: 0; color: #555; }
.meta .passed { color: #1a7f37; font-weight: 600; }
.meta .failed { color: #c62828; font-weight: 600; }
.meta .failed.none { color: #555; font-weight: 400; }
.sep { color: #aaa; }
.note { background: #fff8e1; border: 1px solid #f0d58c; padding: 6px 10px; border-radius: 4px; }
.muted { color: #777; font-weight: 400; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; margin: 4px 0 8px; }
th, td { border: 1px solid #d0d4da; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; white-space: nowrap; }
table.summary { width: 100%; font-size: 12.5px; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.name { white-space: nowrap; }
tr.figures td:not([rowspan]) { border-bottom-color: #eef0f3; }
tr.replay td { border-top: 0; padding-top: 0; }
.never { color: #c62828; font-weight: 600; }
.conv, .nowrap { white-space: nowrap; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700; }
.badge.pass { background: #dcf5e3; color: #1a7f37; }
.badge.fail { background: #fde2e2; color: #b71c1c; }
section.run { background: #fff; border: 1px solid #d0d4da; border-left: 4px solid #2e9d4f; border-radius: 4px; padding: 16px 18px; margin: 20px 0; }
section.run.fail { border-left-color: #c62828; }
.description { margin: 0 0 10px; color: #333; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 4px 16px; margin: 0 0 8px; }
dl.facts div { min-width: 0; }
dl.facts div.wide { grid-column: 1 / -1; }
dl.facts dt { color: #666; font-size: 12px; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
ul.faults { margin: 6px 0; padding-left: 0; list-style: none; }
ul.faults li { margin: 2px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; opacity: 0.7; }
svg.chart { display: block; max-width: 100%; height: auto; border: 1px solid #e2e5e9; border-radius: 4px; background: #fafbfc; }
table.failures { width: 100%; }
td.message { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
`;
