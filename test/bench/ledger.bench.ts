// The ledger benchmark (`npm run bench -- ledger`): the SQLite store's figures beside a bare
// better-sqlite3 insert loop measured in the same run.
//
//   (a) baseline: bare better-sqlite3 inserts into the same ledger table (same schema, indexes and
//       pragmas), one transaction per 1,000 rows
//   (b) ledger rows/s through SqliteStore.commit with group commits as a node makes them: requests
//       settle at 50,000/s (open loop), each adds its row, its open request's delete and its
//       counter entries to a pending batch, and one commit per setImmediate turn writes what the
//       turn gathered; sustained when the run ends on schedule. Beside it the same as fast as it goes
//   (c) added latency of durable settlement at 500 requests/s for 60 s (BENCH_LEDGER_SECONDS
//       shortens it; --quick is 10 s), open loop: from a request's settlement to the end of the
//       group commit holding its row; p50, p99, p99.9 and max, with the longest event-loop stall
//       beside it and, as the baseline, the same loop whose group commit writes nothing, run in
//       alternating 5 s blocks with it (60 s each); then 10 s with sync full
//   (d) restart: a file with 1,000,000 ledger rows and 100,000 counter entries (--quick: 200,000
//       rows), then open()+load() timed; beside it a bare open and read of the counter table, a
//       roll-up chunk and a usage query over all the rows
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { ledgerRollUpRowsMax, storePageBytes } from '../../src/core/limits.js';
import { insertLedgerSql, ledgerValues } from '../../src/ledger/ledger-columns.js';
import type { LedgerRow } from '../../src/ledger/ledger-row.js';
import type { StateBatch, StoredCounterEntry } from '../../src/ledger/node-state.js';
import { SqliteStore, type StoreOptions } from '../../src/ledger/sqlite-store.js';
import { migrate } from '../../src/ledger/store-schema.js';
import { batchOf, ledgerRow, tempFolder } from '../support/ledger.js';
import { openLoop, percentile, sortedCopy } from './gateway-load.js';
import { type BenchContext, collectGarbage, report } from './harness.js';

const dayMs = 86_400_000;
const nowMs = Date.UTC(2026, 11, 6, 12);
const options: StoreOptions = { sync: 'normal', maxBytes: 8 * 1024 * 1024 * 1024 };
const tenants = 50;
const accounts = 10;

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function ms(n: number): string {
  return `${n.toFixed(3)} ms`;
}

/** The i-th request's row: spread over tenants, users, keys, accounts and the last day. */
function rowOf(i: number, chargedAtMs = nowMs - (i % 86_400) * 1000): LedgerRow {
  const tenant = `tenant-${i % tenants}`;
  return ledgerRow({
    requestId: `req-${i}`,
    tenant,
    user: `user-${i % 997}`,
    apiKeyId: `${tenant}.k${i % 3}`,
    account: `acct-${i % accounts}`,
    model: i % 4 === 0 ? 'claude-opus-4-6' : 'claude-sonnet-4-6',
    inputTokens: 1_000 + (i % 500),
    outputTokens: 200 + (i % 300),
    weightedTokens: 2_000 + (i % 2_000),
    costMicros: 6_000 + (i % 6_000),
    chargedAtMs,
    settledAtMs: chargedAtMs + 900,
    durationMs: 900,
  });
}

/** The own counter entries one settled request changes: its tenant's and its account's windows. */
function countersOf(row: LedgerRow, i: number): StoredCounterEntry[] {
  const entry = (scope: string, subject: string, metric: string, unit: string, lengthMs: number): StoredCounterEntry => {
    const index = Math.floor(row.chargedAtMs / lengthMs);
    return { scope, subject, metric, unit, index, replica: 'bench-1~r1', endMs: (index + 1) * lengthMs, p: i * 7, n: 0, version: i };
  };
  return [
    entry('tenant', row.tenant, 'weighted_tokens', 'minute', 60_000),
    entry('tenant', row.tenant, 'weighted_tokens', 'hour', 3_600_000),
    entry('tenant', row.tenant, 'weighted_tokens', 'day', dayMs),
    entry('tenant', row.tenant, 'requests', 'minute', 60_000),
    entry('tenant', row.tenant, 'requests', 'day', dayMs),
    entry('account', row.account ?? '', 'weighted_tokens', 'minute', 60_000),
    entry('account', row.account ?? '', 'weighted_tokens', 'day', dayMs),
  ];
}

/**
 * What a node's journal does between commits: gathers settled requests (row, open-request delete,
 * counter entries, the latest per key) and writes them in one commit on the next setImmediate turn.
 * `write` is the commit; the latency baseline passes one that writes nothing.
 */
class GroupCommit {
  private rows: LedgerRow[] = [];
  private deleted: string[] = [];
  private counters = new Map<string, StoredCounterEntry>();
  private waiters: (() => void)[] = [];
  private scheduled = false;
  commits = 0;

  constructor(private readonly write: (batch: StateBatch) => void) {}

  settle(row: LedgerRow, i: number): Promise<void> {
    this.rows.push(row);
    this.deleted.push(row.requestId);
    for (const e of countersOf(row, i)) this.counters.set(`${e.scope}/${e.subject}/${e.metric}/${e.unit}/${e.index}`, e);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private flush(): void {
    const batch = batchOf({ ledgerRows: this.rows, openRequestsDeleted: this.deleted, counterEntries: [...this.counters.values()] });
    const waiters = this.waiters;
    this.rows = [];
    this.deleted = [];
    this.counters = new Map();
    this.waiters = [];
    this.scheduled = false;
    this.write(batch);
    this.commits++;
    for (const resolve of waiters) resolve();
  }
}

function openBenchStore(path: string): SqliteStore {
  const opened = SqliteStore.open(path, options);
  if (!opened.ok) throw new Error(opened.error.message);
  return opened.value;
}

function committer(store: SqliteStore): (batch: StateBatch) => void {
  return (batch) => {
    const result = store.commit(batch);
    if (!result.ok) throw new Error(result.error.message);
  };
}

/** (a) The floor: a bare insert loop into the same table under the same pragmas. */
function bareInsertsPerSecond(path: string, count: number): number {
  const db = new Database(path);
  db.pragma(`page_size = ${storePageBytes}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  migrate(db);
  const insert = db.prepare(insertLedgerSql);
  const insertThousand = db.transaction((from: number) => {
    for (let i = from; i < from + 1_000; i++) insert.run(ledgerValues(rowOf(i)));
  });
  const start = performance.now();
  for (let from = 0; from < count; from += 1_000) insertThousand(from);
  const elapsedMs = performance.now() - start;
  db.close();
  return (count / elapsedMs) * 1000;
}

/**
 * (b) Requests settling on a schedule of `rate` a second for `seconds` (open loop: each turn
 * settles every request due by now, at most `turnRowsMax`), one group commit per turn. The store
 * keeps up when the run ends on time; `rate` Infinity settles `turnRowsMax` a turn, as fast as it goes.
 */
async function groupCommitRun(path: string, rate: number, seconds: number): Promise<{ rowsPerSecond: number; rowsPerCommit: number; lateMs: number }> {
  const turnRowsMax = 2_000;
  const total = Number.isFinite(rate) ? Math.round(rate * seconds) : 50_000 * seconds;
  const store = openBenchStore(path);
  const group = new GroupCommit(committer(store));
  const start = performance.now();
  let settled = 0;
  let last: Promise<void> = Promise.resolve();
  // Bounded: every turn settles at least one request once its time has come, and `total` is finite.
  while (settled < total) {
    const due = Number.isFinite(rate) ? Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate)) : total;
    for (const upTo = Math.min(due, settled + turnRowsMax); settled < upTo; settled++) last = group.settle(rowOf(settled, Date.now()), settled);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await last;
  const elapsedMs = performance.now() - start;
  store.close();
  await store.closed();
  return { rowsPerSecond: (total / elapsedMs) * 1000, rowsPerCommit: total / group.commits, lateMs: Number.isFinite(rate) ? elapsedMs - seconds * 1000 : 0 };
}

interface LatencyRun {
  readonly sorted: number[];
  readonly stallMs: number;
  readonly skipped: number;
}

/** (c) Open loop at `rate`/s for `seconds`; each request's latency runs from settlement to its commit's end. */
async function settlementLatency(write: (batch: StateBatch) => void, rate: number, seconds: number): Promise<LatencyRun> {
  const group = new GroupCommit(write);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const run = await openLoop(rate, Math.round(rate * seconds), async (i) => {
    await group.settle(rowOf(i, Date.now()), i);
    return true;
  });
  delay.disable();
  return { sorted: run.latenciesMs, stallMs: delay.max / 1e6, skipped: run.skipped + run.abandoned };
}

/**
 * (c) The durable loop and the baseline loop (the same, committing nothing) in alternating blocks
 * of `blockSeconds`, `seconds` each in all: a stall of the machine (other work, the disk) then
 * bills both alike, and the difference of their percentiles is what the commits add.
 */
async function interleavedLatency(write: (batch: StateBatch) => void, rate: number, seconds: number): Promise<{ durable: LatencyRun; hop: LatencyRun }> {
  const blockSeconds = Math.min(5, seconds);
  const runs = { durable: [] as LatencyRun[], hop: [] as LatencyRun[] };
  for (let block = 0; block * blockSeconds < seconds; block++) {
    const length = Math.min(blockSeconds, seconds - block * blockSeconds);
    collectGarbage();
    // Alternate which goes first, so neither always follows the other's garbage or log.
    for (const kind of block % 2 === 0 ? (['durable', 'hop'] as const) : (['hop', 'durable'] as const)) {
      runs[kind].push(await settlementLatency(kind === 'durable' ? write : () => {}, rate, length));
    }
  }
  const merge = (parts: LatencyRun[]): LatencyRun => ({
    sorted: sortedCopy(parts.flatMap((p) => p.sorted)),
    stallMs: Math.max(...parts.map((p) => p.stallMs)),
    skipped: parts.reduce((n, p) => n + p.skipped, 0),
  });
  return { durable: merge(runs.durable), hop: merge(runs.hop) };
}

/**
 * How much of a window some task on this machine waited for a CPU (Linux PSI, /proc/pressure/cpu),
 * in percent, with the load average: tails measured beside other busy processes on 2 cores are
 * the scheduler's as much as the store's, and this says how busy the machine was. Null where the
 * kernel does not report it.
 */
function cpuPressure(): () => string {
  const read = (): number | null => {
    try {
      const some = /some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
      return some === null ? null : Number(some[1]);
    } catch {
      return null;
    }
  };
  const startUs = read();
  const startMs = performance.now();
  return () => {
    const endUs = read();
    const load = loadavg()[0]!.toFixed(1);
    if (startUs === null || endUs === null) return `load average ${load}`;
    return `CPU pressure ${(((endUs - startUs) / 1000 / (performance.now() - startMs)) * 100).toFixed(0)}% (some task waited for a CPU), load average ${load}`;
  };
}

/** (d) A file as a node that served for a while leaves it. */
async function buildRestartFile(path: string, rows: number, counters: number): Promise<void> {
  const store = openBenchStore(path);
  const chunk = 10_000;
  for (let i = 0; i < rows; i += chunk) {
    const ledgerRows = Array.from({ length: Math.min(chunk, rows - i) }, (_, j) => rowOf(i + j, nowMs - Math.floor(((i + j) / rows) * 60 * dayMs)));
    const counterEntries = Array.from({ length: i < counters ? Math.min(chunk, counters - i) : 0 }, (_, j) => ({
      scope: 'tenant',
      subject: `tenant-${i + j}`,
      metric: 'weighted_tokens',
      unit: 'day',
      index: 20_428,
      replica: 'bench-1~r1',
      endMs: nowMs + dayMs,
      p: i + j,
      n: 0,
      version: 1,
    }));
    committer(store)(batchOf({ ledgerRows, counterEntries }));
  }
  store.close();
  // The file a restarted node finds: its last checkpoint done by the thread that made it.
  await store.closed();
}

async function restart(path: string, rows: number, counters: number): Promise<void> {
  await buildRestartFile(path, rows, counters);
  collectGarbage();
  let start = performance.now();
  const store = openBenchStore(path);
  const snapshot = store.load();
  const restartMs = performance.now() - start;
  if (snapshot.counterEntries.length !== counters) throw new Error(`loaded ${snapshot.counterEntries.length} counter entries, wrote ${counters}`);
  start = performance.now();
  const answer = store.queryUsage({ filter: { side: 'tenant' }, groupBy: ['tenant'] });
  const queryMs = performance.now() - start;
  if (answer.totals.requests !== rows) throw new Error(`the query counted ${answer.totals.requests} rows of ${rows}`);
  start = performance.now();
  const rolled = store.rollUp(nowMs + 200 * dayMs);
  const rollUpMs = performance.now() - start;
  store.close();
  await store.closed();
  collectGarbage();
  start = performance.now();
  const db = new Database(path);
  db.pragma('locking_mode = EXCLUSIVE');
  const bare = db.prepare('SELECT * FROM counter_entries').raw().all().length;
  const bareMs = performance.now() - start;
  db.close();
  report(
    `restart: open()+load() of a file with ${fmt(rows)} ledger rows and ${fmt(counters)} counter entries`,
    restartMs,
    'ms',
    '<= 2,000 ms',
    restartMs <= 2_000,
    {
      baseline: `bare better-sqlite3 open and raw read of the ${fmt(bare)} counter rows ${ms(bareMs)}`,
    },
  );
  report(`  usage query over all ${fmt(rows)} rows, grouped by tenant`, queryMs, 'ms', 'reported', true, { baseline: `${answer.groups.length} groups` });
  report(`  one roll-up chunk (${fmt(rolled.ok ? rolled.value : 0)} rows, ledgerRollUpRowsMax ${fmt(ledgerRollUpRowsMax)})`, rollUpMs, 'ms', 'reported', true, {
    baseline: 'the event loop is held this long per chunk',
  });
}

export async function ledgerBench(ctx: BenchContext): Promise<void> {
  const folder = tempFolder('carpool-ledger-bench-');
  try {
    console.log('\nledger: the SQLite store (src/ledger/sqlite-store.ts)');
    const count = ctx.quick ? 100_000 : 400_000;
    const bare = bareInsertsPerSecond(`${folder.path}/bare.db`, count);
    report('bare better-sqlite3 inserts, 1,000 rows per transaction (the baseline)', bare, 'rows/s', 'reported', true, {
      baseline: 'the same table and indexes, WAL, synchronous NORMAL, 1 KiB pages, SQLite checkpointing in the commits',
    });
    const target = 50_000;
    const sustainSeconds = ctx.quick ? 3 : 10;
    const sustainedPressure = cpuPressure();
    const sustained = await groupCommitRun(`${folder.path}/sustained.db`, target, sustainSeconds);
    const sustainedMachine = sustainedPressure();
    // Kept pace: the last commit ended within 2% of the run's length after the schedule's end.
    const kept = sustained.lateMs <= 0.02 * sustainSeconds * 1000;
    report(
      `ledger rows through commit(), requests settling at ${fmt(target)}/s for ${sustainSeconds} s, one group commit per turn`,
      sustained.rowsPerSecond,
      'rows/s',
      `keeps pace with ${fmt(target)} rows/s`,
      kept,
      {
        baseline:
          `bare inserts ${fmt(bare)} rows/s; ${sustained.rowsPerCommit.toFixed(0)} rows per commit, each with its requests' open-request deletes and counter entries; ` +
          `ended ${sustained.lateMs.toFixed(0)} ms behind schedule; the machine meanwhile: ${sustainedMachine}`,
      },
    );
    const saturated = await groupCommitRun(`${folder.path}/saturated.db`, Number.POSITIVE_INFINITY, sustainSeconds);
    report('  the same as fast as it goes (2,000 requests settling per turn)', saturated.rowsPerSecond, 'rows/s', 'reported', true, {
      baseline: `bare inserts ${fmt(bare)} rows/s; ${saturated.rowsPerCommit.toFixed(0)} rows per commit`,
    });

    const seconds = Number(process.env.BENCH_LEDGER_SECONDS ?? (ctx.quick ? 10 : 60));
    if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3_600) throw new Error('BENCH_LEDGER_SECONDS takes 1 to 3600');
    const store = openBenchStore(`${folder.path}/latency.db`);
    const pressure = cpuPressure();
    const { durable, hop } = await interleavedLatency(committer(store), 500, seconds);
    const machine = pressure();
    const storeStats = store.stats();
    store.close();
    await store.closed();
    const fullSeconds = Math.min(seconds, 10);
    const full = SqliteStore.open(`${folder.path}/latency-full.db`, { ...options, sync: 'full' });
    if (!full.ok) throw new Error(full.error.message);
    const synced = await settlementLatency(committer(full.value), 500, fullSeconds);
    full.value.close();
    await full.value.closed();
    synced.sorted.sort((a, b) => a - b);
    const p = (run: LatencyRun, q: number): number => percentile(run.sorted, q);
    const added = p(durable, 99) - p(hop, 99);
    report(
      `durable settlement at 500 requests/s over ${seconds} s (sync normal): added latency p99`,
      added,
      'ms',
      '<= 1 ms',
      added <= 1 && durable.skipped === 0,
      {
        baseline:
          `with the commit: p50 ${ms(p(durable, 50))}, p99 ${ms(p(durable, 99))}, p99.9 ${ms(p(durable, 99.9))}, max ${ms(p(durable, 100))}, ` +
          `longest event-loop stall ${ms(durable.stallMs)}, ${durable.sorted.length} requests, ${durable.skipped} skipped; ` +
          `${storeStats.checkpoint.checkpoints} checkpoints on the thread, ${storeStats.inlineCheckpoints} catch-ups on the event loop (the last ${ms(storeStats.lastInlineCheckpointMs)}), ` +
          `log ${(storeStats.walBytes / 1024 / 1024).toFixed(0)} MB at the end; ` +
          `the same loop committing nothing, in alternating 5 s blocks for ${seconds} s: p50 ${ms(p(hop, 50))}, p99 ${ms(p(hop, 99))}, p99.9 ${ms(p(hop, 99.9))}, max ${ms(p(hop, 100))}, ` +
          `longest event-loop stall ${ms(hop.stallMs)}; the machine meanwhile: ${machine}`,
      },
    );
    report(`  the same with sync full (an fsync per commit) over ${fullSeconds} s: p99`, p(synced, 99), 'ms', 'reported', true, {
      baseline: `p50 ${ms(p(synced, 50))}, p99.9 ${ms(p(synced, 99.9))}, max ${ms(p(synced, 100))}, longest event-loop stall ${ms(synced.stallMs)}`,
    });

    await restart(`${folder.path}/restart.db`, ctx.quick ? 200_000 : 1_000_000, 100_000);
  } finally {
    rmSync(folder.path, { recursive: true, force: true });
  }
}
