import { isIP } from 'node:net';
import { clientIpLengthMax } from '../../core/limits.js';
import { type CallContext, CallEndedError } from './carpool-handler.js';

/**
 * The transport side of a call's context (./carpool-handler.ts `CallContext`): the peer's IP, the
 * deadline, and one AbortSignal that fires when the call ends early.
 *
 * The signal fires on grpc-js's `cancelled` event, which covers a client's cancellation, a broken
 * connection and a forced shutdown, and also on a timer at the deadline. grpc-js ends the call
 * with DEADLINE_EXCEEDED on its own timer, but a handler waiting on a queue or an upstream must
 * hear of it too, and must not depend on which of the two timers runs first.
 *
 * grpc-js emits `cancelled` after every call, a finished one included, so `close()` detaches the
 * listener and clears the timer as soon as the handler returns: a signal that fires after the
 * answer would tell the handler a lie.
 */
export interface OpenedCall {
  readonly context: CallContext;
  /** Stops watching for cancellation and the deadline; idempotent. */
  close(): void;
}

/**
 * Longest delay a Node timer takes (2^31 − 1 ms, about 24.8 days); a longer one fires at once. A
 * deadline further out than that gets no timer: no call runs that long (an upstream call's own
 * deadline is an hour), and cancellation still fires.
 */
const timerDelayMsMax = 2 ** 31 - 1;

/**
 * A cancellation this close to the deadline is taken as the deadline's doing. It only names the
 * reason a handler sees (both mean the client is gone); 100 ms covers the clock-reading and transit
 * jitter between the client's timer and the server's on loopback and within a region.
 */
const deadlineCancelToleranceMs = 100;

/** The part of a grpc-js server call this file uses; unary and streaming calls both have it. */
export interface SurfaceCall {
  readonly cancelled: boolean;
  getDeadline(): Date | number;
  getPeer(): string;
  getPath(): string;
  on(event: 'cancelled', listener: () => void): unknown;
  off(event: 'cancelled', listener: () => void): unknown;
}

export function openCall(call: SurfaceCall, clockMs: () => number = Date.now): OpenedCall {
  const controller = new AbortController();
  const deadlineMs = deadlineMsOf(call.getDeadline());
  // A call whose deadline passes is usually cancelled before this file's timer fires: by grpc-js's
  // own timer, or by the client's, whose RST_STREAM arrives about when the server's deadline (the
  // client's remaining time, counted from receipt) falls due, a little before or after. So the
  // reason is told by the clock, with a tolerance, and a handler hears `deadline` either way.
  const onCancelled = (): void => {
    const pastDeadline = deadlineMs !== undefined && clockMs() >= deadlineMs - deadlineCancelToleranceMs;
    controller.abort(new CallEndedError(pastDeadline ? 'deadline' : 'cancelled'));
  };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  call.on('cancelled', onCancelled);
  if (call.cancelled) onCancelled();
  const nowMs = clockMs();
  if (deadlineMs !== undefined && deadlineMs - nowMs <= timerDelayMsMax) {
    timer = setTimeout(() => controller.abort(new CallEndedError('deadline')), Math.max(0, deadlineMs - nowMs));
    // The call itself keeps the server busy; the timer must not keep a stopping process alive.
    timer.unref();
  }

  return {
    context: { methodPath: call.getPath(), peerIp: peerIpOf(call.getPeer()), signal: controller.signal, deadlineMs },
    close(): void {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      call.off('cancelled', onCancelled);
    },
  };
}

/** grpc-js gives a Date, or a number of epoch milliseconds, Infinity meaning no deadline. */
export function deadlineMsOf(deadline: Date | number): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * The IP address of a grpc-js peer string. grpc-js writes `<address>:<port>` without brackets
 * around IPv6 (`::1:5000`), so the port is the digits after the last colon, and what precedes it
 * must be a valid address; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack
 * socket reports IPv4 clients) is reduced to its IPv4 form, so per-IP limits count one client
 * once. Anything else (`unknown`, a Unix socket path) is undefined.
 */
export function peerIpOf(peer: string): string | undefined {
  let address = peer;
  const bracketed = /^\[(.+)\]:\d+$/.exec(peer);
  if (bracketed !== null) {
    address = bracketed[1] ?? '';
  } else {
    const colon = peer.lastIndexOf(':');
    const withoutPort = peer.slice(0, colon);
    if (colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) && isIP(withoutPort) !== 0) address = withoutPort;
  }
  if (address.length > clientIpLengthMax || isIP(address) === 0) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped !== null ? mapped[1] : address.toLowerCase();
}
