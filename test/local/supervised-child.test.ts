// Proves the launcher's supervision of one child without real processes: a death restarts it
// after the backoff and reports both events, a child that keeps crashing is started ever more
// rarely (no spinning), a restart that never gets ready is killed, and stop() during a backoff
// wait returns at once and starts nothing more.
import { describe, expect, it } from 'vitest';
import type { ChildExit, LocalChildOptions } from '../../src/local/local-child.js';
import { type ChildEvent, type ChildHandle, formatChildEvent, SupervisedChild, type SupervisedChildOptions } from '../../src/local/supervised-child.js';
import { sleep, until } from '../support/wait.js';

type Behaviour = 'ready' | 'crash' | 'hang' | 'refuse';

/** What `carpool node` prints before it exits 3 on a store it cannot use (src/node/run-node.ts). */
const storeRefusal = 'carpool node: the store /data/node.sqlite cannot be used (corrupt): move it away, with its -wal file, to start the node without state';

let nextPid = 1000;

/** A child process stand-in: ready at once, crashing at once, or silent until killed. */
class FakeChild implements ChildHandle {
  readonly pid = nextPid++;
  readonly exited: Promise<ChildExit>;
  readonly signals: NodeJS.Signals[] = [];
  hasExited = false;
  private resolveExit: (exit: ChildExit) => void = () => {};

  constructor(
    private readonly behaviour: Behaviour,
    readonly options: LocalChildOptions,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
    if (behaviour === 'crash') setTimeout(() => this.exit({ code: 1, signal: null }), 1);
    if (behaviour === 'refuse') setTimeout(() => this.exit({ code: 3, signal: null }), 1);
  }

  exit(exit: ChildExit): void {
    if (this.hasExited) return;
    this.hasExited = true;
    this.resolveExit(exit);
  }

  tail(): string {
    return this.behaviour === 'refuse' ? `starting\n${storeRefusal}` : '';
  }

  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | string> {
    if (this.behaviour === 'ready') return Promise.resolve(`ready pid ${this.pid}`.match(pattern) ?? 'no match');
    return Promise.race([
      this.exited.then(() => 'exited before it was ready'),
      new Promise<string>((resolve) => setTimeout(() => resolve(`was not ready within ${timeoutMs / 1000} s`), timeoutMs)),
    ]);
  }

  kill(signal: NodeJS.Signals): void {
    this.signals.push(signal);
    this.exit({ code: null, signal });
  }

  stop(): Promise<ChildExit | undefined> {
    this.kill('SIGTERM');
    return this.exited;
  }
}

function supervised(behaviours: (spawned: number) => Behaviour, overrides: Partial<SupervisedChildOptions> = {}) {
  const spawned: FakeChild[] = [];
  const events: ChildEvent[] = [];
  const child = SupervisedChild.start({
    name: 'us-east',
    logFile: '/nowhere/us-east.log',
    args: ['node', '--config', 'node-us-east.json'],
    readyPattern: /^ready pid (\d+)/,
    startTimeoutMs: 200,
    stopGraceMs: 100,
    killWaitMs: 100,
    restartPolicy: { delayMsInitial: 20, delayMsMax: 80, stableMs: 10_000 },
    onEvent: (event) => events.push(event),
    spawn: (options) => {
      const made = new FakeChild(behaviours(spawned.length), options);
      spawned.push(made);
      return made;
    },
    ...overrides,
  });
  return { child, spawned, events };
}

describe('SupervisedChild', () => {
  it('restarts a child that died, with the same arguments, appending to its log, and reports both', async () => {
    // The check compares a restart's ready line with the first one's, as the emulator's keys are.
    let firstPid = '';
    const { child, spawned, events } = supervised(() => 'ready', {
      checkReady: (match) => (match[1] === firstPid ? undefined : `pid ${match[1]}, not ${firstPid}`),
    });
    firstPid = String(spawned[0]?.pid);
    expect(typeof (await child.waitUntilReady())).not.toBe('string');
    child.supervise();
    const first = spawned[0] as FakeChild;
    first.exit({ code: null, signal: 'SIGKILL' });
    await until(() => events.length === 2, 'died and back');
    expect(events[0]).toMatchObject({
      kind: 'died',
      name: 'us-east',
      exit: { signal: 'SIGKILL' },
      logFile: '/nowhere/us-east.log',
      restartInMs: 20,
      failures: 1,
    });
    expect(events[1]).toMatchObject({ kind: 'back', name: 'us-east', pid: spawned[1]?.pid, restarts: 1, warning: `pid ${spawned[1]?.pid}, not ${firstPid}` });
    expect(spawned[1]?.options.args).toEqual(first.options.args);
    expect(spawned[1]?.options.appendLog).toBe(true);
    expect(spawned[1]?.options.logHeader).toMatch(/restarted by carpool local after signal SIGKILL/);
    expect(child.pid).toBe(spawned[1]?.pid);
    expect(child.restarts).toBe(1);
    expect(formatChildEvent(events[0] as ChildEvent)).toBe('us-east died (signal SIGKILL); restarting it in 0.0 s (log /nowhere/us-east.log)');
    expect(formatChildEvent(events[1] as ChildEvent)).toBe(`us-east is back (pid ${spawned[1]?.pid}, restart 1); but pid ${spawned[1]?.pid}, not ${firstPid}`);
    await child.stop();
    expect(spawned[1]?.signals).toEqual(['SIGTERM']);
    expect(spawned).toHaveLength(2);
  });

  it('starts a child that keeps crashing ever more rarely, up to the cap', async () => {
    const { child, spawned, events } = supervised((n) => (n === 0 ? 'ready' : 'crash'));
    await child.waitUntilReady();
    child.supervise();
    (spawned[0] as FakeChild).exit({ code: 1, signal: null });
    await sleep(500);
    await child.stop();
    const delays = events.filter((event) => event.kind === 'died').map((event) => (event.kind === 'died' ? event.restartInMs : 0));
    expect(delays.slice(0, 5)).toEqual([20, 40, 80, 80, 80]);
    // 500 ms at one start per 80 ms at most, after 140 ms of shorter waits.
    expect(spawned.length).toBeLessThanOrEqual(10);
    expect(events.some((event) => event.kind === 'back')).toBe(false);
  });

  it('says why a child that stopped itself did so (carpool node exits 3 on a store it cannot use), not only in its log', async () => {
    const { child, spawned, events } = supervised((n) => (n === 0 ? 'ready' : 'refuse'));
    await child.waitUntilReady();
    child.supervise();
    (spawned[0] as FakeChild).exit({ code: null, signal: 'SIGKILL' });
    await until(() => events.length >= 3, 'the kill and two refusals');
    await child.stop();
    expect(events.slice(0, 3).map((event) => (event.kind === 'died' ? event.refusal : 'back'))).toEqual([undefined, storeRefusal, storeRefusal]);
    expect(formatChildEvent(events[1] as ChildEvent)).toBe(
      `us-east died (code 3, failure 2 in a row): ${storeRefusal}; restarting it in 0.0 s (log /nowhere/us-east.log)`,
    );
    expect(events.some((event) => event.kind === 'back')).toBe(false);
  });

  it('kills a restart that does not become ready in time and counts it as a failure', async () => {
    const { child, spawned, events } = supervised((n) => (n === 1 ? 'hang' : 'ready'));
    await child.waitUntilReady();
    child.supervise();
    (spawned[0] as FakeChild).exit({ code: 1, signal: null });
    await until(() => events.filter((event) => event.kind === 'back').length === 1, 'the third start to be back', 3_000);
    expect(spawned[1]?.signals).toEqual(['SIGKILL']);
    expect(events.map((event) => event.kind)).toEqual(['died', 'died', 'back']);
    expect(events[1]).toMatchObject({
      kind: 'died',
      reason: expect.stringMatching(/was not ready within 0.2 s, so it was killed/) as unknown,
      restartInMs: 40,
      failures: 2,
    });
    expect(formatChildEvent(events[1] as ChildEvent)).toBe(
      'us-east died (signal SIGKILL: it was not ready within 0.2 s, so it was killed, failure 2 in a row); restarting it in 0.0 s (log /nowhere/us-east.log)',
    );
    await child.stop();
  });

  it('stops during a backoff wait at once, and starts nothing more', async () => {
    const { child, spawned, events } = supervised(() => 'ready', { restartPolicy: { delayMsInitial: 10_000, delayMsMax: 10_000, stableMs: 60_000 } });
    await child.waitUntilReady();
    child.supervise();
    (spawned[0] as FakeChild).exit({ code: null, signal: 'SIGSEGV' });
    await until(() => events.length === 1, 'the died event');
    const startedAt = Date.now();
    await child.stop();
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    await sleep(50);
    expect(spawned).toHaveLength(1);
    expect(child.pid).toBeUndefined();
  });

  it('does not restart a child that was stopped, nor one never supervised', async () => {
    const stoppedRun = supervised(() => 'ready');
    await stoppedRun.child.waitUntilReady();
    stoppedRun.child.supervise();
    await stoppedRun.child.stop();
    const unsupervised = supervised(() => 'ready');
    await unsupervised.child.waitUntilReady();
    (unsupervised.spawned[0] as FakeChild).exit({ code: 1, signal: null });
    await sleep(100);
    expect([stoppedRun.spawned.length, unsupervised.spawned.length]).toEqual([1, 1]);
    expect([...stoppedRun.events, ...unsupervised.events]).toEqual([]);
  });
});
