// The gateway benchmark (`npm run bench -- gateway`): what a real `carpool node` process adds in
// front of the upstream, each figure beside the same work sent straight at the emulator in the
// same run.
//  - unary completions (emulator with no think time, 16 output tokens): latency p50 and p99 of
//    both paths at 500 and 2,000 requests/s offered open-loop, in interleaved slices so that the
//    machine's drift bills both alike; "added" is the gateway's percentile minus the direct one;
//  - CPU per completion in the node process, from /proc over the gateway slices;
//  - streams held at once by one node (the emulator trickles one delta a second, so they stay
//    open): resident memory per stream over the node's idle RSS, and time to first token p99
//    minus the direct path's at the same count of streams.
// The emulator and the node each run in a process of their own, pinned to a core (this VM has
// two), the load generator in this one. With GATEWAY_BENCH_CPU_PROFILE=<dir> the unary node is
// run with --cpu-prof and its profile's hottest functions are printed.
import { availableParallelism, loadavg } from 'node:os';
import { Pool } from 'undici';
import { CarpoolClient } from '../../src/net/grpc/carpool-client.js';
import { type BenchContext, report } from './harness.js';
import { type OpenLoopRun, openLoop, percentile, sortedCopy } from './gateway-load.js';
import { type NodeChild, ownCpuMs, pinning, processCpuMs, startEmulatorChild, startNodeChild } from './gateway-processes.js';
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

const model = 'claude-sonnet-4-6';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
/** Output tokens of every unary answer: short, so the figure is the request path, not bytes. */
const unaryTokens = 16;
const accounts = 4;

function body(maxTokens: number, stream: boolean): string {
  return JSON.stringify({ model, max_tokens: maxTokens, stream, messages: [{ role: 'user', content: 'Benchmark question: share a ride to the station?' }] });
}

const msText = (ms: number): string => `${ms.toFixed(2)} ms`;
const pct = (share: number): string => `${Math.round(share * 100)}%`;
/**
 * The machine's 1-minute load average: on two cores, anything much above 2 (the three processes
 * of the benchmark) means other work shared the cores and the wall-clock figures are inflated.
 */
const machineLoad = (): string => `machine load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`;

// ---- Unary ----

interface PathTotals {
  latenciesMs: number[];
  lagsMs: number[];
  failed: number;
  skipped: number;
  abandoned: number;
  elapsedMs: number;
  ownCpuMs: number;
  emulatorCpuMs: number;
  nodeCpuMs: number;
}

const emptyTotals = (): PathTotals => ({
  latenciesMs: [],
  lagsMs: [],
  failed: 0,
  skipped: 0,
  abandoned: 0,
  elapsedMs: 0,
  ownCpuMs: 0,
  emulatorCpuMs: 0,
  nodeCpuMs: 0,
});

function add(totals: PathTotals, run: OpenLoopRun, cpu: { own: number; emulator: number; node: number }): void {
  for (const value of run.latenciesMs) totals.latenciesMs.push(value);
  for (const value of run.lagsMs) totals.lagsMs.push(value);
  totals.failed += run.failed;
  totals.skipped += run.skipped;
  totals.abandoned += run.abandoned;
  totals.elapsedMs += run.elapsedMs;
  totals.ownCpuMs += cpu.own;
  totals.emulatorCpuMs += cpu.emulator;
  totals.nodeCpuMs += cpu.node;
}

async function unary(ctx: BenchContext, profileDir: string | undefined): Promise<void> {
  const emulator = await startEmulatorChild({ accounts, outputTokens: unaryTokens, ttftMs: 0, tokensPerSecond: 0 });
  let node: NodeChild | undefined;
  let client: CarpoolClient | undefined;
  /** Milliseconds from the node's start to the first measured slice: what its profile skips. */
  let warmMs = 0;
  let nodePid = 0;
  const pool = new Pool(emulator.url, { connections: 64 });
  try {
    node = await startNodeChild({ emulator, accountConcurrencyMax: 1_000, tenantConcurrencyMax: 10_000, tier: 'paid', cpuProfileDir: profileDir });
    const gatewayClient = new CarpoolClient({ target: `127.0.0.1:${node.grpcPort}`, apiKey: node.apiKey });
    client = gatewayClient;
    const requestJson = utf8.encode(body(unaryTokens, false));
    const directBody = body(unaryTokens, false);
    let nextId = 0;
    // Both paths end with the message parsed, as a caller would have it.
    const viaGateway = async (): Promise<boolean> => {
      const answer = await gatewayClient.complete({ requestId: `bench-${++nextId}`, requestJson, anthropicVersion: '', anthropicBeta: '', user: '' });
      if (!answer.ok) return false;
      JSON.parse(fromUtf8.decode(answer.value.messageJson));
      return true;
    };
    const direct = async (i: number): Promise<boolean> => {
      const headers = { 'x-api-key': emulator.keys[i % emulator.keys.length]!, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
      const res = await pool.request({ method: 'POST', path: '/v1/messages', headers, body: directBody });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return false;
      }
      await res.body.json();
      return true;
    };

    // Warm up the JIT of all three processes and open the connections.
    const warmCount = ctx.quick ? 1_500 : 4_000;
    const warm = await openLoop(1_000, warmCount, viaGateway);
    await openLoop(1_000, warmCount, direct);
    if (warm.failed > 0) throw new Error(`${warm.failed} of ${warmCount} warm-up calls through the gateway failed:\n${node.output()}`);

    // The node's own background (mesh ticks, timers) with no load, to read the figures against,
    // after a second for the warm-up's tail (connections closing, garbage) to settle.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const idleMs = ctx.quick ? 1_000 : 2_000;
    const idleBefore = processCpuMs(node.pid);
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const idleCpuPerSecond = ((processCpuMs(node.pid) - idleBefore) * 1000) / idleMs;

    // One call at a time, interleaved blocks: the path's own latency with no queue in front of it.
    const sequential = { gateway: [] as number[], direct: [] as number[] };
    const blocks = ctx.quick ? 5 : 10;
    const block = 20;
    for (let b = 0; b < blocks; b++) {
      for (const path of b % 2 === 0 ? (['direct', 'gateway'] as const) : (['gateway', 'direct'] as const)) {
        for (let i = 0; i < block; i++) {
          const start = performance.now();
          const ok = await (path === 'gateway' ? viaGateway() : direct(i));
          if (ok) sequential[path].push(performance.now() - start);
        }
      }
    }

    const perPathMs = ctx.quick ? 1_500 : 5_000;
    const sliceMs = ctx.quick ? 500 : 1_000;
    const rounds = perPathMs / sliceMs;
    console.log(
      `unary completions (${unaryTokens} output tokens, no think time; ${accounts} accounts; ${pinning()}; ${rounds} interleaved slices of ${sliceMs} ms per path and rate, open loop):`,
    );
    const seqGateway = sortedCopy(sequential.gateway);
    const seqDirect = sortedCopy(sequential.direct);
    report('  added latency p50, one call at a time', percentile(seqGateway, 50) - percentile(seqDirect, 50), 'ms', 'reported', true, {
      baseline: `gateway p50 ${msText(percentile(seqGateway, 50))}, p99 ${msText(percentile(seqGateway, 99))}; direct p50 ${msText(percentile(seqDirect, 50))}, p99 ${msText(percentile(seqDirect, 99))} (${seqGateway.length} and ${seqDirect.length} calls in interleaved blocks of ${block})`,
    });
    nodePid = node.pid;
    warmMs = performance.now() - node.spawnedAtMs;
    for (const rate of [500, 2_000]) {
      const totals = { gateway: emptyTotals(), direct: emptyTotals() };
      const count = (rate * sliceMs) / 1000;
      for (let round = 0; round < rounds; round++) {
        // ABBA order, so a trend over the run bills both paths alike.
        const order: ('gateway' | 'direct')[] = round % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
        for (const path of order) {
          const before = { own: ownCpuMs(), emulator: processCpuMs(emulator.pid), node: processCpuMs(nodePid) };
          const run = await openLoop(rate, count, path === 'gateway' ? viaGateway : direct);
          add(totals[path], run, {
            own: ownCpuMs() - before.own,
            emulator: processCpuMs(emulator.pid) - before.emulator,
            node: processCpuMs(nodePid) - before.node,
          });
        }
      }
      reportUnary(rate, totals.gateway, totals.direct, idleCpuPerSecond);
      console.log(`    (${machineLoad()})`);
    }
  } finally {
    client?.close();
    await pool.close();
    await node?.stop();
    await emulator.stop();
  }
  const profile = profileDir === undefined ? undefined : mainThreadProfile(profileDir, nodePid);
  if (profileDir !== undefined && profile === undefined) console.log(`  (no .cpuprofile in ${profileDir}: the node did not exit cleanly)`);
  if (profile !== undefined) await printProfileSummary(profile, warmMs, 30);
}

function reportUnary(rate: number, gateway: PathTotals, direct: PathTotals, idleCpuPerSecond: number): void {
  const g = sortedCopy(gateway.latenciesMs);
  const d = sortedCopy(direct.latenciesMs);
  const lags = sortedCopy([...gateway.lagsMs, ...direct.lagsMs]);
  const addedP50 = percentile(g, 50) - percentile(d, 50);
  const addedP99 = percentile(g, 99) - percentile(d, 99);
  const problems = (t: PathTotals): string => `${t.failed} failed, ${t.skipped} skipped, ${t.abandoned} unanswered`;
  const share = (cpuMs: number, t: PathTotals): string => pct(cpuMs / t.elapsedMs);
  /** CPU µs per answered call of a path. */
  const perCall = (cpuMs: number, t: PathTotals): number => (cpuMs * 1000) / Math.max(1, t.latenciesMs.length);
  const targeted = rate === 500;
  report(`  added latency p50 at ${rate.toLocaleString('en-US')}/s`, addedP50, 'ms', targeted ? '≤ 0.5 ms' : 'reported', addedP50 <= 0.5, {
    baseline: `gateway p50 ${msText(percentile(g, 50))}, direct p50 ${msText(percentile(d, 50))} (${g.length} and ${d.length} calls; gateway ${problems(gateway)}, direct ${problems(direct)})`,
  });
  report(`  added latency p99 at ${rate.toLocaleString('en-US')}/s`, addedP99, 'ms', targeted ? '≤ 3 ms' : 'reported', addedP99 <= 3, {
    baseline: `gateway p99 ${msText(percentile(g, 99))}, direct p99 ${msText(percentile(d, 99))}; send lag behind schedule p50 ${msText(percentile(lags, 50))}, p99 ${msText(percentile(lags, 99))}`,
  });
  const completions = g.length;
  const cpuPerCompletionUs = (gateway.nodeCpuMs * 1000) / Math.max(1, completions);
  const idleShareUs = (idleCpuPerSecond * 1000) / rate;
  report(`  node CPU per unary completion at ${rate.toLocaleString('en-US')}/s`, cpuPerCompletionUs, 'µs', '≤ 250 µs', cpuPerCompletionUs <= 250, {
    baseline: `the emulator (a plain node:http server that also generates the answer) spent ${perCall(direct.emulatorCpuMs, direct).toFixed(0)} µs per direct request in the same run; ${completions} completions, node ${share(gateway.nodeCpuMs, gateway)} of a core (idle: ${idleCpuPerSecond.toFixed(1)} ms/s, ${idleShareUs.toFixed(0)} µs of each figure)`,
  });
  report(`  client CPU per call at ${rate.toLocaleString('en-US')}/s`, perCall(gateway.ownCpuMs, gateway), 'µs (CarpoolClient over gRPC)', 'reported', true, {
    baseline: `undici to the emulator ${perCall(direct.ownCpuMs, direct).toFixed(0)} µs per call; load generator ${share(gateway.ownCpuMs, gateway)} of a core via gateway, ${share(direct.ownCpuMs, direct)} direct`,
  });
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
