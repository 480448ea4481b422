import { assert } from '../../core/assert.js';
import { emulatorFaultsMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import { isJson } from './token-count.js';

/**
 * Faults the emulator injects into `POST /v1/messages`, to drive a client through what a real
 * account does under stress. A fault names what happens, which key it hits (or every key), and
 * for how many requests; the plan answers each request with the first fault that matches it and
 * counts that fault down. Faults come from the account configuration (`faults` of an account,
 * aimed at its key) and at runtime from the control endpoint, in this JSON form:
 *
 *   {"kind": "rate-limit", "key": "sk-...", "count": 2, "retryAfterSeconds": 1, "remaining": 0}
 *       429 rate_limit_error with `retry-after`; remaining 0 = window spent, > 0 = short throttle
 *   {"kind": "overloaded"}            529 overloaded_error
 *   {"kind": "server-error"}          500 api_error
 *   {"kind": "unauthorized"}          401 authentication_error (a revoked key)
 *   {"kind": "forbidden"}             403 permission_error
 *   {"kind": "drop-before-headers"}   the connection closes before any response
 *   {"kind": "drop-mid-stream", "afterEvents": 3}    the connection closes after 3 SSE events
 *   {"kind": "stall-mid-stream", "afterEvents": 3}   nothing more after 3 events, never ending
 *   {"kind": "error-event", "afterEvents": 3, "errorType": "overloaded_error"}
 *       an `error` event after 3 events, then the stream ends
 *
 * `key` left out hits every key; `count` left out is 1, and `"count": "unlimited"` lasts until the
 * plan is cleared. The three mid-stream faults hit only streaming requests: a non-streaming
 * request passes them by without using them up. The plan holds at most `faultsMax` faults.
 */
export type MidStreamErrorType = 'overloaded_error' | 'api_error';

export type FaultAction =
  | { readonly kind: 'rate-limit'; readonly retryAfterSeconds: number; readonly remaining: number }
  | { readonly kind: 'overloaded' }
  | { readonly kind: 'server-error' }
  | { readonly kind: 'unauthorized' }
  | { readonly kind: 'forbidden' }
  | { readonly kind: 'drop-before-headers' }
  | { readonly kind: 'drop-mid-stream'; readonly afterEvents: number }
  | { readonly kind: 'stall-mid-stream'; readonly afterEvents: number }
  | { readonly kind: 'error-event'; readonly afterEvents: number; readonly errorType: MidStreamErrorType };

export interface Fault {
  /** The key hit; undefined hits every key. */
  readonly key: string | undefined;
  /** Requests still to hit; undefined lasts until cleared. */
  readonly count: number | undefined;
  readonly action: FaultAction;
}

export type FaultPlanError =
  { readonly kind: 'bad-fault'; readonly field: string; readonly reason: string } | { readonly kind: 'faults-full'; readonly faultsMax: number };

/** Retry hints a fault may carry: up to an hour, as no real reset is further away. */
const retryAfterSecondsMax = 3_600;
/** A mid-stream fault may wait for at most this many events, as no stream has more. */
const afterEventsMax = 1_000_000;

const bad = (field: string, reason: string): Result<never, FaultPlanError> => err({ kind: 'bad-fault', field, reason });

const kinds = [
  'rate-limit',
  'overloaded',
  'server-error',
  'unauthorized',
  'forbidden',
  'drop-before-headers',
  'drop-mid-stream',
  'stall-mid-stream',
  'error-event',
] as const;

export function isMidStream(action: FaultAction): boolean {
  return action.kind === 'drop-mid-stream' || action.kind === 'stall-mid-stream' || action.kind === 'error-event';
}

/** One fault from its JSON form; `field` names it in errors, `key` is the key it is aimed at by default. */
export function parseFault(raw: unknown, field: string, key?: string): Result<Fault, FaultPlanError> {
  if (!isJson(raw)) return bad(field, 'must be an object with a kind');
  const kind = raw.kind;
  if (typeof kind !== 'string' || !(kinds as readonly string[]).includes(kind)) return bad(`${field}.kind`, `must be one of ${kinds.join(', ')}`);
  for (const name of Object.keys(raw)) {
    if (!['kind', 'key', 'count', 'retryAfterSeconds', 'remaining', 'afterEvents', 'errorType'].includes(name)) return bad(`${field}.${name}`, 'unknown field');
  }
  let target = key;
  if (raw.key !== undefined) {
    if (typeof raw.key !== 'string' || raw.key.length === 0) return bad(`${field}.key`, 'must be a key string');
    if (key !== undefined && raw.key !== key) return bad(`${field}.key`, "must be left out: an account's faults hit its own key");
    target = raw.key;
  }
  let count: number | undefined = 1;
  if (raw.count === 'unlimited') count = undefined;
  else if (raw.count !== undefined) {
    if (!isWhole(raw.count, 1, Number.MAX_SAFE_INTEGER)) return bad(`${field}.count`, 'must be a positive integer or "unlimited"');
    count = raw.count;
  }
  const whole = (name: string, fallback: number, min: number, max: number): Result<number, FaultPlanError> => {
    const value = raw[name];
    if (value === undefined) return ok(fallback);
    if (!isWhole(value, min, max)) return bad(`${field}.${name}`, `must be an integer from ${min} to ${max}`);
    return ok(value);
  };
  let action: FaultAction;
  switch (kind as (typeof kinds)[number]) {
    case 'rate-limit': {
      const retryAfter = whole('retryAfterSeconds', 1, 0, retryAfterSecondsMax);
      if (!retryAfter.ok) return retryAfter;
      const remaining = whole('remaining', 0, 0, Number.MAX_SAFE_INTEGER);
      if (!remaining.ok) return remaining;
      action = { kind: 'rate-limit', retryAfterSeconds: retryAfter.value, remaining: remaining.value };
      break;
    }
    case 'drop-mid-stream':
    case 'stall-mid-stream': {
      const after = whole('afterEvents', 1, 0, afterEventsMax);
      if (!after.ok) return after;
      action = { kind: kind as 'drop-mid-stream' | 'stall-mid-stream', afterEvents: after.value };
      break;
    }
    case 'error-event': {
      const after = whole('afterEvents', 1, 0, afterEventsMax);
      if (!after.ok) return after;
      const errorType = raw.errorType ?? 'overloaded_error';
      if (errorType !== 'overloaded_error' && errorType !== 'api_error') return bad(`${field}.errorType`, 'must be overloaded_error or api_error');
      action = { kind: 'error-event', afterEvents: after.value, errorType };
      break;
    }
    default:
      action = { kind: kind as 'overloaded' | 'server-error' | 'unauthorized' | 'forbidden' | 'drop-before-headers' };
  }
  return ok({ key: target, count, action });
}

/** A plan from the control endpoint: `{"faults": [...]}`, an array of faults, or one fault. */
export function parseFaults(raw: unknown): Result<Fault[], FaultPlanError> {
  const list = Array.isArray(raw) ? (raw as unknown[]) : isJson(raw) && Array.isArray(raw.faults) ? (raw.faults as unknown[]) : [raw];
  const name = Array.isArray(raw) ? '' : isJson(raw) && Array.isArray(raw.faults) ? 'faults' : undefined;
  if (list.length > emulatorFaultsMax) return err({ kind: 'faults-full', faultsMax: emulatorFaultsMax });
  const faults: Fault[] = [];
  for (const [i, entry] of list.entries()) {
    const parsed = parseFault(entry, name === undefined ? 'fault' : `${name}[${i}]`);
    if (!parsed.ok) return parsed;
    faults.push(parsed.value);
  }
  return ok(faults);
}

interface Queued {
  readonly key: string | undefined;
  remaining: number | undefined;
  readonly action: FaultAction;
}

export class FaultPlan {
  private readonly queued: Queued[] = [];
  private injectedCount = 0;

  constructor(private readonly faultsMax: number = emulatorFaultsMax) {
    assert(Number.isSafeInteger(faultsMax) && faultsMax >= 1 && faultsMax <= emulatorFaultsMax, 'a plan holds 1 to emulatorFaultsMax faults');
  }

  /** Faults injected so far. */
  get injected(): number {
    return this.injectedCount;
  }

  /** Queues faults after those already queued; all or none. */
  add(faults: readonly Fault[]): Result<number, FaultPlanError> {
    if (this.queued.length + faults.length > this.faultsMax) return err({ kind: 'faults-full', faultsMax: this.faultsMax });
    for (const fault of faults) this.queued.push({ key: fault.key, remaining: fault.count, action: fault.action });
    return ok(this.queued.length);
  }

  clear(): void {
    this.queued.length = 0;
  }

  /** The fault for a request by `key`, used up by one; undefined when none matches. */
  take(key: string, stream: boolean): FaultAction | undefined {
    if (this.queued.length === 0) return undefined;
    const index = this.queued.findIndex((fault) => (fault.key === undefined || fault.key === key) && (stream || !isMidStream(fault.action)));
    if (index === -1) return undefined;
    const fault = this.queued[index] as Queued;
    if (fault.remaining !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining === 0) this.queued.splice(index, 1);
    }
    this.injectedCount += 1;
    return fault.action;
  }

  /** The queued faults with their remaining counts. */
  list(): Fault[] {
    return this.queued.map((fault) => ({ key: fault.key, count: fault.remaining, action: fault.action }));
  }
}

function isWhole(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}
