// The three arms of the scheduling benchmark (test/bench/scheduling.bench.ts), each one
// continuous open-loop run of the same offered load (test/bench/scheduling-mix.ts) against a fresh
// emulator whose accounts have per-minute limits:
//   direct       the clients call the emulator with one account's key, no carpool node at all.
//                The emulator enforces per-minute limits (429 with retry-after) but no concurrency
//                limit, so the clients hold the account's concurrency limit themselves: a request
//                past it is refused at once, as an upstream enforcing it would answer;
//   round-robin  a real node with the pool's accounts, `pool.strategy` round-robin and
//                `settings.schedule.mode` fifo (one arrival-order queue), no degrade rules;
//   dynamic      the same node with `schedule.mode` dynamic, least-loaded, and degrade rules for free.
// Every request is recorded by its index in the schedule (status, latency, degraded, usage); the
// first `warmS` seconds of the schedule are load but not figures. Afterwards the arm waits until
// nothing runs anywhere and reconciles what the clients were told, what the node's ledger charged
// the tenants and the accounts, and what the emulator counted.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Pool } from 'undici';
import { type OpenLoopRun, openLoop } from './gateway-load.js';
import { mainThreadProfile } from './gateway-profile.js';
import { type EmulatorChild, type NodeChild, nodeMetricsText, processCpuMs, startEmulatorChild, startNodeChild } from './gateway-processes.js';
import { arrivalTenants, type MixTenant, requestBody, tenantMix } from './scheduling-mix.js';
import { type ClientSideSums, type Reconciliation, reconcileDirect, reconcileNode } from './scheduling-reconcile.js';
import { sampleSum } from './unary-window.js';

export const armNames = ['direct', 'round-robin', 'dynamic'] as const;
export type ArmName = (typeof armNames)[number];

/** The pool every arm draws on: 8 accounts, each with a concurrency limit and per-minute limits. */
export const benchPool = Object.freeze({
  accounts: 8,
  concurrencyMax: 4,
  requestsPerMinute: 600,
  inputTokensPerMinute: 1_000_000,
  outputTokensPerMinute: 400_000,
});

/**
 * How fast the emulator answers: the first token after 200 ms, then 500 tokens a second, answers
 * naturally 32 to 256 tokens long. About half a second a call, so an account's 4 concurrent calls
 * serve about 8 requests/s (below its 10/s per-minute limit) and the pool about 65/s: small enough
 * that the pool, not this machine's two cores, is what runs out (a durable node spends a few ms of
 * CPU per request here).
 */
export const benchPacing = Object.freeze({ ttftMs: 200, tokensPerSecond: 500, outputTokensMin: 32, outputTokensMax: 256 });

/** The degrade rule of the dynamic arm: free requests are cut to 64 output tokens on a cheaper model when the pool is short. */
export const freeDegradeRule = Object.freeze({ maxTokens: 64, models: Object.freeze({ 'claude-sonnet-4-6': 'claude-haiku-4-5' }) });

/** The policy settings of each node arm. */
export function armSettings(arm: Exclude<ArmName, 'direct'>): object {
  if (arm === 'round-robin') return { pool: { strategy: 'round-robin' }, schedule: { mode: 'fifo' } };
  return {
    pool: { strategy: 'least-loaded' },
    schedule: { mode: 'dynamic' },
    degrade: { utilisationPercent: 85, pausedAccounts: 1, tiers: { free: freeDegradeRule } },
  };
}

export interface SchedulingSetup {
  /** Requests offered per second, open loop, in every arm. */
  readonly rate: number;
  /** Seconds of load before the measured window (counted in the reconciliation, not in the figures). */
  readonly warmS: number;
  /** The measured window, in seconds of continuous load. */
  readonly windowS: number;
  readonly seed: number;
  /** A client gives up on an answer after this long (its connection closes). */
  readonly clientDeadlineMs: number;
  /** Requests outstanding at once; past it a due request is not sent, and counted. */
  readonly outstandingMax: number;
}

/** Per request of the schedule, by index. Status: the HTTP status, or one of `notSent`, `noAnswer`, `refusedByClient`. */
export interface Records {
  readonly status: Int16Array;
  /** When the request went out, `performance.now()` (0 if it never did). */
  readonly sentAtMs: Float64Array;
  readonly latencyMs: Float64Array;
  readonly degraded: Uint8Array;
  readonly inputTokens: Uint32Array;
  readonly outputTokens: Uint32Array;
  readonly cacheWriteTokens: Uint32Array;
  readonly cacheReadTokens: Uint32Array;
}
export const notSent = 0;
/** The connection failed, or the client's deadline passed before an answer. */
export const noAnswer = -1;
/** Direct arm: the account already ran its concurrency limit of calls from these clients. */
export const refusedByClient = -2;

export interface ArmRun {
  readonly arm: ArmName;
  readonly setup: SchedulingSetup;
  readonly tenants: readonly MixTenant[];
  /** The tenant index of each request. */
  readonly picks: Uint8Array;
  readonly records: Records;
  /** The first request index of the measured window. */
  readonly measuredFrom: number;
  /** `performance.now()` when the schedule started: request i was due `i / rate` seconds later. */
  readonly startedAtMs: number;
  readonly run: OpenLoopRun;
  /** The node's longest event-loop stall over the measured window (its Prometheus registry); undefined for direct. */
  readonly nodeStallMs: number | undefined;
  /** This process's (the load generator's) longest event-loop stall over the measured window. */
  readonly loadStallMs: number;
  /** CPU ms the node used over the measured window; undefined for direct. */
  readonly nodeCpuMs: number | undefined;
  readonly reconciliation: Reconciliation;
  /** With SCHEDULING_BENCH_CPU_PROFILE: the node's CPU profile, and how much of it came before the window. */
  readonly profile?: { readonly path: string; readonly skipMs: number } | undefined;
}

const jsonHeaders = { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

function newRecords(count: number): Records {
  return {
    status: new Int16Array(count),
    sentAtMs: new Float64Array(count),
    latencyMs: new Float64Array(count),
    degraded: new Uint8Array(count),
    inputTokens: new Uint32Array(count),
    outputTokens: new Uint32Array(count),
    cacheWriteTokens: new Uint32Array(count),
    cacheReadTokens: new Uint32Array(count),
  };
}

interface MessageUsage {
  readonly input_tokens?: number;
  readonly output_tokens?: number;
  readonly cache_creation_input_tokens?: number | null;
  readonly cache_read_input_tokens?: number | null;
}

/**
 * Posts request `i` with `key` through `pool` and records its answer: status, latency from the
 * send, the `carpool-degraded` header, and the usage of a 200. True on a 200.
 */
async function post(pool: Pool, key: string, i: number, records: Records): Promise<boolean> {
  const sentAt = performance.now();
  records.sentAtMs[i] = sentAt;
  try {
    const res = await pool.request({ method: 'POST', path: '/v1/messages', headers: { ...jsonHeaders, 'x-api-key': key }, body: requestBody(i) });
    records.degraded[i] = res.headers['carpool-degraded'] === undefined ? 0 : 1;
    if (res.statusCode !== 200) {
      await res.body.dump();
      records.status[i] = res.statusCode;
      records.latencyMs[i] = performance.now() - sentAt;
      return false;
    }
    const usage = ((await res.body.json()) as { usage?: MessageUsage }).usage ?? {};
    records.status[i] = 200;
    records.latencyMs[i] = performance.now() - sentAt;
    records.inputTokens[i] = usage.input_tokens ?? 0;
    records.outputTokens[i] = usage.output_tokens ?? 0;
    records.cacheWriteTokens[i] = usage.cache_creation_input_tokens ?? 0;
    records.cacheReadTokens[i] = usage.cache_read_input_tokens ?? 0;
    return true;
  } catch {
    records.status[i] = noAnswer;
    records.latencyMs[i] = performance.now() - sentAt;
    return false;
  }
}

/** What an arm measures over its window besides the requests: stalls and CPU, started at the window's first request. */
class WindowProbes {
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });
  private nodeBefore: Promise<unknown> | undefined;
  private nodeAfter: Promise<string> | undefined;
  private cpuBefore = 0;
  private cpuAfter = 0;

  constructor(private readonly node: NodeChild | undefined) {}

  /** At the window's first request: the node's stall histogram restarts with this scrape. */
  start(): void {
    this.loop.enable();
    if (this.node === undefined) return;
    this.cpuBefore = processCpuMs(this.node.pid);
    this.nodeBefore = nodeMetricsText(this.node).catch(() => '');
  }

  /** At the window's last request. */
  end(): void {
    this.loop.disable();
    if (this.node === undefined) return;
    this.cpuAfter = processCpuMs(this.node.pid);
    this.nodeAfter = nodeMetricsText(this.node).catch(() => '');
  }

  async figures(): Promise<{ nodeStallMs: number | undefined; loadStallMs: number; nodeCpuMs: number | undefined }> {
    await this.nodeBefore;
    const after = await this.nodeAfter;
    return {
      nodeStallMs: after === undefined || after === '' ? undefined : sampleSum(after, 'nodejs_eventloop_lag_max_seconds') * 1000,
      loadStallMs: this.loop.max / 1e6,
      nodeCpuMs: this.node === undefined ? undefined : this.cpuAfter - this.cpuBefore,
    };
  }
}

/** Requests in the whole schedule: the warm-up's and the window's. */
function scheduleCount(setup: SchedulingSetup): number {
  return Math.round(setup.rate * setup.warmS) + Math.round(setup.rate * setup.windowS);
}

/** One open-loop run of the schedule through `send`, with the probes started and ended at the window's bounds. */
async function drive(
  setup: SchedulingSetup,
  probes: WindowProbes,
  send: (i: number) => Promise<boolean>,
): Promise<{ run: OpenLoopRun; measuredFrom: number; startedAtMs: number }> {
  const measuredFrom = Math.round(setup.rate * setup.warmS);
  const count = scheduleCount(setup);
  const startedAtMs = performance.now();
  const run = await openLoop(
    setup.rate,
    count,
    (i) => {
      if (i === measuredFrom) probes.start();
      if (i === count - 1) probes.end();
      return send(i);
    },
    { outstandingMax: setup.outstandingMax, drainMsMax: setup.clientDeadlineMs + 5_000 },
  );
  return { run, measuredFrom, startedAtMs };
}

/** The emulator of one arm: fresh, so that every arm starts with full per-minute buckets and zero counts. */
function startArmEmulator(): Promise<EmulatorChild> {
  return startEmulatorChild({
    accounts: benchPool.accounts,
    outputTokens: benchPacing.outputTokensMax,
    outputTokensMin: benchPacing.outputTokensMin,
    ttftMs: benchPacing.ttftMs,
    tokensPerSecond: benchPacing.tokensPerSecond,
    limits: {
      requestsPerMinute: benchPool.requestsPerMinute,
      inputTokensPerMinute: benchPool.inputTokensPerMinute,
      outputTokensPerMinute: benchPool.outputTokensPerMinute,
    },
  });
}

/** The direct arm: every tenant's requests on the emulator's first key, at most the account's concurrency at once. */
export async function runDirect(setup: SchedulingSetup): Promise<ArmRun> {
  const tenants = tenantMix();
  const emulator = await startArmEmulator();
  try {
    const key = emulator.keys[0]!;
    const pool = new Pool(emulator.url, { connections: benchPool.concurrencyMax, headersTimeout: setup.clientDeadlineMs, bodyTimeout: setup.clientDeadlineMs });
    const probes = new WindowProbes(undefined);
    const picks = arrivalTenants(tenants, scheduleCount(setup), setup.seed);
    const records = newRecords(picks.length);
    let inFlight = 0;
    const { run, measuredFrom, startedAtMs } = await drive(setup, probes, async (i) => {
      if (inFlight >= benchPool.concurrencyMax) {
        records.status[i] = refusedByClient;
        records.sentAtMs[i] = performance.now();
        return false;
      }
      inFlight++;
      try {
        return await post(pool, key, i, records);
      } finally {
        inFlight--;
      }
    });
    await pool.destroy();
    const reconciliation = await reconcileDirect(emulator, key, clientSums(tenants, picks, records));
    return { arm: 'direct', setup, tenants, picks, records, measuredFrom, startedAtMs, run, ...(await probes.figures()), reconciliation };
  } finally {
    await emulator.stop();
  }
}

/** A node arm: a fresh emulator and a node with every account of it, the arm's settings, and a key per tenant. */
export async function runNodeArm(arm: Exclude<ArmName, 'direct'>, setup: SchedulingSetup): Promise<ArmRun> {
  const tenants = tenantMix();
  const emulator = await startArmEmulator();
  try {
    const node = await startNodeChild({
      emulator,
      accountConcurrencyMax: benchPool.concurrencyMax,
      // The node holds the tenants' own concurrency far above the pool's: the pool is what runs out.
      tenantConcurrencyMax: 10_000,
      tier: 'paid',
      http: true,
      durable: true,
      tenants: tenants.map(({ id, tier }) => ({ id, tier })),
      accountLimits: [{ metric: 'requests', window: 'minute', sliding: true, limit: benchPool.requestsPerMinute, mode: 'eventual' }],
      settings: armSettings(arm),
      cpuProfileDir: profileDir(),
    });
    let result: ArmRun | undefined;
    try {
      const picks = arrivalTenants(tenants, scheduleCount(setup), setup.seed);
      const keys = tenants.map((t) => node.apiKeys[t.id]!);
      const pool = new Pool(`http://127.0.0.1:${node.httpPort}`, {
        connections: setup.outstandingMax,
        headersTimeout: setup.clientDeadlineMs,
        bodyTimeout: setup.clientDeadlineMs,
      });
      const records = newRecords(picks.length);
      const probes = new WindowProbes(node);
      const { run, measuredFrom, startedAtMs } = await drive(setup, probes, (i) => post(pool, keys[picks[i]!]!, i, records));
      await pool.destroy();
      const reconciliation = await reconcileNode(node, emulator, tenants, clientSums(tenants, picks, records));
      result = { arm, setup, tenants, picks, records, measuredFrom, startedAtMs, run, ...(await probes.figures()), reconciliation };
    } catch (error) {
      throw new Error(`${String(error)}\nthe node's output:\n${node.output()}`);
    } finally {
      // The node writes its profile as it exits.
      await node.stop();
    }
    const dir = profileDir();
    const path = dir === undefined ? undefined : mainThreadProfile(dir, node.pid);
    const windowStartMs = result.startedAtMs + (result.measuredFrom * 1000) / setup.rate;
    return path === undefined ? result : { ...result, profile: { path, skipMs: windowStartMs - node.spawnedAtMs } };
  } finally {
    await emulator.stop();
  }
}

/** SCHEDULING_BENCH_CPU_PROFILE=DIR profiles the node of each arm (as GATEWAY_BENCH_CPU_PROFILE does the gateway's). */
function profileDir(): string | undefined {
  const dir = process.env.SCHEDULING_BENCH_CPU_PROFILE;
  return dir === undefined || dir === '' ? undefined : dir;
}

/** What the clients were told they used, per tenant, over every request of the run (warm-up included), and how many got no answer. */
function clientSums(tenants: readonly MixTenant[], picks: Uint8Array, records: Records): ClientSideSums {
  const byTenant = tenants.map(() => ({ requests: 0, inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0 }));
  let unanswered = 0;
  for (let i = 0; i < picks.length; i++) {
    if (records.status[i] === noAnswer) unanswered++;
    if (records.status[i] !== 200) continue;
    const sums = byTenant[picks[i]!]!;
    sums.requests++;
    sums.inputTokens += records.inputTokens[i]!;
    sums.outputTokens += records.outputTokens[i]!;
    sums.cacheWriteTokens += records.cacheWriteTokens[i]!;
    sums.cacheReadTokens += records.cacheReadTokens[i]!;
  }
  return { byTenant, unanswered };
}
