// The upstream benchmark (`npm run bench -- upstream`):
//  - the emulator's capacity on one core (it runs in its own process; the load comes from this
//    one, on the other core): JSON requests/s and streamed deltas/s, with the CPU each side
//    used, so later gateway benchmarks can tell whether the emulator was their bottleneck;
//  - the upstream client's overhead beside a bare `fetch` to the same emulator in the same run:
//    sequential latency, throughput at 32 calls in flight, and whole streams;
//  - the account pool's decisions/s (acquire + release) over 100 accounts, with and without
//    checking the accounts' limits in the mesh counters.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';
import { type AccountId, asReplicaId, type RegionId, type TenantId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { WindowedCounter } from '../../src/crdt/windowed-counter.js';
import type { Account } from '../../src/mesh/policy/policy-schema.js';
import { AccountPool } from '../../src/pool/account-pool.js';
import { AccountUsage, estimateAccountAmounts } from '../../src/pool/account-usage.js';
import { SseParser } from '../../src/upstream/sse-parser.js';
import { UpstreamClient } from '../../src/upstream/upstream-client.js';
import type { UpstreamTarget } from '../../src/upstream/upstream-request.js';
import { type BenchContext, median, report } from './harness.js';

interface EmulatorChild {
  readonly process: ChildProcess;
  readonly url: string;
  readonly keys: readonly string[];
}

/** Tokens of every streamed answer: the emulator's natural length is pinned to this. */
const streamTokens = 512;
/** `max_tokens` of the JSON requests: short answers, so the figure is requests, not bytes. */
const shortTokens = 32;

async function startChild(): Promise<EmulatorChild> {
  const options = JSON.stringify({ accounts: 4, outputTokensMin: streamTokens, outputTokensMax: streamTokens });
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/bench/emulator-process.ts', options], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the emulator did not start within 30 s')), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`the emulator exited with ${code}`)));
  });
  const { url, keys } = JSON.parse(first) as { url: string; keys: string[] };
  return { process: child, url, keys };
}

async function stopChild(child: EmulatorChild): Promise<void> {
  const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
  child.process.kill('SIGTERM');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  if (child.process.exitCode === null) child.process.kill('SIGKILL');
}

const clockTicksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU milliseconds a process has used (user + system), from /proc. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}

function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function messageBody(tokens: number, i: number, stream: boolean): string {
  return JSON.stringify({
    model: 'claude-sonnet-4-6',
    max_tokens: tokens,
    stream,
    messages: [{ role: 'user', content: `Benchmark question number ${i % 1000}: say something.` }],
  });
}

/** Runs `work(i)` for i = 0, 1, … with `inFlight` at once until `count` are done or `budgetMs` passes. */
async function load(inFlight: number, count: number, budgetMs: number, work: (i: number) => Promise<void>): Promise<{ done: number; elapsedMs: number }> {
  const start = performance.now();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() - start < budgetMs) {
      await work(next++);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { done, elapsedMs: performance.now() - start };
}

interface Measured {
  readonly perSecond: number;
  readonly emulatorCpu: number;
  readonly loadCpu: number;
}

/** Measures `phase` and the share of one core each process used during it. */
async function withCpu(child: EmulatorChild, phase: () => Promise<{ units: number; elapsedMs: number }>): Promise<Measured> {
  const childBefore = processCpuMs(child.process.pid!);
  const ownBefore = ownCpuMs();
  const { units, elapsedMs } = await phase();
  return {
    perSecond: (units * 1000) / elapsedMs,
    emulatorCpu: (processCpuMs(child.process.pid!) - childBefore) / elapsedMs,
    loadCpu: (ownCpuMs() - ownBefore) / elapsedMs,
  };
}

const pct = (share: number): string => `${Math.round(share * 100)}%`;

async function emulatorCapacity(child: EmulatorChild, ctx: BenchContext): Promise<void> {
  const pool = new Pool(child.url, { connections: 64, pipelining: 1 });
  const budgetMs = ctx.quick ? 2_000 : 6_000;
  try {
    const headers = (i: number): Record<string, string> => ({
      'x-api-key': child.keys[i % child.keys.length]!,
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
    });
    // Warm up the emulator's JIT and the connections.
    await load(64, 2_000, 5_000, async (i) => {
      const res = await pool.request({ method: 'POST', path: '/v1/messages', headers: headers(i), body: messageBody(shortTokens, i, false) });
      await res.body.dump();
    });
    let failed = 0;
    const json = await withCpu(child, async () => {
      const run = await load(64, 2_000_000, budgetMs, async (i) => {
        const res = await pool.request({ method: 'POST', path: '/v1/messages', headers: headers(i), body: messageBody(shortTokens, i, false) });
        if (res.statusCode !== 200) failed++;
        await res.body.dump();
      });
      return { units: run.done, elapsedMs: run.elapsedMs };
    });
    console.log(`emulator on one core (its own process; the load from this one, 64 connections):`);
    report('  JSON messages', json.perSecond, `requests/s (${shortTokens} output tokens each)`, 'reported', true, {
      baseline: `emulator CPU ${pct(json.emulatorCpu)} of a core, load generator ${pct(json.loadCpu)}; ${failed} non-200 answers`,
    });

    let deltas = 0;
    let streams = 0;
    let bytes = 0;
    const streamed = await withCpu(child, async () => {
      const run = await load(16, 1_000_000, budgetMs, async (i) => {
        const res = await pool.request({ method: 'POST', path: '/v1/messages', headers: headers(i), body: messageBody(streamTokens, i, true) });
        const parser = new SseParser();
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          const events = parser.push(chunk);
          if (events.ok) for (const event of events.value) if (event.event === 'content_block_delta') deltas++;
        }
        streams++;
      });
      return { units: deltas, elapsedMs: run.elapsedMs };
    });
    report('  streamed deltas', streamed.perSecond, 'content_block_delta events/s', 'reported', true, {
      baseline: `${streams} streams of ${streamTokens} tokens at 16 in flight, ${(((bytes / 1e6) * 1000) / (ctx.quick ? 2_000 : 6_000)).toFixed(1)} MB/s of SSE; emulator CPU ${pct(streamed.emulatorCpu)}, load generator (parsing) ${pct(streamed.loadCpu)}`,
    });
  } finally {
    await pool.close();
  }
}

async function clientOverhead(child: EmulatorChild, ctx: BenchContext): Promise<void> {
  const client = new UpstreamClient();
  const target: UpstreamTarget = { baseUrl: child.url, credential: { kind: 'api-key', key: child.keys[0]! } };
  const headers = { 'x-api-key': child.keys[0]!, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
  const url = `${child.url}/v1/messages`;
  const bare = async (i: number): Promise<void> => {
    const res = await fetch(url, { method: 'POST', headers, body: messageBody(shortTokens, i, false) });
    if (res.status !== 200) throw new Error(`bare fetch answered ${res.status}`);
    await res.json();
  };
  // The same HTTP engine the client uses, with nothing of ours on top: parse the JSON, no more.
  const engine = new Pool(child.url, { connections: 32 });
  const bareUndici = async (i: number): Promise<void> => {
    const res = await engine.request({ method: 'POST', path: '/v1/messages', headers, body: messageBody(shortTokens, i, false) });
    if (res.statusCode !== 200) throw new Error(`bare undici answered ${res.statusCode}`);
    await res.body.json();
  };
  const ours = async (i: number): Promise<void> => {
    const body = JSON.parse(messageBody(shortTokens, i, false)) as Record<string, unknown>;
    const result = await client.complete(target, { body });
    if (!result.ok) throw new Error(`client call failed: ${result.error.kind}`);
  };
  try {
    const rounds = ctx.quick ? 4 : 10;
    const block = 100;
    const bareMs: number[] = [];
    const undiciMs: number[] = [];
    const oursMs: number[] = [];
    // Interleaved blocks, so drift in the machine's load bills every side alike.
    for (let r = 0; r < rounds + 1; r++) {
      for (const [fn, into] of [
        [bare, bareMs],
        [bareUndici, undiciMs],
        [ours, oursMs],
      ] as const) {
        for (let i = 0; i < block; i++) {
          const start = performance.now();
          await fn(i);
          if (r > 0) into.push(performance.now() - start);
        }
      }
    }
    for (const times of [bareMs, undiciMs, oursMs]) times.sort((a, b) => a - b);
    const p50Bare = percentile(bareMs, 50);
    const p50Undici = percentile(undiciMs, 50);
    const p50Ours = percentile(oursMs, 50);
    const us = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`;
    console.log(`upstream client vs a bare fetch to the same emulator (${bareMs.length} sequential calls each, ${shortTokens} output tokens):`);
    report('  client latency p50', p50Ours * 1000, 'µs', 'reported', true, {
      baseline: `bare fetch p50 ${us(p50Bare)}, bare undici request p50 ${us(p50Undici)}; p99 client ${us(percentile(oursMs, 99))}, fetch ${us(percentile(bareMs, 99))}, undici ${us(percentile(undiciMs, 99))}`,
    });
    report('  client overhead p50 vs bare fetch', (p50Ours - p50Bare) * 1000, 'µs per call', 'reported', true, {
      baseline: `${(((p50Ours - p50Bare) / p50Bare) * 100).toFixed(1)}% of a bare fetch; vs bare undici request ${((p50Ours - p50Undici) * 1000).toFixed(0)} µs (${(((p50Ours - p50Undici) / p50Undici) * 100).toFixed(1)}%): what our headers, timers, feedback and usage parsing cost`,
    });

    const count = ctx.quick ? 3_000 : 10_000;
    const throughput = async (fn: (i: number) => Promise<void>): Promise<number> => {
      const run = await load(32, count, 30_000, fn);
      return (run.done * 1000) / run.elapsedMs;
    };
    // Best of two interleaved runs each.
    const best = { bare: 0, undici: 0, ours: 0 };
    for (let r = 0; r < 2; r++) {
      best.bare = Math.max(best.bare, await throughput(bare));
      best.undici = Math.max(best.undici, await throughput(bareUndici));
      best.ours = Math.max(best.ours, await throughput(ours));
    }
    const rate = (value: number): string => `${Math.round(value).toLocaleString('en-US')} requests/s`;
    report('  client throughput, 32 in flight', best.ours, 'requests/s', 'reported', true, {
      baseline: `bare fetch ${rate(best.bare)}, bare undici request ${rate(best.undici)} (best of two interleaved runs each; the emulator's core is the ceiling)`,
    });

    const streamsCount = ctx.quick ? 40 : 150;
    const bareStream = async (i: number): Promise<void> => {
      const res = await fetch(url, { method: 'POST', headers, body: messageBody(streamTokens, i, true) });
      if (res.status !== 200) throw new Error(`bare fetch answered ${res.status}`);
      // Read to the end without parsing: the floor any client pays.
      await res.arrayBuffer();
    };
    const undiciStream = async (i: number): Promise<void> => {
      const res = await engine.request({ method: 'POST', path: '/v1/messages', headers, body: messageBody(streamTokens, i, true) });
      if (res.statusCode !== 200) throw new Error(`bare undici answered ${res.statusCode}`);
      await res.body.arrayBuffer();
    };
    const oursStream = async (i: number): Promise<void> => {
      const body = JSON.parse(messageBody(streamTokens, i, false)) as Record<string, unknown>;
      const result = await client.stream(target, { body }, { onEvent: () => undefined });
      if (!result.ok) throw new Error(`client stream failed: ${result.error.kind}`);
    };
    const streamTimes = async (fn: (i: number) => Promise<void>): Promise<number[]> => {
      const times: number[] = [];
      for (let i = 0; i < streamsCount; i++) {
        const start = performance.now();
        await fn(i);
        times.push(performance.now() - start);
      }
      return times.sort((a, b) => a - b);
    };
    await streamTimes(oursStream);
    const bareStreams = await streamTimes(bareStream);
    const undiciStreams = await streamTimes(undiciStream);
    const ourStreams = await streamTimes(oursStream);
    const bareP50 = percentile(bareStreams, 50);
    const undiciP50 = percentile(undiciStreams, 50);
    const oursP50 = percentile(ourStreams, 50);
    const perEventUs = ((oursP50 - undiciP50) * 1000) / streamTokens;
    report(`  client stream of ${streamTokens} tokens, p50`, oursP50, 'ms', 'reported', true, {
      baseline: `the same stream read unparsed: bare fetch p50 ${bareP50.toFixed(2)} ms, bare undici request p50 ${undiciP50.toFixed(2)} ms; parsing SSE and rebuilding the message cost ${perEventUs.toFixed(2)} µs per event over bare undici`,
    });
  } finally {
    await client.close();
    await engine.close();
  }
}

function account(i: number, limited: boolean): Account {
  return {
    id: `acct-${i}` as AccountId,
    kind: 'api-key',
    homeRegion: (i % 2 === 0 ? 'us-east' : 'eu-west') as RegionId,
    weight: 1 + (i % 3),
    concurrencyMax: 64,
    limits: limited
      ? [
          { metric: 'requests', window: 'minute', sliding: false, limit: 1_000_000_000, mode: 'eventual' },
          { metric: 'weighted_tokens', window: 'minute', sliding: false, limit: 1_000_000_000, mode: 'eventual' },
        ]
      : [],
  };
}

function poolDecisions(ctx: BenchContext): void {
  const n = ctx.quick ? 50_000 : 200_000;
  const nowMs = Date.now();
  const estimate = estimateAccountAmounts(1_000, 1_000);
  const run = (sticky: boolean, room: boolean): number =>
    median(ctx.runs, () => {
      const counter = new WindowedCounter(asReplicaId('bench'));
      const pool = new AccountPool({ random: new SeededRandom(7), strategy: 'least-loaded', sticky, ...(room ? { room: new AccountUsage(counter) } : {}) });
      pool.update(Array.from({ length: 100 }, (_, i) => account(i, room)));
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const picked = pool.acquire(
          { tenant: 't' as TenantId, deadlineMs: nowMs, sessionKey: sticky ? `session-${i % 5_000}` : undefined, localRegion: 'us-east' as RegionId, estimate },
          nowMs,
        );
        if (!picked.ok || picked.value.kind !== 'granted') throw new Error('the pool refused an idle account');
        pool.release(picked.value.permit);
      }
      return (n * 1000) / (performance.now() - start);
    });
  const plain = run(false, false);
  const sticky = run(true, false);
  const withRoom = run(true, true);
  console.log('account pool decisions, 100 accounts (acquire + release):');
  report('  least loaded', plain, 'decisions/s', 'reported', true, { baseline: `sticky rendezvous ${Math.round(sticky).toLocaleString('en-US')}/s` });
  report('  sticky + account limits from the mesh counters', withRoom, 'decisions/s', 'reported', true, {
    baseline: `the same without limits ${Math.round(sticky).toLocaleString('en-US')}/s (2 limits per account, checked for every eligible account)`,
  });
}

export async function upstreamBench(ctx: BenchContext): Promise<void> {
  console.log('\n== upstream ==');
  const child = await startChild();
  try {
    await emulatorCapacity(child, ctx);
    await clientOverhead(child, ctx);
  } finally {
    await stopChild(child);
  }
  poolDecisions(ctx);
}
