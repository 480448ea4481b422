import { isCount } from '../core/assert.js';
import { isValidId, type RequestId, type TenantId } from '../core/ids.js';
import { err, ok, type Result } from '../core/result.js';
import { checkedCounterKey, type CounterKey, isValidKeyParts } from '../crdt/counter-key.js';
import { windowUnits, type WindowUnit } from '../crdt/window.js';
import type { Reservation } from './reservations.js';

/**
 * A request the quota gate holds open, as a durable store keeps it (src/ledger/node-state.ts):
 * its reservations with their leases, the escrow rights it spent, whether it was admitted, and
 * the caller's context for a ledger row should the node die before it settles. JSON, because it
 * is written once per request and read only at a restart; the decoder checks every field, since
 * a file on disk is input like any other.
 */
export interface EscrowSpend {
  readonly key: CounterKey;
  readonly metric: string;
  readonly amount: number;
}

export interface OpenRequestRecord {
  readonly requestId: RequestId;
  readonly tenant: TenantId;
  /** The gate said yes: the request may have reached an upstream. Until then it had not. */
  readonly admitted: boolean;
  /** The caller's own record of the request (the gateway's ledger context), passed through. */
  readonly context: string | undefined;
  readonly reservations: readonly Reservation[];
  readonly escrow: readonly EscrowSpend[];
}

/**
 * The record as JSON, written out by hand: every open request is encoded at least twice (opened,
 * then admitted), and building the nested objects for `JSON.stringify` cost a strict simulation
 * 6 % of its time (issue 17). The text is exactly what `JSON.stringify` gives for
 * `{ t, a, c, r: [{ id, k, n, at, until, h }], e: [{ k, m, n }] }` (a property test holds it to
 * that); strings still go through `JSON.stringify`, so their escaping is the standard one.
 */
export function encodeOpenRequest(record: OpenRequestRecord): string {
  let reservations = '';
  for (const r of record.reservations) {
    reservations += `${reservations === '' ? '' : ','}{"id":${JSON.stringify(r.requestId)},"k":${keysJson(r.keys)},"n":${r.amount},"at":${r.reservedAtMs},"until":${r.leaseExpiresMs},"h":${keysJson(r.holds)}}`;
  }
  let escrow = '';
  for (const e of record.escrow) escrow += `${escrow === '' ? '' : ','}{"k":${keyJson(e.key)},"m":${JSON.stringify(e.metric)},"n":${e.amount}}`;
  const context = record.context === undefined ? 'null' : JSON.stringify(record.context);
  return `{"t":${JSON.stringify(record.tenant)},"a":${record.admitted},"c":${context},"r":[${reservations}],"e":[${escrow}]}`;
}

/** Key JSON by key object: a tenant's requests share their key objects, so each is written once. */
const keyJsonCache = new WeakMap<CounterKey, string>();

function keyJson(key: CounterKey): string {
  let json = keyJsonCache.get(key);
  if (json === undefined) {
    json = JSON.stringify([key.scope, key.subject, key.metric, key.window.unit, key.window.index]);
    keyJsonCache.set(key, json);
  }
  return json;
}

function keysJson(keys: readonly CounterKey[]): string {
  let json = '';
  for (const key of keys) json += `${json === '' ? '' : ','}${keyJson(key)}`;
  return `[${json}]`;
}

export function decodeOpenRequest(requestId: string, json: string): Result<OpenRequestRecord, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return err('not JSON');
  }
  if (!isValidId(requestId)) return err('bad request id');
  if (!isObject(raw) || typeof raw.t !== 'string' || !isValidId(raw.t) || typeof raw.a !== 'boolean') return err('bad tenant or admitted flag');
  if (raw.c !== null && typeof raw.c !== 'string') return err('bad context');
  if (!Array.isArray(raw.r) || !Array.isArray(raw.e)) return err('bad reservations or escrow');
  const reservations: Reservation[] = [];
  for (const r of raw.r as unknown[]) {
    if (!isObject(r) || typeof r.id !== 'string' || !isValidId(r.id) || !count(r.n) || !count(r.at) || !count(r.until)) return err('bad reservation');
    const keys = keysOf(r.k);
    const holds = keysOf(r.h);
    if (keys === undefined || holds === undefined) return err('bad reservation key');
    reservations.push({ requestId: r.id as RequestId, tenant: raw.t as TenantId, keys, amount: r.n, reservedAtMs: r.at, leaseExpiresMs: r.until, holds });
  }
  const escrow: EscrowSpend[] = [];
  for (const e of raw.e as unknown[]) {
    if (!isObject(e) || typeof e.m !== 'string' || !count(e.n)) return err('bad escrow spend');
    const key = keyOf(e.k);
    if (key === undefined) return err('bad escrow key');
    escrow.push({ key, metric: e.m, amount: e.n });
  }
  return ok({ requestId: requestId as RequestId, tenant: raw.t as TenantId, admitted: raw.a, context: raw.c ?? undefined, reservations, escrow });
}

function keysOf(raw: unknown): CounterKey[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const keys: CounterKey[] = [];
  for (const item of raw as unknown[]) {
    const key = keyOf(item);
    if (key === undefined) return undefined;
    keys.push(key);
  }
  return keys;
}

/** A stored counter key, checked as the wire decoder checks one. */
export function keyOf(raw: unknown): CounterKey | undefined {
  if (!Array.isArray(raw) || raw.length !== 5) return undefined;
  const [scope, subject, metric, unit, index] = raw as unknown[];
  if (typeof scope !== 'string' || typeof subject !== 'string' || typeof metric !== 'string' || typeof unit !== 'string' || typeof index !== 'number')
    return undefined;
  if (!(windowUnits as readonly string[]).includes(unit)) return undefined;
  const window = { unit: unit as WindowUnit, index };
  if (!isValidKeyParts(scope, subject, metric, window)) return undefined;
  return checkedCounterKey(scope, subject, metric, window);
}

function count(value: unknown): value is number {
  return typeof value === 'number' && isCount(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
