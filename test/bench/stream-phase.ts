// Streams held by one node, for the gateway and HTTP benchmarks: a fresh node process holds
// `count` streamed completions at once (the emulator trickles one delta a second, so they stay
// open), through whichever endpoint the caller opens them on; its resident memory per stream over
// its idle RSS, and the streams' time to first token beside streams sent straight at the emulator
// in the same phase.
import { Pool } from 'undici';
import { report } from './harness.js';
import { percentile, sortedCopy } from './gateway-load.js';
import { type EmulatorChild, type NodeChild, type NodeChildOptions, nodeView, processRssBytes, startNodeChild } from './gateway-processes.js';
import { GatewayChannels, type HeldStream, openDirectStream, openStreams } from './gateway-streams.js';

export const streamModel = 'claude-sonnet-4-6';
/** The stream emulator: first token after 50 ms, then one delta (3 tokens) a second for 32 s. */
export const streamTtftMs = 50;
export const streamTokens = 96;
export const streamTokensPerSecond = 3;
/**
 * Streams opened per second: slow enough that the node's admission of new streams is not what
 * the time to first token measures (a stream costs the node a few ms of CPU to open), fast
 * enough that 5,000 are open (20 s) within a stream's life (32 s).
 */
export const streamOpenPerSecond = 250;
/** How long a stream phase waits for first tokens after the last stream was opened. */
const firstTokenWaitMs = 3_000;

export function streamBody(maxTokens: number): string {
  return JSON.stringify({
    model: streamModel,
    max_tokens: maxTokens,
    stream: true,
    messages: [{ role: 'user', content: 'Benchmark question: share a ride to the station?' }],
  });
}

/** How streams reach one node: opened on its endpoint, closed with the phase. */
export interface NodeStreamPath {
  /** `maxTokens` 3 for the warm-up's short streams, `streamTokens` for the held ones. */
  open(id: string, maxTokens: number): HeldStream;
  close(): Promise<void>;
}

export interface StreamFigures {
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

/** What the direct streams of a phase came to: their times to first token, nothing of the node. */
export interface DirectFigures {
  readonly ttftsMs: number[];
  readonly withoutFirstToken: number;
  readonly failures: ReadonlyMap<string, number>;
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

/**
 * One phase on a fresh node: `count` streams through it, and with `directCount` > 0 as many
 * streams straight at the emulator interleaved with them one for one (each path at
 * `streamOpenPerSecond`), so that both meet the same machine at the same moments.
 */
export async function streamPhase(
  emulator: EmulatorChild,
  count: number,
  directCount: number,
  label: string,
  pathOf: (node: NodeChild) => NodeStreamPath,
  nodeOptions: Partial<NodeChildOptions> = {},
): Promise<{ node: StreamFigures; direct: DirectFigures }> {
  const node = await startNodeChild({ emulator, accountConcurrencyMax: 10_000, tenantConcurrencyMax: 100_000, tier: 'vip', ...nodeOptions });
  const path = pathOf(node);
  const pool = new Pool(emulator.url, { connections: Math.max(1, directCount) });
  let streams: HeldStream[] = [];
  try {
    // Warm up the stream path with short streams (3 tokens: one delta, over after the first
    // token) so the idle RSS already holds the code and the connections.
    const warm = await openStreams(200, 500, 10_000, (i) => path.open(`warm-${label}-${i}`, 3));
    const warmDeadline = performance.now() + 10_000;
    while (performance.now() < warmDeadline && warm.some((s) => s.state === 'open')) await new Promise((resolve) => setTimeout(resolve, 50));
    if (warm.some((s) => s.state !== 'ended')) throw new Error(`warm-up streams did not all end: ${JSON.stringify([...failuresOf(warm)])}\n${node.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const rssIdleBytes = await rssOf(node.pid);

    const directBody = streamBody(streamTokens);
    // Stream i goes direct when i is odd and a direct one is still due, else through the node.
    const paired = 2 * directCount;
    const isDirect = (i: number): boolean => i < paired && i % 2 === 1;
    const total = count + directCount;
    const rate = (streamOpenPerSecond * total) / count;
    streams = await openStreams(total, rate, firstTokenWaitMs, (i) =>
      isDirect(i) ? openDirectStream(pool, emulator.keys[i % emulator.keys.length]!, directBody) : path.open(`${label}-${i}`, streamTokens),
    );
    const rssHeldBytes = await rssOf(node.pid);
    const view = await nodeView(node);
    const viaNode = streams.filter((_, i) => !isDirect(i));
    const direct = streams.filter((_, i) => isDirect(i));
    const figures: StreamFigures = {
      streams: viaNode,
      ...ttftsOf(viaNode),
      rssIdleBytes,
      rssHeldBytes,
      held: viaNode.filter((s) => s.state === 'open').length,
      failures: failuresOf(viaNode),
      view,
    };
    return { node: figures, direct: { ...ttftsOf(direct), failures: failuresOf(direct) } };
  } finally {
    for (const s of streams) s.cancel();
    await path.close();
    await pool.destroy();
    // Cancelled streams drain upstream for their usage (up to a stream's 32 s); nothing is
    // measured after this, so the node is not waited for.
    await node.stop({ now: true });
  }
}

const msText = (ms: number): string => `${ms.toFixed(2)} ms`;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function sum(map: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const n of map.values()) total += n;
  return total;
}

/**
 * Reports one phase: RSS per held stream and TTFT p99 over the direct baseline, with the target
 * (`≤ 100 KB`, `≤ 5 ms`) when `targeted`. `endpoint` names the path in the figures ("node", "HTTP").
 */
export function reportStreams(f: StreamFigures, count: number, direct: DirectFigures, directCount: number, targeted: boolean, endpoint: string): void {
  const directP99 = percentile(direct.ttftsMs, 99);
  const line = `${f.streams.length - f.withoutFirstToken - sum(f.failures)} streaming, ${f.withoutFirstToken} held without a first token, ${sum(f.failures)} refused${f.failures.size === 0 ? '' : ` (${[...f.failures].map(([why, n]) => `${n}× ${why}`).join('; ')})`}`;
  const perStream = (f.rssHeldBytes - f.rssIdleBytes) / Math.max(1, f.held);
  const name = `${count.toLocaleString('en-US')} streams`;
  report(`  ${endpoint} RSS per held stream, ${name} offered`, perStream / 1000, 'KB', targeted ? '≤ 100 KB' : 'reported', perStream <= 100_000, {
    baseline: `idle ${mib(f.rssIdleBytes)}, holding ${mib(f.rssHeldBytes)} over ${f.held} open streams: ${line}; node: ${f.view}`,
  });
  const p99 = percentile(f.ttftsMs, 99);
  const lowerBound =
    f.withoutFirstToken > f.ttftsMs.length / 100
      ? ` (a lower bound: more than 1% never got a first token while held; p99 of the ${f.ttftsMs.length - f.withoutFirstToken} that did: ${msText(percentile(sortedCopy(f.streams.flatMap((s) => (s.ttftMs === undefined ? [] : [s.ttftMs]))), 99))})`
      : '';
  report(`  ${endpoint} added TTFT p99, ${name} offered`, p99 - directP99, 'ms', targeted ? '≤ 5 ms' : 'reported', p99 - directP99 <= 5, {
    baseline: `TTFT p50 ${msText(percentile(f.ttftsMs, 50))}, p99 ${msText(p99)}${lowerBound}; direct to the emulator, ${directCount} streams held (opened interleaved with a ${directCount.toLocaleString('en-US')}-stream phase): p50 ${msText(percentile(direct.ttftsMs, 50))}, p99 ${msText(directP99)} (${direct.withoutFirstToken} without a first token, ${sum(direct.failures)} failed)`,
  });
}

/** gRPC connections the streams are spread over: 5,000 / 8 stays below the endpoint's 1,000 per connection. */
export const streamChannels = 8;

/** Streams through the node's gRPC endpoint, spread over `streamChannels` connections. */
export function grpcStreamPath(node: NodeChild): NodeStreamPath {
  const channels = new GatewayChannels(node.grpcPort, streamChannels, node.apiKey);
  return {
    open: (id, maxTokens) => channels.open(id, new TextEncoder().encode(streamBody(maxTokens))),
    close: () => {
      channels.close();
      return Promise.resolve();
    },
  };
}
