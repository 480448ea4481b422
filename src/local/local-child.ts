import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * One child process of a local mesh (the emulator or a node): `carpool <args>` run by the same
 * Node binary, its output kept in a log file and a bounded tail for error messages, its exit
 * watched, and a bounded stop (SIGTERM, a grace period, then SIGKILL).
 *
 * Children run in their own process group (`detached`), so a Ctrl-C at the terminal reaches the
 * launcher alone and the launcher stops them in order; otherwise every child would get the SIGINT
 * at the same moment and the launcher could not tell a child dying from a child being stopped.
 * The price is that a child would outlive a launcher killed with SIGKILL; for everything short of
 * that, `killAllOnExit` kills what is left when the launcher's process exits.
 */

/** Lines of a child's output kept for error messages. */
export const childTailLinesMax = 40;
/** Longest line kept in the tail; the log file has the whole of it. */
export const childTailLineCharsMax = 400;

/** The repository (or package) root: src/local/ or dist/local/ is two levels below it. */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * How to run `carpool`: from TypeScript sources through tsx's loader, or the built dist/cli.js,
 * whichever this module itself was loaded from.
 */
export function carpoolCommand(): { readonly command: string; readonly args: readonly string[] } {
  const fromSources = import.meta.url.endsWith('.ts');
  const cli = fileURLToPath(new URL(fromSources ? '../cli.ts' : '../cli.js', import.meta.url));
  return { command: process.execPath, args: fromSources ? ['--import', 'tsx', cli] : [cli] };
}

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LocalChildOptions {
  /** Shown in messages: `emulator`, `us-east`. */
  readonly name: string;
  /** The arguments after `carpool`. */
  readonly args: readonly string[];
  /**
   * A command that runs `carpool` in turn, such as `ip netns exec NS` (the WAN chaos run puts each
   * node in a network namespace). It must exec rather than fork, so the process id is the child's.
   */
  readonly commandPrefix?: readonly string[];
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Append to the log file (a restart) instead of starting it afresh (a new run). */
  readonly appendLog?: boolean;
  /** A line written to the log before the child's output, such as why it was restarted. */
  readonly logHeader?: string;
}

const running = new Set<LocalChild>();
let exitHookInstalled = false;

/** Kills every child still running when this process exits, however it exits short of SIGKILL. */
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export class LocalChild {
  readonly name: string;
  readonly logFile: string;
  /** Settles once the process has exited (or failed to start). */
  readonly exited: Promise<ChildExit>;
  private readonly process: ChildProcess;
  private readonly log: WriteStream;
  private readonly lines: string[] = [];
  private partial = '';
  private exit: ChildExit | undefined;
  private readonly lineListeners = new Set<(line: string) => void>();

  private constructor(options: LocalChildOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.log = createWriteStream(options.logFile, { flags: options.appendLog === true ? 'a' : 'w', mode: 0o600 });
    if (options.logHeader !== undefined) this.log.write(`${options.logHeader}\n`);
    const { command, args } = carpoolCommand();
    const [prefixCommand, ...prefixArgs] = options.commandPrefix ?? [];
    const argv = [...prefixArgs, ...(prefixCommand === undefined ? [] : [command]), ...args, ...options.args];
    this.process = spawn(prefixCommand ?? command, argv, {
      cwd: packageRoot,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.exited = new Promise((resolve) => {
      const done = (exit: ChildExit): void => {
        if (this.exit !== undefined) return;
        this.exit = exit;
        running.delete(this);
        if (this.partial.length > 0) this.addLine(this.partial);
        this.partial = '';
        this.log.end();
        resolve(exit);
      };
      // 'close' rather than 'exit': it comes after the output pipes are drained, so the tail is whole.
      this.process.once('close', (code, signal) => done({ code, signal }));
      this.process.once('error', (error) => {
        this.addLine(`cannot start: ${error.message}`);
        done({ code: null, signal: null });
      });
    });
    this.process.stdout?.on('data', (chunk: Buffer) => this.onOutput(chunk));
    this.process.stderr?.on('data', (chunk: Buffer) => this.onOutput(chunk));
    running.add(this);
    killAllOnExit();
  }

  static start(options: LocalChildOptions): LocalChild {
    return new LocalChild(options);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /** The last lines of output, for an error message. */
  tail(): string {
    return this.lines.join('\n');
  }

  /**
   * The first output line (already seen or still to come) that matches, or a reason: the child
   * exited, or `timeoutMs` passed.
   */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | string> {
    for (const line of this.lines) {
      const match = line.match(pattern);
      if (match !== null) return Promise.resolve(match);
    }
    if (this.exit !== undefined) return Promise.resolve(`exited (${describeExit(this.exit)}) before it was ready`);
    return new Promise((resolve) => {
      const finish = (answer: RegExpMatchArray | string): void => {
        clearTimeout(timer);
        this.lineListeners.delete(listener);
        resolve(answer);
      };
      const listener = (line: string): void => {
        const match = line.match(pattern);
        if (match !== null) finish(match);
      };
      const timer = setTimeout(() => finish(`was not ready within ${timeoutMs / 1000} s`), timeoutMs);
      this.lineListeners.add(listener);
      void this.exited.then((exit) => finish(`exited (${describeExit(exit)}) before it was ready`));
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exit !== undefined) return;
    try {
      this.process.kill(signal);
    } catch {
      // Already gone: the exit event follows.
    }
  }

  /** SIGTERM, up to `graceMs` for a clean exit, then SIGKILL and up to `killWaitMs` more. */
  async stop(graceMs: number, killWaitMs: number): Promise<ChildExit | undefined> {
    if (this.exit !== undefined) return this.exit;
    this.kill('SIGTERM');
    const clean = await within(this.exited, graceMs);
    if (clean !== undefined) return clean;
    this.kill('SIGKILL');
    return within(this.exited, killWaitMs);
  }

  private onOutput(chunk: Buffer): void {
    this.log.write(chunk);
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = (parts.pop() ?? '').slice(-childTailLineCharsMax * 4);
    for (const line of parts) this.addLine(line);
  }

  private addLine(line: string): void {
    const cut = line.length > childTailLineCharsMax ? `${line.slice(0, childTailLineCharsMax)}…` : line;
    this.lines.push(cut);
    if (this.lines.length > childTailLinesMax) this.lines.shift();
    for (const listener of [...this.lineListeners]) listener(line);
  }
}

export function describeExit(exit: ChildExit): string {
  if (exit.signal !== null) return `signal ${exit.signal}`;
  return exit.code === null ? 'could not start' : `code ${exit.code}`;
}

/** The promise's value if it settles within `ms`, else undefined. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}
