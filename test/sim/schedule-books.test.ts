// Proves the schedule books' two checkers (tier-inversion, fairness) are exact on scripted
// starts, agree with the real tier queue, pass the simulator's scheduling scenario and catch each
// broken queue put under them.
import { describe, expect, it } from 'vitest';
import { asRegionId, asTenantId, type TenantId } from '../../src/core/ids.js';
import { SeededRandom } from '../../src/core/random.js';
import { ok } from '../../src/core/result.js';
import { type Tier, tiers } from '../../src/mesh/policy/policy-schema.js';
import { defaultScheduleSettings, type ScheduleSettings } from '../../src/mesh/policy/schedule-schema.js';
import { type QueuedRequest, type Ticket, TierQueue, type TierQueueLimits } from '../../src/schedule/tier-queue.js';
import type { QueuePort } from '../../sim/request-path.js';
import { ScheduleBooks, type ScheduleRules } from '../../sim/schedule-books.js';
import { loadScenario, withOverrides } from '../../sim/scenario-file.js';
import type { Scenario } from '../../sim/scenario.js';
import { scheduleSettingsOf, type SimRequestHooks } from '../../sim/sim-requests.js';
import type { SimResult } from '../../sim/sim-result.js';
import { runScenario } from '../../sim/simulator.js';
import { randomScenario } from '../../sim/swarm.js';

const region = asRegionId('us-east');
const settings = (overrides: Partial<ScheduleSettings>): ScheduleSettings => ({ ...defaultScheduleSettings, ...overrides });

/** A queue that starts whatever ticket the test names next: the books judge what it does. */
class ScriptedQueue implements QueuePort {
  private readonly queued = new Map<Ticket, QueuedRequest>();
  private next = 1;
  readonly script: Ticket[] = [];

  enqueue(request: { readonly tier: Tier; readonly tenant: TenantId; readonly costTokens: number }, nowMs: number): ReturnType<QueuePort['enqueue']> {
    const entry: QueuedRequest = { ...request, ticket: this.next++ as Ticket, enqueuedAtMs: nowMs };
    this.queued.set(entry.ticket, entry);
    return ok(entry);
  }

  dequeue(): QueuedRequest | undefined {
    const ticket = this.script.shift();
    const entry = ticket === undefined ? undefined : this.queued.get(ticket);
    if (entry !== undefined) this.queued.delete(entry.ticket);
    return entry;
  }

  cancel(ticket: Ticket): boolean {
    return this.queued.delete(ticket);
  }

  finish(): boolean {
    return true;
  }

  setInFlightCap(): void {}
}

function scripted(rules: Partial<ScheduleRules> & { readonly settings: ScheduleSettings }): { books: ScheduleBooks; queue: ScriptedQueue; port: QueuePort } {
  const books = new ScheduleBooks({ quantumTokens: 10, countersBy: 'estimate', ...rules });
  const queue = new ScriptedQueue();
  return { books, queue, port: books.observeQueue(queue, region) };
}

function enqueue(port: QueuePort, tier: Tier, tenant: string, costTokens: number, nowMs: number): Ticket {
  const queued = port.enqueue({ tier, tenant: asTenantId(tenant), costTokens }, nowMs);
  if (!queued.ok) throw new Error('the scripted queue takes everything');
  return queued.value.ticket;
}

function start(queue: ScriptedQueue, port: QueuePort, ticket: Ticket, nowMs: number): void {
  queue.script.push(ticket);
  expect(port.dequeue(nowMs)?.ticket).toBe(ticket);
}

const checkersOf = (failures: readonly { readonly checker: string }[]): string[] => [...new Set(failures.map((failure) => failure.checker))].sort();

describe('the tier-inversion checker', () => {
  it('allows one start below a queued higher tier in any escapeEvery starts, of work aged escapeAfterMs', () => {
    const { books, queue, port } = scripted({ settings: settings({ escapeEvery: 3, escapeAfterMs: 100 }) });
    const vips = [0, 1, 2, 3, 4].map(() => enqueue(port, 'vip', 'v', 1, 0));
    const frees = [0, 1].map(() => enqueue(port, 'free', 'f', 1, 0));
    start(queue, port, frees[0] as Ticket, 100); // start 0: an escape, aged exactly enough
    start(queue, port, vips[0] as Ticket, 100);
    start(queue, port, vips[1] as Ticket, 100);
    start(queue, port, frees[1] as Ticket, 100); // start 3: three after the last
    expect(books.failures).toEqual([]);
    expect(books.figures().escapes).toBe(2);
  });

  it('fails two escapes closer than escapeEvery, naming both starts', () => {
    const { books, queue, port } = scripted({ settings: settings({ escapeEvery: 3, escapeAfterMs: 0 }) });
    const vip = enqueue(port, 'vip', 'v', 1, 0);
    enqueue(port, 'vip', 'v', 1, 0);
    const frees = [0, 1].map(() => enqueue(port, 'free', 'f', 1, 0));
    start(queue, port, frees[0] as Ticket, 0);
    start(queue, port, vip, 0);
    start(queue, port, frees[1] as Ticket, 0);
    expect(checkersOf(books.failures)).toEqual(['tier-inversion']);
    expect(books.failures[0]?.message).toBe(
      'us-east started a free request of f (start 2) while vip work was queued, 2 starts after the last such start (0); at most one in 3',
    );
  });

  it('fails an escape of work younger than escapeAfterMs, judged by the tier’s oldest request', () => {
    const { books, queue, port } = scripted({ settings: settings({ escapeEvery: 2, escapeAfterMs: 100 }) });
    enqueue(port, 'paid', 'p', 1, 0);
    const young = enqueue(port, 'free', 'f', 1, 50);
    start(queue, port, young, 149);
    expect(books.failures.map((failure) => failure.message)).toEqual([
      'us-east started a free request of f (start 0) while paid work was queued, though the oldest free request had waited only 99 ms of the 100 ms an escape needs',
    ]);
  });

  it('fails any escape when escapes are off, and none in fifo mode', () => {
    const strict = scripted({ settings: settings({ escapeEvery: 0 }) });
    enqueue(strict.port, 'vip', 'v', 1, 0);
    start(strict.queue, strict.port, enqueue(strict.port, 'paid', 'p', 1, 0), 10_000);
    expect(strict.books.failures[0]?.message).toMatch(/with escapes off \(escapeEvery 0\)$/);
    const fifo = scripted({ settings: settings({ mode: 'fifo', escapeEvery: 0 }) });
    enqueue(fifo.port, 'vip', 'v', 1, 0);
    start(fifo.queue, fifo.port, enqueue(fifo.port, 'paid', 'p', 1, 0), 0);
    expect(fifo.books.failures).toEqual([]);
  });
});

describe('the fairness checker', () => {
  it('holds two co-queued tenants of a tier to 2U over any span, exactly', () => {
    const { books, queue, port } = scripted({ settings: settings({ levels: 1 }) });
    enqueue(port, 'paid', 'b', 5, 0);
    const a = [0, 1, 2].map(() => enqueue(port, 'paid', 'a', 25, 0)); // each capped at U = 10
    start(queue, port, a[0] as Ticket, 1);
    start(queue, port, a[1] as Ticket, 2); // a is 20 = 2U ahead: within the bound
    expect(books.failures).toEqual([]);
    expect(books.figures().fairnessSpreadMax).toBe(20);
    start(queue, port, a[2] as Ticket, 3); // 30 over the span: a's lane empties with this start, which still counts
    expect(books.failures.map((failure) => failure.message)).toEqual([
      'at us-east, a started 30 weighted tokens more than b over a span in which both stayed queued in tier paid; the bound is 2U = 20',
    ]);
  });

  it('counts a span from the moment both are queued, across both directions', () => {
    const { books, queue, port } = scripted({ settings: settings({ levels: 1 }) });
    const a1 = enqueue(port, 'free', 'a', 10, 0);
    start(queue, port, a1, 1); // a alone: nothing to compare with; its lane goes
    const a = [0, 1].map(() => enqueue(port, 'free', 'a', 10, 2));
    const b = [0, 1, 2].map(() => enqueue(port, 'free', 'b', 10, 2));
    start(queue, port, b[0] as Ticket, 3); // b +10
    start(queue, port, a[0] as Ticket, 4); // even
    start(queue, port, a[1] as Ticket, 5); // a +10, its lane empties: the pair ends
    const again = enqueue(port, 'free', 'a', 10, 6); // a new pair, from zero
    start(queue, port, b[1] as Ticket, 7);
    start(queue, port, b[2] as Ticket, 8); // b +20 since the new pair began: the bound, not past it
    expect(books.failures).toEqual([]);
    expect(books.figures().fairnessSpreadMax).toBe(20);
    port.cancel(again);
  });

  it('leaves out for good a tenant that queues at a second region, which other nodes then serve', () => {
    const books = new ScheduleBooks({ settings: settings({ levels: 1 }), quantumTokens: 10, countersBy: 'estimate' });
    const [east, west] = [new ScriptedQueue(), new ScriptedQueue()];
    const [atEast, atWest] = [books.observeQueue(east, region), books.observeQueue(west, asRegionId('us-west'))];
    enqueue(atEast, 'paid', 'b', 10, 0);
    const a = [0, 1, 2].map(() => enqueue(atEast, 'paid', 'a', 10, 0));
    start(east, atEast, a[0] as Ticket, 1);
    enqueue(atWest, 'paid', 'a', 10, 2); // a roams: what us-west serves it moves its order at us-east
    start(east, atEast, a[1] as Ticket, 3);
    start(east, atEast, a[2] as Ticket, 4);
    expect(books.failures).toEqual([]);
    expect(books.figures().fairnessUntracked).toBe(1);
    expect(books.figures().fairnessSpreadMax).toBe(10);
  });

  it('runs only where the queue states the bound: dynamic, one level, counters by estimate', () => {
    expect(new ScheduleBooks({ settings: settings({ levels: 1 }), quantumTokens: 10, countersBy: 'estimate' }).figures().fairnessChecked).toBe(true);
    expect(new ScheduleBooks({ settings: settings({ levels: 2 }), quantumTokens: 10, countersBy: 'estimate' }).figures().fairnessChecked).toBe(false);
    expect(new ScheduleBooks({ settings: settings({ levels: 1 }), quantumTokens: 10, countersBy: 'used' }).figures().fairnessChecked).toBe(false);
    expect(new ScheduleBooks({ settings: settings({ levels: 1, mode: 'fifo' }), quantumTokens: 10, countersBy: 'estimate' }).figures().fairnessChecked).toBe(
      false,
    );
  });
});

describe('the schedule books on the real tier queue', () => {
  it('find nothing to fault over random enqueues, starts and cancels under many settings', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = new SeededRandom(seed);
      const schedule = settings({ levels: 1, escapeEvery: [0, 2, 3, 10][seed % 4] as number, escapeAfterMs: [0, 50, 400][seed % 3] as number });
      const limits: TierQueueLimits = { tierDepthMax: 64, totalDepthMax: 128, inFlightMax: 4, quantumTokens: 100 };
      const queue = new TierQueue(limits, { settings: schedule });
      const books = new ScheduleBooks({ settings: schedule, quantumTokens: 100, countersBy: 'estimate' });
      const port = books.observeQueue(queue, region);
      const running: Ticket[] = [];
      const queued: Ticket[] = [];
      let nowMs = 0;
      for (let step = 0; step < 4_000; step++) {
        nowMs += random.int(20);
        const roll = random.int(10);
        if (roll < 4) {
          const tier = tiers[random.int(3)] as Tier;
          const entered = port.enqueue({ tier, tenant: asTenantId(`${tier}-${random.int(4)}`), costTokens: random.int(250) }, nowMs);
          if (entered.ok) queued.push(entered.value.ticket);
        } else if (roll < 7) {
          const started = port.dequeue(nowMs);
          if (started !== undefined) running.push(started.ticket);
        } else if (roll < 9 && running.length > 0) port.finish(running.splice(random.int(running.length), 1)[0] as Ticket);
        else if (queued.length > 0) port.cancel(queued.splice(random.int(queued.length), 1)[0] as Ticket);
      }
      expect(books.failures, `seed ${seed}`).toEqual([]);
      expect(books.figures().starts).toBeGreaterThan(500);
      // Counters capped at U = 100 were compared, and came near the bound.
      expect(books.figures().fairnessSpreadMax).toBeGreaterThan(100);
      expect(books.figures().fairnessSpreadMax).toBeLessThanOrEqual(200);
    }
  });
});

/** The shipped fairness scenario cut to 4 simulated seconds: overload, one level, counters by estimate. */
async function fairScenario(): Promise<Scenario> {
  const loaded = await loadScenario('sched-fair');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
  const short = withOverrides(loaded.value, { durationMs: 4_000 });
  if (!short.ok) throw new Error(JSON.stringify(short.error));
  return short.value;
}

/** A queue of the scenario's limits with settings other than the policy's: the books hold it to the policy's. */
function misconfigured(scenario: Scenario, change: Partial<ScheduleSettings>): SimRequestHooks {
  const path = scenario.workload.requestPath;
  const schedule = scheduleSettingsOf(path?.schedule);
  const limits: TierQueueLimits = {
    tierDepthMax: 150,
    totalDepthMax: 300,
    inFlightMax: path?.slotsPerRegion ?? 32,
    quantumTokens: path?.schedule?.quantumTokens ?? 1,
  };
  return { queue: () => new TierQueue(limits, { settings: { ...schedule, ...change } }) };
}

/** Mutant: one tenant's requests reach the queue at a quarter of their cost, so its counter lags. */
const undercharges: SimRequestHooks = {
  queue: (queue) => ({
    enqueue: (request, nowMs) =>
      queue.enqueue(request.tenant === 'path-tenant-3' ? { ...request, costTokens: Math.ceil(request.costTokens / 4) } : request, nowMs),
    dequeue: (nowMs) => queue.dequeue(nowMs),
    cancel: (ticket) => queue.cancel(ticket),
    finish: (ticket, used) => queue.finish(ticket, used),
    setInFlightCap: (cap) => queue.setInFlightCap(cap),
  }),
};

const checkers = (result: SimResult): string[] => checkersOf(result.failures);

describe('the simulator with a scheduling workload', () => {
  it('passes every checker on sched-fair, escaping and keeping fairness to the bound', async () => {
    const result = runScenario(await fairScenario(), 1);
    expect(result.failures).toEqual([]);
    const schedule = result.requestPath?.schedule;
    expect(schedule?.fairnessChecked).toBe(true);
    expect(schedule?.escapes).toBeGreaterThan(0);
    // Requests up to 4,500 weighted tokens against U = 2,048: the bound is reached, never passed.
    expect(schedule?.fairnessSpreadMax).toBeGreaterThan(2_048);
    expect(schedule?.fairnessSpreadMax).toBeLessThanOrEqual(4_096);
    // Tiers come first: vip is served the largest share of what it asked.
    const tiersServed = result.requestPath?.tiers.tiers;
    const share = (tier: Tier): number => (tiersServed?.[tier].served ?? 0) / (tiersServed?.[tier].submitted ?? 1);
    expect(share('vip')).toBeGreaterThan(share('paid'));
    expect(share('paid')).toBeGreaterThan(share('free'));
  });

  it('fails tier-inversion on a queue that serves in arrival order where the policy says dynamic', async () => {
    const scenario = await fairScenario();
    const result = runScenario(scenario, 1, { requests: misconfigured(scenario, { mode: 'fifo' }) });
    expect(checkers(result)).toContain('tier-inversion');
  });

  it('fails tier-inversion, and only it, on a queue that escapes every 2 starts where the policy says 5', async () => {
    const scenario = await fairScenario();
    const result = runScenario(scenario, 1, { requests: misconfigured(scenario, { escapeEvery: 2 }) });
    expect(checkers(result)).toEqual(['tier-inversion']);
    expect(result.failures[0]?.message).toMatch(/at most one in 5$/);
  });

  it('fails tier-inversion, and only it, on a queue that escapes at once where the policy waits 500 ms', async () => {
    const scenario = await fairScenario();
    const result = runScenario(scenario, 1, { requests: misconfigured(scenario, { escapeAfterMs: 0 }) });
    expect(checkers(result)).toEqual(['tier-inversion']);
    expect(result.failures[0]?.message).toMatch(/of the 500 ms an escape needs$/);
  });

  it('fails fairness, and only it, on a queue that charges one tenant a quarter of its cost', async () => {
    const result = runScenario(await fairScenario(), 1, { requests: undercharges });
    expect(checkers(result)).toEqual(['fairness']);
    expect(result.failures[0]?.message).toMatch(/path-tenant-3 started \d+ weighted tokens more than path-tenant-\d+ .* the bound is 2U = 4096$/);
  });

  it('passes swarm runs of swarm-sched, whose schedule is drawn per seed', async () => {
    const loaded = await loadScenario('swarm-sched');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
    const drawn = [1, 2, 3, 4].map((seed) => randomScenario(seed, loaded.value).workload.requestPath?.schedule);
    // The draws differ per seed and stay valid settings.
    expect(new Set(drawn.map((schedule) => JSON.stringify(schedule))).size).toBeGreaterThan(1);
    for (const seed of [1, 2]) {
      const result = runScenario(randomScenario(seed, loaded.value), seed);
      expect(result.failures, `swarm seed ${seed}`).toEqual([]);
      expect(result.requestPath?.schedule.starts).toBeGreaterThan(0);
    }
  });
});
