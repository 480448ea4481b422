// The gateway benchmark (`npm run bench -- gateway`): what a real `carpool node` process adds in
// front of the upstream, each figure beside the same work sent straight at the emulator and
// through a bare passthrough proxy (test/bench/passthrough-process.ts: the floor under any Node
// proxy) in the same run.
//  - unary completions (emulator with no think time, 16 output tokens) at 500 and 2,500 requests/s
//    offered open loop, each path and rate over one continuous window (60 s; 10 s with --quick),
//    so that a stall every few seconds shows in the tail: p50, p99, p99.9 and max, "added" over
//    the direct path and over the proxy, completions/s, the node's longest event-loop stall and GC
//    pause total over the same window, CPU per completion of the node beside the proxy's (from
//    /proc), and the p99 of each second as a sparkline and an SVG chart (test/bench/unary-window.ts);
//  - streams held at once by one node (the emulator trickles one delta a second, so they stay
//    open): resident memory per stream over the node's idle RSS, and time to first token p99
//    minus the direct path's at the same count of streams.
// The emulator and the proxy or the node each run in a process of their own, pinned to a core
// (this VM has two; the proxy and the node take turns on theirs), the load generator in this one.
// With GATEWAY_BENCH_CPU_PROFILE=<dir> the unary node is run with --cpu-prof and its profile's
// hottest functions (from the end of its warm-up on) are printed.
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import type { BenchContext } from './harness.js';
import { pinning, startEmulatorChild, startNodeChild } from './gateway-processes.js';
import { mainThreadProfile, printProfileSummary } from './gateway-profile.js';
import {
  grpcStreamPath,
  reportStreams,
  streamChannels,
  streamOpenPerSecond,
  streamPhase,
  streamTokens,
  streamTokensPerSecond,
  streamTtftMs,
} from './stream-phase.js';
import { baselineWindows, grpcSender, machineLoad, measureWindow, reportRate, reportTimeline, unaryTokens, warmUp } from './unary-window.js';

const accounts = 4;
/** Requests per second offered: issue 18's 500/s for the tail, and 2,500/s for throughput. */
const rates = [500, 2_500];

// ---- Unary ----

async function unary(ctx: BenchContext, profileDir: string | undefined): Promise<void> {
  const durationS = ctx.quick ? 10 : 60;
  const emulator = await startEmulatorChild({ accounts, outputTokens: unaryTokens, ttftMs: 0, tokensPerSecond: 0 });
  /** Milliseconds from the node's start to its first measured window: what its profile skips. */
  let warmMs = 0;
  let nodePid = 0;
  /** Completions the node served after its warm-up: what its profile covers. */
  let profiled = 0;
  try {
    console.log(
      `unary completions (${unaryTokens} output tokens, no think time; ${accounts} accounts; ${pinning()}; one continuous window of ${durationS} s per path and rate, open loop):`,
    );
    const windows = await baselineWindows(ctx, emulator, rates, durationS);
    const node = await startNodeChild({ emulator, accountConcurrencyMax: 1_000, tenantConcurrencyMax: 10_000, tier: 'paid', cpuProfileDir: profileDir });
    const client = new CarpoolClient({ target: `127.0.0.1:${node.grpcPort}`, apiKey: node.apiKey });
    try {
      const viaGrpc = grpcSender(client);
      await warmUp(ctx, viaGrpc, 'through the node over gRPC', () => node.output());
      warmMs = performance.now() - node.spawnedAtMs;
      nodePid = node.pid;
      for (const rate of rates) {
        const window = await measureWindow(rate, durationS, viaGrpc, node.pid, emulator, node);
        windows.get(rate)!.set('grpc', window);
        profiled += window.run.latenciesMs.length + window.run.failed;
      }
    } finally {
      client.close();
      await node.stop();
    }
    console.log(`    (${machineLoad()})`);
    for (const rate of rates) {
      reportRate(rate, windows.get(rate)!, 'grpc');
      reportTimeline('gateway', rate, windows.get(rate)!);
    }
  } finally {
    await emulator.stop();
  }
  const profile = profileDir === undefined ? undefined : mainThreadProfile(profileDir, nodePid);
  if (profileDir !== undefined && profile === undefined) console.log(`  (no .cpuprofile in ${profileDir}: the node did not exit cleanly)`);
  if (profile !== undefined) await printProfileSummary(profile, warmMs, 30, profiled);
}

// ---- Streams ----

async function streaming(ctx: BenchContext): Promise<void> {
  const emulator = await startEmulatorChild({ accounts, outputTokens: streamTokens, ttftMs: streamTtftMs, tokensPerSecond: streamTokensPerSecond });
  const heldCount = ctx.quick ? 1_000 : 5_000;
  const fewCount = ctx.quick ? 200 : 500;
  try {
    console.log(
      `streams held by one node (emulator: first token after ${streamTtftMs} ms, then a delta a second for ${streamTokens / streamTokensPerSecond} s; opened at ${streamOpenPerSecond.toLocaleString('en-US')}/s per path over ${streamChannels} gRPC connections; vip tenant):`,
    );
    // The direct baseline is the emulator's own time to first token with as many streams held as
    // the smaller phase, opened interleaved with that phase's streams through the node. It is
    // also what the 5,000-stream phase is compared with: the emulator refuses past 4,096
    // responses at once, so it cannot hold 5,000 streams itself.
    const { node: few, direct } = await streamPhase(emulator, fewCount, fewCount, 'few', grpcStreamPath);
    const { node: many } = await streamPhase(emulator, heldCount, 0, 'many', grpcStreamPath);
    console.log(`    (${machineLoad()})`);
    reportStreams(few, fewCount, direct, fewCount, false, 'node');
    reportStreams(many, heldCount, direct, fewCount, true, 'node');
  } finally {
    await emulator.stop();
  }
}

export async function gatewayBench(ctx: BenchContext): Promise<void> {
  console.log('\n== gateway ==');
  const profileDir = process.env.GATEWAY_BENCH_CPU_PROFILE;
  await unary(ctx, profileDir === undefined || profileDir === '' ? undefined : profileDir);
  await streaming(ctx);
}
