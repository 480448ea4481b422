import { err, ok, type Result } from '../../core/result.js';
import { counterKey, type CounterKey, isValidKeyParts } from '../../crdt/counter-key.js';
import { formatWindow, type WindowUnit, windowUnits } from '../../crdt/window.js';

/**
 * A counter key as operators and the admin endpoint write it: `<scope>/<subject>/<metric>/<unit>:<index>`,
 * such as `tenant/acme/weighted_tokens/day:20454`, the form usage adjustments answer with. A
 * subject is an id and may itself hold `/`; scope and metric are names and the window has none,
 * so the first part is the scope, the last two the metric and window, and the subject the rest.
 */
export function formatKeyText(key: Pick<CounterKey, 'scope' | 'subject' | 'metric' | 'window'>): string {
  return `${key.scope}/${key.subject}/${key.metric}/${formatWindow(key.window)}`;
}

export function parseKeyText(text: string): Result<CounterKey, string> {
  const parts = text.split('/');
  const shape = 'must be <scope>/<subject>/<metric>/<unit>:<index>, such as tenant/acme/requests/day:20454';
  if (parts.length < 4) return err(shape);
  const scope = parts[0] as string;
  const [metric, window] = parts.slice(-2) as [string, string];
  const subject = parts.slice(1, -2).join('/');
  const [unit, indexText, ...rest] = window.split(':');
  if (rest.length > 0 || unit === undefined || indexText === undefined || !(windowUnits as readonly string[]).includes(unit))
    return err(`${shape}; the unit is one of ${windowUnits.join(', ')}`);
  if (!/^\d{1,15}$/.test(indexText)) return err(`${shape}; the index is a whole number`);
  const parsedWindow = { unit: unit as WindowUnit, index: Number(indexText) };
  if (!isValidKeyParts(scope, subject, metric, parsedWindow)) return err(`${shape}; scope and metric are lowercase names, the subject an id`);
  return ok(counterKey(scope, subject, metric, parsedWindow));
}
