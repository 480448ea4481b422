import { assert } from '../core/assert.js';
import { isValidId, isValidName } from '../core/ids.js';
import { type Window, windowUnitCode } from './window.js';

/**
 * A counter key names one quantity in one window: `(scope, subject, metric, window)`, for
 * example `(tenant, acme, weighted_tokens, day:20418)`. Scope and metric are short names from a
 * vocabulary the admission layer defines; the subject is an id (tenant, user, account, IP).
 *
 * `id` is a string made once per key and used as the map key: building it is the only string
 * work on the hot path, and callers that increment the same key repeatedly keep the object.
 */
export interface CounterKey {
  readonly scope: string;
  readonly subject: string;
  readonly metric: string;
  readonly window: Window;
  readonly id: string;
}

/** Separator inside key ids: a control character that ids and names can never contain. */
const sep = '\u001f';

export function isValidKeyParts(scope: string, subject: string, metric: string, window: Window): boolean {
  return isValidName(scope) && isValidId(subject) && isValidName(metric) && Number.isSafeInteger(window.index) && window.index >= 0;
}

/** Builds a key from parts the caller has validated (see `isValidKeyParts`); asserts they are valid. */
export function counterKey(scope: string, subject: string, metric: string, window: Window): CounterKey {
  assert(isValidKeyParts(scope, subject, metric, window), `invalid counter key parts ${scope}/${subject}/${metric}`);
  return checkedCounterKey(scope, subject, metric, window);
}

/**
 * Builds a key without re-validating its parts: for the wire decoder, which validates each
 * table string once instead of once per key that uses it.
 */
export function checkedCounterKey(scope: string, subject: string, metric: string, window: Window): CounterKey {
  const id = [scope, subject, metric, windowUnitCode(window.unit), window.index].join(sep);
  // The window object is shared, not copied: keys of one window share one object, which matters
  // when a map holds millions of keys.
  return { scope, subject, metric, window, id };
}

/** Human-readable form for logs and errors. */
export function formatCounterKey(key: CounterKey): string {
  return `${key.scope}:${key.subject}/${key.metric}/${key.window.unit}:${key.window.index}`;
}
