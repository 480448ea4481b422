// Unary load over one continuous window per path, for the gateway and HTTP benchmarks: a stall
// every few seconds shows in a window's tail and in its p99 per second, where interleaved short
// slices would mostly miss it (STYLE.md: a tail is measured over at least 60 s of continuous
// load). Each window is one open-loop run at a fixed rate through one path: the emulator called
// directly, the bare passthrough proxy (test/bench/passthrough-process.ts: the floor under any
// Node proxy) or a carpool node; with it the CPU of the processes in the path (from /proc) and,
// for a node, its longest event-loop stall and GC pause total over the same window (its
// Prometheus registry, read at the window's start and end). The report prints every path beside
// the direct one and the proxy, the issue 18 targets on the node's figures, and the p99 of each
// second as a sparkline and an SVG chart.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { type BenchContext, report } from './harness.js';
import { type OpenLoopRun, openLoop, percentile, sortedCopy } from './gateway-load.js';
import { type EmulatorChild, type NodeChild, nodeMetricsText, ownCpuMs, processCpuMs, startPassthroughChild } from './gateway-processes.js';
import { finiteRange, perSecondPercentile, sparkline, timelineSvg, worstSecond } from './latency-timeline.js';

/** Output tokens of every unary answer: short, so the figure is the request path, not bytes. */
export const unaryTokens = 16;
export const unaryBody = JSON.stringify({
  model: 'claude-sonnet-4-6',
  max_tokens: unaryTokens,
  messages: [{ role: 'user', content: 'Benchmark question: share a ride to the station?' }],
});
const jsonHeaders = { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * The machine's 1-minute load average: on two cores, anything much above 2 (the three processes
 * of the benchmark) means other work shared the cores and the wall-clock figures are inflated.
 */
export const machineLoad = (): string => `machine load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`;

/** The paths a window goes through: the three baselines (direct, the HTTP and the gRPC passthrough), and the node's endpoints. */
export type PathName = 'direct' | 'passthrough' | 'grpcPassthrough' | 'grpc' | 'http';
const labels: Record<PathName, string> = {
  direct: 'direct to the emulator',
  passthrough: 'bare passthrough proxy',
  grpcPassthrough: 'bare gRPC proxy',
  grpc: 'node over gRPC',
  http: 'node over HTTP',
};

export interface UnaryWindow {
  readonly rate: number;
  readonly durationS: number;
  readonly run: OpenLoopRun;
  /** CPU ms of the process in front of the emulator (the proxy or the node; 0 for the direct path), and of the emulator. */
  readonly frontCpuMs: number;
  readonly emulatorCpuMs: number;
  /** CPU ms of this process, the load generator. */
  readonly ownCpuMs: number;
  /** The node's longest event-loop delay and GC pause total over the window; undefined for paths without a node. */
  readonly stallMs: number | undefined;
  readonly gcMs: number | undefined;
}

/** The windows of one rate, by path; `direct`, `passthrough` and `grpcPassthrough` are always there. */
export type RateWindows = Map<PathName, UnaryWindow>;

/** The sum of a family's samples in a Prometheus exposition (every label set), in its own unit. */
export function sampleSum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * One continuous window of `durationS` at `rate` through `send`, with the CPU of the processes in
 * the path (`frontPid` 0: none in front of the emulator), and of the node (when there is one) its
 * longest event-loop stall and GC time: its registry's event-loop histogram is reset by each
 * scrape, so the scrape before the window starts it and the one after reads its maximum.
 */
export async function measureWindow(
  rate: number,
  durationS: number,
  send: (i: number) => Promise<boolean>,
  frontPid: number,
  emulator: EmulatorChild,
  node: NodeChild | undefined,
): Promise<UnaryWindow> {
  const before = node === undefined ? undefined : await nodeMetricsText(node);
  const cpu = { own: ownCpuMs(), front: frontPid === 0 ? 0 : processCpuMs(frontPid), emulator: processCpuMs(emulator.pid) };
  const run = await openLoop(rate, rate * durationS, send);
  const after = node === undefined ? undefined : await nodeMetricsText(node);
  const gcSumS = (text: string): number => sampleSum(text, 'nodejs_gc_duration_seconds_sum');
  return {
    rate,
    durationS,
    run,
    frontCpuMs: frontPid === 0 ? 0 : processCpuMs(frontPid) - cpu.front,
    emulatorCpuMs: processCpuMs(emulator.pid) - cpu.emulator,
    ownCpuMs: ownCpuMs() - cpu.own,
    stallMs: after === undefined ? undefined : sampleSum(after, 'nodejs_eventloop_lag_max_seconds') * 1000,
    gcMs: before === undefined || after === undefined ? undefined : (gcSumS(after) - gcSumS(before)) * 1000,
  };
}

/** An undici pool posting the unary body to `/v1/messages` with `key`; true on a 200 whose JSON parsed. */
export function httpSender(pool: Pool, key: (i: number) => string): (i: number) => Promise<boolean> {
  return async (i) => {
    const res = await pool.request({ method: 'POST', path: '/v1/messages', headers: { ...jsonHeaders, 'x-api-key': key(i) }, body: unaryBody });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return false;
    }
    await res.body.json();
    return true;
  };
}

/** The unary body through a node's gRPC endpoint, ending, as the HTTP paths do, with the message parsed. */
export function grpcSender(client: CarpoolClient): () => Promise<boolean> {
  const requestJson = utf8.encode(unaryBody);
  let nextId = 0;
  return async () => {
    const answer = await client.complete({ requestId: `bench-${process.pid}-${++nextId}`, requestJson, anthropicVersion: '', anthropicBeta: '', user: '' });
    if (!answer.ok) return false;
    JSON.parse(fromUtf8.decode(answer.value.messageJson));
    return true;
  };
}

/**
 * Warms the JIT of the processes in a path and opens its connections: 1,000/s for 1.5 s (4 s in
 * a full run). Returns the completions it sent, every one answered.
 */
export async function warmUp(ctx: BenchContext, send: (i: number) => Promise<boolean>, what: string, output = (): string => ''): Promise<number> {
  const count = ctx.quick ? 1_500 : 4_000;
  const run = await openLoop(1_000, count, send);
  if (run.failed > 0) throw new Error(`${run.failed} of ${count} warm-up calls ${what} failed\n${output()}`);
  return run.latenciesMs.length;
}

/**
 * The baselines at every rate: a window per rate straight at the emulator, then one per rate
 * through the bare HTTP passthrough proxy (the floor issue 18's CPU target is read against), then
 * one per rate through the bare gRPC proxy (grpc-js with the node's contract and options: the
 * floor under the node's gRPC endpoint). Each proxy is stopped afterwards so that it never shares
 * its core with what follows.
 */
export async function baselineWindows(
  ctx: BenchContext,
  emulator: EmulatorChild,
  rates: readonly number[],
  durationS: number,
): Promise<Map<number, RateWindows>> {
  const windows = new Map<number, RateWindows>(rates.map((rate) => [rate, new Map()]));
  const direct = new Pool(emulator.url, { connections: 64 });
  try {
    const toEmulator = httpSender(direct, (i) => emulator.keys[i % emulator.keys.length]!);
    await warmUp(ctx, toEmulator, 'to the emulator');
    for (const rate of rates) windows.get(rate)!.set('direct', await measureWindow(rate, durationS, toEmulator, 0, emulator, undefined));
  } finally {
    await direct.close();
  }
  const proxy = await startPassthroughChild(emulator, 'http');
  const viaProxyPool = new Pool(`http://127.0.0.1:${proxy.port}`, { connections: 64 });
  try {
    const viaProxy = httpSender(viaProxyPool, () => 'unused-by-the-proxy');
    await warmUp(ctx, viaProxy, 'through the passthrough proxy');
    for (const rate of rates) windows.get(rate)!.set('passthrough', await measureWindow(rate, durationS, viaProxy, proxy.pid, emulator, undefined));
  } finally {
    await viaProxyPool.close();
    await proxy.stop();
  }
  const grpcProxy = await startPassthroughChild(emulator, 'grpc');
  const grpcClient = new CarpoolClient({ target: `127.0.0.1:${grpcProxy.port}`, apiKey: 'unused-by-the-proxy' });
  try {
    const viaGrpcProxy = grpcSender(grpcClient);
    await warmUp(ctx, viaGrpcProxy, 'through the gRPC passthrough proxy');
    for (const rate of rates) windows.get(rate)!.set('grpcPassthrough', await measureWindow(rate, durationS, viaGrpcProxy, grpcProxy.pid, emulator, undefined));
  } finally {
    grpcClient.close();
    await grpcProxy.stop();
  }
  return windows;
}

// ---- Report ----

const msText = (ms: number): string => `${ms.toFixed(2)} ms`;
const rateText = (rate: number): string => `${rate.toLocaleString('en-US')}/s`;

interface PathFigures {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly answered: number;
  /** Answered per second from the first request sent to the last answer. */
  readonly perSecond: number;
  readonly lagP99: number;
  /** CPU µs of the process in front of the emulator per answered call. */
  readonly frontUs: number;
  readonly problems: string;
}

function figuresOf(w: UnaryWindow): PathFigures {
  const sorted = sortedCopy(w.run.latenciesMs);
  const answered = sorted.length;
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.at(-1) ?? Number.NaN,
    answered,
    perSecond: (answered * 1000) / w.run.elapsedMs,
    lagP99: percentile(sortedCopy(w.run.lagsMs), 99),
    frontUs: (w.frontCpuMs * 1000) / Math.max(1, answered),
    problems: `${w.run.failed} failed, ${w.run.skipped} skipped, ${w.run.abandoned} unanswered`,
  };
}

const signed = (ms: number): string => `${ms >= 0 ? '+' : ''}${ms.toFixed(2)}`;
const addedText = (f: PathFigures, base: PathFigures): string =>
  [f.p50 - base.p50, f.p99 - base.p99, f.p999 - base.p999, f.max - base.max].map(signed).join(' / ');

/** One line per path: its percentiles, what it adds over the direct path and over the proxy, its rate and CPU. */
function printTable(rate: number, windows: RateWindows, figures: ReadonlyMap<PathName, PathFigures>): void {
  const direct = figures.get('direct')!;
  const proxy = figures.get('passthrough')!;
  const { durationS } = windows.get('direct')!;
  console.log(`  at ${rateText(rate)} offered, one continuous window of ${durationS} s per path (ms; added = p50 / p99 / p99.9 / max minus the baseline's):`);
  for (const [path, f] of figures) {
    // The direct path is the floor of all others; the proxies' figures are only read against it.
    const over = (base: PathFigures, name: string): string =>
      f === base || (base === proxy && (path === 'direct' || path === 'grpcPassthrough')) ? '' : `; added over ${name} ${addedText(f, base)}`;
    const cpu =
      path === 'direct'
        ? `emulator ${((windows.get(path)!.emulatorCpuMs * 1000) / Math.max(1, f.answered)).toFixed(0)} µs CPU per call`
        : `${f.frontUs.toFixed(0)} µs CPU per completion`;
    console.log(
      `    ${labels[path].padEnd(23)} p50 ${f.p50.toFixed(2)}, p99 ${f.p99.toFixed(2)}, p99.9 ${f.p999.toFixed(2)}, max ${f.max.toFixed(2)}${over(direct, 'direct')}${over(proxy, 'the proxy')}`,
    );
    console.log(`    ${''.padEnd(23)} ${f.perSecond.toFixed(0)} completions/s (${f.problems}), send lag p99 ${f.lagP99.toFixed(2)}, ${cpu}`);
  }
}

/** The issue 18 targets of a node path at a rate; a bound left out is reported only. */
interface Targets {
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly stallMs?: number;
  /** Node CPU per completion over the proxy's. */
  readonly cpuRatio?: number;
  /** Completions per second over the rate offered. */
  readonly completionsShare?: number;
}

function targetsAt(rate: number): Targets {
  return rate <= 500 ? { p50Ms: 0.5, p99Ms: 3, stallMs: 5, cpuRatio: 1.5 } : { p99Ms: 10, cpuRatio: 1.5, completionsShare: 0.99 };
}

/** The figures of node path `path` as report lines, with the targets when it is the `targeted` one. */
function reportNodePath(rate: number, path: PathName, windows: RateWindows, figures: ReadonlyMap<PathName, PathFigures>, targeted: boolean): void {
  const f = figures.get(path)!;
  const direct = figures.get('direct')!;
  const proxy = figures.get('passthrough')!;
  const w = windows.get(path)!;
  const t: Targets = targeted ? targetsAt(rate) : {};
  const name = `  ${labels[path]} at ${rateText(rate)}`;
  const goal = (bound: number | undefined, text: string): string => (bound === undefined ? 'reported' : text);
  const addedP50 = f.p50 - direct.p50;
  report(`${name}: added p50 over direct`, addedP50, 'ms', goal(t.p50Ms, `≤ ${t.p50Ms} ms`), addedP50 <= (t.p50Ms ?? Infinity), {
    baseline: `node p50 ${msText(f.p50)}, direct ${msText(direct.p50)}, proxy ${msText(proxy.p50)} (added over the proxy ${signed(f.p50 - proxy.p50)} ms)`,
  });
  const addedP99 = f.p99 - direct.p99;
  report(`${name}: added p99 over direct`, addedP99, 'ms', goal(t.p99Ms, `≤ ${t.p99Ms} ms`), addedP99 <= (t.p99Ms ?? Infinity), {
    baseline: `node p99 ${msText(f.p99)}, direct ${msText(direct.p99)}, proxy ${msText(proxy.p99)} (added over the proxy ${signed(f.p99 - proxy.p99)} ms); p99.9 ${msText(f.p999)}, max ${msText(f.max)}`,
  });
  const stallMs = w.stallMs ?? Number.NaN;
  report(`${name}: longest event-loop stall`, stallMs, 'ms', goal(t.stallMs, `≤ ${t.stallMs} ms`), stallMs <= (t.stallMs ?? Infinity), {
    baseline: `GC pauses ${msText(w.gcMs ?? Number.NaN)} in total over the same window of ${(w.run.elapsedMs / 1000).toFixed(1)} s (prom-client's 10 ms event-loop sampling)`,
  });
  const ratio = f.frontUs / proxy.frontUs;
  report(
    `${name}: node CPU per completion`,
    f.frontUs,
    `µs (${ratio.toFixed(2)}× the proxy)`,
    goal(t.cpuRatio, `≤ ${t.cpuRatio}× the passthrough proxy`),
    ratio <= (t.cpuRatio ?? Infinity),
    {
      baseline: `the proxy ${proxy.frontUs.toFixed(0)} µs per completion at the same rate; the emulator ${((windows.get('direct')!.emulatorCpuMs * 1000) / Math.max(1, direct.answered)).toFixed(0)} µs per direct call; load generator ${((w.ownCpuMs * 1000) / Math.max(1, f.answered)).toFixed(0)} µs per call`,
    },
  );
  // The node's gRPC endpoint beside the same front end with nothing behind it: what grpc-js and
  // HTTP/2 cost here before any feature, itself a multiple of the HTTP proxy's.
  const grpcProxy = figures.get('grpcPassthrough');
  if (path === 'grpc' && grpcProxy !== undefined) {
    report(`${name}: node CPU per completion over the bare gRPC proxy's`, f.frontUs / grpcProxy.frontUs, '×', 'reported', true, {
      baseline: `the bare gRPC proxy ${grpcProxy.frontUs.toFixed(0)} µs per completion, ${(grpcProxy.frontUs / proxy.frontUs).toFixed(2)}× the HTTP proxy's; its p50 ${msText(grpcProxy.p50)}, p99 ${msText(grpcProxy.p99)} (the node adds ${signed(f.p50 - grpcProxy.p50)} / ${signed(f.p99 - grpcProxy.p99)} ms over it)`,
    });
  }
  const share = t.completionsShare;
  report(`${name}: completions/s`, f.perSecond, '/s', goal(share, `≥ ${rateText(rate * (share ?? 1))} (99% of offered)`), f.perSecond >= rate * (share ?? 0), {
    baseline: `${f.answered} answered (${f.problems}); direct ${direct.perSecond.toFixed(0)}/s, proxy ${proxy.perSecond.toFixed(0)}/s`,
  });
}

/** Every figure of one rate: the table of all paths, then the node paths' lines, the targets on `targeted`'s. */
export function reportRate(rate: number, windows: RateWindows, targeted: PathName): void {
  const figures = new Map([...windows].map(([path, w]) => [path, figuresOf(w)]));
  printTable(rate, windows, figures);
  for (const path of windows.keys()) if (path === 'grpc' || path === 'http') reportNodePath(rate, path, windows, figures, path === targeted);
}

/**
 * The p99 of each second of every path's window at `rate`: a sparkline per path with its worst
 * second, and an SVG chart written to `BENCH_REPORT_DIR` (the system's temporary folder when unset).
 */
export function reportTimeline(suite: string, rate: number, windows: RateWindows): void {
  const series = [...windows].map(([path, w]) => ({ name: labels[path], valuesMs: perSecondPercentile(w.run.finishedAtMs, w.run.latenciesMs, 99) }));
  const { low, high } = finiteRange(series.map((s) => s.valuesMs));
  console.log(`  p99 per second at ${rateText(rate)} (a character a second, log scale from ▁ ${msText(low)} to █ ${msText(high)}; · no answer that second):`);
  for (const s of series) {
    const worst = worstSecond(s.valuesMs);
    const worstText = worst === undefined ? 'no answers' : `worst second ${worst}: ${msText(s.valuesMs[worst]!)}`;
    console.log(`    ${s.name.padEnd(23)} ${sparkline(s.valuesMs, low, high)}  ${worstText}`);
  }
  const dir = process.env.BENCH_REPORT_DIR || tmpdir();
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `carpool-bench-${suite}-p99-per-second-${rate}.svg`);
  writeFileSync(path, timelineSvg(`${suite} benchmark: p99 per second at ${rateText(rate)} offered (open loop, unary)`, series));
  console.log(`    chart: ${path}`);
}
