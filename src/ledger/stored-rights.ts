import { keyOf } from '../admission/open-request-record.js';
import { isCount } from '../core/assert.js';
import { isValidId, type ReplicaId } from '../core/ids.js';
import type { KeyedRightsRow, RightsRow } from '../crdt/bounded-counter.js';
import type { CounterKey } from '../crdt/counter-key.js';

/** A rights row (src/crdt/bounded-counter.ts) as a durable store keeps it: JSON, checked on the way back. */
export function encodeRightsRow(key: CounterKey, row: RightsRow): string {
  return JSON.stringify({ k: [key.scope, key.subject, key.metric, key.window.unit, key.window.index], o: row.owner, c: [...row.cells], u: row.used });
}

export function decodeRightsRow(json: string): KeyedRightsRow | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { k, o, c, u } = raw as { k?: unknown; o?: unknown; c?: unknown; u?: unknown };
  const key = keyOf(k);
  if (key === undefined || typeof o !== 'string' || !isValidId(o) || typeof u !== 'number' || !isCount(u) || !Array.isArray(c)) return undefined;
  const cells = new Map<ReplicaId, number>();
  for (const cell of c as unknown[]) {
    if (!Array.isArray(cell) || cell.length !== 2) return undefined;
    const [to, amount] = cell as unknown[];
    if (typeof to !== 'string' || !isValidId(to) || typeof amount !== 'number' || !isCount(amount)) return undefined;
    cells.set(to as ReplicaId, amount);
  }
  return { key, row: { owner: o as ReplicaId, cells, used: u } };
}
