// The HTTP front door benchmark (`npm run bench -- http`): what a real `carpool node` process
// adds in front of the upstream on its Anthropic-compatible HTTP endpoint, beside, in the same
// run, the emulator called directly, a bare passthrough proxy (test/bench/passthrough-process.ts:
// the floor under any Node proxy) and the node's own gRPC endpoint.
//  - unary completions (no think time, 16 output tokens) at 500 requests/s offered open loop, each
//    path over one continuous window (60 s; 10 s with --quick), so that a stall every few seconds
//    shows in its tail: p50, p99, p99.9 and max, "added" being the path's percentile minus the
//    direct one; beside them the longest event-loop stall and the GC pause total of the node over
//    the same window (its Prometheus registry, read at the window's start and end), and the CPU
//    per completion of the node and of the proxy (from /proc);
//  - streams held by one node over HTTP (one connection each) and over gRPC: resident memory per
//    stream and added time to first token, as in the gateway benchmark.
// The emulator runs on one core, the proxy or the node on the other, the load generator here.
// With HTTP_BENCH_CPU_PROFILE=<dir> the unary node runs with --cpu-prof and its profile's hottest
// functions (from the end of its warm-up on) are printed.
import { availableParallelism, loadavg } from 'node:os';
import { Pool } from 'undici';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { type BenchContext, report } from './harness.js';
import { type OpenLoopRun, openLoop, percentile, sortedCopy } from './gateway-load.js';
import {
  type EmulatorChild,
  type NodeChild,
  nodeMetricsText,
  ownCpuMs,
  pinning,
  processCpuMs,
  startEmulatorChild,
  startNodeChild,
  startPassthroughChild,
} from './gateway-processes.js';
import { openDirectStream } from './gateway-streams.js';
import { mainThreadProfile, printProfileSummary } from './gateway-profile.js';
import {
  grpcStreamPath,
  type NodeStreamPath,
  reportStreams,
  streamBody,
  streamOpenPerSecond,
  streamPhase,
  streamTokens,
  streamTokensPerSecond,
  streamTtftMs,
} from './stream-phase.js';

const model = 'claude-sonnet-4-6';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const unaryTokens = 16;
const accounts = 4;
const rate = 500;
const unaryBody = JSON.stringify({ model, max_tokens: unaryTokens, messages: [{ role: 'user', content: 'Benchmark question: share a ride to the station?' }] });
const jsonHeaders = { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

const msText = (ms: number): string => `${ms.toFixed(2)} ms`;
const machineLoad = (): string => `machine load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`;

type PathName = 'direct' | 'passthrough' | 'http' | 'grpc';

interface Window {
  readonly run: OpenLoopRun;
  /** CPU ms of the process in front of the emulator (the proxy or the node), and of the emulator. */
  readonly frontCpuMs: number;
  readonly emulatorCpuMs: number;
  readonly ownCpuMs: number;
  /** The node's longest event-loop delay and GC pause total over the window; undefined for paths without a node. */
  readonly stallMs: number | undefined;
  readonly gcMs: number | undefined;
}

/** The sum of a family's samples in a Prometheus exposition (every label set), in its own unit. */
function sampleSum(text: string, name: string): number {
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
 * the path, and of the node (when there is one) its longest event-loop stall and GC time: its
 * registry's event-loop histogram is reset by each scrape, so the scrape before the window starts
 * it and the one after reads its maximum.
 */
async function window(
  durationS: number,
  send: (i: number) => Promise<boolean>,
  front: number,
  emulator: EmulatorChild,
  node: NodeChild | undefined,
): Promise<Window> {
  const before = node === undefined ? undefined : await nodeMetricsText(node);
  const cpu = { own: ownCpuMs(), front: front === 0 ? 0 : processCpuMs(front), emulator: processCpuMs(emulator.pid) };
  const run = await openLoop(rate, rate * durationS, send);
  const after = node === undefined ? undefined : await nodeMetricsText(node);
  const gcSumS = (text: string): number => sampleSum(text, 'nodejs_gc_duration_seconds_sum');
  return {
    run,
    frontCpuMs: front === 0 ? 0 : processCpuMs(front) - cpu.front,
    emulatorCpuMs: processCpuMs(emulator.pid) - cpu.emulator,
    ownCpuMs: ownCpuMs() - cpu.own,
    stallMs: after === undefined ? undefined : sampleSum(after, 'nodejs_eventloop_lag_max_seconds') * 1000,
    gcMs: before === undefined || after === undefined ? undefined : (gcSumS(after) - gcSumS(before)) * 1000,
  };
}

/** An undici pool posting the unary body to `/v1/messages` with `key`; true on a 200 whose JSON parsed. */
function httpSender(pool: Pool, key: (i: number) => string): (i: number) => Promise<boolean> {
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

async function warm(ctx: BenchContext, send: (i: number) => Promise<boolean>, what: string): Promise<void> {
  const count = ctx.quick ? 1_500 : 4_000;
  const run = await openLoop(1_000, count, send);
  if (run.failed > 0) throw new Error(`${run.failed} of ${count} warm-up calls ${what} failed`);
}

async function unary(ctx: BenchContext, profileDir: string | undefined): Promise<Map<PathName, Window>> {
  const durationS = ctx.quick ? 10 : 60;
  const emulator = await startEmulatorChild({ accounts, outputTokens: unaryTokens, ttftMs: 0, tokensPerSecond: 0 });
  const windows = new Map<PathName, Window>();
  const direct = new Pool(emulator.url, { connections: 64 });
  let warmMs = 0;
  let nodePid = 0;
  try {
    console.log(
      `unary completions (${unaryTokens} output tokens, no think time; ${pinning()}; one continuous window of ${durationS} s per path at ${rate}/s, open loop):`,
    );
    const toEmulator = httpSender(direct, (i) => emulator.keys[i % emulator.keys.length]!);
    await warm(ctx, toEmulator, 'to the emulator');
    windows.set('direct', await window(durationS, toEmulator, 0, emulator, undefined));

    // The proxy and the node take turns on the same core, never side by side.
    const proxy = await startPassthroughChild(emulator);
    const viaProxyPool = new Pool(`http://127.0.0.1:${proxy.port}`, { connections: 64 });
    try {
      const viaProxy = httpSender(viaProxyPool, () => 'unused-by-the-proxy');
      await warm(ctx, viaProxy, 'through the passthrough proxy');
      windows.set('passthrough', await window(durationS, viaProxy, proxy.pid, emulator, undefined));
    } finally {
      await viaProxyPool.close();
      await proxy.stop();
    }

    const node = await startNodeChild({
      emulator,
      accountConcurrencyMax: 1_000,
      tenantConcurrencyMax: 10_000,
      tier: 'paid',
      http: true,
      cpuProfileDir: profileDir,
    });
    const viaHttpPool = new Pool(`http://127.0.0.1:${node.httpPort}`, { connections: 64 });
    const grpc = new CarpoolClient({ target: `127.0.0.1:${node.grpcPort}`, apiKey: node.apiKey });
    try {
      const viaHttp = httpSender(viaHttpPool, () => node.apiKey);
      await warm(ctx, viaHttp, 'through the node over HTTP');
      warmMs = performance.now() - node.spawnedAtMs;
      nodePid = node.pid;
      windows.set('http', await window(durationS, viaHttp, node.pid, emulator, node));
      const requestJson = utf8.encode(unaryBody);
      let nextId = 0;
      const viaGrpc = async (): Promise<boolean> => {
        const answer = await grpc.complete({ requestId: `bench-${process.pid}-${++nextId}`, requestJson, anthropicVersion: '', anthropicBeta: '', user: '' });
        if (!answer.ok) return false;
        JSON.parse(fromUtf8.decode(answer.value.messageJson));
        return true;
      };
      await warm(ctx, viaGrpc, 'through the node over gRPC');
      windows.set('grpc', await window(durationS, viaGrpc, node.pid, emulator, node));
    } finally {
      grpc.close();
      await viaHttpPool.close();
      await node.stop();
    }
  } finally {
    await direct.close();
    await emulator.stop();
  }
  console.log(`    (${machineLoad()})`);
  const profile = profileDir === undefined ? undefined : mainThreadProfile(profileDir, nodePid);
  if (profile !== undefined) await printProfileSummary(profile, warmMs, 30);
  return windows;
}

function reportUnary(windows: ReadonlyMap<PathName, Window>): void {
  const of = (path: PathName): Window => windows.get(path) as Window;
  const sorted = new Map([...windows].map(([path, w]) => [path, sortedCopy(w.run.latenciesMs)]));
  const lat = (path: PathName, p: number): number => percentile(sorted.get(path) as number[], p);
  const tail = (path: PathName): string => {
    const w = of(path);
    const all = sorted.get(path) as number[];
    const node = w.stallMs === undefined ? '' : `; node: longest event-loop stall ${msText(w.stallMs)}, GC ${msText(w.gcMs ?? 0)} in the window`;
    return `${path} p50 ${msText(lat(path, 50))}, p99 ${msText(lat(path, 99))}, p99.9 ${msText(lat(path, 99.9))}, max ${msText(all.at(-1) ?? 0)} (${all.length} answered, ${w.run.failed} failed, ${w.run.skipped} skipped, ${w.run.abandoned} unanswered)${node}`;
  };
  const direct = `direct p50 ${msText(lat('direct', 50))}, p99 ${msText(lat('direct', 99))}, p99.9 ${msText(lat('direct', 99.9))}`;
  for (const path of ['http', 'grpc', 'passthrough'] as const) {
    const targeted = path === 'http';
    const label = path === 'http' ? 'HTTP front door' : path === 'grpc' ? 'gRPC endpoint' : 'passthrough proxy';
    report(
      `  ${label}: added latency p50 at ${rate}/s`,
      lat(path, 50) - lat('direct', 50),
      'ms',
      targeted ? '≤ 0.5 ms' : 'reported',
      lat(path, 50) - lat('direct', 50) <= 0.5,
      { baseline: `${tail(path)}; ${direct}` },
    );
    report(
      `  ${label}: added latency p99 at ${rate}/s`,
      lat(path, 99) - lat('direct', 99),
      'ms',
      targeted ? '≤ 3 ms' : 'reported',
      lat(path, 99) - lat('direct', 99) <= 3,
      { baseline: `over one continuous window; ${direct}` },
    );
  }
  const perCall = (w: Window, cpuMs: number): number => (cpuMs * 1000) / Math.max(1, w.run.latenciesMs.length);
  const proxyUs = perCall(of('passthrough'), of('passthrough').frontCpuMs);
  for (const path of ['http', 'grpc'] as const) {
    const nodeUs = perCall(of(path), of(path).frontCpuMs);
    const targeted = path === 'http';
    report(
      `  node CPU per completion over ${path === 'http' ? 'HTTP' : 'gRPC'}`,
      nodeUs,
      `µs (${(nodeUs / proxyUs).toFixed(2)}× the proxy)`,
      targeted ? '≤ 1.5× the passthrough proxy' : 'reported',
      nodeUs <= 1.5 * proxyUs,
      {
        baseline: `the passthrough proxy spent ${proxyUs.toFixed(0)} µs per request in the same run; the emulator ${perCall(of('direct'), of('direct').emulatorCpuMs).toFixed(0)} µs per direct request; load generator ${perCall(of(path), of(path).ownCpuMs).toFixed(0)} µs per call`,
      },
    );
  }
}

/** Streams through the node's HTTP front door: one keep-alive connection each, as SSE clients have. */
function httpStreamPath(node: NodeChild, connections: number): NodeStreamPath {
  const pool = new Pool(`http://127.0.0.1:${node.httpPort}`, { connections });
  return {
    open: (_id, maxTokens) => openDirectStream(pool, node.apiKey, streamBody(maxTokens)),
    close: () => pool.destroy(),
  };
}

async function streaming(ctx: BenchContext): Promise<void> {
  const emulator = await startEmulatorChild({ accounts, outputTokens: streamTokens, ttftMs: streamTtftMs, tokensPerSecond: streamTokensPerSecond });
  const heldCount = ctx.quick ? 1_000 : 5_000;
  const fewCount = ctx.quick ? 200 : 500;
  try {
    console.log(
      `streams held by one node (emulator: first token after ${streamTtftMs} ms, then a delta a second for ${streamTokens / streamTokensPerSecond} s; opened at ${streamOpenPerSecond.toLocaleString('en-US')}/s; vip tenant):`,
    );
    // As in the gateway benchmark, the direct baseline is the emulator with the smaller phase's
    // count of streams held, opened interleaved with that phase's streams through the node.
    const { node: few, direct } = await streamPhase(emulator, fewCount, fewCount, 'http-few', (node) => httpStreamPath(node, fewCount + 256), { http: true });
    const { node: many } = await streamPhase(emulator, heldCount, 0, 'http-many', (node) => httpStreamPath(node, heldCount + 256), { http: true });
    const { node: manyGrpc } = await streamPhase(emulator, heldCount, 0, 'grpc-many', grpcStreamPath);
    console.log(`    (${machineLoad()})`);
    reportStreams(few, fewCount, direct, fewCount, false, 'HTTP');
    reportStreams(many, heldCount, direct, fewCount, true, 'HTTP');
    reportStreams(manyGrpc, heldCount, direct, fewCount, false, 'gRPC');
  } finally {
    await emulator.stop();
  }
}

export async function httpBench(ctx: BenchContext): Promise<void> {
  console.log('\n== http ==');
  const profileDir = process.env.HTTP_BENCH_CPU_PROFILE;
  reportUnary(await unary(ctx, profileDir === undefined || profileDir === '' ? undefined : profileDir));
  await streaming(ctx);
}
