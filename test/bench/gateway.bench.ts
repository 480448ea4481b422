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
import {
  type EmulatorChild,
  type NodeChild,
  nodeView,
  ownCpuMs,
  pinning,
  processCpuMs,
  processRssBytes,
  startEmulatorChild,
  startNodeChild,
} from './gateway-processes.js';
import { mainThreadProfile, printProfileSummary } from './gateway-profile.js';
import { GatewayChannels, type HeldStream, openDirectStream, openStreams } from './gateway-streams.js';

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
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
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

const emptyTotals = (): PathTotals => ({ latenciesMs: [], lagsMs: [], failed: 0, skipped: 0, abandoned: 0, elapsedMs: 0, ownCpuMs: 0, emulatorCpuMs: 0, nodeCpuMs: 0 });

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

/** The stream emulator: first token after 50 ms, then one delta (3 tokens) a second for 32 s. */
const streamTtftMs = 50;
const streamTokens = 96;
const streamTokensPerSecond = 3;
/**
 * Streams opened per second: slow enough that the node's admission of new streams is not what
 * the time to first token measures (a stream costs the node a few ms of CPU to open), fast
 * enough that 5,000 are open (20 s) within a stream's life (32 s).
 */
const streamOpenPerSecond = 250;
/** How long a stream phase waits for first tokens after the last stream was opened. */
const firstTokenWaitMs = 3_000;
/** gRPC connections the streams are spread over: 5,000 / 8 stays below the endpoint's 1,000 per connection. */
const streamChannels = 8;

interface StreamFigures {
  readonly streams: readonly HeldStream[];
  /** TTFT of every stream, the ones that never got a first token counted as held that long (a lower bound). */
  readonly ttftsMs: number[];
  readonly withoutFirstToken: number;
  readonly rssIdleBytes: number;
  readonly rssHeldBytes: number;
  readonly held: number;
  readonly failures: ReadonlyMap<string, number>;
  /** Where the node held the calls at the moment RSS was read (its admin endpoint's view). */
  readonly view: string;
}

function ttftsOf(streams: readonly HeldStream[]): { ttftsMs: number[]; withoutFirstToken: number } {
  const now = performance.now();
  let withoutFirstToken = 0;
  const ttftsMs = streams
    .filter((s) => s.state !== 'failed')
    .map((s) => {
      if (s.ttftMs !== undefined) return s.ttftMs;
      withoutFirstToken++;
      return now - s.sentAt;
    });
  return { ttftsMs: sortedCopy(ttftsMs), withoutFirstToken };
}

function failuresOf(streams: readonly HeldStream[]): Map<string, number> {
  const failures = new Map<string, number>();
  for (const s of streams) if (s.state === 'failed') failures.set(s.failure ?? '?', (failures.get(s.failure ?? '?') ?? 0) + 1);
  return failures;
}

/** RSS of `pid`: the median of five samples 200 ms apart. */
async function rssOf(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(processRssBytes(pid));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return sortedCopy(samples)[2]!;
}

/** What the direct streams of a phase came to: their times to first token, nothing of the node. */
interface DirectFigures {
  readonly ttftsMs: number[];
  readonly withoutFirstToken: number;
  readonly failures: ReadonlyMap<string, number>;
}

/**
 * One phase on a fresh node: `count` streams through it, and with `directCount` > 0 as many
 * streams straight at the emulator interleaved with them one for one (each path at
 * `streamOpenPerSecond`), so that both meet the same machine at the same moments.
 */
async function streamPhase(emulator: EmulatorChild, count: number, directCount: number, label: string): Promise<{ gateway: StreamFigures; direct: DirectFigures }> {
  const node = await startNodeChild({ emulator, accountConcurrencyMax: 10_000, tenantConcurrencyMax: 100_000, tier: 'vip' });
  const channels = new GatewayChannels(node.grpcPort, streamChannels, node.apiKey);
  const pool = new Pool(emulator.url, { connections: Math.max(1, directCount) });
  let streams: HeldStream[] = [];
  try {
    // Warm up the stream path with short streams (3 tokens: one delta, over after the first
    // token) so the idle RSS already holds the code and the connections.
    const short = utf8.encode(body(3, true));
    const warm = await openStreams(200, 500, 10_000, (i) => channels.open(`warm-${label}-${i}`, short));
    const warmDeadline = performance.now() + 10_000;
    while (performance.now() < warmDeadline && warm.some((s) => s.state === 'open')) await new Promise((resolve) => setTimeout(resolve, 50));
    if (warm.some((s) => s.state !== 'ended')) throw new Error(`warm-up streams did not all end: ${JSON.stringify([...failuresOf(warm)])}\n${node.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const rssIdleBytes = await rssOf(node.pid);

    const requestJson = utf8.encode(body(streamTokens, true));
    const directBody = body(streamTokens, true);
    // Stream i goes direct when i is odd and a direct one is still due, else through the node.
    const paired = 2 * directCount;
    const isDirect = (i: number): boolean => i < paired && i % 2 === 1;
    const total = count + directCount;
    const rate = (streamOpenPerSecond * total) / count;
    streams = await openStreams(total, rate, firstTokenWaitMs, (i) =>
      isDirect(i) ? openDirectStream(pool, emulator.keys[i % emulator.keys.length]!, directBody) : channels.open(`${label}-${i}`, requestJson),
    );
    const rssHeldBytes = await rssOf(node.pid);
    const view = await nodeView(node);
    const viaNode = streams.filter((_, i) => !isDirect(i));
    const direct = streams.filter((_, i) => isDirect(i));
    const gateway: StreamFigures = {
      streams: viaNode,
      ...ttftsOf(viaNode),
      rssIdleBytes,
      rssHeldBytes,
      held: viaNode.filter((s) => s.state === 'open').length,
      failures: failuresOf(viaNode),
      view,
    };
    return { gateway, direct: { ...ttftsOf(direct), failures: failuresOf(direct) } };
  } finally {
    for (const s of streams) s.cancel();
    channels.close();
    await pool.destroy();
    // Cancelled streams drain upstream for their usage (up to a stream's 32 s); nothing is
    // measured after this, so the node is not waited for.
    await node.stop({ now: true });
  }
}

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
    const { gateway: few, direct } = await streamPhase(emulator, fewCount, fewCount, 'few');
    const { gateway: many } = await streamPhase(emulator, heldCount, 0, 'many');
    console.log(`    (${machineLoad()})`);
    const directP99 = percentile(direct.ttftsMs, 99);
    const line = (f: StreamFigures): string =>
      `${f.streams.length - f.withoutFirstToken - sum(f.failures)} streaming, ${f.withoutFirstToken} held without a first token, ${sum(f.failures)} refused${f.failures.size === 0 ? '' : ` (${[...f.failures].map(([why, n]) => `${n}× ${why}`).join('; ')})`}`;
    for (const [f, count, targeted] of [
      [few, fewCount, false],
      [many, heldCount, true],
    ] as const) {
      const perStream = (f.rssHeldBytes - f.rssIdleBytes) / Math.max(1, f.held);
      const kb = perStream / 1000;
      const name = `${count.toLocaleString('en-US')} streams`;
      report(`  node RSS per held stream, ${name} offered`, kb, 'KB', targeted ? '≤ 100 KB' : 'reported', perStream <= 100_000, {
        baseline: `idle ${mib(f.rssIdleBytes)}, holding ${mib(f.rssHeldBytes)} over ${f.held} open streams: ${line(f)}; node: ${f.view}`,
      });
      const p99 = percentile(f.ttftsMs, 99);
      const lowerBound =
        f.withoutFirstToken > f.ttftsMs.length / 100
          ? ` (a lower bound: more than 1% never got a first token while held; p99 of the ${f.ttftsMs.length - f.withoutFirstToken} that did: ${msText(percentile(sortedCopy(f.streams.flatMap((s) => (s.ttftMs === undefined ? [] : [s.ttftMs]))), 99))})`
          : '';
      report(`  added TTFT p99, ${name} offered`, p99 - directP99, 'ms', targeted ? '≤ 5 ms' : 'reported', p99 - directP99 <= 5, {
        baseline: `gateway TTFT p50 ${msText(percentile(f.ttftsMs, 50))}, p99 ${msText(p99)}${lowerBound}; direct to the emulator, ${fewCount} streams held (opened interleaved with the ${fewCount.toLocaleString('en-US')}-stream phase): p50 ${msText(percentile(direct.ttftsMs, 50))}, p99 ${msText(directP99)} (${direct.withoutFirstToken} without a first token, ${sum(direct.failures)} failed)`,
      });
    }
  } finally {
    await emulator.stop();
  }
}

function sum(map: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const n of map.values()) total += n;
  return total;
}

export async function gatewayBench(ctx: BenchContext): Promise<void> {
  console.log('\n== gateway ==');
  const profileDir = process.env.GATEWAY_BENCH_CPU_PROFILE;
  await unary(ctx, profileDir === undefined || profileDir === '' ? undefined : profileDir);
  await streaming(ctx);
}
