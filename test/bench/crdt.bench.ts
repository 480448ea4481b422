// The CRDT benchmark (`npm run bench -- crdt`): counter throughput, join latency, memory and wire
// size, each printed with units next to a baseline measured in the same run.
import { asReplicaId, type ReplicaId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { counterKey, type CounterKey } from '../../src/crdt/counter-key.js';
import { windowAt, type WindowUnit } from '../../src/crdt/window.js';
import { WindowedCounter, type CounterDelta } from '../../src/crdt/windowed-counter.js';
import { decodeFrame, encodeFrame } from '../../src/mesh/wire/frame.js';
import { type BenchContext, median, report, timeMs } from './harness.js';

const replicaIds: ReplicaId[] = Array.from({ length: 8 }, (_, i) => asReplicaId(`region-${i}/node-1`));
const now = Date.UTC(2026, 10, 26, 10, 0, 0);

/** Increments on a working set of keys with a delta taken every 100,000 operations (one 50 ms gossip interval at 2 M/s). */
function incrementsPerSecond(ctx: BenchContext): void {
  const opCount = ctx.quick ? 1_000_000 : 4_000_000;
  const keys = Array.from({ length: 10_000 }, (_, i) => counterKey('tenant', `tenant-${i}`, 'weighted_tokens', windowAt('day', now)));
  const order = Uint32Array.from(
    { length: opCount },
    (
      (r) => () =>
        r.int(keys.length)
    )(new SeededRandom(1)),
  );
  const batch = 100_000;

  const ours = median(ctx.runs, () => {
    const counter = new WindowedCounter(replicaIds[0]!);
    return timeMs(() => {
      for (let i = 0; i < opCount; i++) {
        counter.increment(keys[order[i]!]!, 7);
        if (i % batch === batch - 1) counter.takeDelta();
      }
      counter.takeDelta();
    });
  });
  // Baseline: the least a counter can do, a plain Map from key id to number, no deltas.
  const baseline = median(ctx.runs, () => {
    const plain = new Map<string, number>();
    return timeMs(() => {
      for (let i = 0; i < opCount; i++) {
        const id = keys[order[i]!]!.id;
        plain.set(id, (plain.get(id) ?? 0) + 7);
      }
    });
  });
  report('increments + delta extraction', (opCount / ours) * 1000, 'ops/s', '>= 2,000,000 ops/s', (opCount / ours) * 1000 >= 2_000_000, {
    baseline: `plain Map<string, number> increments ${fmt((opCount / baseline) * 1000)} ops/s`,
  });
}

/** A state of `tenants` tenants × 4 windows with entries from all 8 replicas, built by joins. */
function buildState(tenants: number): { state: WindowedCounter; keys: CounterKey[] } {
  const units: WindowUnit[] = ['minute', 'hour5', 'day', 'week'];
  const windows = units.map((unit) => windowAt(unit, now));
  const keys: CounterKey[] = [];
  for (let t = 0; t < tenants; t++) {
    const subject = `tenant-${t}`;
    for (const window of windows) keys.push(counterKey('tenant', subject, 'weighted_tokens', window));
  }
  const state = new WindowedCounter(replicaIds[0]!);
  for (const replicaId of replicaIds) {
    const replica = replicaId === replicaIds[0] ? state : new WindowedCounter(replicaId);
    for (let i = 0; i < keys.length; i++) replica.increment(keys[i]!, 1000 + i);
    const delta = replica.takeDelta();
    if (replica !== state) state.join(delta);
  }
  return { state, keys };
}

function joinLatency(ctx: BenchContext): void {
  const { state, keys } = buildState(25_000); // 100,000 keys
  const source = new WindowedCounter(replicaIds[3]!);
  const random = new SeededRandom(2);
  const deltas: CounterDelta[] = [];
  // Many short samples: one join takes about a millisecond, so a median over a few hundred is
  // stable where a median over five would mostly measure the machine's noise.
  const samples = ctx.runs * 40;
  for (let d = 0; d < samples + 2; d++) {
    for (let i = 0; i < 1000; i++) source.increment(keys[random.int(keys.length)]!, 5);
    // Take exactly 1,000 distinct keys per delta.
    let delta = source.takeDelta();
    while (delta.entries.length < 1000) {
      source.increment(keys[random.int(keys.length)]!, 5);
      const more = source.takeDelta();
      delta = { entries: [...delta.entries, ...more.entries], ranges: more.ranges };
    }
    deltas.push({ entries: delta.entries.slice(0, 1000), ranges: [] });
  }
  let next = 0;
  const ours = median(samples, () => timeMs(() => state.join(deltas[next++]!)));
  // Baseline: the same 1,000 entries written into a plain Map (lookup + max), no CRDT bookkeeping.
  const plain = new Map<string, number>(keys.map((k) => [k.id, 0]));
  next = 0;
  const baseline = median(samples, () =>
    timeMs(() => {
      for (const entry of deltas[next++]!.entries) plain.set(entry.key.id, Math.max(plain.get(entry.key.id) ?? 0, entry.p));
    }),
  );
  report(`join of a 1,000-key delta into a 100,000-key state (median of ${samples})`, ours, 'ms', '<= 2 ms', ours <= 2, {
    baseline: `plain Map max-merge of the same entries ${baseline.toFixed(3)} ms`,
  });
}

function memory(ctx: BenchContext): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    console.log('memory: skipped (run with node --expose-gc; `npm run bench` does)');
    return;
  }
  const tenants = ctx.quick ? 25_000 : 100_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  const { state, keys } = buildState(tenants);
  keys.length = 0; // hold only what the state holds
  gc();
  const after = process.memoryUsage().heapUsed;
  const mb = (after - before) / 1024 / 1024;
  const scaled = (mb * 100_000) / tenants;
  const ideal = (tenants * 4 * 8 * 16) / 1024 / 1024;
  report(`memory: ${fmt(tenants)} tenants × 4 windows × 8 replicas (${fmt(state.size)} keys)`, mb, 'MB heap', '<= 150 MB for 100,000 tenants', scaled <= 150, {
    baseline: `the counters alone (8 bytes each for p and n) ${ideal.toFixed(1)} MB`,
  });
}

/**
 * A realistic batch: one node at 1,000 requests/s for one 50 ms gossip interval, after a day of
 * traffic so totals have their day-scale magnitudes. Each request touches its tenant's requests,
 * input and output token counters in four windows (10 s bucket, 5 h, day, 30 days) and its
 * account's three counters in the same windows: 24 keys.
 */
function realisticBatch(requests: number, warmup: number): { delta: CounterDelta; counter: WindowedCounter } {
  const random = new SeededRandom(3);
  const counter = new WindowedCounter(replicaIds[0]!);
  const units: WindowUnit[] = ['sec10', 'hour5', 'day', 'day30'];
  const windows = units.map((unit) => windowAt(unit, now));
  const keyCache = new Map<string, CounterKey[]>();
  const keysOf = (scope: string, subject: string): CounterKey[] => {
    const id = `${scope}/${subject}`;
    let keys = keyCache.get(id);
    if (keys === undefined) {
      keys = [];
      for (const metric of ['requests', 'input_tokens', 'output_tokens']) for (const w of windows) keys.push(counterKey(scope, subject, metric, w));
      keyCache.set(id, keys);
    }
    return keys;
  };
  const request = (): void => {
    // Zipf-like: a few tenants send most requests.
    const tenant = `tenant-${Math.floor(2000 * random.float() ** 3)}`;
    const account = `acct-${random.int(60)}`;
    const input = 200 + random.int(8000);
    const output = 50 + random.int(1500);
    for (const scope of [
      ['tenant', tenant],
      ['account', account],
    ] as const) {
      const keys = keysOf(scope[0], scope[1]);
      for (let w = 0; w < 4; w++) {
        counter.increment(keys[w]!, 1);
        counter.increment(keys[4 + w]!, input);
        counter.increment(keys[8 + w]!, output);
      }
    }
  };
  for (let i = 0; i < warmup; i++) request();
  counter.takeDelta();
  for (let i = 0; i < requests; i++) request();
  return { delta: counter.takeDelta(), counter };
}

function codec(ctx: BenchContext): void {
  const { delta: small } = realisticBatch(50, 20_000);
  const smallBytes = frameBytes(small);
  const json = new TextEncoder().encode(JSON.stringify(small)).length;
  report(
    `wire size of a batched delta (50 requests, ${fmt(small.entries.length)} changed entries)`,
    smallBytes / small.entries.length,
    'bytes/entry',
    '<= 16 bytes/entry',
    smallBytes / small.entries.length <= 16,
    {
      baseline: `JSON ${(json / small.entries.length).toFixed(1)} bytes/entry`,
    },
  );

  const { delta: large } = realisticBatch(2_000, 20_000);
  const encoded = frameBytes(large);
  const encodeMs = median(ctx.runs, () => timeMs(() => encodeFrame({ kind: 'counter-delta', delta: large })));
  const frame = encodeFrame({ kind: 'counter-delta', delta: large });
  if (!frame.ok) throw new Error('frame too large');
  const decodeMs = median(ctx.runs, () => timeMs(() => decodeFrame(frame.value)));
  const mbps = (ms: number): number => encoded / 1024 / 1024 / (ms / 1000);
  const text = JSON.stringify(large);
  const jsonEncodeMs = median(ctx.runs, () => timeMs(() => JSON.stringify(large)));
  const jsonDecodeMs = median(ctx.runs, () => timeMs(() => JSON.parse(text) as unknown));
  const entriesPerSecond = (ms: number): string => `${fmt((large.entries.length / ms) * 1000)} entries/s`;
  console.log(`  codec on a ${fmt(large.entries.length)}-entry delta (${(encoded / 1024).toFixed(0)} KiB):`);
  report('  encode', mbps(encodeMs), 'MB/s', 'reported', true, { baseline: `${entriesPerSecond(encodeMs)}; JSON.stringify ${entriesPerSecond(jsonEncodeMs)}` });
  report('  decode (checksum, validation, keys rebuilt)', mbps(decodeMs), 'MB/s', 'reported', true, {
    baseline: `${entriesPerSecond(decodeMs)}; JSON.parse ${entriesPerSecond(jsonDecodeMs)}`,
  });
}

function frameBytes(delta: CounterDelta): number {
  const encoded = encodeFrame({ kind: 'counter-delta', delta });
  if (!encoded.ok) throw new Error('frame too large');
  return encoded.value.length;
}

function fmt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function crdtBench(ctx: BenchContext): void {
  console.log(`crdt benchmark: medians of ${ctx.runs} runs${ctx.quick ? ' (quick mode)' : ''}`);
  incrementsPerSecond(ctx);
  joinLatency(ctx);
  codec(ctx);
  memory(ctx);
}
