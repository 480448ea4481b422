import { isCount } from '../../core/assert.js';
import { auditDetailFieldsMax, auditTextLengthMax } from '../../core/limits.js';
import { err, ok, type Result } from '../../core/result.js';
import type { PolicyError, SettingsPatch } from './policy-schema.js';

/**
 * The admin audit log's entries: who changed what in the carpool, where, when and why. The log is
 * a bounded array in the replicated policy document (./policy-document.ts), so every node shows
 * the same history; entries are appended by the node that served the write and validated again
 * on every read, like every other policy entry, since a peer may run another schema version.
 *
 * An entry never holds a secret: no API key, no key digest (keys appear by key id, which shows
 * eight hex digits of the digest, as logs do), no token (the actor is the token's configured
 * name), no account credential (those never enter the policy at all).
 *
 *   { "atMs": 1767225600000, "node": "us-east-1", "actor": "admin", "action": "usage.adjust",
 *     "target": "tenant/acme", "reason": "refund for incident 42",
 *     "detail": { "metric": "requests", "window": "day:20454", "kind": "credit", "amount": 5,
 *                 "before": 40, "after": 35 } }
 */
export const auditActions = [
  'tenant.put',
  'tenant.remove',
  'account.put',
  'account.remove',
  'account.enable',
  'account.credential',
  'settings.update',
  'key.create',
  'key.revoke',
  'key.rotate',
  'usage.adjust',
] as const;
export type AuditAction = (typeof auditActions)[number];

export type AuditDetailValue = string | number | boolean;

export interface AuditEntry {
  /** When the node served the write, ms since the epoch (its clock). */
  readonly atMs: number;
  /** The member id of the node that served it. */
  readonly node: string;
  /** The admin token's configured name. */
  readonly actor: string;
  /** One of `auditActions`; a newer peer's action of the same shape is kept as it is. */
  readonly action: string;
  /** What was changed: `tenant/<id>`, `account/<id>`, `key/<key id>`, `settings`. */
  readonly target: string;
  /** The operator's why; required for usage adjustments, optional elsewhere. */
  readonly reason?: string;
  /** A flat record of what the write did (fields changed, amounts); bounded, never secret. */
  readonly detail?: Readonly<Record<string, AuditDetailValue>>;
}

const actionPattern = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;
const detailNamePattern = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

function invalid(field: string, reason: string): Result<never, PolicyError> {
  return err({ kind: 'invalid-policy', field, reason });
}

function isText(value: unknown, allowEmpty = false): value is string {
  if (typeof value !== 'string' || value.length > auditTextLengthMax || (!allowEmpty && value.length === 0)) return false;
  // No control characters: entries end up in terminals and logs.
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

function isFields(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An operator's reason: 1 to `auditTextLengthMax` characters without control characters. */
export function isValidAuditReason(value: unknown): value is string {
  return isText(value) && value.trim().length > 0;
}

export function validateAuditEntry(value: unknown, field: string): Result<AuditEntry, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const { atMs, node, actor, action, target, reason, detail } = value;
  if (typeof atMs !== 'number' || !isCount(atMs)) return invalid(`${field}.atMs`, 'must be a non-negative safe integer');
  if (!isText(node)) return invalid(`${field}.node`, `must be 1 to ${auditTextLengthMax} characters`);
  if (!isText(actor)) return invalid(`${field}.actor`, `must be 1 to ${auditTextLengthMax} characters`);
  if (typeof action !== 'string' || action.length > 32 || !actionPattern.test(action))
    return invalid(`${field}.action`, 'must be a dotted lowercase name such as tenant.put');
  if (!isText(target)) return invalid(`${field}.target`, `must be 1 to ${auditTextLengthMax} characters`);
  if (reason !== undefined && !isValidAuditReason(reason))
    return invalid(`${field}.reason`, `must be 1 to ${auditTextLengthMax} characters without control characters`);
  const checked = detail === undefined ? ok(undefined) : validateDetail(detail, `${field}.detail`);
  if (!checked.ok) return checked;
  const entry: AuditEntry = {
    atMs,
    node,
    actor,
    action,
    target,
    ...(reason === undefined ? {} : { reason }),
    ...(checked.value === undefined ? {} : { detail: checked.value }),
  };
  return ok(Object.freeze(entry));
}

function validateDetail(value: unknown, field: string): Result<Readonly<Record<string, AuditDetailValue>>, PolicyError> {
  if (!isFields(value)) return invalid(field, 'must be an object');
  const entries = Object.entries(value);
  if (entries.length > auditDetailFieldsMax) return invalid(field, `at most ${auditDetailFieldsMax} fields`);
  const detail: Record<string, AuditDetailValue> = {};
  for (const [name, given] of entries) {
    if (!detailNamePattern.test(name)) return invalid(`${field}.${name.slice(0, 32)}`, 'must be a name of letters, digits and _');
    const fine = typeof given === 'boolean' || (typeof given === 'number' && Number.isSafeInteger(given)) || isText(given, true);
    if (!fine) return invalid(`${field}.${name}`, `must be a boolean, a safe integer or text of at most ${auditTextLengthMax} characters`);
    detail[name] = given;
  }
  return ok(Object.freeze(detail));
}

/** How a setting returned to its default shows in an audit entry. */
const auditDefault = 'default';

/**
 * The audit detail of a settings update: a flat record, as every detail is. Mesh timings and
 * health timings appear under their own names; the pool's strategy and stickiness as
 * `poolStrategy` and `poolSticky`; region strategies and shedding thresholds as one text each
 * (`eu-west=least-loaded us-east=default`, `free.depthMax=10`); a setting returned to its default
 * as `default`. At most 15 fields, within `auditDetailFieldsMax`.
 */
export function settingsAuditDetail(patch: SettingsPatch): Record<string, AuditDetailValue> {
  const detail: Record<string, AuditDetailValue> = {};
  for (const name of ['gossipIntervalMs', 'digestIntervalMs', 'heartbeatIntervalMs'] as const) {
    const value = patch[name];
    if (value !== undefined) detail[name] = value;
  }
  const pool = patch.pool;
  if (pool?.strategy !== undefined) detail.poolStrategy = pool.strategy ?? auditDefault;
  if (pool?.sticky !== undefined) detail.poolSticky = pool.sticky ?? auditDefault;
  if (pool?.regionStrategy !== undefined) {
    const regions =
      pool.regionStrategy === null
        ? auditDefault
        : Object.entries(pool.regionStrategy)
            .map(([region, strategy]) => `${region}=${strategy ?? auditDefault}`)
            .join(' ');
    detail.regionStrategy = auditText(regions);
  }
  if (pool?.health === null) detail.health = auditDefault;
  else if (pool?.health !== undefined) for (const [name, value] of Object.entries(pool.health)) if (value !== undefined) detail[name] = value ?? auditDefault;
  if (patch.shed === null) detail.shed = auditDefault;
  else if (patch.shed !== undefined) {
    const parts = Object.entries(patch.shed).flatMap(([tier, thresholds]) =>
      Object.entries(thresholds ?? {}).map(([name, value]) => `${tier}.${name}=${String(value)}`),
    );
    detail.shed = auditText(parts.join(' '));
  }
  return detail;
}

/** Text cut to fit an audit field; the cut is marked, so a reader knows there was more. */
function auditText(text: string): string {
  return text.length <= auditTextLengthMax ? text : `${text.slice(0, auditTextLengthMax - 1)}…`;
}
