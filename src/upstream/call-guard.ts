import { EventEmitter } from 'node:events';
import { assert } from '../core/assert.js';

/**
 * The timers and the cancellation of one upstream call, in one place so that every way a call
 * can end clears them all.
 *
 * A call is stopped by aborting the `CallAbort` the HTTP request carries as its signal: the
 * library then fails whatever is pending (the wait for headers, the next body chunk) and closes
 * the connection. Before aborting, the guard records why (`cause`), so the failure that comes
 * back is read as the timeout or cancellation it was, not as a network error.
 *
 *   headers timer   armed at dispatch, cleared when the response headers arrive
 *   idle timer      armed only while a body chunk is awaited, so time the caller spends
 *                   forwarding an event (backpressure) never counts as upstream silence
 *   deadline timer  armed at dispatch, cleared when the call ends
 *
 * The caller's signal. Aborted before the call is dispatched, the call is not sent at all. Once
 * it was sent, in `drain` mode the signal only marks the call cancelled: the client stops
 * delivering events but reads on to the final usage, before the headers as after them, because
 * an upstream that received the request generates (and bills) its answer whether or not anyone
 * waits for it, and billing must match. In `abort` mode the signal stops the call at once.
 */
export interface Timers {
  start(callback: () => void, delayMs: number): unknown;
  cancel(handle: unknown): void;
}

export const systemTimers: Timers = {
  start: (callback, delayMs) => setTimeout(callback, delayMs),
  cancel: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export type TimeoutPhase = 'headers' | 'idle' | 'deadline';

export type StopCause =
  | { readonly kind: 'timeout'; readonly phase: TimeoutPhase; readonly afterMs: number }
  | { readonly kind: 'cancelled' }
  /** The client is closing and its grace period ran out. */
  | { readonly kind: 'closed' }
  /** The client itself gave up on the body (bad input, or done with it). */
  | { readonly kind: 'discarded' };

export type CancelMode = 'drain' | 'abort';

export interface GuardTimeouts {
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly deadlineMs: number;
}

/** How a wait on the caller's sink ended. */
export type SinkWait = 'done' | 'failed' | 'interrupted';

/**
 * The signal of one call's HTTP request. undici takes an EventEmitter that emits `abort` in place
 * of an AbortSignal (its documented `signal` type), and reads `aborted` and `reason` from either.
 * On Node 20 an AbortController, its signal and undici's listener on it cost about 10 µs a call;
 * this costs well under one.
 */
export class CallAbort extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    try {
      this.emit('abort');
    } catch (error) {
      // As an AbortSignal does: a listener that throws is an uncaught exception, not the
      // failure of whoever aborted.
      process.nextTick(() => {
        throw error;
      });
    }
  }
}

export class CallGuard {
  private readonly abortable = new CallAbort();
  private stopCause: StopCause | undefined;
  private callerGone = false;
  private headersTimer: unknown;
  private idleTimer: unknown;
  private deadlineTimer: unknown;
  private wake: (() => void) | undefined;
  private disposed = false;
  /** Set only when the caller passed a signal: most calls need no listener. */
  private onCallerAbort: (() => void) | undefined;

  constructor(
    private readonly timers: Timers,
    private readonly timeouts: GuardTimeouts,
    private readonly mode: CancelMode,
    private readonly callerSignal: AbortSignal | undefined,
  ) {
    this.deadlineTimer = timers.start(() => this.stop({ kind: 'timeout', phase: 'deadline', afterMs: timeouts.deadlineMs }), timeouts.deadlineMs);
    this.headersTimer = timers.start(() => this.stop({ kind: 'timeout', phase: 'headers', afterMs: timeouts.headersTimeoutMs }), timeouts.headersTimeoutMs);
    if (callerSignal !== undefined) {
      if (callerSignal.aborted) {
        // Not yet dispatched: nothing reached the upstream, so the call is not made at all.
        this.callerGone = true;
        this.stop({ kind: 'cancelled' });
      } else {
        this.onCallerAbort = () => this.callerCancelled();
        callerSignal.addEventListener('abort', this.onCallerAbort, { once: true });
      }
    }
  }

  /** The signal the HTTP request carries. */
  get signal(): CallAbort {
    return this.abortable;
  }

  /** Why the call was stopped, if it was. */
  get cause(): StopCause | undefined {
    return this.stopCause;
  }

  /** Whether the caller went away (its signal, or a sink that failed). */
  get cancelled(): boolean {
    return this.callerGone;
  }

  /** Whether events should still reach the caller. */
  get delivering(): boolean {
    return !this.callerGone && this.stopCause === undefined;
  }

  headersArrived(): void {
    this.timers.cancel(this.headersTimer);
    this.headersTimer = undefined;
  }

  /** Arms the idle timer before a body chunk is awaited; `idleTimeoutMs` overrides the call's. */
  awaitingChunk(idleTimeoutMs = this.timeouts.idleTimeoutMs): void {
    assert(this.idleTimer === undefined, 'one body read at a time');
    if (this.disposed) return;
    this.idleTimer = this.timers.start(() => this.stop({ kind: 'timeout', phase: 'idle', afterMs: idleTimeoutMs }), idleTimeoutMs);
  }

  chunkArrived(): void {
    if (this.idleTimer === undefined) return;
    this.timers.cancel(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** The caller is gone: a failed sink counts like its abort signal. */
  callerCancelled(): void {
    if (this.callerGone) return;
    this.callerGone = true;
    if (this.mode === 'abort') this.stop({ kind: 'cancelled' });
    else this.interruptWait();
  }

  /** Stops the call for `cause`; the first cause is the one reported. */
  stop(cause: StopCause): void {
    if (this.stopCause !== undefined || this.disposed) return;
    this.stopCause = cause;
    this.abortable.abort(cause);
    this.interruptWait();
  }

  /**
   * Waits for the caller's sink, but no longer than the caller stays and the call runs: a caller
   * that went away may never resolve the promise it returned (a write waiting for a `drain` that
   * will not come), and draining must not wait on it.
   */
  waitForSink(pending: PromiseLike<void>): Promise<SinkWait> {
    if (!this.delivering) {
      swallow(pending);
      return Promise.resolve('interrupted');
    }
    return new Promise<SinkWait>((resolve) => {
      this.wake = () => resolve('interrupted');
      pending.then(
        () => resolve('done'),
        () => resolve('failed'),
      );
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** Clears every timer and listener; the call is over. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.headersTimer !== undefined) this.timers.cancel(this.headersTimer);
    if (this.idleTimer !== undefined) this.timers.cancel(this.idleTimer);
    if (this.deadlineTimer !== undefined) this.timers.cancel(this.deadlineTimer);
    this.headersTimer = this.idleTimer = this.deadlineTimer = undefined;
    if (this.onCallerAbort !== undefined) this.callerSignal?.removeEventListener('abort', this.onCallerAbort);
    this.interruptWait();
  }

  private interruptWait(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Keeps a promise the call no longer waits for from becoming an unhandled rejection. */
function swallow(pending: PromiseLike<void>): void {
  pending.then(undefined, () => undefined);
}
