import { type ChildExit, describeExit, LocalChild, type LocalChildOptions } from './local-child.js';
import { defaultRestartPolicy, RestartBackoff, type RestartPolicy } from './restart-backoff.js';

/**
 * A child of the local mesh that the launcher keeps running, as a process supervisor would: the
 * emulator or one region's node. It starts once; while the mesh is up (`supervise()`), a death
 * that nobody asked for is reported (`died`, with the exit and the log file), the child is
 * started again with the same arguments (so the same ports and config file) after a backoff
 * (src/local/restart-backoff.ts), and reported again once it prints its ready line (`back`). The
 * other children are not touched: the other regions keep serving while one is down.
 *
 * Life of one supervised child:
 *
 *   start ──ready line──▶ up ──exit──▶ backoff wait ──▶ start again ──ready line──▶ up …
 *                                          │                 │
 *                                          │                 ├─ exits before ready ─▶ backoff (longer)
 *                                          │                 └─ not ready in time: SIGKILL ─▶ backoff (longer)
 *   stop(): at any point, the wait is cut short, no new start happens, the running process (if
 *   any) gets SIGTERM, a grace period, then SIGKILL.
 *
 * A restarted child appends to the log file of the first, under a line that says so, so the
 * output of the crash stays readable beside that of the restart.
 */

/** What the supervisor needs of a child process; `LocalChild` outside tests. */
export interface ChildHandle {
  readonly exited: Promise<ChildExit>;
  readonly pid: number | undefined;
  readonly hasExited: boolean;
  tail(): string;
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | string>;
  kill(signal: NodeJS.Signals): void;
  stop(graceMs: number, killWaitMs: number): Promise<ChildExit | undefined>;
}

export type ChildEvent =
  | {
      readonly kind: 'died';
      readonly name: string;
      readonly exit: ChildExit;
      /** Why the supervisor ended it, when it did (a restart that never became ready). */
      readonly reason: string | undefined;
      /**
       * Why the child stopped itself, when it said so as `carpool node` does before a non-zero exit
       * (`carpool node: the store … cannot be used (corrupt): …`, exit code 3): its last such line.
       */
      readonly refusal: string | undefined;
      readonly logFile: string;
      readonly restartInMs: number;
      /** Deaths since the child last ran for a stable while (1 for a first crash). */
      readonly failures: number;
    }
  | {
      readonly kind: 'back';
      readonly name: string;
      readonly pid: number | undefined;
      /** Restarts that reached the ready line, this one included. */
      readonly restarts: number;
      /** Set when the restarted child differs from the first in a way that matters (checkReady). */
      readonly warning: string | undefined;
    };

export interface SupervisedChildOptions {
  readonly name: string;
  readonly logFile: string;
  /** The arguments after `carpool`; the same for every start. */
  readonly args: readonly string[];
  /** Runs `carpool` through this command, as `ip netns exec NS` (LocalChildOptions). */
  readonly commandPrefix?: readonly string[];
  /** The output line that says the child serves. */
  readonly readyPattern: RegExp;
  readonly startTimeoutMs: number;
  readonly stopGraceMs: number;
  readonly killWaitMs: number;
  readonly restartPolicy?: RestartPolicy;
  /** Checks a restarted child's ready line against the first one's; a message when they differ. */
  readonly checkReady?: (match: RegExpMatchArray) => string | undefined;
  readonly onEvent?: (event: ChildEvent) => void;
  /** Starts a process; `LocalChild.start` unless a test stands in for it. */
  readonly spawn?: (options: LocalChildOptions) => ChildHandle;
  readonly now?: () => number;
}

export class SupervisedChild {
  readonly name: string;
  readonly logFile: string;
  private current: ChildHandle;
  private readonly backoff: RestartBackoff;
  private readonly spawn: (options: LocalChildOptions) => ChildHandle;
  private readonly now: () => number;
  private readyAtMs: number | undefined;
  private restartCount = 0;
  private supervising: Promise<void> | undefined;
  private stopping = false;
  /** Ends the backoff wait early when the child is being stopped. */
  private cancelWait: (() => void) | undefined;
  private stopped: Promise<void> | undefined;

  private constructor(private readonly options: SupervisedChildOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.backoff = new RestartBackoff(options.restartPolicy ?? defaultRestartPolicy);
    this.spawn = options.spawn ?? ((childOptions) => LocalChild.start(childOptions));
    this.now = options.now ?? Date.now;
    this.current = this.spawn({ name: options.name, logFile: options.logFile, args: options.args, ...this.prefix() });
  }

  private prefix(): Pick<LocalChildOptions, 'commandPrefix'> {
    return this.options.commandPrefix === undefined ? {} : { commandPrefix: this.options.commandPrefix };
  }

  /** Starts the child once; nothing restarts it until `supervise()`. */
  static start(options: SupervisedChildOptions): SupervisedChild {
    return new SupervisedChild(options);
  }

  get pid(): number | undefined {
    return this.current.hasExited ? undefined : this.current.pid;
  }

  /** Restarts that reached the ready line. */
  get restarts(): number {
    return this.restartCount;
  }

  /** The current process's last output lines. */
  tail(): string {
    return this.current.tail();
  }

  /** The first start's ready line, or why it did not come (exited, timed out). */
  async waitUntilReady(): Promise<RegExpMatchArray | string> {
    const ready = await this.current.waitForLine(this.options.readyPattern, this.options.startTimeoutMs);
    if (typeof ready !== 'string') this.readyAtMs = this.now();
    return ready;
  }

  /** From now on, a death restarts the child. Call once the mesh is up. */
  supervise(): void {
    if (this.stopping) return;
    this.supervising ??= this.superviseLoop();
  }

  /** Signals the current process without supervising the outcome (an interrupted start). */
  kill(signal: NodeJS.Signals): void {
    this.current.kill(signal);
  }

  /** Stops supervision and the process: no restart after this. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      this.cancelWait?.();
      await this.current.stop(this.options.stopGraceMs, this.options.killWaitMs);
      // A loop that was starting a replacement has seen `stopping` and returned by now, or stops
      // what it started; wait for it so that nothing runs after stop() settles.
      await this.supervising;
    })();
    return this.stopped;
  }

  private async superviseLoop(): Promise<void> {
    let reason: string | undefined;
    for (;;) {
      const exit = await this.current.exited;
      if (this.stopping) return;
      const upMs = this.readyAtMs === undefined ? 0 : this.now() - this.readyAtMs;
      this.readyAtMs = undefined;
      const restartInMs = this.backoff.onExit(upMs);
      const refusal = refusalOf(exit, this.current.tail());
      this.options.onEvent?.({
        kind: 'died',
        name: this.name,
        exit,
        reason,
        refusal,
        logFile: this.logFile,
        restartInMs,
        failures: this.backoff.consecutiveFailures,
      });
      reason = undefined;
      await this.wait(restartInMs);
      if (this.stopping) return;
      const started = this.spawn({
        name: this.name,
        logFile: this.logFile,
        args: this.options.args,
        ...this.prefix(),
        appendLog: true,
        logHeader: `--- ${new Date(this.now()).toISOString()} restarted by carpool local after ${describeExit(exit)} ---`,
      });
      this.current = started;
      const ready = await started.waitForLine(this.options.readyPattern, this.options.startTimeoutMs);
      if (this.stopping) {
        await started.stop(this.options.stopGraceMs, this.options.killWaitMs);
        return;
      }
      if (typeof ready === 'string') {
        // Exited before it was ready (the loop sees the exit next), or hangs: end it so it does.
        if (!started.hasExited) {
          reason = `it ${ready}, so it was killed`;
          started.kill('SIGKILL');
        }
        continue;
      }
      this.readyAtMs = this.now();
      this.restartCount++;
      this.options.onEvent?.({ kind: 'back', name: this.name, pid: started.pid, restarts: this.restartCount, warning: this.options.checkReady?.(ready) });
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.cancelWait = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * The line a child that exited with a non-zero code gave as its reason: `carpool node` prints
 * `carpool node: <what and what to do>` before it exits 2 (a bad config) or 3 (a store it cannot
 * use), neither of which goes away by itself, so the launcher's line says it, not only the log.
 */
function refusalOf(exit: ChildExit, tail: string): string | undefined {
  if (exit.code === null || exit.code === 0) return undefined;
  return tail
    .split('\n')
    .reverse()
    .find((line) => line.startsWith('carpool node: '));
}

/**
 * The launcher's line for an event: `us-east died (signal SIGKILL); restarting it in 0.5 s (log
 * .carpool/local/us-east.log)` and `us-east is back (pid 4242, restart 1)`.
 */
export function formatChildEvent(event: ChildEvent, displayPath: (path: string) => string = (path) => path): string {
  if (event.kind === 'back')
    return `${event.name} is back (pid ${event.pid ?? '?'}, restart ${event.restarts})${event.warning === undefined ? '' : `; but ${event.warning}`}`;
  const why = event.reason === undefined ? describeExit(event.exit) : `${describeExit(event.exit)}: ${event.reason}`;
  const streak = event.failures > 1 ? `, failure ${event.failures} in a row` : '';
  const said = event.refusal === undefined ? '' : `: ${event.refusal}`;
  return `${event.name} died (${why}${streak})${said}; restarting it in ${formatDelay(event.restartInMs)} (log ${displayPath(event.logFile)})`;
}

function formatDelay(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
