import { CallEndedError } from './grpc/carpool-handler.js';

/** A writable that emits `drain` once its buffer has room again: a grpc-js call, an HTTP response. */
export interface Drainable {
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/**
 * Waits for `drain`, or for the call's signal: a call that ended never drains (its writes are
 * dropped), so the wait then rejects with why it ended. The one wait behind the backpressure of
 * every streamed answer (src/net/grpc/stream-sink.ts, src/net/http/sse-writer.ts).
 */
export function drainOrEnd(stream: Drainable, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      stream.off('drain', onDrain);
      reject(endedErrorOf(signal));
    };
    stream.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
    // The call may have ended between the write and this wait.
    if (signal.aborted) onAbort();
  });
}

/** Why a call ended, from its signal: the reason it was aborted with, or a cancel. */
export function endedErrorOf(signal: AbortSignal): CallEndedError {
  const reason: unknown = signal.reason;
  return reason instanceof CallEndedError ? reason : new CallEndedError('cancelled');
}
