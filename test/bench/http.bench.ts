// The HTTP front door benchmark (`npm run bench -- http`): what a real `carpool node` process
// adds in front of the upstream on its Anthropic-compatible HTTP endpoint, beside, in the same
// run, the emulator called directly, a bare passthrough proxy (test/bench/passthrough-process.ts:
// the floor under any Node proxy) and the node's own gRPC endpoint.
//  - unary completions (no think time, 16 output tokens) at 500 requests/s offered open loop, each
//    path over one continuous window (60 s; 10 s with --quick), so that a stall every few seconds
//    shows in its tail: p50, p99, p99.9 and max, "added" being the path's percentile minus the
//    direct one and over the proxy; beside them the longest event-loop stall and the GC pause
//    total of the node over the same window (its Prometheus registry, read at the window's start
//    and end), the CPU per completion of the node and of the proxy (from /proc), and the p99 of
//    each second as a sparkline and an SVG chart (the window code is test/bench/unary-window.ts);
//  - streams held by one node over HTTP (one connection each) and over gRPC: resident memory per
//    stream and added time to first token, as in the gateway benchmark.
// The emulator runs on one core, the proxy or the node on the other, the load generator here.
// With HTTP_BENCH_CPU_PROFILE=<dir> the unary node runs with --cpu-prof and its profile's hottest
// functions (from the end of its warm-up on) are printed.
import { Pool } from 'undici';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import type { BenchContext } from './harness.js';
import { type NodeChild, pinning, startEmulatorChild, startNodeChild } from './gateway-processes.js';
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
import {
  baselineWindows,
  grpcSender,
  httpSender,
  machineLoad,
  measureWindow,
  type RateWindows,
  reportRate,
  reportTimeline,
  unaryTokens,
  warmUp,
} from './unary-window.js';

const accounts = 4;
const rate = 500;

async function unary(ctx: BenchContext, profileDir: string | undefined): Promise<RateWindows> {
  const durationS = ctx.quick ? 10 : 60;
  const emulator = await startEmulatorChild({ accounts, outputTokens: unaryTokens, ttftMs: 0, tokensPerSecond: 0 });
  let warmMs = 0;
  let nodePid = 0;
  /** Completions the node served after its HTTP warm-up (the HTTP window, then the gRPC warm-up and window): what its profile covers. */
  let profiled = 0;
  let windows: RateWindows;
  try {
    console.log(
      `unary completions (${unaryTokens} output tokens, no think time; ${pinning()}; one continuous window of ${durationS} s per path at ${rate}/s, open loop):`,
    );
    windows = (await baselineWindows(ctx, emulator, [rate], durationS)).get(rate)!;
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
      await warmUp(ctx, viaHttp, 'through the node over HTTP', () => node.output());
      warmMs = performance.now() - node.spawnedAtMs;
      nodePid = node.pid;
      const viaHttpWindow = await measureWindow(rate, durationS, viaHttp, node.pid, emulator, node);
      windows.set('http', viaHttpWindow);
      const viaGrpc = grpcSender(grpc);
      const grpcWarmUp = await warmUp(ctx, viaGrpc, 'through the node over gRPC', () => node.output());
      const viaGrpcWindow = await measureWindow(rate, durationS, viaGrpc, node.pid, emulator, node);
      windows.set('grpc', viaGrpcWindow);
      profiled = [viaHttpWindow, viaGrpcWindow].reduce((sum, w) => sum + w.run.latenciesMs.length + w.run.failed, grpcWarmUp);
    } finally {
      grpc.close();
      await viaHttpPool.close();
      await node.stop();
    }
  } finally {
    await emulator.stop();
  }
  console.log(`    (${machineLoad()})`);
  const profile = profileDir === undefined ? undefined : mainThreadProfile(profileDir, nodePid);
  if (profile !== undefined) await printProfileSummary(profile, warmMs, 30, profiled);
  return windows;
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
  const windows = await unary(ctx, profileDir === undefined || profileDir === '' ? undefined : profileDir);
  reportRate(rate, windows, 'http');
  reportTimeline('http', rate, windows);
  await streaming(ctx);
}
