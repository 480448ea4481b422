// The mesh benchmark (`npm run bench -- mesh`): five real node processes on loopback, driven
// through their admin endpoints. Convergence lag, time to converge after a partition heals,
// wire bytes per counter update and CPU per node, each beside a baseline from the same run.
import { Cluster, type CounterRef, type NodeStatus, sleep } from '../support/cluster.js';
import { type BenchContext, report } from './harness.js';

const gossipIntervalMs = 50;
const day = Math.floor(Date.now() / 86_400_000);
const ref = (subject: string): CounterRef => ({ scope: 'tenant', subject, metric: 'requests', unit: 'day', index: day });

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function convergenceLag(cluster: Cluster, ctx: BenchContext): Promise<void> {
  const samples = ctx.quick ? 60 : 300;
  const key = ref('lag');
  const lags: number[] = [];
  const roundTrips: number[] = [];
  const deadline = Date.now() + 60_000;
  for (let k = 0; k < samples && Date.now() < deadline; k++) {
    const origin = k % 5;
    const others = [0, 1, 2, 3, 4].filter((i) => i !== origin);
    // Baseline: one admin round trip that does not wait, the floor under every sample.
    const rtStart = performance.now();
    await cluster.value(origin, key);
    roundTrips.push(performance.now() - rtStart);
    const start = performance.now();
    await cluster.increment(origin, key, 1);
    await Promise.all(others.map((i) => cluster.value(i, key, k + 1, 5_000)));
    lags.push(performance.now() - start);
    // Spread the samples over the gossip phase instead of locking onto it.
    await sleep((k * 7) % gossipIntervalMs);
  }
  lags.sort((a, b) => a - b);
  roundTrips.sort((a, b) => a - b);
  const p50 = percentile(lags, 50);
  const p99 = percentile(lags, 99);
  console.log(`convergence lag, increment at one node → visible at all four others (${lags.length} samples):`);
  report('  p50', p50, 'ms', 'reported', true, { baseline: `one admin HTTP round trip p50 ${percentile(roundTrips, 50).toFixed(2)} ms` });
  report('  p99', p99, 'ms', `<= ${2 * gossipIntervalMs} ms (2 gossip intervals)`, p99 <= 2 * gossipIntervalMs, {
    baseline: `one admin HTTP round trip p99 ${percentile(roundTrips, 99).toFixed(2)} ms; gossip interval ${gossipIntervalMs} ms`,
  });
}

async function partitionHeal(cluster: Cluster, ctx: BenchContext): Promise<void> {
  const partitionMs = ctx.quick ? 5_000 : 30_000;
  const keys = Array.from({ length: 100 }, (_, i) => ref(`part-${i}`));
  const expected = new Map<string, number>();
  // Majority {0,1,2} and minority {3,4}.
  for (const a of [0, 1, 2]) for (const b of [3, 4]) cluster.cut(a, b);
  await sleep(500);
  const start = Date.now();
  let updates = 0;
  console.log(`partition: {n0,n1,n2} | {n3,n4} for ${partitionMs / 1000} s with traffic on both sides…`);
  while (Date.now() - start < partitionMs) {
    const batch: Promise<void>[] = [];
    for (const side of [
      [0, 1, 2],
      [3, 4],
    ]) {
      const node = side[updates % side.length]!;
      const key = keys[(updates * 31) % keys.length]!;
      expected.set(key.subject, (expected.get(key.subject) ?? 0) + 1);
      batch.push(cluster.increment(node, key, 1));
      updates++;
    }
    await Promise.all(batch);
    await sleep(5);
  }
  const healedAt = performance.now();
  cluster.healAll();
  await Promise.all([0, 1, 2, 3, 4].flatMap((i) => keys.map((key) => cluster.value(i, key, expected.get(key.subject) ?? 0, 30_000))));
  const convergeMs = performance.now() - healedAt;
  report(`time to converge after healing (${updates} updates on 100 keys during the partition)`, convergeMs, 'ms', '<= 1000 ms', convergeMs <= 1000, {
    baseline: 'includes the redial after the cut (jittered backoff capped at 500 ms) and the digest repair',
  });
}

async function wireAndCpu(cluster: Cluster, ctx: BenchContext): Promise<void> {
  const seconds = ctx.quick ? 3 : 10;
  const rate = 10_000;
  const keys = Array.from({ length: 1_000 }, (_, i) => ref(`load-${i}`));
  const sum = (s: NodeStatus, field: string): number => Number(s.mesh[field] ?? 0);
  const cpuMs = (s: NodeStatus): number => (s.cpuMicros.user + s.cpuMicros.system) / 1000;

  // Baseline: the same processes idle (heartbeats, digests) for the same time.
  const idle0 = await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.status(i)));
  await sleep(seconds * 1000);
  const idle1 = await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.status(i)));
  const idleCpu = (cpuMs(idle1[1]!) - cpuMs(idle0[1]!)) / seconds;

  const before = await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.status(i)));
  const start = performance.now();
  let sent = 0;
  // 100 updates every 10 ms to node 0, bounded by count and by time.
  for (let tickIndex = 0; tickIndex < seconds * 100 && performance.now() - start < seconds * 1000 * 1.5; tickIndex++) {
    const due = start + tickIndex * 10;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const updates = Array.from({ length: rate / 100 }, (_, j) => ({ ...keys[(tickIndex * 100 + j) % keys.length]!, amount: 1 }));
    await cluster.testRequest(0, '/counters', { updates });
    sent += updates.length;
  }
  const elapsed = (performance.now() - start) / 1000;
  await sleep(500);
  const after = await Promise.all([0, 1, 2, 3, 4].map((i) => cluster.status(i)));
  const deltaBytes = sum(after[0]!, 'deltaBytesSent') - sum(before[0]!, 'deltaBytesSent');
  const allBytes = sum(after[0]!, 'bytesSent') - sum(before[0]!, 'bytesSent');
  const perUpdatePerPeer = deltaBytes / 4 / sent;
  console.log(`load: ${sent} updates in ${elapsed.toFixed(1)} s (${Math.round(sent / elapsed)} updates/s) over 1,000 keys at n0`);
  report('  delta bytes on the wire per update, per peer link', perUpdatePerPeer, 'B', '<= 16 B', perUpdatePerPeer <= 16, {
    baseline: `all frames n0 sent (acks, digests, heartbeats included) ${(allBytes / 4 / sent).toFixed(2)} B per update per peer`,
  });
  const originCpu = (cpuMs(after[0]!) - cpuMs(before[0]!)) / elapsed;
  const receiverCpu = [1, 2, 3, 4].map((i) => (cpuMs(after[i]!) - cpuMs(before[i]!)) / elapsed);
  const receiverMean = receiverCpu.reduce((a, b) => a + b, 0) / receiverCpu.length;
  report('  CPU of the originating node (mesh + admin HTTP ingest)', originCpu, 'ms CPU per s', 'reported', true, {
    baseline: `idle node ${idleCpu.toFixed(1)} ms CPU per s`,
  });
  report('  CPU of each receiving node (mesh only)', receiverMean, 'ms CPU per s', 'reported', true, {
    baseline: `idle node ${idleCpu.toFixed(1)} ms CPU per s`,
  });
}

export async function meshBench(ctx: BenchContext): Promise<void> {
  console.log(`mesh benchmark: 5 node processes on loopback${ctx.quick ? ' (quick mode)' : ''}; starting…`);
  const cluster = await Cluster.start(5);
  try {
    await convergenceLag(cluster, ctx);
    await wireAndCpu(cluster, ctx);
    await partitionHeal(cluster, ctx);
  } finally {
    await cluster.stop();
  }
}
